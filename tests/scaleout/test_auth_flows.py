"""Sign-in, consent, code redemption, refresh and refresh-token reuse detection across auth-server replicas.

One client drives the whole flow through HAProxy and records which replica answered each request: every
request lands on the other replica than the one before, so each step finds what the previous one stored
(pending sign-in, code, refresh-token family) only because it lives in the shared database.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import secrets
from urllib.parse import parse_qs, urlencode, urljoin, urlparse

import httpx2
from devkit.headless_login import parse_forms
from devkit.scaled import SERVED_BY, ScaledTopology

REDIRECT_URI = "http://127.0.0.1:3030/callback"


def _recording(served: list[str]) -> httpx2.Client:
    def record(response: httpx2.Response) -> None:
        served.append(response.headers.get(SERVED_BY, "?"))

    return httpx2.Client(timeout=10, follow_redirects=False, event_hooks={"response": [record]})


def _sign_in_and_consent(http: httpx2.Client, url: str, username: str, password: str) -> str:
    """Open `url`, sign in, approve; the code the redirect to REDIRECT_URI carries."""
    response = http.get(url)
    for _ in range(10):
        if response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            if location.startswith(REDIRECT_URI):
                query = parse_qs(urlparse(location).query)
                assert "code" in query, query
                return query["code"][0]
            response = http.get(location)
            continue
        assert response.status_code == 200, (response.status_code, response.text[:300])
        form = parse_forms(response.text)[0]
        values = dict(form.fields)
        if any("pass" in name for name in values):
            values.update({name: username for name in values if "user" in name}, password=password)
        elif form.buttons:
            approve = next((b for b in form.buttons if "approve" in f"{b[0]}={b[1]}".lower()), form.buttons[0])
            values[approve[0]] = approve[1]
        response = http.post(urljoin(str(response.url), form.action or str(response.url)), data=values)
    raise AssertionError("the flow did not reach the redirect URI")


def test_sign_in_code_refresh_and_reuse_detection_alternate_between_replicas(scaled: ScaledTopology) -> None:
    issuer, resource = scaled.env["AUTH_ISSUER"], scaled.crm_mcp_url
    served: list[str] = []
    with _recording(served) as http:
        registered = http.post(
            f"{issuer}/register",
            json={
                "client_name": "scale-out test",
                "redirect_uris": [REDIRECT_URI],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            },
        )
        assert registered.status_code == 201, registered.text
        client_id = registered.json()["client_id"]
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": "crm:read",
            "state": secrets.token_urlsafe(16),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "resource": resource,
        }
        code = _sign_in_and_consent(http, f"{issuer}/authorize?{urlencode(query)}", "alice", scaled.password("alice"))
        token = {"client_id": client_id, "resource": resource}
        redeemed = http.post(
            f"{issuer}/token",
            data={
                **token,
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
            },
        )
        assert redeemed.status_code == 200, redeemed.text
        first_refresh = redeemed.json()["refresh_token"]
        refreshed = http.post(
            f"{issuer}/token", data={**token, "grant_type": "refresh_token", "refresh_token": first_refresh}
        )
        assert refreshed.status_code == 200, refreshed.text
        second_refresh = refreshed.json()["refresh_token"]
        assert second_refresh != first_refresh
        reused = http.post(
            f"{issuer}/token", data={**token, "grant_type": "refresh_token", "refresh_token": first_refresh}
        )
        assert reused.status_code == 400, reused.text
        assert reused.json()["error"] == "invalid_grant"
        # Reuse revokes the whole grant, on every replica: the newest refresh token is dead too.
        after_reuse = http.post(
            f"{issuer}/token", data={**token, "grant_type": "refresh_token", "refresh_token": second_refresh}
        )
        assert after_reuse.status_code == 400, after_reuse.text
        assert after_reuse.json()["error"] == "invalid_grant"
        # The code was redeemed once, on one replica: the other refuses it as well.
        again = http.post(
            f"{issuer}/token",
            data={
                **token,
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
            },
        )
        assert again.status_code == 400, again.text
        assert again.json()["error"] == "invalid_grant"
    assert set(served) == {"auth-server-1", "auth-server-2"}, served
    assert all(a != b for a, b in itertools.pairwise(served)), served
