"""Validate OAuth 2.1 JWT access tokens (RFC 9068 profile) against a trusted issuer's JWKS."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Any, Final
from urllib.parse import urlsplit

import httpx2
from jwt.exceptions import PyJWKError, PyJWTError

from oauth_tokens.claims import REQUIRED_CLAIMS, check_claims
from oauth_tokens.compact_jws import parse_compact_jws, verify_signature
from oauth_tokens.discovery import discover_jwks_uri
from oauth_tokens.errors import InsufficientScopeError, InvalidTokenError
from oauth_tokens.jwks import ALGORITHM_KEY_TYPES, JWKS_REFETCH_COOLDOWN_SECONDS, JWKSCache
from oauth_tokens.logs import redact
from oauth_tokens.principal import Principal
from oauth_tokens.telemetry import record_validation, trace_http
from oauth_tokens.token_cache import VerifiedTokenCache, token_digest

__all__ = ["ACCEPTED_TOKEN_TYPES", "REQUIRED_CLAIMS", "UNTYPED_TOKEN_TYPES", "AccessTokenValidator", "ValidatorConfig"]

logger = logging.getLogger(__name__)

# RFC 9068 §2.1/§4: an access token's JOSE typ is "at+jwt"; anything else (an ID token, say) is refused.
ACCEPTED_TOKEN_TYPES: Final = frozenset({"at+jwt", "application/at+jwt"})
# Also accepted, with accept_untyped_tokens, from providers that do not type their access tokens.
UNTYPED_TOKEN_TYPES: Final = frozenset({"jwt", None})
# RFC 6749 §3.3 scope-token characters: printable ASCII except space, '"' and '\\'.
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_MAX_KID_LENGTH: Final = 256


def _as_tuple(values: Sequence[str] | str, what: str) -> tuple[str, ...]:
    items = (values,) if isinstance(values, str) else tuple(values)
    if not items or not all(isinstance(item, str) and item for item in items):
        raise ValueError(f"{what} must be one or more non-empty strings")
    return items


@dataclass(frozen=True)
class ValidatorConfig:
    """Whom to trust (issuers, keys, algorithms) and for which audiences; checked when built."""

    issuers: Sequence[str]
    audiences: Sequence[str]
    jwks_url: str | None = None
    discovery_url: str | None = None
    algorithms: Sequence[str] = ("RS256", "ES256")
    leeway_seconds: int = 30
    max_token_bytes: int = 8192
    jwks_ttl_seconds: float = 300
    jwks_refetch_cooldown_seconds: float = JWKS_REFETCH_COOLDOWN_SECONDS
    # The total deadline of each key fetch (discovery and JWKS together).
    http_timeout_seconds: float = 5.0
    jwks_max_stale_seconds: float = 24 * 3600
    # After a failed key fetch: the first retry's wait, doubling up to the max (see oauth_tokens.jwks).
    jwks_failure_backoff_seconds: float = 1.0
    jwks_failure_backoff_max_seconds: float = 4.0
    # True also accepts typ "JWT" or no typ (Keycloak, Scalekit): they cannot then be told from ID tokens.
    accept_untyped_tokens: bool = False
    # Verified-token cache (policy in oauth_tokens.token_cache); size 0 turns it off.
    token_cache_size: int = 1000
    token_cache_max_age_seconds: float = 60

    def __post_init__(self) -> None:
        object.__setattr__(self, "issuers", _as_tuple(self.issuers, "issuers"))
        object.__setattr__(self, "audiences", _as_tuple(self.audiences, "audiences"))
        algorithms = _as_tuple(self.algorithms, "algorithms")
        for algorithm in algorithms:
            if algorithm.lower() == "none" or algorithm.upper().startswith("HS"):
                raise ValueError(f"Algorithm {algorithm!r} is never accepted for access tokens")
            if algorithm not in ALGORITHM_KEY_TYPES:
                raise ValueError(f"Unsupported algorithm {algorithm!r}; use one of {sorted(ALGORITHM_KEY_TYPES)}")
        object.__setattr__(self, "algorithms", algorithms)
        key_source = self.jwks_url or self.discovery_url or self.issuers[0]
        if urlsplit(key_source).scheme not in ("http", "https") or not urlsplit(key_source).netloc:
            raise ValueError("jwks_url, discovery_url or (failing both) the first issuer must be an http(s) URL")
        if self.leeway_seconds < 0 or self.leeway_seconds > 300:
            raise ValueError("leeway_seconds must be between 0 and 300")
        if self.max_token_bytes <= 0 or self.http_timeout_seconds <= 0:
            raise ValueError("max_token_bytes and http_timeout_seconds must be positive")
        if self.token_cache_size < 0 or self.token_cache_max_age_seconds <= 0:
            raise ValueError("token_cache_size must be 0 or more and token_cache_max_age_seconds positive")


def _scope_tokens(values: Iterable[str], claim: str) -> set[str]:
    """`values` as scope tokens; InvalidTokenError if one holds whitespace, a control character or a quote."""
    tokens = {value for value in values if value}
    if not all(_SCOPE_TOKEN.fullmatch(value) for value in tokens):
        raise InvalidTokenError(f"Claim {claim!r} holds a character a scope cannot contain")
    return tokens


def _scopes_from(claims: dict[str, Any]) -> frozenset[str]:
    """Scopes from `scope` (RFC 9068, space-delimited), `scp` (Okta, Entra) or `scopes` (Scalekit).

    A string is split on single spaces only (RFC 6749 §3.3); tabs, newlines and other control
    characters are not delimiters, so a claim holding them is refused rather than guessed at.
    """
    scopes: set[str] = set()
    for claim in ("scope", "scp", "scopes"):
        value = claims.get(claim)
        if value is None:
            continue
        if isinstance(value, str):
            scopes.update(_scope_tokens(value.split(" "), claim))
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            scopes.update(_scope_tokens(value, claim))
        else:
            raise InvalidTokenError(f"Claim {claim!r} is neither a string nor a list of strings")
    return frozenset(scopes)


def _client_id_from(claims: dict[str, Any]) -> str | None:
    """The OAuth client: `client_id` (RFC 9068), else `azp` (OIDC, Keycloak), else `cid` (Okta)."""
    for claim in ("client_id", "azp", "cid"):
        value = claims.get(claim)
        if isinstance(value, str) and value:
            return value
    return None


class AccessTokenValidator:
    """Checks a bearer token's size, header, signature (JWKS key by kid), claims and scopes."""

    def __init__(self, config: ValidatorConfig, *, http_client: httpx2.AsyncClient | None = None) -> None:
        if not isinstance(config, ValidatorConfig):
            raise TypeError("config must be a ValidatorConfig")
        self.config = config
        self._owns_client = http_client is None
        self._client = http_client or trace_http(
            httpx2.AsyncClient(timeout=config.http_timeout_seconds, follow_redirects=False),
            pattern="jwks",
            credential="none",
        )
        self.token_cache = VerifiedTokenCache(
            config.token_cache_size, config.token_cache_max_age_seconds, leeway_seconds=config.leeway_seconds
        )
        self.jwks = JWKSCache(
            config.jwks_url or self._discover_jwks_uri,
            self._client,
            allowed_algorithms=config.algorithms,
            ttl_seconds=config.jwks_ttl_seconds,
            refetch_cooldown_seconds=config.jwks_refetch_cooldown_seconds,
            max_stale_seconds=config.jwks_max_stale_seconds,
            timeout_seconds=config.http_timeout_seconds,
            failure_backoff_seconds=config.jwks_failure_backoff_seconds,
            failure_backoff_max_seconds=config.jwks_failure_backoff_max_seconds,
            on_refresh=self.token_cache.retain_keys,
        )

    async def __aenter__(self) -> AccessTokenValidator:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this validator created it."""
        if self._owns_client:
            await self._client.aclose()

    async def validate(self, token: str, required_scopes: Iterable[str] = ()) -> Principal:
        """The token's Principal; else InvalidTokenError (401) or InsufficientScopeError (403)."""
        required = tuple(required_scopes)
        try:
            principal = await self._validate(token)
        except InvalidTokenError as error:
            logger.debug("Access token refused: %s", error.reason)
            record_validation(None, "invalid_token", error.reason)
            raise
        except Exception as error:  # a PyJWT or crypto surprise must still be a plain 401
            reason = f"Unexpected {type(error).__name__} while validating: {redact(str(error))}"
            logger.debug("Access token refused: %s", reason)
            record_validation(None, "invalid_token", reason)
            raise InvalidTokenError(reason) from error
        missing = principal.missing_scopes(required)
        if missing:
            logger.debug("Token of %r lacks scope(s) %s", principal.subject, " ".join(missing))
            record_validation(None, "insufficient_scope", f"missing scope(s) {' '.join(missing)}")
            raise InsufficientScopeError(required=required, missing=missing)
        record_validation(principal)
        return principal

    async def _validate(self, token: str) -> Principal:
        config = self.config
        # Size first: no parsing, decoding or crypto is spent on an oversized token.
        if not isinstance(token, str) or not token:
            raise InvalidTokenError("Token is empty or not a string")
        if len(token) > config.max_token_bytes or len(token.encode()) > config.max_token_bytes:
            raise InvalidTokenError(f"Token is over {config.max_token_bytes} bytes")
        if not token.isascii() or token.count(".") != 2:
            raise InvalidTokenError("Token is not a JWS in compact serialization (three segments)")
        # Only an exact token verified before hits; nbf and exp are re-checked on every hit.
        digest = token_digest(token)
        cached = self.token_cache.get(digest)
        if cached is not None:
            # Its key must still be published, unchanged; this also keeps the keys refreshed on schedule.
            current = (await self.jwks.get_signing_key(cached.kid)).jwk_data
            if current is cached.jwk or current == cached.jwk:
                return cached.principal
        # Each segment is decoded once, here; the payload is read only once its signature verifies.
        jws = parse_compact_jws(token)
        header = jws.header

        algorithm = self._checked_algorithm(header)
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > _MAX_KID_LENGTH:
            raise InvalidTokenError("Token header has no usable kid")
        # jku, x5u, jwk and x5c are never read: keys come only from the configured JWKS.
        signing_key = await self.jwks.get_signing_key(kid)
        if ALGORITHM_KEY_TYPES[algorithm] != signing_key.key_type:
            raise InvalidTokenError(f"alg {algorithm} does not fit key {kid!r} of type {signing_key.key_type}")
        if signing_key.algorithm is not None and signing_key.algorithm != algorithm:
            raise InvalidTokenError(f"Key {kid!r} is for {signing_key.algorithm}, token says {algorithm}")

        try:
            verify_signature(jws, signing_key.for_algorithm(algorithm))
            claims = jws.payload()
            check_claims(
                claims, issuers=config.issuers, audiences=config.audiences, leeway_seconds=config.leeway_seconds
            )
        except (PyJWTError, PyJWKError) as error:
            raise InvalidTokenError(f"{type(error).__name__}: {error}") from error
        principal = self._principal(claims)
        self.token_cache.put(digest, kid, signing_key.jwk_data, principal)
        return principal

    def _checked_algorithm(self, header: dict[str, Any]) -> str:
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self.config.algorithms:
            raise InvalidTokenError(f"alg {str(algorithm)[:32]!r} is not allowed")
        token_type = header.get("typ")
        if token_type is not None and not isinstance(token_type, str):
            raise InvalidTokenError("typ is not a string")
        normalized = token_type.lower() if token_type is not None else None
        accepted = normalized in ACCEPTED_TOKEN_TYPES or (
            self.config.accept_untyped_tokens and normalized in UNTYPED_TOKEN_TYPES
        )
        if not accepted:
            raise InvalidTokenError(f"typ {str(token_type)[:32]!r} is not an access token type (RFC 9068 at+jwt)")
        return algorithm

    def _principal(self, claims: dict[str, Any]) -> Principal:
        subject, expires_at, audience = claims["sub"], claims["exp"], claims["aud"]
        if not isinstance(subject, str) or not subject:
            raise InvalidTokenError("Claim 'sub' is empty")
        if not isinstance(expires_at, int | float) or isinstance(expires_at, bool):
            raise InvalidTokenError("Claim 'exp' is not a number")
        return Principal(
            subject=subject,
            client_id=_client_id_from(claims),
            issuer=str(claims["iss"]),
            scopes=_scopes_from(claims),
            audiences=(audience,) if isinstance(audience, str) else tuple(audience),
            expires_at=int(expires_at),
            claims=MappingProxyType(claims),
        )

    async def _discover_jwks_uri(self) -> str:
        base_url = self.config.discovery_url or self.config.issuers[0]
        return await discover_jwks_uri(
            base_url,
            self._client,
            timeout_seconds=self.config.http_timeout_seconds,
            expected_issuers=self.config.issuers,
        )
