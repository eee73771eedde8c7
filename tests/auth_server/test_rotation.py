"""Key rotation with `python -m auth_server.keys rotate` against a running server; and a server whose
public issuer is not reachable from here, validated through an internal URL (the compose situation)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from auth_server.keys import KeyStore
from devkit.processes import ServiceProcess
from oauth_tokens import AccessTokenValidator, ValidatorConfig
from oauth_tokens.jwks import JWKS_REFETCH_COOLDOWN_SECONDS

from tests.auth_server.conftest import AuthTestEnv, start_auth_server
from tests.auth_server.tokens import header_of

PUBLIC_ISSUER = "https://auth.example.test"  # what browsers and tokens use; not resolvable here
LIFETIME = 600  # the access-token lifetime of the default configuration (how long retired keys stay)


@pytest.fixture(scope="module")
def isolated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AuthTestEnv, ServiceProcess]]:
    """A second auth-server (own data dir) so rotating its keys cannot disturb other tests."""
    env, process = start_auth_server(tmp_path_factory.mktemp("auth-server-rotation"), issuer=PUBLIC_ISSUER)
    yield env, process
    process.stop()


def _agent_token(env: AuthTestEnv) -> str:
    response = httpx2.post(
        env.token_url,
        data={"grant_type": "client_credentials", "resource": env.crm_api_audience},
        auth=("crm-mcp-agent", env.agent_secret),
        timeout=10.0,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _rotate_keys(env: AuthTestEnv, workdir: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """`python -m auth_server.keys rotate` (what `make rotate-keys` runs) for the server in `workdir`."""
    return subprocess.run(
        [sys.executable, "-m", "auth_server.keys", "rotate", *arguments],
        cwd=workdir,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("AUTH_")}, **env.environment()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.anyio
async def test_rotation_keeps_old_and_new_tokens_valid(isolated: tuple[AuthTestEnv, ServiceProcess]) -> None:
    env, process = isolated
    old_token = _agent_token(env)
    old_kid = header_of(old_token)["kid"]

    # In process, without the publish-ahead delay the CLI insists on, so the new key signs at once
    # (the delay is tested in test_keys.py, the CLI's floor below); the running server picks it up.
    rotated = KeyStore(process.workdir / "data" / "keys", LIFETIME).rotate(publish_ahead_seconds=0)

    new_token = _agent_token(env)
    new_kid = header_of(new_token)["kid"]
    assert new_kid != old_kid
    assert new_kid == rotated.kid
    published = {key["kid"] for key in httpx2.get(f"{env.url}/jwks", timeout=10.0).json()["keys"]}
    assert published == {old_kid, new_kid}
    # Validated the compose way: public issuer in `iss`, keys fetched from the internal address.
    config = ValidatorConfig(issuers=[PUBLIC_ISSUER], audiences=[env.crm_api_audience], jwks_url=f"{env.url}/jwks")
    async with AccessTokenValidator(config) as validator:
        assert (await validator.validate(old_token)).issuer == PUBLIC_ISSUER
        assert (await validator.validate(new_token)).subject == "crm-mcp-agent"
    keys = sorted(path.name for path in (process.workdir / "data" / "keys").glob("*.pem"))
    assert keys == sorted([f"{old_kid}.pem", f"{new_kid}.pem"])


@pytest.mark.parametrize("publish_ahead", ["0", str(JWKS_REFETCH_COOLDOWN_SECONDS - 1)])
def test_rotate_keys_refuses_a_publish_ahead_below_the_validators_cool_down(
    isolated: tuple[AuthTestEnv, ServiceProcess], publish_ahead: str
) -> None:
    """A key signing before every validator may refetch would have its tokens refused (for up to 30 s)."""
    env, process = isolated
    published = {key["kid"] for key in httpx2.get(f"{env.url}/jwks", timeout=10.0).json()["keys"]}

    refused = _rotate_keys(env, process.workdir, "--publish-ahead", publish_ahead)

    assert refused.returncode == 2, refused.stdout
    assert "--publish-ahead" in refused.stderr
    assert f"at least {JWKS_REFETCH_COOLDOWN_SECONDS} s" in refused.stderr
    assert {key["kid"] for key in httpx2.get(f"{env.url}/jwks", timeout=10.0).json()["keys"]} == published


def test_rotate_keys_publishes_ahead_by_default(isolated: tuple[AuthTestEnv, ServiceProcess]) -> None:
    env, process = isolated
    rotated = _rotate_keys(env, process.workdir)
    assert rotated.returncode == 0, rotated.stderr
    assert "New signing key" in rotated.stdout
    assert "published, signs from" in rotated.stdout


@pytest.mark.anyio
async def test_discovery_through_an_internal_url_keeps_the_public_issuer(
    isolated: tuple[AuthTestEnv, ServiceProcess],
) -> None:
    env, _ = isolated
    metadata = httpx2.get(f"{env.url}/.well-known/oauth-authorization-server", timeout=10.0).json()
    assert metadata["issuer"] == PUBLIC_ISSUER
    assert metadata["token_endpoint"] == f"{PUBLIC_ISSUER}/token"
    token = _agent_token(env)
    config = ValidatorConfig(issuers=[PUBLIC_ISSUER], audiences=[env.crm_api_audience], discovery_url=env.url)
    async with AccessTokenValidator(config) as validator:
        principal = await validator.validate(token, ["crm:read"])
    assert principal.issuer == PUBLIC_ISSUER


def test_the_start_up_log_says_development_stand_in(isolated: tuple[AuthTestEnv, ServiceProcess]) -> None:
    _, process = isolated
    assert "DEVELOPMENT STAND-IN" in process.logs()
