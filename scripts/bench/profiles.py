"""`make bench PROFILE=1`: where the CPU goes, as cProfile's top functions by own time (CPU clock).

Printed for the two paths with targets: a first-seen token through the shared validator against a
bare `jwt.decode`, and search_customers through crm-mcp against the bare server returning the same
result. crm-mcp and the bare server are restarted under scripts.bench.profiled and profiled only
while the measured calls run; the bench client (this process) is profiled around the same calls.
Function calls per operation are printed too: unlike times, they do not move with the machine's load.
cProfile slows what it measures (about 3x here): compare shares and call counts, not milliseconds.
Each profile is also kept whole in .run/bench-profiles/ (`python -m pstats FILE`, or snakeviz), so a
reader can sort it by cumulative time or follow callers beyond the top functions printed here.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
from devkit.processes import ServiceProcess
from devkit.sessions import mcp_session
from devkit.topology import Topology

from scripts.bench.clients import ROOT

TOP = 12
# Where the whole profiles are kept after the run (the topology's own directory is deleted with it).
KEPT = ROOT / ".run" / "bench-profiles"


def keep(stats: pstats.Stats | cProfile.Profile, name: str) -> None:
    """Write `stats` to .run/bench-profiles/`name`.prof, for sorting and browsing after the run."""
    KEPT.mkdir(parents=True, exist_ok=True)
    stats.dump_stats(str(KEPT / f"{name}.prof"))


def summary(title: str, stats: pstats.Stats, operations: int, top: int = TOP) -> str:
    """`title`, function calls and CPU ms per operation, then the `top` functions by own time."""
    total_calls = sum(entry[1] for entry in stats.stats.values())  # type: ignore[attr-defined]
    total_time = sum(entry[2] for entry in stats.stats.values())  # type: ignore[attr-defined]
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(top)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    start = next(index for index, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    return "\n".join(
        [
            f"  {title}: {total_calls / operations:.0f} function calls and {total_time * 1000 / operations:.3f} ms"
            f" CPU (profiled) per operation, over {operations}; top {top} by own time:",
            *(f"    {line}" for line in lines[start:]),
        ]
    )


def profile_calls(title: str, operation: Callable[[], object], operations: int, kept_as: str = "") -> str:
    """Profile `operations` synchronous calls of `operation` in this process, CPU clock (kept if `kept_as`)."""
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for _ in range(operations):
        operation()
    profiler.disable()
    if kept_as:
        keep(profiler, kept_as)
    return summary(title, pstats.Stats(profiler), operations)


async def profile_async_calls(
    title: str, operation: Callable[[], Awaitable[object]], operations: int, kept_as: str = ""
) -> str:
    """Profile `operations` sequential awaits of `operation` in this process, CPU clock (kept if `kept_as`)."""
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for _ in range(operations):
        await operation()
    profiler.disable()
    if kept_as:
        keep(profiler, kept_as)
    return summary(title, pstats.Stats(profiler), operations)


@contextmanager
def profiled_process(service: ServiceProcess, output: Path) -> Iterator[ServiceProcess]:
    """`service` stopped and started again under scripts.bench.profiled (same port and settings); stopped after."""
    service.stop()
    profiled = ServiceProcess(
        name=f"{service.name}-profiled",
        module=service.module,
        port=service.port,
        env={**service.env, "PYTHONPATH": str(ROOT)},
        workdir=service.workdir,
        command=[sys.executable, "-m", "scripts.bench.profiled", str(output), service.module],
    )
    profiled.start()
    try:
        yield profiled
    finally:
        profiled.stop()


async def _profile_window(
    process: ServiceProcess, output: Path, operation: Callable[[], Awaitable[object]], operations: int
) -> tuple[str, pstats.Stats]:
    """The client's and `process`'s profiles over the same `operations` calls (both kept, named by the output)."""
    assert process.process is not None
    os.kill(process.process.pid, signal.SIGUSR1)
    await anyio.sleep(0.2)  # the signal is handled between two bytecodes of the server's main thread
    client = await profile_async_calls("bench client", operation, operations, kept_as=f"bench-client-{output.stem}")
    os.kill(process.process.pid, signal.SIGUSR2)
    for _ in range(100):  # written whole, then renamed: it exists once complete
        if await anyio.Path(output).exists():
            break
        await anyio.sleep(0.1)
    stats = pstats.Stats(str(output))
    keep(stats, output.stem)
    return client, stats


async def bench_tool_profiles(topology: Topology, bare_server: ServiceProcess, token: str, operations: int) -> str:
    """crm-mcp (search_customers) and the bare server (the same result), each with the bench client's side."""
    sections = ["Profile of search_customers via crm-mcp, under the bench's load:"]
    profiles = topology.workdir / "profiles"
    profiles.mkdir(exist_ok=True)
    crm_mcp = topology.services["crm-mcp"]
    with profiled_process(crm_mcp, profiles / "crm-mcp.prof") as profiled:
        async with mcp_session(topology.crm_mcp_url, token=token) as session:
            await session.call_tool("search_customers", {"query": ""})
            client, server = await _profile_window(
                profiled,
                profiles / "crm-mcp.prof",
                lambda: session.call_tool("search_customers", {"query": ""}),
                operations,
            )
    topology.start("crm-mcp")
    sections += [summary("crm-mcp", server, operations), client]
    sections.append("Profile of the bare server's customers tool (the same result, no downstream call):")
    with profiled_process(bare_server, profiles / "bare.prof") as profiled:
        async with mcp_session(f"{profiled.url}/mcp", token=token) as session:
            await session.call_tool("customers", {})
            client, server = await _profile_window(
                profiled, profiles / "bare.prof", lambda: session.call_tool("customers", {}), operations
            )
    bare_server.start()
    sections += [summary("bare server", server, operations), client]
    return "\n".join(sections)
