"""Typed service settings from env and `.env`; errors name the variable, never its value."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import pydantic
import pydantic_settings
from pydantic import BeforeValidator, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from oauth_tokens.dpop import DEFAULT_DPOP_ALGORITHMS, DPoPMode, DPoPNonces, DPoPPolicy, nonce_keys
from oauth_tokens.errors import SettingsError
from oauth_tokens.jwks import ALGORITHM_KEY_TYPES
from oauth_tokens.replay_cache import ReplayCache
from oauth_tokens.validator import ValidatorConfig

__all__ = [
    "CommaList",
    "DPoPSettings",
    "OptionalPort",
    "ServiceSettings",
    "SettingsError",
    "TrustSettings",
    "load_settings",
]

SettingsT = TypeVar("SettingsT", bound=BaseSettings)

_SOURCE_PARSE_ERROR = re.compile(r'error parsing value for field "(?P<field>[^"]+)"')


def _split_commas(value: Any) -> Any:
    """'a,b , c' -> ('a', 'b', 'c'); empty items are dropped; lists and tuples pass through stripped."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    if isinstance(value, list | tuple):
        return tuple(str(item).strip() for item in value if str(item).strip())
    return value


# NoDecode: pydantic-settings would otherwise try to JSON-decode a tuple-typed variable.
CommaList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_split_commas)]


def _empty_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


# A port that may be left empty (off), e.g. <SERVICE>_METRICS_PORT.
OptionalPort = Annotated[Annotated[int, Field(ge=1, le=65535)] | None, BeforeValidator(_empty_is_none)]


class ServiceSettings(BaseSettings):
    """Base of every service's settings: a field's name is its environment variable (case-insensitive)."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        hide_input_in_errors=True,
    )

    # LOG_LEVEL: DEBUG shows why a token was refused (never the token itself).
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Tracing (docs/observability.md); both empty: off. A collector's OTLP/HTTP base URL, e.g. http://localhost:4318.
    otel_exporter_otlp_endpoint: str = ""
    # A directory for <service>.jsonl trace files (OTLP JSON lines) that `make trace` reads.
    traces_dir: str = ""
    # OTEL_SERVICE_NAME: the service's name in traces; empty means its own (set for a second instance of one
    # service, such as the calendar's auth-server).
    otel_service_name: str = ""
    # Interface of the /metrics listener; its port is the service's own <SERVICE>_METRICS_PORT.
    metrics_host: str = "127.0.0.1"


def _checked_http_url(value: str) -> str:
    """`value` if it is an http(s) URL with a host; else ValueError (whose message never quotes it)."""
    try:
        parts = urlsplit(value)
        is_http_url = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. an unbalanced "[" in the host
        is_http_url = False
    if not is_http_url:
        raise ValueError("must be an http(s) URL with a host")
    return value


class DPoPSettings(ServiceSettings):
    """AUTH_DPOP*: how a resource server treats DPoP (RFC 9449); shared by every service that takes tokens."""

    # DPoP (RFC 9449, docs/dpop.md): accept = DPoP-bound and bearer tokens (a bound one only with its proof),
    # require = DPoP-bound tokens only. AUTH_DPOP_NONCE=true makes every proof carry this server's nonce.
    auth_dpop: DPoPMode = "accept"
    auth_dpop_algorithms: CommaList = DEFAULT_DPOP_ALGORITHMS
    auth_dpop_proof_max_age_seconds: Annotated[float, Field(ge=1, le=600)] = 60
    auth_dpop_nonce: bool = False
    # Secrets the nonces are keyed from, first first (rotation: put a new one first); every replica of a
    # service must have the same, so a nonce one issued is accepted by the next. Empty: a key per process.
    auth_dpop_nonce_keys: CommaList = ()
    # Take htu's scheme and host from X-Forwarded-Proto/-Host: only behind a proxy that overwrites them.
    auth_dpop_trust_forwarded_headers: bool = False

    @field_validator("auth_dpop_algorithms")
    @classmethod
    def _dpop_algorithms(cls, algorithms: tuple[str, ...]) -> tuple[str, ...]:
        if not algorithms or any(algorithm not in ALGORITHM_KEY_TYPES for algorithm in algorithms):
            raise ValueError(f"each algorithm must be one of {', '.join(ALGORITHM_KEY_TYPES)}")
        return algorithms

    @field_validator("auth_dpop_nonce_keys")
    @classmethod
    def _nonce_keys_are_long(cls, keys: tuple[str, ...]) -> tuple[str, ...]:
        if any(len(key) < 32 for key in keys):
            raise ValueError("each key must be at least 32 characters (a random secret)")  # never quotes one
        return keys

    def dpop_policy(self, replay_cache: ReplayCache | None = None) -> DPoPPolicy:
        """How this service checks DPoP proofs; `replay_cache` None: one in memory (a single replica)."""
        policy = DPoPPolicy(
            algorithms=tuple(self.auth_dpop_algorithms),
            max_age_seconds=self.auth_dpop_proof_max_age_seconds,
            nonces=DPoPNonces(nonce_keys(self.auth_dpop_nonce_keys)) if self.auth_dpop_nonce else None,
        )
        if replay_cache is not None:
            policy.replay_cache = replay_cache
        return policy


class TrustSettings(DPoPSettings):
    """What every token-validating service shares: whom to trust and how to find its signing keys.

    Checked when loaded, so a bad value is a SettingsError naming the variable (never quoting it):
    URLs must be http(s) with a host (AUTH_JWKS_URL / AUTH_DISCOVERY_URL may be empty: unset),
    AUTH_ALGORITHMS must be asymmetric algorithms ValidatorConfig supports, the leeway 0..300 s,
    the verified-token cache 0..1,000,000 entries (0: off) kept at most 1..3600 s.
    """

    auth_issuer: str
    auth_issuer_aliases: CommaList = ()
    auth_jwks_url: str | None = None
    auth_discovery_url: str | None = None
    auth_algorithms: CommaList = ("RS256", "ES256")
    auth_leeway_seconds: Annotated[int, Field(ge=0, le=300)] = 30
    # Total deadline of one signing-key fetch (discovery and JWKS together), seconds.
    auth_key_fetch_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0
    # RFC 9068 typ at+jwt only, unless the provider does not type its access tokens (typ JWT or none).
    auth_accept_untyped_tokens: bool = False
    # Verified-token cache (policy in oauth_tokens.token_cache).
    auth_token_cache_size: Annotated[int, Field(ge=0, le=1_000_000)] = 1000
    auth_token_cache_max_age_seconds: Annotated[float, Field(ge=1, le=3600)] = 60

    # Messages never include the value: pydantic puts them in the error the operator sees.
    @field_validator("auth_issuer")
    @classmethod
    def _issuer_is_http_url(cls, value: str) -> str:
        return _checked_http_url(value)

    @field_validator("auth_jwks_url", "auth_discovery_url")
    @classmethod
    def _optional_http_url(cls, value: str | None) -> str | None:
        return _checked_http_url(value) if value else value  # empty (as in .env.example) means unset

    @field_validator("auth_algorithms")
    @classmethod
    def _asymmetric_algorithms(cls, algorithms: tuple[str, ...]) -> tuple[str, ...]:
        if not algorithms:
            raise ValueError("at least one algorithm is required")
        if any(algorithm.lower() == "none" or algorithm.upper().startswith("HS") for algorithm in algorithms):
            raise ValueError("unsigned and symmetric (HS*) algorithms are never accepted for access tokens")
        if any(algorithm not in ALGORITHM_KEY_TYPES for algorithm in algorithms):
            raise ValueError(f"each algorithm must be one of {', '.join(ALGORITHM_KEY_TYPES)}")
        return algorithms

    def validator_config(self, audiences: Sequence[str]) -> ValidatorConfig:
        """A ValidatorConfig accepting AUTH_ISSUER (and its aliases) for the given audiences."""
        return ValidatorConfig(
            issuers=(self.auth_issuer, *self.auth_issuer_aliases),
            audiences=tuple(audiences),
            jwks_url=self.auth_jwks_url or None,
            discovery_url=self.auth_discovery_url or None,
            algorithms=tuple(self.auth_algorithms),
            leeway_seconds=self.auth_leeway_seconds,
            http_timeout_seconds=self.auth_key_fetch_timeout_seconds,
            accept_untyped_tokens=self.auth_accept_untyped_tokens,
            token_cache_size=self.auth_token_cache_size,
            token_cache_max_age_seconds=self.auth_token_cache_max_age_seconds,
        )


def _variable_name(location: tuple[int | str, ...]) -> str:
    return str(location[0]).upper() if location else "<unknown>"


def _describe(error: pydantic.ValidationError) -> str:
    """One line per problem; built from pydantic's messages, which never carry the input here."""
    missing: list[str] = []
    invalid: list[str] = []
    for item in error.errors(include_input=False, include_url=False, include_context=False):
        variable = _variable_name(tuple(item["loc"]))
        if item["type"] == "missing":
            missing.append(f"Missing required setting {variable}")
        else:
            invalid.append(f"Invalid setting {variable}: {item['msg']}")
    return "; ".join(missing + invalid)


def load_settings(settings_class: type[SettingsT]) -> SettingsT:
    """Load `settings_class` from env and `.env` (cwd); raise SettingsError naming the variable."""
    try:
        return settings_class()
    except pydantic.ValidationError as error:
        raise SettingsError(_describe(error)) from None
    except pydantic_settings.SettingsError as error:
        # Raised when a source cannot decode a value; its cause may quote the value, so it is not chained.
        match = _SOURCE_PARSE_ERROR.search(str(error))
        variable = match.group("field").upper() if match else "<unknown>"
        raise SettingsError(f"Invalid setting {variable}: the value could not be parsed") from None
