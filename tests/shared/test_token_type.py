"""RFC 9068 typ and RFC 6749 scope syntax: strict by default, untyped tokens only when configured."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest
from oauth_tokens import AccessTokenValidator, InvalidTokenError, ValidatorConfig
from oauth_tokens.settings import TrustSettings, load_settings

from tests.shared.conftest import Keys
from tests.shared.tokens import claims, mint

pytestmark = pytest.mark.anyio


@pytest.fixture
async def lenient(
    validator_config: ValidatorConfig, http_client: httpx2.AsyncClient
) -> AsyncIterator[AccessTokenValidator]:
    config = dataclasses.replace(validator_config, accept_untyped_tokens=True)
    async with AccessTokenValidator(config, http_client=http_client) as token_validator:
        yield token_validator


@pytest.mark.parametrize("typ", ["JWT", "jwt", None])
async def test_untyped_tokens_are_refused_by_default_and_accepted_when_configured(
    typ: str | None, keys: Keys, issuer: str, validator: AccessTokenValidator, lenient: AccessTokenValidator
) -> None:
    token = mint(keys.rsa, claims(issuer), typ=typ)
    with pytest.raises(InvalidTokenError, match="at\\+jwt"):
        await validator.validate(token)
    assert (await lenient.validate(token)).subject == "alice"


@pytest.mark.parametrize("typ", ["id_token", "application/id_token+jwt", "logout+jwt"])
async def test_other_types_stay_refused_when_untyped_tokens_are_accepted(
    typ: str, keys: Keys, issuer: str, lenient: AccessTokenValidator
) -> None:
    with pytest.raises(InvalidTokenError):
        await lenient.validate(mint(keys.rsa, claims(issuer), typ=typ))


async def test_scope_is_split_on_spaces_only(keys: Keys, issuer: str, validator: AccessTokenValidator) -> None:
    principal = await validator.validate(mint(keys.rsa, claims(issuer, scope="crm:read  crm:write openid")))
    assert principal.scopes == frozenset({"crm:read", "crm:write", "openid"})


@pytest.mark.parametrize("scope", ["crm:read\tcrm:write", "crm:read\ncrm:write", "crm:read\x00", 'a"b', "a\\b", "é"])
async def test_a_scope_claim_with_other_characters_is_refused(
    scope: str, keys: Keys, issuer: str, validator: AccessTokenValidator
) -> None:
    with pytest.raises(InvalidTokenError, match="character a scope cannot contain"):
        await validator.validate(mint(keys.rsa, claims(issuer, scope=scope)))


def test_the_setting_reaches_the_validator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTH_ISSUER", "https://as.example")
    assert load_settings(TrustSettings).validator_config(["api"]).accept_untyped_tokens is False
    monkeypatch.setenv("AUTH_ACCEPT_UNTYPED_TOKENS", "true")
    assert load_settings(TrustSettings).validator_config(["api"]).accept_untyped_tokens is True
