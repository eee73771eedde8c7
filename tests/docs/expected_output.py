"""What each command the docs run must show: one check per command, keyed by the command as the docs write it.

tests/docs/test_commands.py runs every key against a topology on free ports and passes the result here.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devkit.topology import Topology


@dataclass(frozen=True)
class Run:
    """A documented command's result, with the topology it ran against."""

    completed: subprocess.CompletedProcess[str]
    topology: Topology

    @property
    def env(self) -> dict[str, str]:
        return self.topology.env

    def json(self) -> Any:
        assert self.completed.returncode == 0, self.completed.stderr
        return json.loads(self.completed.stdout)

    def http(self) -> tuple[int, dict[str, str], str]:
        """Status, lower-cased headers and body of `curl -i` output."""
        # text=True already turned curl's CRLF line ends into "\n".
        head, _, body = self.completed.stdout.replace("\r\n", "\n").partition("\n\n")
        status_line, *header_lines = head.split("\n")
        headers = {name.strip().lower(): value.strip() for name, _, value in (h.partition(":") for h in header_lines)}
        return int(status_line.split()[1]), headers, body


def claims_of(token: str) -> dict[str, Any]:
    """A JWT's payload, decoded without verification (the services verify; here we read what the docs say)."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def loads_env(run: Run) -> None:
    assert run.completed.returncode == 0, run.completed.stderr


def shows_demo_passwords(run: Run) -> None:
    assert run.completed.returncode == 0
    lines = run.completed.stdout.splitlines()
    assert f"DEMO_ALICE_PASSWORD={run.env['DEMO_ALICE_PASSWORD']}" in lines
    assert f"DEMO_BOB_PASSWORD={run.env['DEMO_BOB_PASSWORD']}" in lines


def authorization_server_metadata(run: Run) -> None:
    metadata = run.json()
    issuer = run.env["AUTH_ISSUER"]
    assert metadata["issuer"] == issuer
    assert metadata["token_endpoint"] == f"{issuer}/token"
    assert metadata["jwks_uri"] == f"{issuer}/jwks"
    assert "urn:ietf:params:oauth:grant-type:token-exchange" in metadata["grant_types_supported"]
    assert metadata["code_challenge_methods_supported"] == ["S256"]


def crm_mcp_resource_metadata(run: Run) -> None:
    metadata = run.json()
    assert metadata["resource"] == run.env["CRM_MCP_RESOURCE"]
    assert metadata["authorization_servers"] == [run.env["AUTH_ISSUER"]]


def tickets_mcp_resource_metadata(run: Run) -> None:
    metadata = run.json()
    assert metadata["resource"] == run.env["TICKETS_MCP_RESOURCE"]
    assert metadata["authorization_servers"] == [run.env["AUTH_ISSUER"]]
    assert set(metadata["scopes_supported"]) == {"tickets:read", "tickets:write"}


def crm_mcp_challenge(run: Run) -> None:
    status, headers, _ = run.http()
    assert status == 401
    metadata_url = run.env["CRM_MCP_RESOURCE"].replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
    assert headers["www-authenticate"].startswith("Bearer ")
    assert f'resource_metadata="{metadata_url}"' in headers["www-authenticate"]


def weather_with_key(run: Run) -> None:
    weather = run.json()
    assert weather["city"] == "Berlin"
    assert run.env["WEATHER_API_KEY"] not in run.completed.stdout


def weather_without_key(run: Run) -> None:
    status, _, body = run.http()
    assert status == 401
    assert json.loads(body)["error"] == "missing_api_key"


def client_credentials_token(run: Run) -> None:
    answer = run.json()
    assert (answer["token_type"], answer["expires_in"], answer["scope"]) == (
        "Bearer",
        600,
        "tickets:read tickets:write",
    )
    claims = claims_of(answer["access_token"])
    assert claims["aud"] == run.env["TICKETS_MCP_RESOURCE"]
    assert claims["sub"] == claims["client_id"] == run.env["CRM_MCP_CLIENT_ID"]


def crm_mcp_client_keys(run: Run) -> None:
    keys = run.json()["keys"]
    assert keys
    assert all(key["kty"] == "EC" and key["alg"] == "ES256" and "d" not in key for key in keys)


def wrong_client_secret(run: Run) -> None:
    assert run.json()["error"] == "invalid_client"


def crm_api_without_token(run: Run) -> None:
    status, headers, _ = run.http()
    assert status == 401
    assert headers["www-authenticate"] == 'Bearer realm="crm-api"'


def crm_api_with_alices_token(run: Run) -> None:
    customers = run.json()["customers"]
    assert customers
    assert {customer["owner"] for customer in customers} == {"alice"}
    assert "Berlin" in {customer["city"] for customer in customers}


def tickets_mcp_refuses_alices_token(run: Run) -> None:
    status, headers, _ = run.http()
    assert status == 401
    assert 'error="invalid_token"' in headers["www-authenticate"]


def token_exchange(run: Run) -> None:
    answer = run.json()
    assert answer["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    claims = claims_of(answer["access_token"])
    assert claims["sub"] == "alice"
    assert claims["aud"] == run.env["CRM_API_AUDIENCE"]
    assert claims["client_id"] == run.env["CRM_MCP_CLIENT_ID"]
    assert claims["act"] == {"sub": run.env["CRM_MCP_CLIENT_ID"]}


def crm_mcp_preflight_from_a_loopback_page(run: Run) -> None:
    status, headers, _ = run.http()
    assert status == 200  # answered before the bearer check: a preflight carries no token
    assert headers["access-control-allow-origin"] == "http://localhost:6274"
    assert "POST" in headers["access-control-allow-methods"].split(", ")
    allowed = headers["access-control-allow-headers"].lower().split(", ")
    assert {"authorization", "content-type", "mcp-protocol-version"} <= set(allowed)
    assert "www-authenticate" not in headers


def crm_mcp_token_metrics(run: Run) -> None:
    assert run.completed.returncode == 0, run.completed.stderr
    lines = run.completed.stdout.splitlines()
    assert lines, "no oauth_token sample"
    assert all(line.startswith("oauth_token") for line in lines)
    assert any(line.startswith('oauth_token_validations_total{error="",outcome="valid"}') for line in lines)


RUN: dict[str, Callable[[Run], None]] = {
    "set -a; . ./.env; set +a": loads_env,
    "grep '^DEMO_' .env": shows_demo_passwords,
    "curl -s http://localhost:9000/.well-known/oauth-authorization-server": authorization_server_metadata,
    "curl -s http://localhost:8001/.well-known/oauth-protected-resource/mcp": crm_mcp_resource_metadata,
    "curl -si -X POST http://localhost:8001/mcp": crm_mcp_challenge,
    "curl -s http://localhost:9401/metrics | grep '^oauth_token'": crm_mcp_token_metrics,
    'curl -s -H "X-API-Key: $WEATHER_API_KEY" "http://localhost:8004/v1/current?city=Berlin"': weather_with_key,
    'curl -si "http://localhost:8004/v1/current?city=Berlin"': weather_without_key,
    "curl -s -d grant_type=client_credentials "
    "-d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer "
    '-d "client_assertion=$(.venv/bin/python -m oauth_tokens.client_assertion sign --keys-dir '
    '"$CRM_MCP_DATA_DIR/client-keys" --client-id "$CRM_MCP_CLIENT_ID" --issuer "$AUTH_ISSUER")" '
    '-d resource=http://localhost:8002/mcp -d "scope=tickets:read tickets:write" '
    "http://localhost:9000/token": client_credentials_token,
    "curl -s http://localhost:8001/.well-known/jwks.json": crm_mcp_client_keys,
    'curl -s -u "$CRM_MCP_CLIENT_ID:not-the-secret" -d grant_type=client_credentials '
    "http://localhost:9000/token": wrong_client_secret,
    "curl -s http://localhost:8002/.well-known/oauth-protected-resource/mcp": tickets_mcp_resource_metadata,
    "curl -si http://localhost:8003/customers": crm_api_without_token,
    'curl -s -H "Authorization: Bearer $ALICE_TOKEN" "http://localhost:8003/customers?q=Berlin"': (
        crm_api_with_alices_token
    ),
    'curl -si -X POST -H "Authorization: Bearer $ALICE_TOKEN" http://localhost:8002/mcp': (
        tickets_mcp_refuses_alices_token
    ),
    "curl -s -d grant_type=urn:ietf:params:oauth:grant-type:token-exchange "
    "-d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer "
    '-d "client_assertion=$(.venv/bin/python -m oauth_tokens.client_assertion sign --keys-dir '
    '"$CRM_MCP_DATA_DIR/client-keys" --client-id "$CRM_MCP_CLIENT_ID" --issuer "$AUTH_ISSUER")" '
    '-d subject_token="$ALICE_TOKEN" '
    "-d subject_token_type=urn:ietf:params:oauth:token-type:access_token "
    "-d resource=http://localhost:8003 "
    "http://localhost:9000/token": token_exchange,
    "curl -si -X OPTIONS http://localhost:8001/mcp -H 'Origin: http://localhost:6274' "
    "-H 'Access-Control-Request-Method: POST' "
    "-H 'Access-Control-Request-Headers: authorization, content-type, mcp-protocol-version'": (
        crm_mcp_preflight_from_a_loopback_page
    ),
}
