"""crm-mcp's client credential, for scripts that act as crm-mcp (make demo, make bench) and the tests.

They authenticate exactly as crm-mcp does (services/crm-mcp/src/crm_mcp/client_identity.py): with
private_key_jwt they sign assertions with crm-mcp's own key, read from <CRM_MCP_DATA_DIR>/client-keys
(never generated here: crm-mcp creates it on first start); with a secret method, the secret from `.env`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from oauth_tokens.client_assertion import ASSERTION_LIFETIME_SECONDS, ClientAssertionSigner
from oauth_tokens.signing_keys import KeyStore, SigningAlgorithm


class NoClientKey(Exception):
    """crm-mcp's client key is not readable here (crm-mcp has not started, or runs in a container)."""


def client_keys_dir(env: Mapping[str, str], workspace: Path = Path()) -> Path:
    return workspace / env.get("CRM_MCP_DATA_DIR", "data/crm-mcp") / "client-keys"


def auth_method(env: Mapping[str, str], *, calendar: bool = False) -> str:
    """CRM_MCP_CLIENT_AUTH_METHOD (crm-mcp-agent, crm-mcp-connect) or CALENDAR_CLIENT_AUTH_METHOD."""
    return env.get("CALENDAR_CLIENT_AUTH_METHOD" if calendar else "CRM_MCP_CLIENT_AUTH_METHOD", "private_key_jwt")


def crm_mcp_credential(env: Mapping[str, str], *, calendar: bool = False, workspace: Path = Path()) -> dict[str, Any]:
    """Keyword arguments for TokenEndpoint / ClientCredentialsAuth / TokenExchange, as crm-mcp builds them.

    Raises NoClientKey when private_key_jwt is selected and crm-mcp's key directory is not here.
    """
    method = auth_method(env, calendar=calendar)
    if method != "private_key_jwt":
        secret = env["CALENDAR_CLIENT_SECRET" if calendar else "CRM_MCP_CLIENT_SECRET"]
        return {"client_secret": secret, "auth_method": method}
    directory = client_keys_dir(env, workspace)
    if not (directory / "keys.json").is_file():
        raise NoClientKey(f"crm-mcp's client keys are not in {directory}")
    algorithm = cast(SigningAlgorithm, env.get("CRM_MCP_CLIENT_KEY_ALGORITHM", "ES256"))
    keys = KeyStore(directory, ASSERTION_LIFETIME_SECONDS, algorithm=algorithm)
    issuer = env["CALENDAR_AUTH_ISSUER" if calendar else "AUTH_ISSUER"]
    audience = env.get("CRM_MCP_CLIENT_ASSERTION_AUDIENCE", "issuer")
    signer = ClientAssertionSigner(keys, issuer, audience=audience)  # type: ignore[arg-type]  # checked by crm-mcp
    return {"assertion_signer": signer, "auth_method": method}


def method_phrase(env: Mapping[str, str], *, calendar: bool = False) -> str:
    """How the demo narrates a hop's client authentication."""
    method = auth_method(env, calendar=calendar)
    if method == "private_key_jwt":
        return "private_key_jwt: an RFC 7523 assertion signed with crm-mcp's own key, no secret"
    return f"{method}: client id + secret"
