"""Log a demo user in through the auth server's real login and consent pages, with no browser.

The official MCP SDK client (`OAuthClientProvider`) runs the whole OAuth flow itself: discovery,
dynamic client registration, PKCE, the token request. It only needs someone to visit the
authorization URL; `HeadlessBrowser` does that the way a person would: it loads the login page,
fills in the form, submits it, approves the consent page, and hands the redirect's `code`, `state`
and `iss` back to the SDK. Used by `make demo` and the integration tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urljoin, urlparse, urlunparse

import httpx2
from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from pydantic import AnyUrl

CALLBACK_URL = "http://localhost:3030/callback"
# Pages and redirects a login may take (login, consent, interaction hops) before it must be done.
_MAX_STEPS = 12


@dataclass
class Form:
    """An HTML form: where it posts and the inputs it would send."""

    action: str
    method: str = "get"
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append(Form(action=attributes.get("action", ""), method=attributes.get("method", "get").lower()))
        elif self.forms and tag in ("input", "button") and attributes.get("name"):
            kind = attributes.get("type", "submit" if tag == "button" else "text")
            if kind == "submit":
                self.forms[-1].buttons.append((attributes["name"], attributes.get("value", "")))
            else:
                self.forms[-1].fields[attributes["name"]] = attributes.get("value", "")


def parse_forms(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


class HeadlessBrowser:
    """Plays the user at the authorization endpoint: log in as `username`, approve consent."""

    def __init__(
        self, username: str, password: str, *, scope: str | None = None, timeout_seconds: float = 10.0
    ) -> None:
        self.username = username
        self._password = password
        self._scope = scope
        self._timeout = timeout_seconds
        self._result: AuthorizationCodeResult | None = None

    async def redirect_handler(self, authorization_url: str) -> None:
        self._result = await self.authorize(authorization_url)

    async def callback_handler(self) -> AuthorizationCodeResult:
        if self._result is None:
            raise RuntimeError("the authorization URL was never visited")
        result, self._result = self._result, None
        return result

    async def authorize(self, authorization_url: str) -> AuthorizationCodeResult:
        """Load the login page, log in, approve, and return what the redirect to the client carries.

        Like a browser, it follows the authorization server's own redirects (some servers send the user
        through interaction pages first) and stops at the first redirect to the client's redirect URI.
        `scope` narrows the first authorization only: a later one (the SDK stepping up after a 403
        insufficient_scope) asks for what the SDK asks, as a user re-consenting to more would grant.
        """
        if self._scope is not None:
            authorization_url, self._scope = _with_scope(authorization_url, self._scope), None
        redirect_uri = parse_qs(urlparse(authorization_url).query).get("redirect_uri", [CALLBACK_URL])[0]
        async with httpx2.AsyncClient(timeout=self._timeout, follow_redirects=False) as browser:
            response, location = await _browse(
                browser, await browser.get(authorization_url), lambda _: self, stop_at=redirect_uri
            )
        if location is None:
            raise RuntimeError(f"login as {self.username} did not redirect (HTTP {response.status_code})")
        query = parse_qs(urlparse(location).query)
        if "error" in query:
            raise RuntimeError(f"authorization refused: {query['error'][0]}")
        return AuthorizationCodeResult(
            code=query["code"][0],
            state=query.get("state", [None])[0],
            iss=query.get("iss", [None])[0],
        )

    def _login_values(self, form: Form) -> dict[str, str]:
        values = dict(form.fields)
        for name in values:
            if "user" in name.lower() or name.lower() == "login":
                values[name] = self.username
            elif "pass" in name.lower():
                values[name] = self._password
        return values

    @staticmethod
    def _approve_values(form: Form) -> dict[str, str]:
        values = dict(form.fields)
        approve = next(
            ((n, v) for n, v in form.buttons if any(w in f"{n}={v}".lower() for w in ("approve", "allow"))),
            form.buttons[0] if form.buttons else None,
        )
        if approve:
            values[approve[0]] = approve[1]
        return values

    @staticmethod
    async def _submit(
        browser: httpx2.AsyncClient, page: httpx2.Response, fill: Callable[[Form], dict[str, str]]
    ) -> httpx2.Response:
        forms = parse_forms(page.text)
        if not forms:
            raise RuntimeError(f"expected a form at {page.url}, got HTTP {page.status_code}")
        form = forms[0]
        values = fill(form)
        return await browser.post(urljoin(str(page.url), form.action or str(page.url)), data=values)


async def open_in_browser(
    url: str, accounts: Mapping[str, HeadlessBrowser], *, timeout_seconds: float = 10.0
) -> httpx2.Response:
    """Open `url` as a person would and go through to the last page: follow redirects (keeping cookies),
    sign in on every login page with the account `accounts` names for that page's origin, approve every
    consent page. Used for the pages a URL-mode elicitation opens (pattern 4), which cross two servers."""

    def person_for(origin: str) -> HeadlessBrowser:
        if origin not in accounts:
            raise RuntimeError(f"no account to sign in with at {origin}")
        return accounts[origin]

    async with httpx2.AsyncClient(timeout=timeout_seconds, follow_redirects=False) as browser:
        response, _ = await _browse(browser, await browser.get(url), person_for)
    return response


async def _browse(
    browser: httpx2.AsyncClient,
    response: httpx2.Response,
    person_for: Callable[[str], HeadlessBrowser],
    *,
    stop_at: str | None = None,
    max_steps: int = _MAX_STEPS,
) -> tuple[httpx2.Response, str | None]:
    """Follow redirects, sign in on login pages and approve consent pages, as `person_for(origin)`.

    Ends at a redirect to `stop_at` (its URL is returned, not followed) or at a page with no form. A login
    page shown again at an origin already signed in to means the password was refused.
    """
    signed_in: set[str] = set()
    for _ in range(max_steps):
        if response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            if stop_at is not None and location.startswith(stop_at):
                return response, location
            response = await browser.get(location)
            continue
        forms = parse_forms(response.text) if response.status_code == 200 else []
        if not forms:
            return response, None
        origin = "{0.scheme}://{0.netloc}".format(urlparse(str(response.url)))
        person = person_for(origin)
        signing_in = any("pass" in name.lower() for name in forms[0].fields)
        if signing_in and origin in signed_in:
            raise RuntimeError(f"login as {person.username} was refused")
        if signing_in:
            signed_in.add(origin)
        fill = person._login_values if signing_in else person._approve_values
        response = await person._submit(browser, response, fill)
    raise RuntimeError(f"{response.url} did not reach a final page in {max_steps} steps")


def _with_scope(url: str, scope: str) -> str:
    """`url` asking for exactly `scope`.

    The SDK chooses the scope itself (all the server advertises), so a client that wants less narrows
    the request here, the way a client configured for fewer scopes would.
    """
    parts = urlparse(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    query["scope"] = scope
    return urlunparse(parts._replace(query=urlencode(query)))


class MemoryTokenStorage:
    """Token storage for the SDK's OAuth provider: in memory, for one run."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


def user_oauth(
    server_url: str, username: str, password: str, *, scope: str | None = None
) -> tuple[OAuthClientProvider, MemoryTokenStorage]:
    """The SDK's OAuth provider for `server_url`, logging in as `username` headlessly (asking for `scope`)."""
    browser = HeadlessBrowser(username, password, scope=scope)
    storage = MemoryTokenStorage()
    provider = OAuthClientProvider(
        server_url=server_url,
        client_metadata=OAuthClientMetadata(
            client_name=f"headless demo client ({username})",
            redirect_uris=[AnyUrl(CALLBACK_URL)],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",  # noqa: S106 - a public client: "none" is the method, not a password
        ),
        storage=storage,
        redirect_handler=browser.redirect_handler,
        callback_handler=browser.callback_handler,
    )
    return provider, storage
