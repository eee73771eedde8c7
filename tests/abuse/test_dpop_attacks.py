"""DPoP attack catalog (RFC 9449) at every resource server: crm-api, calendar-api, tickets-mcp and crm-mcp.

Each runs as a real process trusting an in-test issuer that mints DPoP-bound tokens (`cnf.jkt`), with
AUTH_DPOP_NONCE=true. Every attack below is one defect in an otherwise valid request, and each is refused
with 401 and the DPoP challenge RFC 9449 §7.1 names; the valid request passes, so a refusal is the defect's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
from devkit.processes import ServiceProcess, start_service
from devkit.tokens import TestIssuer
from devkit.topology import topology_env
from oauth_tokens.dpop import access_token_hash
from oauth_tokens.dpop_client import DPoPKey

pytestmark = pytest.mark.anyio

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    method: str
    audience: str
    scope: str
    body: dict[str, Any] | None = None

    def request(self, client: httpx2.Client, headers: dict[str, str], url: str | None = None) -> httpx2.Response:
        extra = MCP_HEADERS if self.body is not None else {}
        return client.request(self.method, url or self.url, headers={**extra, **headers}, json=self.body)


@dataclass
class Servers:
    issuer: TestIssuer
    targets: dict[str, Target]
    require_crm_api: Target
    processes: list[ServiceProcess]


def _start(name: str, module: str, variable: str, env: dict[str, str], workdir: Path) -> ServiceProcess:
    """`module` on env's port for it (a free one when that is "0"); 90 s, as it starts beside others."""
    port = int(env[variable]) or None
    return start_service(name, module, port_variable=variable, port=port, env=env, workdir=workdir, timeout=90.0)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    workdir = tmp_path_factory.mktemp("dpop")
    with TestIssuer() as issuer:
        env = topology_env()
        env.update(
            AUTH_ISSUER=issuer.issuer,
            AUTH_JWKS_URL=issuer.jwks_url,
            CALENDAR_AUTH_ISSUER=issuer.issuer,
            CALENDAR_AUTH_JWKS_URL=issuer.jwks_url,
            AUTH_DPOP_NONCE="true",
            CRM_MCP_DATA_DIR=str(workdir / "crm-mcp"),
            CRM_API_DATA_DIR=str(workdir / "crm-api"),
            TICKETS_MCP_DATA_DIR=str(workdir / "tickets-mcp"),
        )
        processes: list[ServiceProcess] = []
        require_env = {**env, "AUTH_DPOP": "require", "AUTH_DPOP_NONCE": "false", "CRM_API_PORT": "0"}

        def start(name: str, module: str, variable: str, service_env: dict[str, str]) -> ServiceProcess:
            process = _start(name, module, variable, service_env, workdir / name)
            processes.append(process)
            return process

        try:
            # All five at once: start-up is mostly importing, so the processes share the cores.
            with ThreadPoolExecutor(max_workers=5) as pool:
                starting = [
                    pool.submit(start, name, module, variable, env)
                    for name, module, variable in (
                        ("crm-api", "crm_api", "CRM_API_PORT"),
                        ("calendar-api", "calendar_api", "CALENDAR_API_PORT"),
                        ("tickets-mcp", "tickets_mcp", "TICKETS_MCP_PORT"),
                        ("crm-mcp", "crm_mcp", "CRM_MCP_PORT"),
                    )
                ]
                strict_start = pool.submit(start, "crm-api-require", "crm_api", "CRM_API_PORT", require_env)
            for started in starting:
                started.result()  # the first start-up failure, after every start has ended
            strict = strict_start.result()
            targets = {
                "crm-api": Target(
                    "crm-api", f"{env['CRM_API_URL']}/customers", "GET", env["CRM_API_AUDIENCE"], "crm:read"
                ),
                "calendar-api": Target(
                    "calendar-api",
                    f"{env['CALENDAR_API_URL']}/events",
                    "GET",
                    env["CALENDAR_API_AUDIENCE"],
                    "calendar:read",
                ),
                "tickets-mcp": Target(
                    "tickets-mcp",
                    env["TICKETS_MCP_URL"],
                    "POST",
                    env["TICKETS_MCP_RESOURCE"],
                    "tickets:read",
                    INITIALIZE,
                ),
                "crm-mcp": Target(
                    "crm-mcp", env["CRM_MCP_RESOURCE"], "POST", env["CRM_MCP_RESOURCE"], "crm:read", INITIALIZE
                ),
            }
            require_target = Target("crm-api", f"{strict.url}/customers", "GET", env["CRM_API_AUDIENCE"], "crm:read")
            yield Servers(issuer, targets, require_target, processes)
        finally:
            for process in processes:
                process.stop()


@pytest.fixture(params=["crm-api", "calendar-api", "tickets-mcp", "crm-mcp"])
def target(request: pytest.FixtureRequest, servers: Servers) -> Target:
    return servers.targets[request.param]


@pytest.fixture
def client() -> Iterator[httpx2.Client]:
    with httpx2.Client(timeout=10) as http:
        yield http


def _bound_token(servers: Servers, target: Target, key: DPoPKey) -> str:
    return servers.issuer.mint(aud=target.audience, scope=target.scope, cnf={"jkt": key.thumbprint})


def _nonce(client: httpx2.Client, target: Target, token: str, key: DPoPKey) -> str:
    """The server's nonce: asked for by a first, nonce-less request (itself the 'missing nonce' case)."""
    proof = key.proof(target.method, target.url, access_token=token)
    response = target.request(client, {"Authorization": f"DPoP {token}", "DPoP": proof})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('DPoP error="use_dpop_nonce"')
    return response.headers["DPoP-Nonce"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(target: Target, token: str, server_nonce: str, **overrides: Any) -> dict[str, Any]:
    """A valid proof's claims; an override of None leaves that claim out."""
    claims = {
        "jti": uuid.uuid4().hex,
        "htm": target.method,
        "htu": target.url,
        "iat": int(time.time()),
        "ath": access_token_hash(token),
        "nonce": server_nonce,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def _unsigned(key: DPoPKey, claims: dict[str, Any]) -> str:
    header = {"typ": "dpop+jwt", "alg": "none", "jwk": key.public_jwk}
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}."


def _hs256(key: DPoPKey, claims: dict[str, Any]) -> str:
    header = {"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": _b64(b"secret")}}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(b"secret", signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _signed(key: DPoPKey, claims: dict[str, Any]) -> str:
    return jwt.encode(claims, key._private_key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": key.public_jwk})


# name -> (headers builder (target, token, key, other key, nonce), expected error)
Attack = Callable[[Target, str, DPoPKey, DPoPKey, str], dict[str, str]]
ATTACKS: dict[str, tuple[Attack, str]] = {
    "bound-token-without-proof": (lambda t, tok, k, o, n: {"Authorization": f"DPoP {tok}"}, "invalid_dpop_proof"),
    "bound-token-as-bearer": (lambda t, tok, k, o, n: {"Authorization": f"Bearer {tok}"}, "invalid_token"),
    "bound-token-as-bearer-with-proof": (
        lambda t, tok, k, o, n: {"Authorization": f"Bearer {tok}", "DPoP": _signed(k, _claims(t, tok, n))},
        "invalid_token",
    ),
    "proof-for-another-method": (
        lambda t, tok, k, o, n: {
            "Authorization": f"DPoP {tok}",
            "DPoP": _signed(k, _claims(t, tok, n, htm="DELETE")),
        },
        "invalid_dpop_proof",
    ),
    "proof-for-another-url": (
        lambda t, tok, k, o, n: {
            "Authorization": f"DPoP {tok}",
            "DPoP": _signed(k, _claims(t, tok, n, htu=t.url + "/other")),
        },
        "invalid_dpop_proof",
    ),
    "stale-iat": (
        lambda t, tok, k, o, n: {
            "Authorization": f"DPoP {tok}",
            "DPoP": _signed(k, _claims(t, tok, n, iat=int(time.time()) - 3600)),
        },
        "invalid_dpop_proof",
    ),
    "future-iat": (
        lambda t, tok, k, o, n: {
            "Authorization": f"DPoP {tok}",
            "DPoP": _signed(k, _claims(t, tok, n, iat=int(time.time()) + 3600)),
        },
        "invalid_dpop_proof",
    ),
    "wrong-ath": (
        lambda t, tok, k, o, n: {
            "Authorization": f"DPoP {tok}",
            "DPoP": _signed(k, _claims(t, tok, n, ath=access_token_hash(tok + "x"))),
        },
        "invalid_dpop_proof",
    ),
    "key-mismatch": (
        lambda t, tok, k, o, n: {"Authorization": f"DPoP {tok}", "DPoP": _signed(o, _claims(t, tok, n))},
        "invalid_dpop_proof",
    ),
    "alg-none-proof": (
        lambda t, tok, k, o, n: {"Authorization": f"DPoP {tok}", "DPoP": _unsigned(k, _claims(t, tok, n))},
        "invalid_dpop_proof",
    ),
    "hs256-proof": (
        lambda t, tok, k, o, n: {"Authorization": f"DPoP {tok}", "DPoP": _hs256(k, _claims(t, tok, n))},
        "invalid_dpop_proof",
    ),
    "missing-nonce": (
        lambda t, tok, k, o, n: {"Authorization": f"DPoP {tok}", "DPoP": _signed(k, _claims(t, tok, n, nonce=None))},
        "use_dpop_nonce",
    ),
    "forged-nonce": (
        lambda t, tok, k, o, n: {"Authorization": f"DPoP {tok}", "DPoP": _signed(k, _claims(t, tok, "A" * 32))},
        "use_dpop_nonce",
    ),
    "two-proofs": (lambda t, tok, k, o, n: {"Authorization": f"DPoP {tok}"}, "invalid_dpop_proof"),
}


def _assert_refused(response: httpx2.Response, error: str) -> None:
    assert response.status_code == 401, response.text
    challenges = response.headers.get_list("WWW-Authenticate")
    assert any(c.startswith(f'DPoP error="{error}"') and 'algs="ES256' in c for c in challenges), challenges
    if error == "use_dpop_nonce":
        assert response.headers.get("DPoP-Nonce")


def test_a_valid_dpop_request_passes_and_unbound_bearer_still_works(
    servers: Servers, target: Target, client: httpx2.Client
) -> None:
    key = DPoPKey()
    token = _bound_token(servers, target, key)
    nonce = _nonce(client, target, token, key)
    response = target.request(
        client,
        {
            "Authorization": f"DPoP {token}",
            "DPoP": key.proof(target.method, target.url, access_token=token, nonce=nonce),
        },
    )
    assert response.status_code == 200, response.text
    # accept mode: an unbound token as Bearer is served as before (Inspector, Claude Code).
    plain = servers.issuer.mint(aud=target.audience, scope=target.scope)
    assert target.request(client, {"Authorization": f"Bearer {plain}"}).status_code == 200


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_dpop_attack_is_refused(servers: Servers, target: Target, client: httpx2.Client, attack: str) -> None:
    key, other = DPoPKey(), DPoPKey()
    token = _bound_token(servers, target, key)
    nonce = _nonce(client, target, token, key)
    build, error = ATTACKS[attack]
    headers = build(target, token, key, other, nonce)
    if attack == "two-proofs":
        extra = MCP_HEADERS if target.body is not None else {}
        proofs = [("DPoP", _signed(key, _claims(target, token, nonce))) for _ in range(2)]
        request = httpx2.Request(
            target.method, target.url, headers=[*{**extra, **headers}.items(), *proofs], json=target.body
        )
        _assert_refused(client.send(request), error)
        return
    _assert_refused(target.request(client, headers), error)


def test_a_replayed_proof_is_refused(servers: Servers, target: Target, client: httpx2.Client) -> None:
    key = DPoPKey()
    token = _bound_token(servers, target, key)
    nonce = _nonce(client, target, token, key)
    headers = {
        "Authorization": f"DPoP {token}",
        "DPoP": key.proof(target.method, target.url, access_token=token, nonce=nonce),
    }
    assert target.request(client, headers).status_code == 200
    _assert_refused(target.request(client, headers), "invalid_dpop_proof")


def test_an_unbound_token_in_the_dpop_scheme_is_refused(
    servers: Servers, target: Target, client: httpx2.Client
) -> None:
    key = DPoPKey()
    plain = servers.issuer.mint(aud=target.audience, scope=target.scope)
    response = target.request(
        client, {"Authorization": f"DPoP {plain}", "DPoP": key.proof(target.method, target.url, access_token=plain)}
    )
    _assert_refused(response, "invalid_token")


def test_require_mode_refuses_bearer_and_challenges_with_dpop_only(servers: Servers, client: httpx2.Client) -> None:
    target = servers.require_crm_api
    plain = servers.issuer.mint(aud=target.audience, scope=target.scope)
    _assert_refused(target.request(client, {"Authorization": f"Bearer {plain}"}), "invalid_token")
    anonymous = target.request(client, {})
    assert anonymous.status_code == 401
    assert [c.split(" ")[0] for c in anonymous.headers.get_list("WWW-Authenticate")] == ["DPoP"]
    key = DPoPKey()
    token = _bound_token(servers, target, key)
    headers = {"Authorization": f"DPoP {token}", "DPoP": key.proof("GET", target.url, access_token=token)}
    assert target.request(client, headers).status_code == 200


def test_accept_mode_answers_an_anonymous_caller_as_before(
    servers: Servers, target: Target, client: httpx2.Client
) -> None:
    """accept: a request without DPoP gets the Bearer challenge it always got (bearer clients parse it)."""
    response = target.request(client, {})
    assert response.status_code == 401
    assert [c.split(" ")[0] for c in response.headers.get_list("WWW-Authenticate")] == ["Bearer"]
