"""Signing-key store: RSA keys persisted as 0600 PEM files, rotation, and the published JWKS; also a CLI."""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from oauth_tokens.errors import SettingsError
from oauth_tokens.jwks import JWKS_REFETCH_COOLDOWN_SECONDS
from oauth_tokens.settings import load_settings

from auth_server.config import load_config
from auth_server.settings import AuthServerSettings, environment

logger = logging.getLogger(__name__)

SIGNING_ALGORITHM = "RS256"
_INDEX_FILE = "keys.json"
# Published beyond the token lifetime so a token signed just before rotation outlives validators' leeway.
RETIREMENT_MARGIN_SECONDS = 60
# A rotated-in key is published this long before it signs, so every validator has refetched the JWKS
# (the shared validator refetches for an unknown kid at most once per JWKS_REFETCH_COOLDOWN_SECONDS)
# before it meets a token signed with it. The CLI refuses less than that cool-down.
PUBLISH_AHEAD_SECONDS = 60


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
    kid: str
    private_key: rsa.RSAPrivateKey


class KeyStore:
    """Keys under `directory`; the newest activated, unretired key signs; others stay in the JWKS a while.

    Rotation publishes the new key PUBLISH_AHEAD_SECONDS before it signs (and the old one signs until
    then), and keeps the old key published until every token it signed has expired.

    The index is re-read whenever its file changes, so `python -m auth_server.keys rotate` takes effect
    in a running server without a restart.
    """

    def __init__(self, directory: Path, retired_key_publication_seconds: int) -> None:
        self.directory = directory
        self.retired_key_publication_seconds = retired_key_publication_seconds
        self._index_stamp: tuple[int, int] | None = None
        self._records: list[KeyRecord] = []
        self._private_keys: dict[str, rsa.RSAPrivateKey] = {}

    @property
    def _index_path(self) -> Path:
        return self.directory / _INDEX_FILE

    def ensure_key(self) -> None:
        """Generate the first key if there is none (first start)."""
        self._reload_if_changed()
        if not any(record.retired_at is None for record in self._records):
            kid = self._add_key(retire_current=False)
            logger.info("Generated signing key %s in %s", kid, self.directory)

    def rotate(self, publish_ahead_seconds: int = PUBLISH_AHEAD_SECONDS) -> KeyRecord:
        """Add a key that signs after `publish_ahead_seconds`; the current one signs until then, then retires."""
        self._reload_if_changed()
        kid = self._add_key(retire_current=True, publish_ahead_seconds=publish_ahead_seconds)
        self.prune()
        return next(record for record in self._records if record.kid == kid)

    def signing_key(self, now: float | None = None) -> SigningKey:
        self._reload_if_changed()
        now = time.time() if now is None else now
        active = [record for record in self._records if record.signs_at(now)]
        if not active:
            raise RuntimeError(f"No active signing key in {self.directory}")
        newest = max(active, key=lambda record: record.created_at)
        return SigningKey(kid=newest.kid, private_key=self._private_keys[newest.kid])

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
        """The public JSON Web Key Set (RFC 7517) served at /jwks."""
        return {"keys": [self._public_jwk(record.kid) for record in self.published_records()]}

    def public_key(self, kid: str) -> rsa.RSAPublicKey | None:
        """The public key `kid` if it is still published (used to verify token-exchange subject tokens)."""
        if any(record.kid == kid for record in self.published_records()):
            return self._private_keys[kid].public_key()
        return None

    def prune(self, now: float | None = None) -> list[str]:
        """Delete retired keys that no unexpired token can name any more; return their kids."""
        now = time.time() if now is None else now
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
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid = _thumbprint(private_key.public_key())
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
        os.replace(temporary, self._index_path)  # atomic: a running server never reads half an index
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
        payload = json.loads(self._index_path.read_text(encoding="utf-8"))
        records = [KeyRecord(**entry) for entry in payload["keys"]]
        for record in records:
            if record.kid not in self._private_keys:
                pem = (self.directory / f"{record.kid}.pem").read_bytes()
                loaded = serialization.load_pem_private_key(pem, password=None)
                if not isinstance(loaded, rsa.RSAPrivateKey):
                    raise TypeError(f"Key {record.kid} is not an RSA private key")
                self._private_keys[record.kid] = loaded
        self._records = records
        self._index_stamp = stamp

    def _public_jwk(self, kid: str) -> dict[str, Any]:
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self._private_keys[kid].public_key(), as_dict=True)
        # `use` only: RFC 7517 §4.3 says not to combine it with the `key_ops` PyJWT adds.
        return {"kty": "RSA", "n": jwk["n"], "e": jwk["e"], "kid": kid, "use": "sig", "alg": SIGNING_ALGORITHM}


def _thumbprint(public_key: rsa.RSAPublicKey) -> str:
    """RFC 7638 JWK thumbprint: a kid derived from the key itself."""
    jwk = RSAAlgorithm.to_jwk(public_key, as_dict=True)
    canonical = json.dumps({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _describe(store: KeyStore) -> str:
    now = time.time()
    lines = []
    for record in store.published_records():
        if record.signs_at(now):
            state = "signing" + (f" until {_when(record.retired_at)}" if record.retired_at else "")
        elif record.activates_at and record.activates_at > now:
            state = f"published, signs from {_when(record.activates_at)}"
        else:
            state = f"retired {_when(record.retired_at or now)}, still published for its tokens"
        lines.append(f"  {record.kid}  created {_when(record.created_at)}  {state}")
    return "\n".join(lines)


def _publish_ahead(value: str) -> int:
    """--publish-ahead: whole seconds, at least the validators' refetch cool-down."""
    try:
        seconds = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number of seconds") from None
    if seconds < JWKS_REFETCH_COOLDOWN_SECONDS:
        raise argparse.ArgumentTypeError(
            f"must be at least {JWKS_REFETCH_COOLDOWN_SECONDS} s: validators refetch the JWKS for an unknown key "
            "at most that often, so a key that signs sooner would have its tokens refused until then"
        )
    return seconds


def main(argv: list[str] | None = None) -> None:
    """`python -m auth_server.keys rotate|list` (run from the repo root, like the server)."""
    parser = argparse.ArgumentParser(prog="python -m auth_server.keys", description=__doc__)
    parser.add_argument("command", choices=["rotate", "list"])
    parser.add_argument(
        "--publish-ahead",
        type=_publish_ahead,
        default=PUBLISH_AHEAD_SECONDS,
        metavar="SECONDS",
        help=(
            f"publish the new key this long before it signs (default {PUBLISH_AHEAD_SECONDS}, "
            f"at least {JWKS_REFETCH_COOLDOWN_SECONDS}: the validators' refetch cool-down)"
        ),
    )
    arguments = parser.parse_args(argv)
    settings = load_settings(AuthServerSettings)
    config = load_config(settings.auth_server_config, environment())
    store = KeyStore(settings.keys_dir, config.lifetimes.access_token_seconds)
    store.ensure_key()
    if arguments.command == "rotate":
        record = store.rotate(arguments.publish_ahead)
        signs_from = _when(record.activates_at or record.created_at)
        print(f"New signing key {record.kid}: published now, signs from {signs_from}.")
    print(f"Published keys in {store.directory}:\n{_describe(store)}")


if __name__ == "__main__":
    try:
        main()
    except (SettingsError, OSError, ValueError) as error:  # a one-line exit; messages hold no key material
        sys.exit(f"auth_server.keys: {error}")
