"""A headless stand-in for the user's browser, with assertions: opens the login page, submits its forms.

The form parsing is `devkit/src/devkit/headless_login.py`'s (the one `make demo` uses); this adds strict checks.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx2
from devkit.headless_login import Form, parse_forms


def only_form(page: httpx2.Response) -> Form:
    forms = parse_forms(page.text)
    assert len(forms) == 1, f"expected one form on the page:\n{page.text}"
    return forms[0]


def without_per_request_values(html: str) -> str:
    """A page with the values that differ per request (request id, CSRF value, typed username) removed."""
    return re.sub(r'name="(request_id|csrf_token|username)" (type="text" )?value="[^"]*"', "", html)


def query_of(location: str) -> dict[str, str]:
    """The query parameters of a redirect Location, one value each."""
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


class Browser:
    """Keeps cookies like a browser, follows no redirects (the test reads the callback URL itself)."""

    def __init__(self) -> None:
        self.http = httpx2.Client(timeout=10.0, follow_redirects=False)

    def close(self) -> None:
        self.http.close()

    def open(self, url: str) -> httpx2.Response:
        return self.http.get(url)

    def submit(
        self, page: httpx2.Response, values: dict[str, str], button: tuple[str, str] | None = None
    ) -> httpx2.Response:
        form = only_form(page)
        assert form.method == "post"
        data = {**form.fields, **values}
        if button is not None:
            assert button in form.buttons, f"no button {button} in {form.buttons}"
            data[button[0]] = button[1]
        return self.http.post(urljoin(str(page.url), form.action), data=data)

    def sign_in(self, authorization_url: str, username: str, password: str) -> httpx2.Response:
        """Open the authorization URL and sign in; returns the consent page."""
        login = self.open(authorization_url)
        assert login.status_code == 200, login.text
        return self.submit(login, {"username": username, "password": password})

    def authorize(self, authorization_url: str, username: str, password: str, decision: str = "approve") -> str:
        """Sign in and decide on the consent page; returns the redirect back to the client (Location)."""
        consent = self.sign_in(authorization_url, username, password)
        assert consent.status_code == 200, consent.text
        assert "Allow access?" in consent.text, consent.text
        redirect = self.submit(consent, {}, button=("decision", decision))
        assert redirect.status_code == 303, redirect.text
        return redirect.headers["location"]
