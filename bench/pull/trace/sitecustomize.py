"""Time stamps of a unimodel worker's start for bench/pull/run.py --mode ttfa: bench/cold_start's tracer, switched on
in worker processes only.

run.py puts this folder on the PYTHONPATH of the `unimodel serve` it starts; its instances inherit PYTHONPATH but,
by design, no UNIMODEL_* variable (runtime/instance_env.py), so the switch bench/cold_start/trace uses
(UNIMODEL_BENCH_TRACE=1) cannot reach them: here the worker's own command line is the switch. The stamps
(`STAGE <name> <CLOCK_MONOTONIC seconds>` in the instance's log) are described in that file.
"""

import os
import sys

if "unimodel.runtime.worker" in getattr(sys, "orig_argv", ()):
    os.environ["UNIMODEL_BENCH_TRACE"] = "1"
    _TRACER = os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "cold_start", "trace", "sitecustomize.py"
    )
    with open(_TRACER) as _source:
        exec(compile(_source.read(), _TRACER, "exec"))
