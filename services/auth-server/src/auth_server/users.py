"""Demo users: scrypt-hashed passwords, constant-time checks, and throttling repeated failed logins.

Failed logins (LoginThrottle; settings in auth-server.toml's [login]) are counted per username (from any
address) and per client address (for any username):

- **Per username.** Each failure makes the next attempt at that username wait longer; past
  `max_failures` in the window the username is locked: attempts are refused unchecked (even with the
  right password, from any address) until its last failure is `failure_window_seconds` old. Refused
  attempts do not count, so they do not extend the lock.
- **Per address.** Past `max_failures_per_address` failures in the window (for any usernames) an address
  (an IPv6 /64) is refused too: one address cannot spray guesses over many usernames, nor create more
  than that many username entries.
- An attempt counts as a failure when it begins (before its delay and the password check) and a success
  takes it back (and clears the username's count), so parallel attempts cannot all pass with no delay.
  Known and unknown usernames are treated alike (no oracle for which exist).
- **Bounded, and junk cannot block anyone.** Both tables (`max_tracked_usernames`,
  `max_tracked_addresses`) are `OwnedTable`s (quotas.py): when one is full, the entry with the fewest
  failures goes (from the address holding the most entries first), so a flood of junk usernames evicts
  the flood's own entries. A locked username or address is never evicted, so a flood cannot reopen a
  locked-out account. If every entry of a full table is locked, a new username or address is let through
  uncounted by that table (the other still counts): a full table never refuses a correct password from a
  new address for a user nobody targeted.
- **Replicas.** With REDIS_URL, `SharedLoginThrottle` keeps both counts in Redis
  (`oauth_tokens.shared_state.limits.RedisFailureCounts`, each forgotten a window after its latest
  failure), so a lockout holds on every replica; Redis bounds them by expiry, not by table size. Two
  attempts racing at the very last allowed failure may both be counted (the check and the count are two
  steps). While Redis cannot be reached, each replica counts in its own LoginThrottle (degraded, logged
  once per outage), and Redis's counts apply again once it answers.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import anyio.to_thread
from oauth_tokens.shared_state import SharedState, SharedStateUnavailable
from oauth_tokens.shared_state.limits import RedisFailureCounts

from auth_server.config import AuthServerConfig, require_secret
from auth_server.config_sections import LoginPolicy
from auth_server.quotas import OwnedTable, TableFull, owner_of_address

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
    """Too many recent or in-flight failed logins for this username, or from this address; refused unchecked."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("Too many failed logins")
        self.retry_after = retry_after


class LoginThrottle:
    """Counts failed logins per username and per client address, under the policy in the module docstring."""

    def __init__(self, policy: LoginPolicy) -> None:
        self._policy = policy
        window = policy.failure_window_seconds

        def expired(entry: _Failures, now: float) -> bool:
            return now - entry.last_at > window

        self._usernames: OwnedTable[str, _Failures] = OwnedTable(
            max_entries=policy.max_tracked_usernames,
            max_per_owner=policy.max_failures_per_address,  # an address cannot fail more often anyway
            rank=lambda entry: entry.count if entry.count < policy.max_failures else None,
            expired=expired,
        )
        self._addresses: OwnedTable[str, _Failures] = OwnedTable(
            max_entries=policy.max_tracked_addresses,
            max_per_owner=1,
            rank=lambda entry: entry.count if entry.count < policy.max_failures_per_address else None,
            expired=expired,
        )

    def begin_attempt(self, username: str, address: str, now: float | None = None) -> float:
        """Count this attempt as a failure; how long it must wait. Raises TooManyFailures past a limit."""
        now = time.monotonic() if now is None else now
        name, owner = username.casefold(), owner_of_address(address)
        by_name = self._usernames.get(name, now)
        by_address = self._addresses.get(owner, now)
        if by_name is not None and by_name.count >= self._policy.max_failures:
            raise TooManyFailures(self._retry_after(by_name, now))
        if by_address is not None and by_address.count >= self._policy.max_failures_per_address:
            raise TooManyFailures(self._retry_after(by_address, now))
        self._count(self._addresses, owner, by_address, owner, now)
        self._count(self._usernames, name, by_name, owner, now)
        if by_name is None or by_name.count == 1:
            return 0.0
        delay = self._policy.failure_delay_seconds * 2 ** (by_name.count - 2)
        return float(min(delay, self._policy.max_failure_delay_seconds))

    def record_success(self, username: str, address: str, now: float | None = None) -> None:
        """The attempt begun for `username` from `address` succeeded: it was no failure."""
        now = time.monotonic() if now is None else now
        self._usernames.pop(username.casefold())
        by_address = self._addresses.get(owner_of_address(address), now)
        if by_address is not None and by_address.count > 0:
            by_address.count -= 1

    def _retry_after(self, entry: _Failures, now: float) -> int:
        return max(1, math.ceil(entry.last_at + self._policy.failure_window_seconds - now))

    @staticmethod
    def _count(table: OwnedTable[str, _Failures], key: str, entry: _Failures | None, owner: str, now: float) -> None:
        if entry is not None:
            entry.count += 1
            entry.last_at = now
            return
        try:
            table.put(key, _Failures(1, now), owner, now)
        except TableFull:  # every entry is locked: this one goes uncounted here (see the class docstring)
            return


class SharedLoginThrottle:
    """LoginThrottle's policy with the counts in Redis when `shared` is given (module docstring), else in process."""

    def __init__(self, policy: LoginPolicy, shared: SharedState | None) -> None:
        self._policy = policy
        self.local = LoginThrottle(policy)
        window = policy.failure_window_seconds
        self._shared = shared is not None
        if shared is not None:
            self._names = RedisFailureCounts(shared, "login-username", window)
            self._addresses = RedisFailureCounts(shared, "login-address", window)

    async def begin_attempt(self, username: str, address: str) -> float:
        """As LoginThrottle.begin_attempt, across replicas while Redis answers."""
        if not self._shared:
            return self.local.begin_attempt(username, address)
        name, owner = username.casefold(), owner_of_address(address)
        try:
            by_name, by_address = await self._names.get(name), await self._addresses.get(owner)
            if by_name.count >= self._policy.max_failures:
                raise TooManyFailures(by_name.forgotten_after_seconds)
            if by_address.count >= self._policy.max_failures_per_address:
                raise TooManyFailures(by_address.forgotten_after_seconds)
            await self._addresses.fail(owner)
            count = await self._names.fail(name)
        except SharedStateUnavailable:
            return self.local.begin_attempt(username, address)
        if count <= 1:
            return 0.0
        delay = self._policy.failure_delay_seconds * 2 ** (count - 2)
        return float(min(delay, self._policy.max_failure_delay_seconds))

    async def record_success(self, username: str, address: str) -> None:
        """As LoginThrottle.record_success, across replicas while Redis answers."""
        if not self._shared:
            self.local.record_success(username, address)
            return
        try:
            await self._names.forget(username.casefold())
            await self._addresses.succeed(owner_of_address(address))
        except SharedStateUnavailable:
            self.local.record_success(username, address)
