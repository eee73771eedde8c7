"""A clock a test moves by hand: the caches and limiters here take their clock as an argument for this."""

from __future__ import annotations


class ManualClock:
    """Returns `now`, which the test sets or advances; stands in for time.monotonic or time.time."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now
