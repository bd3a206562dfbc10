"""Run a module under cProfile, timing CPU (this thread's), not wall time, between two signals.

    python -m benchmarks.profiled OUT.prof bot serve --http --port 3000

SIGUSR1 starts profiling, SIGUSR2 stops it and writes the stats to OUT.prof, so start-up,
imports and the warm-up stay out of the profile. Wall-clock profiles of an event loop are
dominated by waiting in epoll; CPU time is what limits throughput, so that is what is counted.
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
    out, module, *args = sys.argv[1:]
    sys.argv = [module, *args]
    profiler = cProfile.Profile(time.thread_time)

    def start(_signum: int, _frame: FrameType | None) -> None:
        profiler.enable()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        profiler.disable()
        profiler.dump_stats(out + ".partial")
        os.replace(out + ".partial", out)  # whole, or not there yet

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
