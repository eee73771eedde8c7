"""The hosted-provider example files (.env.scalekit.example, .env.keycloak.example) work as documented.

Each file is applied as docs/hosted-provider.md tells a reader to: its variables replace those of
.env.example (here by appending, since later lines win), with its placeholders filled in. The result is
loaded by the services' own settings classes, and tokens shaped like that provider's are validated with
the configuration those settings produce. Keys are served from a loopback server at the provider's JWKS
path, because the provider itself is not reachable from a test. Complements tests/shared/test_validator.py
(provider-shaped claims) with what only the example files decide: the issuer forms, JWKS paths and
audiences a reader will actually configure.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx2
import pytest
from crm_api.settings import CrmApiSettings
from crm_mcp.settings import Settings as CrmMcpSettings
from dotenv import dotenv_values
from oauth_tokens import AccessTokenValidator, InvalidTokenError
from oauth_tokens.mcp import JWTTokenVerifier
from oauth_tokens.settings import TrustSettings
from pydantic import SecretStr
from pydantic_settings import BaseSettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from tickets_mcp.settings import TicketsMcpSettings
from weather_api.settings import WeatherApiSettings

from tests.docs.markdown import ROOT
from tests.shared.loopback import ThreadedServer
from tests.shared.tokens import SigningKeyPair, claims, mint, rsa_key

pytestmark = pytest.mark.anyio

EXAMPLES = {"scalekit": ROOT / ".env.scalekit.example", "keycloak": ROOT / ".env.keycloak.example"}
SERVICE_SETTINGS: tuple[type[BaseSettings], ...] = (
    CrmMcpSettings,
    TicketsMcpSettings,
    CrmApiSettings,
    WeatherApiSettings,
)
SettingsT = TypeVar("SettingsT", bound=BaseSettings)
PLACEHOLDER = re.compile(r"^<[^<>]+>$")
_SERVICE_PREFIXES = ("AUTH_", "CRM_MCP_", "CRM_API_", "TICKETS_MCP_", "WEATHER_API_", "DEMO_", "LOG_LEVEL")


class JwksServer(ThreadedServer):
    """Serves one JWKS at every path and records which paths were asked for."""

    def __init__(self, key: SigningKeyPair) -> None:
        self.paths: list[str] = []

        async def jwks(request: Request) -> Response:
            self.paths.append(request.url.path)
            return JSONResponse({"keys": [key.public_jwk()]})

        super().__init__(Starlette(routes=[Route("/{path:path}", jwks)]))


@pytest.fixture(scope="module")
def key() -> SigningKeyPair:
    return rsa_key("provider-key-1")


@pytest.fixture(scope="module")
def jwks_server(key: SigningKeyPair) -> Iterator[JwksServer]:
    server = JwksServer(key).start()
    yield server
    server.stop()


@pytest.fixture
async def http_client() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(timeout=5.0) as client:
        yield client


@pytest.fixture(autouse=True)
def no_service_settings_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the files under test decide; a developer's exported AUTH_ISSUER must not."""
    for name in list(os.environ):
        if name.upper().startswith(_SERVICE_PREFIXES):
            monkeypatch.delenv(name)


def applied_env_file(provider: str, directory: Path) -> Path:
    """.env.example with generated secrets, then the provider's file with its placeholders filled in."""
    lines = []
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep and (value.endswith("<generated>") or value.startswith("<same as")):
            # As `make up` fills them: a prefix (a vault key's id) stays, the secret is 32 random bytes.
            line = f"{name}={value.removesuffix('<generated>') if value.endswith('<generated>') else ''}"
            line += secrets.token_urlsafe(32)
        lines.append(line)
    for line in EXAMPLES[provider].read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        lines.append(f"{name}=filled-{secrets.token_urlsafe(8)}" if sep and PLACEHOLDER.match(value) else line)
    path = directory / f".env.{provider}"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def load(settings_class: type[SettingsT], provider: str, directory: Path) -> SettingsT:
    return settings_class(_env_file=applied_env_file(provider, directory))


def validator(
    settings: TrustSettings, audiences: list[str], server: JwksServer, client: httpx2.AsyncClient
) -> AccessTokenValidator:
    """The validator the service would build, with the provider's JWKS origin swapped for the loopback one."""
    config = settings.validator_config(audiences)
    assert config.jwks_url is not None
    local = dataclasses.replace(config, jwks_url=server.url + urlsplit(config.jwks_url).path)
    return AccessTokenValidator(local, http_client=client)


# --- The files themselves --------------------------------------------------------------------------------


# Read by `make up` and docker compose, not by a service: which services run.
TOPOLOGY_SETTINGS = {"COMPOSE_PROFILES"}


@pytest.mark.parametrize("provider", list(EXAMPLES))
def test_example_files_name_only_real_settings(provider: str) -> None:
    known = {name.upper() for settings_class in SERVICE_SETTINGS for name in settings_class.model_fields}
    known |= TOPOLOGY_SETTINGS
    named = set(dotenv_values(EXAMPLES[provider]))
    assert named - known == set(), f"{EXAMPLES[provider].name} names variables no service reads"
    assert {"AUTH_ISSUER", "AUTH_JWKS_URL", "AUTH_TOKEN_URL", "CRM_MCP_CLIENT_ID"} <= named


@pytest.mark.parametrize("provider", list(EXAMPLES))
def test_example_files_hold_no_secret_values(provider: str) -> None:
    secret_fields = {
        name.upper()
        for settings_class in SERVICE_SETTINGS
        for name, field in settings_class.model_fields.items()
        if field.annotation is SecretStr
    }
    values = dotenv_values(EXAMPLES[provider])
    for name in secret_fields & set(values):
        assert PLACEHOLDER.match(values[name] or ""), f"{name} must be a <placeholder> in {EXAMPLES[provider].name}"


@pytest.mark.parametrize("provider", list(EXAMPLES))
@pytest.mark.parametrize("settings_class", SERVICE_SETTINGS, ids=lambda cls: cls.__name__)
def test_example_files_load_into_every_service(
    provider: str, settings_class: type[BaseSettings], tmp_path: Path
) -> None:
    settings = load(settings_class, provider, tmp_path)
    for name, value in dotenv_values(EXAMPLES[provider]).items():
        if name.lower() in type(settings).model_fields and value and not PLACEHOLDER.match(value):
            loaded = getattr(settings, name.lower())
            as_loaded = (value, tuple(v for v in value.split(",") if v), value.lower() == "true")
            assert loaded in as_loaded, f"{name} was not applied"
    if isinstance(settings, TrustSettings):
        assert (
            settings.validator_config(["https://resource.example"]).jwks_url
            == dotenv_values(EXAMPLES[provider])["AUTH_JWKS_URL"]
        )


# --- Scalekit ------------------------------------------------------------------------------------------


def scalekit_user_token(key: SigningKeyPair, issuer: str, resource: str, **extra: Any) -> str:
    """A token as Scalekit MCP auth issues it: `scopes` list, no typ header, aud with the resource id too."""
    payload = claims(
        issuer,
        sub="usr_93817",
        aud=["res_crm_mcp", resource],
        client_id="skc_dcr_client",
        scope=None,
        scopes=["crm:read", "weather:read"],
        **extra,
    )
    return mint(key, payload, typ=None)


async def test_scalekit_issuer_forms_from_the_example_file(
    key: SigningKeyPair, jwks_server: JwksServer, http_client: httpx2.AsyncClient, tmp_path: Path
) -> None:
    crm_mcp = load(CrmMcpSettings, "scalekit", tmp_path)
    crm_mcp_validator = validator(crm_mcp, [crm_mcp.crm_mcp_resource], jwks_server, http_client)
    verifier = JWTTokenVerifier(crm_mcp_validator, resource=crm_mcp.crm_mcp_resource)
    issuers = (crm_mcp.auth_issuer, *crm_mcp.auth_issuer_aliases)
    assert issuers == ("https://your-env.scalekit.com/resources/res_crm_mcp", "https://your-env.scalekit.com")

    for issuer in issuers:
        token = scalekit_user_token(key, issuer, crm_mcp.crm_mcp_resource)
        principal = await crm_mcp_validator.validate(token, ["weather:read"])
        assert (principal.issuer, principal.subject, principal.client_id) == (issuer, "usr_93817", "skc_dcr_client")
        access = await verifier.verify_token(token)
        assert access is not None
        assert access.resource == crm_mcp.crm_mcp_resource  # the URL, not the opaque res_ id listed first
    assert jwks_server.paths[-1] == "/keys"

    # crm-mcp's machine-to-machine token, issued by the environment URL, at tickets-mcp.
    tickets = load(TicketsMcpSettings, "scalekit", tmp_path)
    m2m = claims(
        tickets.auth_issuer_aliases[0],
        sub="m2m_crm_mcp",
        aud=[tickets.tickets_mcp_resource],
        client_id="m2m_crm_mcp",
        scope=None,
        scopes=["tickets:read", "tickets:write"],
    )
    tickets_validator = validator(tickets, [tickets.tickets_mcp_resource], jwks_server, http_client)
    principal = await tickets_validator.validate(mint(key, m2m, typ=None), ["tickets:write"])
    assert principal.client_id == "m2m_crm_mcp"


async def test_an_issuer_form_not_configured_is_refused(
    key: SigningKeyPair, jwks_server: JwksServer, http_client: httpx2.AsyncClient, tmp_path: Path
) -> None:
    """Issuers match exactly: a trailing slash or another environment is another issuer."""
    crm_mcp = load(CrmMcpSettings, "scalekit", tmp_path)
    crm_mcp_validator = validator(crm_mcp, [crm_mcp.crm_mcp_resource], jwks_server, http_client)
    for issuer in (
        crm_mcp.auth_issuer + "/",
        crm_mcp.auth_issuer_aliases[0] + "/",
        "https://other-env.scalekit.com",
    ):
        with pytest.raises(InvalidTokenError):
            await crm_mcp_validator.validate(scalekit_user_token(key, issuer, crm_mcp.crm_mcp_resource))


# --- Keycloak ------------------------------------------------------------------------------------------


def keycloak_token(key: SigningKeyPair, issuer: str, audiences: list[str], **extra: Any) -> str:
    """A token as Keycloak issues it: header typ JWT, claim typ Bearer, `azp`, `scope` string, UUID `sub`."""
    payload = claims(
        issuer,
        sub="0b6f1d52-5c9f-4a8e-9d7e-2f3c1a0e4b11",
        aud=audiences,
        client_id=None,
        typ="Bearer",
        **extra,
    )
    return mint(key, payload, typ="JWT")


async def test_keycloak_user_token_from_the_example_file(
    key: SigningKeyPair, jwks_server: JwksServer, http_client: httpx2.AsyncClient, tmp_path: Path
) -> None:
    """Audience mappers put crm-mcp and crm-api in `aud` (plus Keycloak's `account`): both services accept it."""
    crm_mcp = load(CrmMcpSettings, "keycloak", tmp_path)
    crm_api = load(CrmApiSettings, "keycloak", tmp_path)
    token = keycloak_token(
        key,
        crm_mcp.auth_issuer,
        ["account", crm_mcp.crm_mcp_resource, crm_api.crm_api_audience],
        azp="mcp-inspector",
        scope="openid profile email crm:read crm:write",
        preferred_username="alice",
    )

    crm_mcp_validator = validator(crm_mcp, [crm_mcp.crm_mcp_resource], jwks_server, http_client)
    access = await JWTTokenVerifier(crm_mcp_validator, resource=crm_mcp.crm_mcp_resource).verify_token(token)
    assert access is not None
    assert (access.resource, access.client_id) == (crm_mcp.crm_mcp_resource, "mcp-inspector")
    assert {"crm:read", "crm:write"} <= set(access.scopes)
    assert jwks_server.paths[-1] == "/realms/acme/protocol/openid-connect/certs"

    crm_api_validator = validator(crm_api, [crm_api.crm_api_audience], jwks_server, http_client)
    principal = await crm_api_validator.validate(token, ["crm:write"])
    assert principal.subject == "0b6f1d52-5c9f-4a8e-9d7e-2f3c1a0e4b11"


async def test_keycloak_service_account_token_from_the_example_file(
    key: SigningKeyPair, jwks_server: JwksServer, http_client: httpx2.AsyncClient, tmp_path: Path
) -> None:
    """crm-mcp-agent's client-credentials token, audience from its mapper, client from `azp`."""
    tickets = load(TicketsMcpSettings, "keycloak", tmp_path)
    crm_mcp = load(CrmMcpSettings, "keycloak", tmp_path)
    token = keycloak_token(
        key,
        tickets.auth_issuer,
        [tickets.tickets_mcp_resource],
        azp=crm_mcp.crm_mcp_client_id,
        scope="profile email tickets:read tickets:write",
    )
    tickets_validator = validator(tickets, [tickets.tickets_mcp_resource], jwks_server, http_client)
    principal = await tickets_validator.validate(token, ["tickets:read", "tickets:write"])
    assert principal.client_id == "crm-mcp-agent"


async def test_a_token_without_the_mapped_audience_is_refused(
    key: SigningKeyPair, jwks_server: JwksServer, http_client: httpx2.AsyncClient, tmp_path: Path
) -> None:
    """Without the second Audience mapper the cascade fails closed: crm-api refuses a crm-mcp-only token."""
    crm_api = load(CrmApiSettings, "keycloak", tmp_path)
    crm_mcp = load(CrmMcpSettings, "keycloak", tmp_path)
    crm_api_validator = validator(crm_api, [crm_api.crm_api_audience], jwks_server, http_client)
    for audiences in (["account"], ["account", crm_mcp.crm_mcp_resource]):
        token = keycloak_token(key, crm_api.auth_issuer, audiences, azp="mcp-inspector", scope="crm:read")
        with pytest.raises(InvalidTokenError):
            await crm_api_validator.validate(token)
