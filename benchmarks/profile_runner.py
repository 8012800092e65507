"""The time line of one default local run (`cellpipe run`, tracking on): where the wall time goes.

    python benchmarks/profile_runner.py [linear|branches] [--work 1.0]

Runs one scenario of bench_runner.py through RunService.run (as the CLI does, minus interpreter start-up)
with the phases wrapped by timers in this process only (no product code changes), and prints, in order,
each phase's start and end (seconds from the request) with its wall time: analysis, snapshot, record
writes, every kernel's start (and warm-up), each step's wait for a kernel, its cells (prelude, parameters,
inputs, the user's code, outputs, from nbclient's own timestamps), output hashing and cache commit,
kernel shutdown, finalize. Kernel processes' CPU seconds are read before they are stopped; the CPU of this
process is printed at the end. The load average is printed with it: on a shared machine compare phases,
not totals.
"""

from __future__ import annotations

import asyncio
import functools
import json
import tempfile
import time
from datetime import datetime
from pathlib import Path

import common  # puts this checkout first on sys.path
from bench_runner import branches, linear

EVENTS: list[tuple[float, float, str]] = []  # (start, end, label), perf_counter seconds
T0 = [0.0]


def timed(owner: object, name: str, label) -> None:
    """Wrap ``owner.name`` (sync or async) so that each call adds an event labelled ``label(*args)``."""
    original = getattr(owner, name)
    if asyncio.iscoroutinefunction(original):

        @functools.wraps(original)
        async def wrapper(*args, **kwargs):
            began = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                EVENTS.append((began, time.perf_counter(), label(*args, **kwargs)))
    else:

        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                EVENTS.append((began, time.perf_counter(), label(*args, **kwargs)))

    setattr(owner, name, wrapper)


def kernel_cpu(kernel) -> str:
    import psutil

    try:
        times = psutil.Process(kernel.km.provisioner.process.pid).cpu_times()
        return f"{times.user + times.system:.2f}"
    except Exception:
        return "?"


def instrument() -> None:
    import jupyter_ext.pipeline.build as build
    import jupyter_ext.runtime.kernel as kernel_mod
    import jupyter_ext.runtime.kernel_fork as kernel_fork
    import jupyter_ext.runtime.step as step_mod
    import jupyter_ext.services.runs as runs
    import jupyter_ext.snapshot as snapshot
    import jupyter_ext.targets.local.kernels as kernels
    import jupyter_ext.targets.local.runner as runner
    from jupyter_ext.records.store import RecordStore
    from jupyter_ext.targets.local.cache import StepCache

    timed(build, "build_pipeline", lambda *a, **k: "analysis (build_pipeline)")
    timed(snapshot, "take_snapshot", lambda *a, **k: "snapshot")
    timed(
        RecordStore,
        "save_run",
        lambda self, record, **k: (
            f"save record ({record.status.value}{'' if k.get('durable', True) else ', no fsync'})"
        ),
    )
    timed(runs.RunService, "_finalize", lambda *a, **k: "finalize (waits for the MLflow run id, final save)")
    timed(runs.RunService, "create_record", lambda *a, **k: "create record (+ tracking job file)")
    timed(
        kernels,
        "start_kernel",
        lambda *a, **k: (
            f"kernel {'fork' if k.get('forker') else 'spawn'}{' + warm-up' if k.get('warmup') else ''}"
        ),
    )
    timed(kernels.KernelPool, "acquire", lambda *a, **k: "step waits for a kernel")
    timed(step_mod, "run_step", lambda pipeline, name, **k: f"run_step {name}")
    timed(runner, "_hash_outputs", lambda directory, result: f"hash outputs {result.step}")
    timed(StepCache, "commit", lambda self, staging, key, entry, **k: f"cache commit {entry['step']}")
    original_shutdown = kernel_mod.Kernel.shutdown

    async def shutdown(self):
        cpu = kernel_cpu(self)
        began = time.perf_counter()
        try:
            return await original_shutdown(self)
        finally:
            EVENTS.append((began, time.perf_counter(), f"kernel shutdown (kernel used {cpu} s CPU)"))

    kernel_mod.Kernel.shutdown = shutdown
    original_close = kernel_fork.KernelForkServer.close

    def close(self):
        process = self._process
        cpu = "?"
        if process is not None:
            import psutil

            times = psutil.Process(process.pid).cpu_times()
            cpu = f"{times.user + times.system:.2f}"
        began = time.perf_counter()
        try:
            return original_close(self)
        finally:
            EVENTS.append((began, time.perf_counter(), f"kernel fork server stops (it used {cpu} s CPU)"))

    kernel_fork.KernelForkServer.close = close
    timed(kernel_fork.KernelForkServer, "start", lambda *a, **k: "kernel fork server starts")


def cell_events(notebook: Path) -> None:
    """The executed step notebook's cells, from nbclient's timestamps (wall clock -> perf_counter)."""
    data = json.loads(notebook.read_text())
    offset = time.time() - time.perf_counter()
    for cell in data["cells"]:
        execution = cell["metadata"].get("execution", {})
        role = cell["metadata"].get("cellpipe", {}).get("role", "?")
        try:
            begin = datetime.fromisoformat(execution["iopub.execute_input"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(execution["shell.execute_reply"].replace("Z", "+00:00"))
        except KeyError:
            continue
        EVENTS.append(
            (begin.timestamp() - offset, end.timestamp() - offset, f"  cell {notebook.stem}: {role}")
        )


def main() -> None:
    parser = common.arguments(__doc__)
    parser.add_argument("scenario", nargs="?", default="branches", choices=["linear", "branches"])
    parser.add_argument("--work", type=float, default=1.0)
    parser.add_argument(
        "--warm", action="store_true", help="start the data directory's MLflow worker first (every later run)"
    )
    args = parser.parse_args()
    instrument()
    from jupyter_ext.services.runs import RunRequest, RunService
    from jupyter_ext.targets.local.target import LocalOptions

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        nb = (linear if args.scenario == "linear" else branches)(tmp / f"{args.scenario}.ipynb", args.work)
        RunService(tmp / "warm-imports")  # the store's imports out of the time line
        service = RunService(tmp / "data")
        if args.warm:
            from bench_runner import warm_worker

            warm_worker(tmp / "data")
        cpu0 = time.process_time()
        T0[0] = time.perf_counter()
        record = service.run(RunRequest(notebook=nb, target_options=LocalOptions(max_parallel=2)))
        total = time.perf_counter() - T0[0]
        cpu = time.process_time() - cpu0
        for step in record.steps:
            if step.notebook:
                cell_events(Path(step.notebook))
        service.wait_for_tracking(record.id)
        if args.warm:
            from jupyter_ext.tracking import background

            background.stop_worker(tmp / "data")
    worker = "warm" if args.warm else "cold (started by the run)"
    print(
        f"{args.scenario}, work {args.work}s, MLflow worker {worker}: {record.status.value} in {total:.2f} s wall"
    )
    print(f"{'start':>7} {'end':>7} {'wall':>6}  phase")
    for begin, end, label in sorted(EVENTS):
        print(f"{begin - T0[0]:7.3f} {end - T0[0]:7.3f} {end - begin:6.3f}  {label}")
    print(f"this process: {cpu:.2f} s CPU; {common.load_average()}")


if __name__ == "__main__":
    main()
