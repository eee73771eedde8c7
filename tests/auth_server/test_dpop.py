"""DPoP at the token endpoint (RFC 9449): bound tokens for every grant tried, a public client's refresh token
bound to its key, dpop_jkt on the authorization request, the metadata, and nonces / require mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from auth_server.dpop import TokenEndpointDPoP
from devkit.processes import ServiceProcess
from oauth_tokens.dpop_client import DPoPKey

from tests.auth_server.conftest import NATIVE_REDIRECT, AuthTestEnv, start_auth_server
from tests.auth_server.flows import code_for
from tests.auth_server.tokens import claims_of, validate


def _client_credentials(
    auth: AuthTestEnv, http: httpx2.Client, key: DPoPKey | None, nonce: str | None = None
) -> httpx2.Response:
    headers = {"DPoP": key.proof("POST", auth.token_url, nonce=nonce)} if key is not None else {}
    return http.post(
        auth.token_url,
        data={"grant_type": "client_credentials", "resource": auth.tickets_mcp_resource},
        auth=("crm-mcp-agent", auth.agent_secret),
        headers=headers,
    )


def _redeem(auth: AuthTestEnv, http: httpx2.Client, key: DPoPKey | None, **params: str) -> httpx2.Response:
    _, callback, verifier, _ = code_for(auth, "alice", "crm:read", **params)
    code = parse_qs(urlsplit(callback).query)["code"][0]
    headers = {"DPoP": key.proof("POST", auth.token_url)} if key is not None else {}
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": NATIVE_REDIRECT,
        "code_verifier": verifier,
        "client_id": "test-native-app",
    }
    return http.post(auth.token_url, data=form, headers=headers)


def _refresh(auth: AuthTestEnv, http: httpx2.Client, refresh_token: str, key: DPoPKey | None) -> httpx2.Response:
    headers = {"DPoP": key.proof("POST", auth.token_url)} if key is not None else {}
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": "test-native-app"}
    return http.post(auth.token_url, data=form, headers=headers)


def test_metadata_lists_the_dpop_algorithms(auth: AuthTestEnv, http: httpx2.Client) -> None:
    metadata = http.get(f"{auth.url}/.well-known/oauth-authorization-server").json()
    assert "ES256" in metadata["dpop_signing_alg_values_supported"]
    assert not any(alg.startswith("HS") or alg == "none" for alg in metadata["dpop_signing_alg_values_supported"])


@pytest.mark.anyio
async def test_client_credentials_with_a_proof_is_dpop_bound(auth: AuthTestEnv, http: httpx2.Client) -> None:
    key = DPoPKey()
    answer = _client_credentials(auth, http, key)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "DPoP"
    assert claims_of(body["access_token"])["cnf"] == {"jkt": key.thumbprint}
    await validate(auth, body["access_token"], auth.tickets_mcp_resource, "tickets:read")
    plain = _client_credentials(auth, http, None).json()
    assert plain["token_type"] == "Bearer"
    assert "cnf" not in claims_of(plain["access_token"])


@pytest.mark.parametrize("defect", ["wrong-method", "wrong-url", "replayed", "two-proofs"])
def test_a_bad_proof_at_the_token_endpoint_is_refused(auth: AuthTestEnv, http: httpx2.Client, defect: str) -> None:
    key = DPoPKey()
    proof = {
        "wrong-method": key.proof("GET", auth.token_url),
        "wrong-url": key.proof("POST", f"{auth.url}/revoke"),
    }.get(defect, key.proof("POST", auth.token_url))
    form = {"grant_type": "client_credentials", "resource": auth.tickets_mcp_resource}
    basic = ("crm-mcp-agent", auth.agent_secret)
    if defect == "replayed":
        assert http.post(auth.token_url, data=form, auth=basic, headers={"DPoP": proof}).status_code == 200
    headers: Any = [("DPoP", proof), ("DPoP", proof)] if defect == "two-proofs" else {"DPoP": proof}
    answer = http.post(auth.token_url, data=form, auth=basic, headers=headers)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_dpop_proof"


def test_a_public_clients_code_and_refresh_tokens_are_bound_to_its_key(auth: AuthTestEnv, http: httpx2.Client) -> None:
    key = DPoPKey()
    answer = _redeem(auth, http, key)
    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    assert tokens["token_type"] == "DPoP"
    assert claims_of(tokens["access_token"])["cnf"] == {"jkt": key.thumbprint}
    # The refresh token works only with a proof by the same key (RFC 9449 §5).
    no_proof = _refresh(auth, http, tokens["refresh_token"], None)
    assert (no_proof.status_code, no_proof.json()["error"]) == (400, "invalid_grant")
    other_key = _refresh(auth, http, tokens["refresh_token"], DPoPKey())
    assert (other_key.status_code, other_key.json()["error"]) == (400, "invalid_grant")
    refreshed = _refresh(auth, http, tokens["refresh_token"], key)
    assert refreshed.status_code == 200, refreshed.text
    assert claims_of(refreshed.json()["access_token"])["cnf"] == {"jkt": key.thumbprint}


def test_dpop_jkt_on_the_authorization_request_binds_the_code(auth: AuthTestEnv, http: httpx2.Client) -> None:
    key = DPoPKey()
    stolen = _redeem(auth, http, DPoPKey(), dpop_jkt=key.thumbprint)
    assert (stolen.status_code, stolen.json()["error"]) == (400, "invalid_grant")
    without = _redeem(auth, http, None, dpop_jkt=key.thumbprint)
    assert (without.status_code, without.json()["error"]) == (400, "invalid_grant")
    answer = _redeem(auth, http, key, dpop_jkt=key.thumbprint)
    assert answer.status_code == 200, answer.text
    assert claims_of(answer.json()["access_token"])["cnf"] == {"jkt": key.thumbprint}


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AuthTestEnv, ServiceProcess]]:
    workdir: Path = tmp_path_factory.mktemp("dpop-strict")
    env, process = start_auth_server(
        workdir, extra_env={"AUTH_SERVER_DPOP": "require", "AUTH_SERVER_DPOP_NONCE": "true"}
    )
    yield env, process
    process.stop()


def test_require_mode_and_nonces(strict_server: tuple[AuthTestEnv, ServiceProcess], http: httpx2.Client) -> None:
    auth = strict_server[0]
    no_proof = _client_credentials(auth, http, None)
    assert (no_proof.status_code, no_proof.json()["error"]) == (400, "invalid_dpop_proof")
    key = DPoPKey()
    no_nonce = _client_credentials(auth, http, key)
    assert (no_nonce.status_code, no_nonce.json()["error"]) == (400, "use_dpop_nonce")
    nonce = no_nonce.headers["DPoP-Nonce"]
    forged = _client_credentials(auth, http, key, nonce="A" * 32)
    assert forged.json()["error"] == "use_dpop_nonce"
    answer = _client_credentials(auth, http, key, nonce=nonce)
    assert answer.status_code == 200, answer.text
    assert answer.json()["token_type"] == "DPoP"


def test_replicas_sharing_the_state_keys_accept_each_others_nonces() -> None:
    """Two instances of the token endpoint's DPoP check (replicas), configured alike: a nonce one issued is good
    at the other, since both derive it from AUTH_SERVER_STATE_KEYS; another server's state keys do not take it."""
    issuer, state_keys = "http://localhost:9000", ("s" * 43,)
    first = TokenEndpointDPoP(issuer, nonce=True, state_keys=state_keys).policy.nonces
    second = TokenEndpointDPoP(issuer, nonce=True, state_keys=state_keys).policy.nonces
    stranger = TokenEndpointDPoP(issuer, nonce=True, state_keys=("t" * 43,)).policy.nonces
    assert first is not None
    assert second is not None
    assert stranger is not None
    nonce = first.issue()
    assert second.valid(nonce)
    assert not stranger.valid(nonce)
