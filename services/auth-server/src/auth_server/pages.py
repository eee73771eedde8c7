"""Plain, accessible HTML for the login, consent and error pages; every dynamic value is escaped.

The look is shared with crm-mcp's connect pages (oauth_tokens.pages); the brand (name, colour, footer)
is this server's config's [page], so the calendar provider's pages do not look like the CRM's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from urllib.parse import urlsplit

from fastapi.responses import HTMLResponse
from oauth_tokens.pages import PAGE_CSP, PageBrand, html_document

from auth_server.uris import LOOPBACK_HOSTS

# No framing (clickjacking on the consent page), no scripts, nothing cached, no referrer leaks.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Content-Security-Policy": PAGE_CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# The local auth-server's; a second instance (the calendar's) sets its own in its config's [page].
DEFAULT_BRAND = PageBrand(
    "auth-server (development)", footer="auth-server is a development stand-in authorization server."
)


@dataclass(frozen=True)
class RequestSummary:
    """What the user is told about the authorization request, on both pages."""

    request_id: str
    csrf_token: str
    client_name: str
    client_id: str
    client_verified: bool  # False for dynamically registered clients: the name is self-asserted
    resource_description: str
    resource_identifier: str
    scopes: Sequence[str]
    return_to: str  # origin of the redirect URI
    client_host: str = ""  # set for a client identified by its metadata document URL: that URL's host
    scope_descriptions: Mapping[str, str] = field(default_factory=dict)  # scope -> plain language
    brand: PageBrand = DEFAULT_BRAND


def _page(title: str, body: str, brand: PageBrand, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(html_document(title, body, brand), status_code=status_code, headers=PAGE_HEADERS)


def _hidden(summary: RequestSummary) -> str:
    return (
        f'<input type="hidden" name="request_id" value="{escape(summary.request_id)}">\n'
        f'<input type="hidden" name="csrf_token" value="{escape(summary.csrf_token)}">\n'
    )


def _client_line(summary: RequestSummary) -> str:
    if summary.client_host:  # the CIMD draft ("OAuth Phishing Attacks"): show the client_id URL's host
        return (
            f"<strong>{escape(summary.client_name)}</strong> from <strong>{escape(summary.client_host)}</strong> "
            "(the name is the application's own claim; the host is where this server fetched it from) "
            f"<span class='note'>client ID <code>{escape(summary.client_id)}</code></span>"
        )
    unverified = "" if summary.client_verified else " (name given by the application itself, not verified)"
    return (
        f"<strong>{escape(summary.client_name)}</strong>{escape(unverified)} "
        f"<span class='note'>client ID <code>{escape(summary.client_id)}</code></span>"
    )


def _scope_item(scope: str, description: str | None) -> str:
    """A scope in plain language, the code itself beside it (the code alone if none is configured)."""
    code = f"<code>{escape(scope)}</code>"
    if not description:
        return f"<li>{code}</li>"
    return f'<li>{escape(description)} <span class="scope-code">({code})</span></li>'


# The same texts whether or not the username exists.
LOGIN_FAILED = "The username or password is incorrect."
LOGIN_REFUSED = "Too many failed sign-in attempts. Wait a few minutes, then try again."


def login_page(
    summary: RequestSummary, *, username: str = "", error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    alert = f'<p id="login-error" class="error" role="alert">{escape(error)}</p>\n' if error else ""
    described = ' aria-describedby="login-error"' if error else ""
    # After a failed attempt the username is kept, so the password is what to type next.
    retry = bool(error and username)
    body = (
        "<h1>Sign in</h1>\n"
        f"<p>Sign in to continue to {_client_line(summary)}.</p>\n"
        f"{alert}"
        '<form method="post" action="/authorize/login">\n'
        f"{_hidden(summary)}"
        '<label for="username">Username</label>\n'
        f'<input id="username" name="username" type="text" value="{escape(username)}" autocomplete="username" '
        f'autocapitalize="none" spellcheck="false" required{"" if retry else " autofocus"}{described}>\n'
        '<label for="password">Password</label>\n'
        f'<input id="password" name="password" type="password" autocomplete="current-password" '
        f"required{' autofocus' if retry else ''}{described}>\n"
        '<button type="submit">Sign in</button>\n'
        "</form>"
    )
    # "Error: " first in the title, so a screen reader announces the failure as the page loads.
    return _page("Error: Sign in" if error else "Sign in", body, summary.brand, status_code=status_code)


def _local_app_warning(summary: RequestSummary) -> str:
    """MCP 2026-07-28: warn when a metadata document client returns to loopback, which anyone can claim."""
    if not summary.client_host or urlsplit(summary.return_to).hostname not in LOOPBACK_HOSTS:
        return ""
    return (
        '<p class="error">This application runs on your own computer, and any program can claim to be it. '
        "Allow only if you started it yourself just now.</p>\n"
    )


def consent_page(summary: RequestSummary, *, user_name: str, username: str) -> HTMLResponse:
    scopes = "\n".join(_scope_item(scope, summary.scope_descriptions.get(scope)) for scope in summary.scopes)
    body = (
        "<h1>Allow access?</h1>\n"
        f"<p>Signed in as <strong>{escape(user_name)}</strong> ({escape(username)}).</p>\n"
        f"<p>{_client_line(summary)} asks to act on your behalf on:</p>\n"
        f"<p><strong>{escape(summary.resource_description or 'Resource')}</strong><br>"
        f"<code>{escape(summary.resource_identifier)}</code></p>\n"
        '<h2 id="scopes-heading">With these permissions (scopes)</h2>\n'
        f'<ul aria-labelledby="scopes-heading">\n{scopes}\n</ul>\n'
        f"<p>If you allow, you will be sent back to <code>{escape(summary.return_to)}</code>.</p>\n"
        f"{_local_app_warning(summary)}"
        '<form method="post" action="/authorize/consent">\n'
        f"{_hidden(summary)}"
        '<button type="submit" name="decision" value="approve">Allow</button>\n'
        '<button type="submit" name="decision" value="deny" class="secondary">Deny</button>\n'
        "</form>"
    )
    return _page("Allow access?", body, summary.brand)


def error_page(brand: PageBrand, title: str, message: str, status_code: int = 400) -> HTMLResponse:
    """A request we cannot send back to the client (unknown client, bad redirect URI, expired form...)."""
    body = f'<h1>{escape(title)}</h1>\n<p class="error" role="alert">{escape(message)}</p>'
    return _page(title, body, brand, status_code=status_code)
