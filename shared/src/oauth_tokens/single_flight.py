"""Single flight with a remembered failure: one attempt at a time, its outcome shared by every waiter.

A lock alone makes a convoy: against a dependency that hangs, each waiter takes the lock in turn and
waits out its own deadline, so N callers end one deadline apart. Here concurrent callers share the
one attempt in flight and all get its result, or its error, the moment it ends; and a failure is
remembered for `failure_backoff_seconds`, so callers arriving just after it get the same error at
once instead of starting another attempt against a dependency that has just failed. The first call
after the back-off tries again, so a dependency that came back is used at once. `remember` chooses
which failures are worth remembering (default: all), e.g. only those that waited out a timeout, so a
quick refusal never outlives the outage that caused it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar, cast

import anyio

__all__ = ["KeyedSingleFlight", "SingleFlight"]

T = TypeVar("T")
K = TypeVar("K")


@dataclass(eq=False)
class _Flight(Generic[T]):
    """One attempt: set `done` once it has a result or an error (or was abandoned with neither)."""

    done: anyio.Event = field(default_factory=anyio.Event)
    result: T | None = None
    error: BaseException | None = None
    succeeded: bool = False


class SingleFlight(Generic[T]):
    """Runs one attempt at a time; concurrent callers share its outcome; a failure is kept for a back-off."""

    def __init__(
        self,
        *,
        failure_backoff_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        remember: Callable[[Exception], bool] | None = None,
    ) -> None:
        if failure_backoff_seconds < 0:
            raise ValueError("failure_backoff_seconds must not be negative")
        self.failure_backoff_seconds = failure_backoff_seconds
        self._clock = clock
        self._remember = remember
        self._flight: _Flight[T] | None = None
        self._failure: Exception | None = None
        self._failed_at = 0.0
        self.attempts = 0  # how many attempts were started (for metrics and tests)

    @property
    def in_flight(self) -> bool:
        return self._flight is not None

    def remembered_failure(self) -> Exception | None:
        """The last attempt's error while its back-off lasts, else None."""
        if self._failure is not None and self._clock() - self._failed_at < self.failure_backoff_seconds:
            return self._failure
        return None

    async def run(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """`attempt()`'s result, shared with concurrent callers; its error (or a remembered one) raised."""
        while True:
            failure = self.remembered_failure()
            if failure is not None:
                raise failure
            flight = self._flight
            if flight is None:
                return await self._lead(attempt)
            await flight.done.wait()
            if flight.succeeded:
                return cast(T, flight.result)  # T itself may include None
            if flight.error is not None:
                raise flight.error
            # The leader was cancelled before an outcome: the next loop starts a new attempt.

    async def _lead(self, attempt: Callable[[], Awaitable[T]]) -> T:
        flight: _Flight[T] = _Flight()
        self._flight = flight
        self.attempts += 1
        try:
            flight.result = await attempt()
            flight.succeeded = True
            self._failure = None
            return flight.result
        except Exception as error:
            flight.error = error
            if self._remember is None or self._remember(error):
                self._failure, self._failed_at = error, self._clock()
            raise
        finally:
            self._flight = None
            flight.done.set()


@dataclass(eq=False)
class _Users(Generic[T]):
    flight: SingleFlight[T]
    count: int = 0


class KeyedSingleFlight(Generic[K, T]):
    """A SingleFlight per key, kept exactly as long as some caller is using it (the map never outgrows the
    calls in progress). Every caller of a key shares its flight, even one arriving while an abandoned
    attempt is being restarted."""

    def __init__(self, *, failure_backoff_seconds: float = 0.0) -> None:
        self.failure_backoff_seconds = failure_backoff_seconds
        self._flights: dict[K, _Users[T]] = {}

    def __len__(self) -> int:
        return len(self._flights)

    async def run(self, key: K, attempt: Callable[[], Awaitable[T]]) -> T:
        """`attempt()`'s result for `key`, shared with the concurrent callers of the same key."""
        users = self._flights.get(key)
        if users is None:
            users = self._flights[key] = _Users(SingleFlight(failure_backoff_seconds=self.failure_backoff_seconds))
        users.count += 1
        try:
            return await users.flight.run(attempt)
        finally:
            users.count -= 1
            if users.count == 0:
                del self._flights[key]
