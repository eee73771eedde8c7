"""The fixed-window limiter, driven by an explicit clock (a plain counter, not a mock)."""

from __future__ import annotations

from devkit.clock import ManualClock
from weather_api.rate_limit import FixedWindowRateLimiter


def test_allows_up_to_the_limit_then_refuses_until_the_window_ends() -> None:
    clock = ManualClock()
    limiter = FixedWindowRateLimiter(2, 10.0, clock=clock)
    assert [limiter.hit("a").allowed for _ in range(3)] == [True, True, False]

    clock.now += 4.2
    refused = limiter.hit("a")
    assert not refused.allowed
    assert refused.reset_after_seconds == 6  # rounded up, so a client waiting that long succeeds

    clock.now += 6
    assert limiter.hit("a").allowed


def test_buckets_are_independent_and_remaining_counts_down() -> None:
    limiter = FixedWindowRateLimiter(3, 60.0, clock=ManualClock())
    assert [limiter.hit("a").remaining for _ in range(3)] == [2, 1, 0]
    assert limiter.hit("b").remaining == 2
