"""Abuse: dynamic registrations from a few addresses must not fill the registry for everyone.

Measured on main: 1 000 registrations from 17 addresses (each within the /register rate limit's burst of
60) filled the registry, and then every new client got HTTP 503 with Retry-After 3600. Here the same at
a scale of seconds: a registry of 20 with a share of 5 per address, four addresses registering 10 clients
each (twice the registry), against a real auth-server on loopback. Bounded outcome: every registration
succeeds (a flooding address evicts its own junk), a client from a fresh address registers and its
registration survives further flooding, so its user can still start a sign-in with it.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest

from tests.abuse.auth_server_support import from_address, scaled_auth_server
from tests.auth_server.conftest import AuthTestEnv

SCALED = {
    "max_clients = 1000": "max_clients = 20",
    "max_clients_per_address = 50": "max_clients_per_address = 5",
}
FLOODERS = (2, 3, 4, 5)
REDIRECT = "http://localhost:33418/callback"


@pytest.fixture(scope="module")
def auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthTestEnv]:
    with scaled_auth_server(tmp_path_factory.mktemp("abuse-registration"), SCALED) as env:
        yield env


def _register(client: httpx2.Client, auth: AuthTestEnv, name: str) -> httpx2.Response:
    return client.post(f"{auth.url}/register", json={"client_name": name, "redirect_uris": [REDIRECT]})


def _flood(auth: AuthTestEnv, per_address: int) -> list[int]:
    statuses: list[int] = []
    for address in FLOODERS:
        with from_address(address) as client:
            statuses += [_register(client, auth, f"junk {address}").status_code for _ in range(per_address)]
    return statuses


def test_a_registration_flood_from_a_few_addresses_never_shuts_out_a_new_client(auth: AuthTestEnv) -> None:
    assert _flood(auth, 10) == [201] * 40  # never 503: past its share each address evicts its own

    with from_address(9) as user:
        registered = _register(user, auth, "Real client")
        assert registered.status_code == 201, registered.text
        client_id = registered.json()["client_id"]

        assert _flood(auth, 10) == [201] * 40  # the flood goes on, evicting itself

        sign_in = user.get(
            f"{auth.url}/authorize",
            params={
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": REDIRECT,
                "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                "code_challenge_method": "S256",
            },
        )
    assert sign_in.status_code == 200, sign_in.text  # the login page: the registration is still known
    assert "Real client" in sign_in.text
