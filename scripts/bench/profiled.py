"""Run a service module with cProfile on demand: `python -m scripts.bench.profiled OUTPUT MODULE`.

`make bench PROFILE=1` starts crm-mcp and the bare MCP server this way to show where their CPU goes
during the measured calls only: SIGUSR1 starts the profile, SIGUSR2 stops it and writes it to OUTPUT
(start-up, imports and idle time stay out of it). The clock is CPU time: on a shared machine, time
spent descheduled is not the service's work. The handlers run on the main thread, which runs the
event loop, so the profile covers the requests.
"""

from __future__ import annotations

import cProfile
import os
import runpy
import signal
import sys
import time
from types import FrameType


def main() -> None:
    output, module = sys.argv[1], sys.argv[2]
    profile = cProfile.Profile(time.process_time)

    def start(signum: int, frame: FrameType | None) -> None:
        profile.enable()

    def stop(signum: int, frame: FrameType | None) -> None:
        profile.disable()
        profile.dump_stats(f"{output}.partial")
        os.replace(f"{output}.partial", output)  # the bench waits for OUTPUT: it appears complete

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    sys.argv = [module]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
