"""Limits hold for the topology, not per replica: weather-api's 60 per minute, the auth-server's lockout.

Without Redis each replica would count for itself: two weather-api replicas would allow 120 a minute
and two auth-server replicas would each need their own LOCKOUT_AFTER failures.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections import Counter
from urllib.parse import urlencode, urljoin

import httpx2
from devkit.headless_login import parse_forms
from devkit.scaled import SERVED_BY, ScaledTopology

from tests.scaleout.conftest import LOCKOUT_AFTER


def test_weather_api_allows_60_per_minute_in_total_over_its_replicas(scaled: ScaledTopology) -> None:
    key = scaled.env["WEATHER_API_SECOND_KEY"]  # no other test uses it
    statuses: Counter[int] = Counter()
    served: Counter[str] = Counter()
    with httpx2.Client(timeout=10, headers={"X-API-Key": key}) as http:
        for _ in range(90):
            response = http.get(f"{scaled.env['WEATHER_API_URL']}/v1/current", params={"city": "Oslo"})
            statuses[response.status_code] += 1
            served[response.headers[SERVED_BY]] += 1
            if response.status_code == 429:
                assert int(response.headers["Retry-After"]) > 0
    assert statuses == {200: 60, 429: 30}, statuses
    assert served == {"weather-api-1": 45, "weather-api-2": 45}, served


def _login_page(http: httpx2.Client, scaled: ScaledTopology, client_id: str) -> httpx2.Response:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": "http://127.0.0.1:3030/callback",
        "scope": "crm:read",
        "state": secrets.token_urlsafe(16),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "resource": scaled.crm_mcp_url,
    }
    page = http.get(f"{scaled.env['AUTH_ISSUER']}/authorize?{urlencode(query)}")
    assert page.status_code == 200, page.text[:300]
    return page


def _sign_in(http: httpx2.Client, page: httpx2.Response, username: str, password: str) -> httpx2.Response:
    form = parse_forms(page.text)[0]
    values = {**dict(form.fields), "username": username, "password": password}
    return http.post(urljoin(str(page.url), form.action or str(page.url)), data=values)


def test_the_auth_server_lockout_holds_across_its_replicas(scaled: ScaledTopology) -> None:
    served: list[str] = []
    with httpx2.Client(timeout=10, follow_redirects=False) as http:
        registered = http.post(
            f"{scaled.env['AUTH_ISSUER']}/register",
            json={
                "client_name": "lockout test",
                "redirect_uris": ["http://127.0.0.1:3030/callback"],
                "token_endpoint_auth_method": "none",
            },
        )
        assert registered.status_code == 201, registered.text
        client_id = registered.json()["client_id"]
        page = _login_page(http, scaled, client_id)
        for _ in range(LOCKOUT_AFTER):
            failed = _sign_in(http, page, "carol", "not-her-password")
            assert failed.status_code == 200  # the login page again, with "wrong username or password"
            served.append(failed.headers[SERVED_BY])
            page = failed
        right = _sign_in(http, page, "carol", scaled.env["SCALEOUT_CAROL_PASSWORD"])
    # Each replica saw only half of the failures, yet carol is locked on both: refused unchecked.
    assert set(served) == {"auth-server-1", "auth-server-2"}, served
    assert right.status_code == 429, right.text[:300]
    assert int(right.headers["Retry-After"]) > 0
