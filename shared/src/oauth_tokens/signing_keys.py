"""A directory of private signing keys (0600 PEM files + keys.json), rotated with publish-ahead, and its JWKS.

Used by the auth-server for the keys that sign its access tokens (RS256) and by services for the keys
that sign their RFC 7523 client assertions (client_assertion.py, ES256 by default). Both publish the
public halves as a JWK Set (RFC 7517) that verifiers fetch, cache, and refetch for an unknown `kid`.

Rotation: `rotate` adds a key that is published at once but signs only `publish_ahead_seconds` later,
when the current key retires; exactly one key signs at any time. A retired key stays published for
`retired_key_publication_seconds` (the lifetime of what it signed) plus RETIREMENT_MARGIN_SECONDS, then
`prune` deletes it. The publish-ahead must be at least the verifiers' refetch cool-down
(JWKS_REFETCH_COOLDOWN_SECONDS): a verifier that fetched the set just before the rotation sees the new
`kid` only after that.

Files: the private key `<kid>.pem` (PKCS#8, created O_EXCL with mode 0600, never readable by others) and
the index keys.json (written atomically). The `kid` is the RFC 7638 thumbprint of the public key. The
index is re-read whenever its file changes, so a rotation made by a CLI reaches a running process.

Replicas share one directory (a shared volume): every change of the index (first key, rotation, pruning)
happens under an exclusive lock on `.lock` in it, re-reading the index first, and a re-read takes the
lock shared. So two processes starting at once on an empty directory make ONE key, and a reader never
sees an index naming a key file a pruning process is deleting.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import get_default_algorithms

from oauth_tokens.errors import SettingsError
from oauth_tokens.jwks import JWKS_REFETCH_COOLDOWN_SECONDS

__all__ = [
    "PUBLISH_AHEAD_SECONDS",
    "RETIREMENT_MARGIN_SECONDS",
    "DamagedKeyFileError",
    "KeyRecord",
    "KeyStore",
    "PrivateKey",
    "PublicKey",
    "SigningAlgorithm",
    "SigningKey",
    "describe_keys",
    "generate_private_key",
    "key_fits",
    "public_jwk",
    "publish_ahead_argument",
    "thumbprint",
]

logger = logging.getLogger(__name__)

SigningAlgorithm = Literal["RS256", "ES256", "EdDSA"]
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

_INDEX_FILE = "keys.json"
# Published beyond what a key signed lives, so a token signed just before rotation outlives verifiers' leeway.
RETIREMENT_MARGIN_SECONDS = 60
# A rotated-in key is published this long before it signs (see the module docstring).
PUBLISH_AHEAD_SECONDS = 60
# RFC 7638 §3.2: the members a thumbprint covers, per key type.
_THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}


@dataclass(frozen=True)
class KeyRecord:
    """One key's metadata as kept in keys.json (the private key itself is <kid>.pem)."""

    kid: str
    created_at: int
    retired_at: int | None = None
    # Signs from this time on (published from created_at); None: from created_at.
    activates_at: int | None = None

    def signs_at(self, now: float) -> bool:
        """Whether this key may sign at `now`: activated, and not yet retired."""
        activated = (self.activates_at or self.created_at) <= now
        return activated and (self.retired_at is None or now < self.retired_at)


@dataclass(frozen=True)
class SigningKey:
    """The key that signs now: its `kid`, the private key, and the JWS algorithm it signs with."""

    kid: str | None
    private_key: PrivateKey
    algorithm: SigningAlgorithm = "RS256"


def generate_private_key(algorithm: SigningAlgorithm) -> PrivateKey:
    """A new key for `algorithm`: RSA 2048 (RS256), P-256 (ES256) or Ed25519 (EdDSA)."""
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"Unsupported signing algorithm {algorithm!r}")


def key_fits(private_key: object, algorithm: SigningAlgorithm) -> bool:
    """Whether `private_key` is the kind of key `algorithm` signs with (P-256 for ES256)."""
    if algorithm == "RS256":
        return isinstance(private_key, rsa.RSAPrivateKey)
    if algorithm == "ES256":
        return isinstance(private_key, ec.EllipticCurvePrivateKey) and isinstance(private_key.curve, ec.SECP256R1)
    return algorithm == "EdDSA" and isinstance(private_key, ed25519.Ed25519PrivateKey)


def public_jwk(public_key: PublicKey, algorithm: SigningAlgorithm, kid: str | None = None) -> dict[str, Any]:
    """The public JWK of `public_key` with `alg`, `use: sig` and (given) `kid`."""
    jwk: dict[str, Any] = get_default_algorithms()[algorithm].to_jwk(public_key, as_dict=True)
    # `use` only: RFC 7517 §4.3 says not to combine it with the `key_ops` PyJWT adds.
    published = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    if kid is not None:
        published["kid"] = kid
    return {**published, "use": "sig", "alg": algorithm}


def thumbprint(public_key: PublicKey, algorithm: SigningAlgorithm) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): a kid derived from the key itself."""
    jwk = public_jwk(public_key, algorithm)
    required = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).decode().rstrip("=")


class DamagedKeyFileError(SettingsError):
    """A key file (keys.json or a `<kid>.pem`) cannot be read: named, with the fix, never its content."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(
            f"The signing key file {path} is damaged ({problem}). Fix: delete the directory {path.parent} "
            "(a new key is generated on the next start), or run `make down` to start every service fresh."
        )


class KeyStore:
    """Keys under `directory`; the newest activated, unretired key signs; others stay in the JWKS a while.

    See the module docstring for rotation, retirement and the files.
    """

    def __init__(
        self, directory: Path, retired_key_publication_seconds: int, *, algorithm: SigningAlgorithm = "RS256"
    ) -> None:
        if algorithm not in ("RS256", "ES256", "EdDSA"):
            raise ValueError(f"Unsupported signing algorithm {algorithm!r}")
        self.directory = directory
        self.retired_key_publication_seconds = retired_key_publication_seconds
        self.algorithm: SigningAlgorithm = algorithm
        self._index_stamp: tuple[int, int] | None = None
        self._records: list[KeyRecord] = []
        self._private_keys: dict[str, PrivateKey] = {}

    def __repr__(self) -> str:
        return f"KeyStore(directory={str(self.directory)!r}, algorithm={self.algorithm!r})"

    @property
    def _index_path(self) -> Path:
        return self.directory / _INDEX_FILE

    @contextmanager
    def _locked(self, *, exclusive: bool) -> Iterator[None]:
        """The directory's lock (flock on `.lock`), across processes; never nested within one."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(descriptor)  # releases the lock

    def ensure_key(self) -> None:
        """Generate the first key if there is none (first start); one key however many processes start at once."""
        with self._locked(exclusive=True):
            self._reload_unlocked()
            if not any(record.retired_at is None for record in self._records):
                kid = self._add_key(retire_current=False)
                logger.info("Generated %s signing key %s in %s", self.algorithm, kid, self.directory)

    def rotate(self, publish_ahead_seconds: int = PUBLISH_AHEAD_SECONDS) -> KeyRecord:
        """Add a key that signs after `publish_ahead_seconds`; the current one signs until then, then retires."""
        with self._locked(exclusive=True):
            self._reload_unlocked()
            kid = self._add_key(retire_current=True, publish_ahead_seconds=publish_ahead_seconds)
            self._prune_unlocked(time.time())
            return next(record for record in self._records if record.kid == kid)

    def signing_key(self, now: float | None = None) -> SigningKey:
        self._reload_if_changed()
        now = time.time() if now is None else now
        active = [record for record in self._records if record.signs_at(now)]
        if not active:
            raise RuntimeError(f"No active signing key in {self.directory}")
        newest = max(active, key=lambda record: record.created_at)
        return SigningKey(kid=newest.kid, private_key=self._private_keys[newest.kid], algorithm=self.algorithm)

    def published_records(self, now: float | None = None) -> list[KeyRecord]:
        """Active keys and retired keys whose tokens may still be unexpired, newest first."""
        self._reload_if_changed()
        now = time.time() if now is None else now
        return sorted(
            (record for record in self._records if self._still_published(record, now)),
            key=lambda record: record.created_at,
            reverse=True,
        )

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The public JSON Web Key Set (RFC 7517): every published key."""
        return {
            "keys": [
                public_jwk(self._private_keys[record.kid].public_key(), self.algorithm, record.kid)
                for record in self.published_records()
            ]
        }

    def public_key(self, kid: str) -> PublicKey | None:
        """The public key `kid` if it is still published."""
        if any(record.kid == kid for record in self.published_records()):
            return self._private_keys[kid].public_key()
        return None

    def prune(self, now: float | None = None) -> list[str]:
        """Delete retired keys that nothing unexpired can name any more; return their kids."""
        now = time.time() if now is None else now
        if all(self._still_published(record, now) for record in self._records):
            return []
        with self._locked(exclusive=True):
            self._reload_unlocked()
            return self._prune_unlocked(now)

    def _prune_unlocked(self, now: float) -> list[str]:
        expired = [record for record in self._records if not self._still_published(record, now)]
        if not expired:
            return []
        self._write_index([record for record in self._records if record not in expired])
        for record in expired:
            (self.directory / f"{record.kid}.pem").unlink(missing_ok=True)
            self._private_keys.pop(record.kid, None)
        return [record.kid for record in expired]

    def _still_published(self, record: KeyRecord, now: float) -> bool:
        if record.retired_at is None:
            return True
        return now < record.retired_at + self.retired_key_publication_seconds + RETIREMENT_MARGIN_SECONDS

    def _add_key(self, *, retire_current: bool, publish_ahead_seconds: int = 0) -> str:
        private_key = generate_private_key(self.algorithm)
        kid = thumbprint(private_key.public_key(), self.algorithm)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        pem = private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        # O_EXCL + 0600: the key is never readable by others, not even between create and chmod.
        descriptor = os.open(self.directory / f"{kid}.pem", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as pem_file:
            pem_file.write(pem)
        now = int(time.time())
        switch_at = now + publish_ahead_seconds
        records = [
            replace(record, retired_at=switch_at) if retire_current and record.retired_at is None else record
            for record in self._records
        ]
        # Created strictly after the key it replaces, so "newest" is unambiguous within one second.
        created_at = max([now, *(record.created_at + 1 for record in records)])
        # The old key retires the moment the new one activates: exactly one key signs at any time.
        activates_at = switch_at if retire_current else None
        self._write_index([*records, KeyRecord(kid, created_at, activates_at=activates_at)])
        self._private_keys[kid] = private_key
        return kid

    def _write_index(self, records: list[KeyRecord]) -> None:
        payload = {"keys": [record.__dict__ for record in records]}
        temporary = self._index_path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as index_file:
            json.dump(payload, index_file, indent=2)
        os.replace(temporary, self._index_path)  # atomic: a running process never reads half an index
        self._records = records
        self._index_stamp = self._stamp()

    def _stamp(self) -> tuple[int, int] | None:
        try:
            stat = self._index_path.stat()
        except FileNotFoundError:
            return None
        return (stat.st_mtime_ns, stat.st_ino)

    def _reload_if_changed(self) -> None:
        stamp = self._stamp()
        if stamp is None or stamp == self._index_stamp:
            return
        with self._locked(exclusive=False):
            self._reload_unlocked()

    def _reload_unlocked(self) -> None:
        stamp = self._stamp()
        if stamp is None or stamp == self._index_stamp:
            return
        try:
            payload = json.loads(self._index_path.read_text(encoding="utf-8"))
            records = [KeyRecord(**entry) for entry in payload["keys"]]
        except (ValueError, TypeError, KeyError) as error:  # not JSON, or not the index's shape
            raise DamagedKeyFileError(self._index_path, f"not a key index: {type(error).__name__}") from None
        for record in records:
            if record.kid not in self._private_keys:
                pem_path = self.directory / f"{record.kid}.pem"
                try:
                    loaded = serialization.load_pem_private_key(pem_path.read_bytes(), password=None)
                except FileNotFoundError:
                    raise DamagedKeyFileError(pem_path, "missing, though keys.json lists it") from None
                except (ValueError, TypeError):  # the message is cryptography's; it never holds key bytes
                    raise DamagedKeyFileError(pem_path, "not a PEM private key") from None
                if not isinstance(loaded, PrivateKey) or not key_fits(loaded, self.algorithm):
                    raise TypeError(f"Key {record.kid} in {self.directory} is not a {self.algorithm} key")
                self._private_keys[record.kid] = loaded  # key_fits checked the type
        self._records = records
        self._index_stamp = stamp


def when(timestamp: float) -> str:
    """`timestamp` as a UTC date and time, for people."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def describe_keys(store: KeyStore) -> str:
    """One line per published key: kid, creation, and whether it signs, will sign, or is retired."""
    now = time.time()
    lines = []
    for record in store.published_records():
        if record.signs_at(now):
            state = "signing" + (f" until {when(record.retired_at)}" if record.retired_at else "")
        elif record.activates_at and record.activates_at > now:
            state = f"published, signs from {when(record.activates_at)}"
        else:
            state = f"retired {when(record.retired_at or now)}, still published for what it signed"
        lines.append(f"  {record.kid}  created {when(record.created_at)}  {state}")
    return "\n".join(lines)


def publish_ahead_argument(value: str) -> int:
    """A CLI's --publish-ahead: whole seconds, at least the verifiers' refetch cool-down."""
    try:
        seconds = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number of seconds") from None
    if seconds < JWKS_REFETCH_COOLDOWN_SECONDS:
        raise argparse.ArgumentTypeError(
            f"must be at least {JWKS_REFETCH_COOLDOWN_SECONDS} s: verifiers refetch the JWKS for an unknown key "
            "at most that often, so a key that signs sooner would have what it signs refused until then"
        )
    return seconds
