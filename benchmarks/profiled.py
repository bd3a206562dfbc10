"""Run a module under cProfile, timing CPU (this thread's), not wall time, and write the stats.

    python -m benchmarks.profiled OUT.prof bot serve --http --port 3000

Stats are written when the module exits (a SIGTERM the bot handles gracefully included).
Wall-clock profiles of an event loop are dominated by waiting in epoll; CPU time is what
limits throughput, so that is what is counted.
"""

from __future__ import annotations

import cProfile
import runpy
import sys
import time


def main() -> None:
    out, module, *args = sys.argv[1:]
    sys.argv = [module, *args]
    profiler = cProfile.Profile(time.thread_time)
    profiler.enable()
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        profiler.disable()
        profiler.dump_stats(out)


if __name__ == "__main__":
    main()
