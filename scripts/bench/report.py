"""How the bench prints: the latency table, the ratio table with targets and marks, counts, scaling, notes."""

from __future__ import annotations

from collections.abc import Sequence

from scripts.bench.measure import Count, Ratio, Row, Target


def _mark(met: bool | None) -> str:
    return "" if met is None else ("met" if met else "NOT MET")


def _figure(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value:.4f} ms" if value < 0.1 else f"{value:.3f} ms"
    return f"{value:.1f} {unit}"


def _target(target: Target | None) -> str:
    return "" if target is None else str(target)


def _ratio(value: float) -> str:
    return f"{value:.2g}x" if value < 0.01 else f"{value:.2f}x"


def print_rows(rows: Sequence[Row]) -> None:
    """Absolute figures: calls, p50, p95, calls per second."""
    width = max(len(row.name) for row in rows)
    print(f"\n{'measurement':<{width}}  {'calls':>6}  {'p50 ms':>8}  {'p95 ms':>8}  {'per s':>8}")
    print("-" * (width + 38))
    for row in rows:
        print(f"{row.name:<{width}}  {row.calls:>6}  {row.p50_ms:>8.3f}  {row.p95_ms:>8.3f}  {row.per_second:>8.0f}")


def print_ratios(ratios: Sequence[Ratio], counts: Sequence[Count]) -> None:
    """Ratios (ours / baseline; for calls/s higher is better) and counts, each with its target and mark."""
    width = max(len(name) for name in [*(ratio.name for ratio in ratios), *(count.name for count in counts)])
    print(f"\n{'ratio (ours / baseline)':<{width}}  {'ours':>16}  {'baseline':>16}  {'ratio':>8}  {'target':>7}  mark")
    print("-" * (width + 63))
    for ratio in ratios:
        print(
            f"{ratio.name:<{width}}  {_figure(ratio.ours, ratio.unit):>16}  {_figure(ratio.baseline, ratio.unit):>16}"
            f"  {_ratio(ratio.ratio):>8}  {_target(ratio.target):>7}  {_mark(ratio.met)}"
        )
    for count in counts:
        print(
            f"{count.name:<{width}}  {count.value:>16}  {'':>16}  {'':>8}  {_target(count.target):>7}"
            f"  {_mark(count.met)}"
        )


def print_scaling(rows: Sequence[Row], cores: int) -> None:
    """Throughput by number of concurrent callers, and the speed-up over one caller."""
    if not rows:
        return
    single = rows[0].per_second
    print(f"\n{'concurrent callers':>18}  {'calls':>6}  {'per s':>8}  {'speed-up':>8}  {'p50 ms':>8}")
    print("-" * 56)
    for row in rows:
        print(
            f"{row.name:>18}  {row.calls:>6}  {row.per_second:>8.0f}  {row.per_second / single:>7.2f}x"
            f"  {row.p50_ms:>8.3f}"
        )
    print(
        f"The client and all the services share {cores} core(s): once they are busy, more callers only queue "
        "(per-call latency grows, throughput stays flat)."
    )


def print_notes(ratios: Sequence[Ratio], counts: Sequence[Count]) -> None:
    """The closing note: for each target not met, where the time goes (measured) and what would close it."""
    missed = [ratio for ratio in ratios if ratio.met is False]
    missed_counts = [count for count in counts if count.met is False]
    if not missed and not missed_counts:
        print("\nEvery target met.")
        return
    print(f"\n{len(missed) + len(missed_counts)} target(s) NOT MET (timings are noisy on a busy machine; rerun):")
    for ratio in missed:
        print(f"\n* {ratio.name}: {_ratio(ratio.ratio)}, target {ratio.target}.")
        if ratio.diagnosis:
            print(ratio.diagnosis)
    for count in missed_counts:
        print(f"\n* {count.name}: {count.value}, target {count.target}.")


def print_spread(runs: Sequence[Sequence[Ratio]], counts: Sequence[Sequence[Count]]) -> None:
    """After `--repeat N`: each ratio's and targeted count's figure in every run, its spread, and runs met."""
    print(f"\nOver {len(runs)} runs (each on a fresh topology): every figure, its spread, the runs that met the target")
    names = [ratio.name for ratio in runs[0]]
    width = max(len(name) for name in [*names, *(count.name for count in counts[0])])
    for name in names:
        figures = [next(ratio for ratio in run if ratio.name == name) for run in runs]
        values = [ratio.ratio for ratio in figures]
        print(
            f"{name:<{width}}  {'  '.join(_ratio(value) for value in values)}"
            f"  spread {_ratio(min(values))}-{_ratio(max(values))}{_runs_met(figures, figures[0].target)}"
        )
    for index, count in enumerate(counts[0]):
        if count.target is None:
            continue
        same = [run[index] for run in counts]
        print(f"{count.name:<{width}}  {'  '.join(str(item.value) for item in same)}{_runs_met(same, count.target)}")


def _runs_met(figures: Sequence[Ratio | Count], target: Target | None) -> str:
    if target is None:
        return ""
    return f"  target {target}: met in {sum(figure.met is True for figure in figures)} of {len(figures)} runs"
