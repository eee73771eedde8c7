"""SingleFlight: one attempt shared by concurrent callers, its error remembered for the back-off, no stuck waiters."""

from __future__ import annotations

import anyio
import pytest
from devkit.clock import ManualClock
from oauth_tokens.single_flight import KeyedSingleFlight, SingleFlight

pytestmark = pytest.mark.anyio


async def test_concurrent_callers_share_one_attempt_and_its_error() -> None:
    clock = ManualClock(0.0)
    flight: SingleFlight[str] = SingleFlight(failure_backoff_seconds=1.0, clock=clock)
    release = anyio.Event()
    errors: list[BaseException] = []

    async def failing() -> str:
        await release.wait()
        raise ConnectionError("down")

    async def caller() -> None:
        with pytest.raises(ConnectionError) as failed:
            await flight.run(failing)
        errors.append(failed.value)

    async with anyio.create_task_group() as group:
        for _ in range(5):
            group.start_soon(caller)
        await anyio.wait_all_tasks_blocked()
        release.set()

    assert len(errors) == 5
    assert all(error is errors[0] for error in errors)  # the same error, released at once
    assert flight.attempts == 1

    async def succeeding() -> str:
        return "up"

    with pytest.raises(ConnectionError):  # remembered during the back-off: no new attempt
        await flight.run(succeeding)
    assert flight.attempts == 1
    clock.now += 1.0
    assert await flight.run(succeeding) == "up"  # the first call after the back-off tries again
    assert flight.attempts == 2


async def test_only_the_failures_remember_accepts_are_remembered() -> None:
    flight: SingleFlight[str] = SingleFlight(
        failure_backoff_seconds=60.0, remember=lambda error: isinstance(error, TimeoutError)
    )

    async def refused() -> str:
        raise ConnectionRefusedError("down")

    async def hung() -> str:
        raise TimeoutError("no answer")

    async def succeeding() -> str:
        return "up"

    with pytest.raises(ConnectionRefusedError):
        await flight.run(refused)
    assert await flight.run(succeeding) == "up"  # a quick refusal is not remembered: back at once
    with pytest.raises(TimeoutError):
        await flight.run(hung)
    with pytest.raises(TimeoutError):  # a hang is remembered for the back-off
        await flight.run(succeeding)
    assert flight.attempts == 3


async def test_a_cancelled_leader_does_not_strand_its_waiters() -> None:
    flight: SingleFlight[str] = SingleFlight()
    calls = 0

    async def attempt() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            await anyio.sleep_forever()
        return "second attempt"

    results: list[str] = []
    leader = anyio.CancelScope()

    async def lead() -> None:
        with leader:
            await flight.run(attempt)  # the first attempt, which hangs until cancelled

    async def wait() -> None:
        results.append(await flight.run(attempt))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(lead)
            await anyio.wait_all_tasks_blocked()
            group.start_soon(wait)  # joins the attempt in flight
            await anyio.wait_all_tasks_blocked()
            leader.cancel()
    assert results == ["second attempt"]  # the waiter started a new attempt instead of waiting for ever
    assert flight.attempts == 2


async def test_keyed_single_flight_shares_a_restarted_flight_and_forgets_idle_keys() -> None:
    """A leader cancelled mid-attempt: the waiter restarts it, and a caller arriving then joins that one."""
    flights: KeyedSingleFlight[str, int] = KeyedSingleFlight()
    started = 0
    release = anyio.Event()

    async def attempt() -> int:
        nonlocal started
        started += 1
        await release.wait()
        return started

    results: list[int] = []

    async def follower() -> None:
        results.append(await flights.run("key", attempt))

    leader_scope = anyio.CancelScope()

    async def leader() -> None:
        with leader_scope:
            await flights.run("key", attempt)

    async with anyio.create_task_group() as group:
        group.start_soon(leader)
        await anyio.wait_all_tasks_blocked()
        group.start_soon(follower)
        await anyio.wait_all_tasks_blocked()
        leader_scope.cancel()
        await anyio.wait_all_tasks_blocked()  # the follower has restarted the attempt
        group.start_soon(follower)
        await anyio.wait_all_tasks_blocked()
        assert started == 2  # the third caller joined the restarted attempt instead of starting its own
        release.set()
    assert results == [2, 2]
    assert len(flights) == 0
