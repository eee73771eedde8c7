"""How the bench measures: latency rows, interleaved ratio pairs, throughput under concurrent callers.

A ratio compares two ways of doing the same work measured side by side in one run: each round runs
both (in alternating order, so drift on a shared machine hits both alike), and the ratio is the
median over the rounds of the per-round ratio. Targets are printed beside the figures; nothing here
fails on timing.
"""

from __future__ import annotations

import dataclasses
import operator
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import anyio

Operation = Callable[[], Awaitable[object]]


@dataclass
class Scale:
    """Multiplies every run count: `--quick` (0.05) is how the test suite checks the bench still runs."""

    factor: float = 1.0

    def __call__(self, runs: int, minimum: int = 5) -> int:
        return max(minimum, int(runs * self.factor))

    @property
    def quick(self) -> bool:
        return self.factor < 1


SCALE = Scale()


@dataclass(frozen=True)
class Target:
    """A goal for a ratio or a count: `<=`, `>=` or `==` a value."""

    comparison: str
    value: float

    def met(self, figure: float) -> bool:
        compare = {"<=": operator.le, ">=": operator.ge, "==": operator.eq}[self.comparison]
        return bool(compare(figure, self.value))

    def __str__(self) -> str:
        return f"{self.comparison} {self.value:g}"


@dataclass(frozen=True)
class Row:
    """One absolute measurement: calls, p50 and p95 latency (ms), calls per second."""

    name: str
    calls: int
    p50_ms: float
    p95_ms: float
    per_second: float


@dataclass(frozen=True)
class Ratio:
    """`ours` against `baseline` (both in `unit`), their ratio, and the target for it (None: informative)."""

    name: str
    ours: float
    baseline: float
    unit: str
    ratio: float
    target: Target | None = None
    # Printed under the table when the target is not met: where the time goes.
    diagnosis: str = ""

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met(self.ratio)

    def with_diagnosis(self, diagnosis: str) -> Ratio:
        return dataclasses.replace(self, diagnosis=diagnosis)


@dataclass(frozen=True)
class Count:
    """A count of requests (not a time), with its target."""

    name: str
    value: int
    target: Target | None = None

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met(self.value)


def _quantile_95(samples: Sequence[float]) -> float:
    return statistics.quantiles(samples, n=100)[94] if len(samples) > 1 else samples[0]


async def timed(name: str, runs: int, operation: Operation) -> Row:
    """Run `operation` `runs` times after one warm-up call."""
    runs = SCALE(runs)
    await operation()
    samples = []
    started = time.perf_counter()
    for _ in range(runs):
        begin = time.perf_counter()
        await operation()
        samples.append((time.perf_counter() - begin) * 1000)
    elapsed = time.perf_counter() - started
    return Row(name, runs, statistics.median(samples), _quantile_95(samples), runs / elapsed)


async def concurrent(name: str, callers: int, rounds: int, operation: Operation) -> Row:
    """`callers` concurrent loops of `operation`, `rounds` calls each: throughput and per-call latency."""
    samples: list[float] = []
    rounds = SCALE(rounds, minimum=2)

    async def loop() -> None:
        for _ in range(rounds):
            begin = time.perf_counter()
            await operation()
            samples.append((time.perf_counter() - begin) * 1000)

    await operation()
    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(callers):
            group.start_soon(loop)
    elapsed = time.perf_counter() - started
    return Row(name, len(samples), statistics.median(samples), _quantile_95(samples), len(samples) / elapsed)


async def mean_ms(operation: Operation, calls: int, clock: Callable[[], float] = time.perf_counter) -> float:
    """Mean milliseconds of `calls` sequential calls, by `clock` (wall clock unless told otherwise)."""
    started = clock()
    for _ in range(calls):
        await operation()
    return (clock() - started) * 1000 / calls


async def paired_latency(
    name: str,
    ours: Operation,
    baseline: Sequence[Operation],
    *,
    calls: int,
    rounds: int = 7,
    target: Target | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Ratio:
    """Mean latency of `ours` against the summed mean latencies of `baseline`'s steps, interleaved per round.

    `clock=time.process_time` measures CPU time instead: for in-process work, it does not count the time
    other processes on a busy machine hold the CPU.
    """
    calls, rounds = SCALE(calls), SCALE(rounds, minimum=3)
    for operation in (ours, *baseline):
        await operation()
    ours_ms: list[float] = []
    baseline_ms: list[float] = []
    for round_number in range(rounds):
        if round_number % 2:
            base = sum([await mean_ms(step, calls, clock) for step in baseline])
            own = await mean_ms(ours, calls, clock)
        else:
            own = await mean_ms(ours, calls, clock)
            base = sum([await mean_ms(step, calls, clock) for step in baseline])
        ours_ms.append(own)
        baseline_ms.append(base)
    ratios = [own / base for own, base in zip(ours_ms, baseline_ms, strict=True)]
    return Ratio(
        name, statistics.median(ours_ms), statistics.median(baseline_ms), "ms", statistics.median(ratios), target
    )


async def throughput(operation: Operation, callers: int, calls_per_caller: int) -> float:
    """Calls per second of `callers` concurrent loops of `calls_per_caller` calls each."""

    async def loop() -> None:
        for _ in range(calls_per_caller):
            await operation()

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(callers):
            group.start_soon(loop)
    return callers * calls_per_caller / (time.perf_counter() - started)


async def interleaved_throughputs(
    operations: Sequence[Operation], *, callers: int, calls_per_caller: int, rounds: int
) -> list[list[float]]:
    """Per operation, its throughput in each round; the order rotates every round."""
    calls_per_caller, rounds = SCALE(calls_per_caller, minimum=1), SCALE(rounds, minimum=1)
    for operation in operations:
        await operation()
    results: list[list[float]] = [[] for _ in operations]
    for round_number in range(rounds):
        for offset in range(len(operations)):
            index = (round_number + offset) % len(operations)
            results[index].append(await throughput(operations[index], callers, calls_per_caller))
    return results


def throughput_ratio(
    name: str, ours: Sequence[float], baseline: Sequence[float], target: Target | None = None
) -> Ratio:
    """`ours` against `baseline` calls per second (per-round pairs), as a Ratio (higher is better)."""
    ratios = [own / base for own, base in zip(ours, baseline, strict=True)]
    return Ratio(
        name, statistics.median(ours), statistics.median(baseline), "calls/s", statistics.median(ratios), target
    )
