"""Demo users: scrypt-hashed passwords, constant-time checks, and throttling repeated failed logins."""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import anyio.to_thread

from auth_server.config import AuthServerConfig, LoginPolicy, require_secret

# scrypt cost: ~50 ms per check on a laptop core; memory 16 MiB (128 * r * n bytes).
_SCRYPT_N = 2**14
_SCRYPT_R = 8
_SCRYPT_P = 1
_KEY_LENGTH = 32
_MAX_PASSWORD_BYTES = 1024


@dataclass(frozen=True)
class User:
    username: str
    name: str
    title: str
    salt: bytes = field(repr=False)
    password_hash: bytes = field(repr=False)


def hash_password(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8")[:_MAX_PASSWORD_BYTES],
        salt=salt,
        n=_SCRYPT_N,
        r=_SCRYPT_R,
        p=_SCRYPT_P,
        dklen=_KEY_LENGTH,
    )


def make_user(username: str, name: str, title: str, password: str) -> User:
    salt = os.urandom(16)
    return User(username, name, title, salt, hash_password(password, salt))


class UserDirectory:
    """Users by username; `verify` takes the same time whether or not the user exists."""

    def __init__(self, users: list[User]) -> None:
        self._users = {user.username: user for user in users}
        # An unknown username is checked against this, so the response time does not reveal existence.
        self._decoy = make_user("", "", "", os.urandom(16).hex())

    @classmethod
    def from_config(cls, config: AuthServerConfig, environ: Mapping[str, str]) -> UserDirectory:
        return cls(
            [
                make_user(entry.username, entry.name, entry.title, require_secret(environ, entry.password_env))
                for entry in config.users
            ]
        )

    def get(self, username: str) -> User | None:
        return self._users.get(username)

    async def verify(self, username: str, password: str) -> User | None:
        """The user if `password` is theirs, else None; scrypt runs in a worker thread."""
        user = self._users.get(username)
        candidate = user or self._decoy
        computed = await anyio.to_thread.run_sync(hash_password, password, candidate.salt)
        matches = hmac.compare_digest(computed, candidate.password_hash)
        return user if matches and user is not None else None


@dataclass
class _Failures:
    count: int
    last_at: float


class TooManyFailures(Exception):
    """Too many recent or in-flight failed logins for this username and address; refused unchecked."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("Too many failed logins")
        self.retry_after = retry_after


class LoginThrottle:
    """Counts failures per (username, client address): each later attempt waits longer, and past a limit none run.

    An attempt counts as a failure when it begins (before its delay and the password check) and a success
    clears the count, so parallel attempts cannot all pass with no delay. The same applies to known and
    unknown usernames alike. Entries are forgotten only once their failure window has passed: when the
    table is full, attempts from new (username, address) pairs are refused instead, so a flood of junk
    usernames can never push out (and so reopen) a locked-out pair.
    """

    def __init__(self, policy: LoginPolicy) -> None:
        self._policy = policy
        # Ordered by last failure (an updated entry moves to the end), so expired ones are at the front.
        self._failures: dict[tuple[str, str], _Failures] = {}

    def begin_attempt(self, username: str, address: str, now: float | None = None) -> float:
        """Count this attempt as a failure; how long it must wait. Raises TooManyFailures past the limit."""
        now = time.monotonic() if now is None else now
        key = (username.casefold(), address)
        window = self._policy.failure_window_seconds
        entry = self._failures.get(key)
        if entry is None or now - entry.last_at > window:
            entry = _Failures(0, now)
        if entry.count >= self._policy.max_failures:  # refused attempts do not extend the window
            raise TooManyFailures(max(1, math.ceil(entry.last_at + window - now)))
        if key not in self._failures:
            self._forget_expired(now)
            if len(self._failures) >= self._policy.max_tracked_failures:
                oldest = next(iter(self._failures.values()))
                raise TooManyFailures(max(1, math.ceil(oldest.last_at + window - now)))
        self._failures.pop(key, None)
        self._failures[key] = _Failures(entry.count + 1, now)
        if entry.count == 0:
            return 0.0
        delay = self._policy.failure_delay_seconds * 2 ** (entry.count - 1)
        return float(min(delay, self._policy.max_failure_delay_seconds))

    def record_success(self, username: str, address: str) -> None:
        self._failures.pop((username.casefold(), address), None)

    def _forget_expired(self, now: float) -> None:
        window = self._policy.failure_window_seconds
        while self._failures:
            key, entry = next(iter(self._failures.items()))
            if now - entry.last_at <= window:
                return
            del self._failures[key]
