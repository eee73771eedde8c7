"""DPoP proof verification (RFC 9449 §4.3), shared by the authorization server and every resource server.

A proof is a JWT the client signs per request with a key it holds; its public key travels in the
header, and a DPoP-bound access token names that key's RFC 7638 thumbprint in `cnf.jkt`. Checked here:
`typ` dpop+jwt; `alg` an asymmetric one from the allowed list (never `none`, never HS*); `jwk` a public
key of the type the alg needs (no private members); the signature; `htm` = the request's method; `htu`
= its URL (scheme, host, port and path, normalised; no query or fragment); `iat` within the window;
`ath` = base64url(SHA-256(access token)) when a token is presented; the server's `nonce` when it asks for
one; and `jti` used once (a ReplayCache: in memory by default, shared when configured), remembered until
the proof could no longer pass the `iat` check. The JWS is parsed by oauth_tokens.compact_jws and the
signature verified by PyJWT's algorithm for the embedded key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
import struct
import time
from base64 import urlsafe_b64decode, urlsafe_b64encode
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from jwt import PyJWK
from jwt.exceptions import PyJWKError, PyJWTError

from oauth_tokens.compact_jws import parse_compact_jws, verify_signature
from oauth_tokens.errors import InvalidTokenError, OAuthTokensError
from oauth_tokens.jwks import ALGORITHM_KEY_TYPES
from oauth_tokens.replay_cache import InMemoryReplayCache, ReplayCache

__all__ = [
    "DEFAULT_DPOP_ALGORITHMS",
    "DPoPMode",
    "DPoPNonceRequiredError",
    "DPoPNonces",
    "DPoPPolicy",
    "DPoPProofError",
    "DPoPUnavailableError",
    "VerifiedProof",
    "access_token_hash",
    "bound_thumbprint",
    "jwk_thumbprint",
    "nonce_keys",
    "normalized_htu",
]

DPoPMode = Literal["accept", "require"]
DEFAULT_DPOP_ALGORITHMS: Final = ("ES256", "RS256", "PS256", "EdDSA")
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_THUMBPRINT_MEMBERS: Final = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}
_MAX_PROOF_BYTES: Final = 8192
_MAX_JTI_CHARS: Final = 256
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_HEADER_CACHE_SIZE: Final = 4096  # checked proof headers (one per client key) kept; cleared when full


class DPoPProofError(OAuthTokensError):
    """The DPoP proof is missing, malformed or does not fit the request (401 `invalid_dpop_proof`).

    `reason` is for DEBUG logs; it never holds the proof or the token."""

    error = "invalid_dpop_proof"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DPoPNonceRequiredError(DPoPProofError):
    """The proof carries no nonce, or a stale one: retry with the one in the `DPoP-Nonce` header."""

    error = "use_dpop_nonce"


class DPoPUnavailableError(OAuthTokensError):
    """The replay cache could not take the proof's jti (full, or its store is down): 503, fail closed."""


def _b64url(data: bytes) -> str:
    return urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def access_token_hash(access_token: str) -> str:
    """The `ath` of a proof for `access_token`: base64url(SHA-256(ASCII token)), RFC 9449 §4.2."""
    return _b64url(hashlib.sha256(access_token.encode("ascii")).digest())


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public JWK (EC, RSA or OKP), base64url."""
    members = _THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None or not all(isinstance(jwk.get(name), str) for name in members):
        raise DPoPProofError("jwk is not an EC, RSA or OKP public key with its required members")
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode()).digest())


def bound_thumbprint(token: str) -> str | None:
    """`cnf.jkt` of a JWT access token, read WITHOUT verifying it; None if absent or unreadable.

    Only for deciding which checks apply: the token's signature is still verified by the validator,
    over exactly this payload, so a forged `cnf` can only get its sender refused."""
    parts = token.split(".")
    if len(parts) != 3 or len(parts[1]) > 16384:
        return None
    try:
        payload = json.loads(urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    cnf = payload.get("cnf") if isinstance(payload, dict) else None
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    if cnf is not None and not isinstance(jkt, str):
        return ""  # a cnf this server cannot honour: treated as bound, so never accepted as a bearer token
    return jkt


def normalized_htu(url: str) -> str:
    """`url` as RFC 9449 §4.3 compares it: scheme and host lower-cased, default port dropped, no query or fragment."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise DPoPProofError("htu is not a URL") from error
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        raise DPoPProofError("htu is not an http(s) URL with a host")
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path or '/'}"


def nonce_keys(secrets_: Sequence[str]) -> tuple[bytes, ...]:
    """DPoPNonces keys derived from configured secrets (first first), so no secret is used for two purposes:
    HMAC-SHA256(secret, "dpop-nonce-key"). Replicas configured alike derive the same keys."""
    return tuple(hmac.new(item.encode(), b"dpop-nonce-key", hashlib.sha256).digest() for item in secrets_ if item)


class DPoPNonces:
    """Server-provided nonces (RFC 9449 §8, §9) without state: a timestamp and its HMAC under `keys[0]`.

    A nonce is valid for `lifetime_seconds` under any of `keys` (rotation); replicas sharing the keys accept
    each other's nonces (keys from settings every replica shares: `nonce_keys`). No keys: one random key per
    process, so a nonce is good at the replica that issued it only."""

    def __init__(
        self, keys: Sequence[bytes] = (), lifetime_seconds: float = 300, clock: Callable[[], float] = time.time
    ) -> None:
        self._keys = tuple(keys) or (secrets.token_bytes(32),)
        self.lifetime_seconds = lifetime_seconds
        self._clock = clock

    def _mac(self, key: bytes, stamp: bytes) -> bytes:
        return hmac.new(key, b"dpop-nonce" + stamp, hashlib.sha256).digest()[:16]

    def issue(self) -> str:
        stamp = struct.pack(">Q", int(self._clock()))
        return _b64url(stamp + self._mac(self._keys[0], stamp))

    def valid(self, nonce: object) -> bool:
        if not isinstance(nonce, str) or len(nonce) != 32:
            return False
        try:
            raw = urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except ValueError:
            return False
        stamp, mac = raw[:8], raw[8:]
        if not any(hmac.compare_digest(mac, self._mac(key, stamp)) for key in self._keys):
            return False
        age = self._clock() - int(struct.unpack(">Q", stamp)[0])
        return -5 <= age <= self.lifetime_seconds


@dataclass(frozen=True)
class VerifiedProof:
    """What a valid proof establishes: the key's thumbprint (to compare with `cnf.jkt`) and its jti."""

    jkt: str
    jti: str


@dataclass
class DPoPPolicy:
    """How proofs are checked: algorithms, the iat window, the replay cache, nonces (None: not required)."""

    algorithms: Sequence[str] = DEFAULT_DPOP_ALGORITHMS
    max_age_seconds: float = 300
    leeway_seconds: float = 5
    replay_cache: ReplayCache = field(default_factory=lambda: InMemoryReplayCache(100_000))
    nonces: DPoPNonces | None = None
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self._headers: dict[str, tuple[str, PyJWK, str]] = {}
        self.algorithms = tuple(self.algorithms)
        for algorithm in self.algorithms:
            if algorithm not in ALGORITHM_KEY_TYPES:  # none and HS* are not in it
                raise ValueError(f"DPoP algorithm {algorithm!r} is not an asymmetric algorithm this package verifies")
        if not self.algorithms or self.max_age_seconds <= 0 or self.leeway_seconds < 0:
            raise ValueError("DPoP needs at least one algorithm, a positive max age and a non-negative leeway")

    @property
    def algs_value(self) -> str:
        """The `algs` challenge attribute and `dpop_signing_alg_values_supported` entries, space-separated."""
        return " ".join(self.algorithms)

    async def verify(
        self, proof: str, *, method: str, url: str | Sequence[str], access_token: str | None = None
    ) -> VerifiedProof:
        """Check `proof` for a request `method url` (with `access_token`, when one is presented).

        `url` may list the names one endpoint is known by (an authorization server's token endpoint, as
        published and as reached over an internal name): `htu` must be one of them.

        DPoPProofError (or DPoPNonceRequiredError) when it fails, DPoPUnavailableError if the jti cannot be
        recorded."""
        if not isinstance(proof, str) or not proof or len(proof) > _MAX_PROOF_BYTES:
            raise DPoPProofError("The DPoP proof is empty or over 8192 bytes")
        if not proof.isascii() or proof.count(".") != 2:
            raise DPoPProofError("The DPoP proof is not a compact JWS")
        try:
            jws = parse_compact_jws(proof)
        except InvalidTokenError as error:
            raise DPoPProofError(error.reason) from error
        _, key, jkt = self._header_key(proof.partition(".")[0], jws.header)
        try:
            verify_signature(jws, key)
            claims = jws.payload()
        except (PyJWTError, PyJWKError, InvalidTokenError, ValueError) as error:
            raise DPoPProofError(f"The proof's signature does not verify ({type(error).__name__})") from error
        jti = self._check_claims(claims, method=method, url=url, access_token=access_token)
        await self._first_use(jkt, jti, float(claims["iat"]))
        return VerifiedProof(jkt=jkt, jti=jti)

    def _header_key(self, segment: str, header: dict[str, Any]) -> tuple[str, PyJWK, str]:
        """The checked (alg, key, thumbprint) of a proof header; remembered per exact header segment, since a
        client signs every proof under the same header (its key), so only the first costs the key checks."""
        cached = self._headers.get(segment)
        if cached is not None:
            return cached
        if header.get("typ") != "dpop+jwt":
            raise DPoPProofError("The proof's typ is not dpop+jwt")
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self.algorithms:
            raise DPoPProofError(f"The proof's alg {str(algorithm)[:16]!r} is not allowed")
        jwk = header.get("jwk")
        if not isinstance(jwk, dict) or jwk.get("kty") != ALGORITHM_KEY_TYPES[algorithm]:
            raise DPoPProofError("The proof's jwk is missing or not a key for its alg")
        if _PRIVATE_MEMBERS & jwk.keys():
            raise DPoPProofError("The proof's jwk holds private key material")
        jkt = jwk_thumbprint(jwk)
        try:
            key = PyJWK(jwk, algorithm=algorithm)
        except (PyJWTError, PyJWKError, ValueError) as error:
            raise DPoPProofError(f"The proof's jwk is not a usable key ({type(error).__name__})") from error
        if len(self._headers) >= _HEADER_CACHE_SIZE:
            self._headers.clear()
        self._headers[segment] = (algorithm, key, jkt)
        return algorithm, key, jkt

    def _check_claims(
        self, claims: dict[str, Any], *, method: str, url: str | Sequence[str], access_token: str | None
    ) -> str:
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > _MAX_JTI_CHARS:
            raise DPoPProofError("The proof has no usable jti")
        if claims.get("htm") != method:
            raise DPoPProofError("The proof's htm is not this request's method")
        htu = claims.get("htu")
        urls = (url,) if isinstance(url, str) else tuple(url)
        if not isinstance(htu, str) or normalized_htu(htu) not in {normalized_htu(item) for item in urls}:
            raise DPoPProofError("The proof's htu is not this request's URL")
        issued_at = claims.get("iat")
        if isinstance(issued_at, bool) or not isinstance(issued_at, int | float) or not math.isfinite(issued_at):
            raise DPoPProofError("The proof has no numeric iat")
        now = self.clock()
        if issued_at > now + self.leeway_seconds or issued_at < now - self.max_age_seconds - self.leeway_seconds:
            raise DPoPProofError("The proof's iat is outside the accepted window")
        if access_token is not None:
            ath = claims.get("ath")
            if not isinstance(ath, str) or not hmac.compare_digest(ath, access_token_hash(access_token)):
                raise DPoPProofError("The proof's ath is not the hash of the access token")
        if self.nonces is not None and not self.nonces.valid(claims.get("nonce")):
            raise DPoPNonceRequiredError("The proof carries no current server nonce")
        return jti

    async def _first_use(self, jkt: str, jti: str, issued_at: float) -> None:
        expires_at = max(issued_at, self.clock()) + self.max_age_seconds + 2 * self.leeway_seconds
        try:
            first = await self.replay_cache.first_use(f"dpop:{jkt}:{jti}", expires_at)
        except Exception as error:  # full, or a shared store down: fail closed, as a 503
            raise DPoPUnavailableError(f"The DPoP replay cache is unavailable ({type(error).__name__})") from error
        if not first:
            raise DPoPProofError("The proof's jti was already used")
