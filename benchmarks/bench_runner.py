"""The default local run (`cellpipe run`: snapshot, run record, MLflow tracking on) against plain papermill
on the same notebooks, measured in the same run.

    python benchmarks/bench_runner.py [--work 1.0] [--repeat 3]

Scenarios (targets from issue 12):
  linear    5 steps in a row, ~WORK s of CPU each     cellpipe / papermill   target <= 1.1
  branches  2 independent branches of ~2*WORK s each  cellpipe / papermill   target <= 0.65
  cache     re-run after editing only the last step   re-run / first run     target <= 0.35
  cached    `cellpipe run` again, nothing changed     whole process, wall    target <  1.5 s

Work is a CPU busy-loop of fixed duration, so the figures measure orchestration overhead, not noise in
the user's code. Papermill runs the notebook top to bottom in one kernel (its API, in this process, its
imports warmed up). cellpipe runs through RunService.run as the CLI does (analysis, snapshot, record,
tracking on): the data directory's tracking worker creates the MLflow run while the run executes and
finishes it after the result; the benchmark waits for that between measurements (untimed, so it does not
steal the next measurement's CPU). Each scenario row uses a new data directory per measurement, so its
worker is cold (started by that run: the first run in a project); the "warm worker" row runs in one
data directory whose worker was started and warmed first (every later run, and every server run).
CPU seconds of both tools (this process, the kernels and the kernel fork server) are printed per row:
on a shared machine they say more than wall time. Printed besides: how long finalize waited for the worker and how often the final record already named
the MLflow run, the worker's time per run (create + finish), and the warm worker's memory and CPU.
The cached row runs the real command in a fresh process (interpreter start-up and imports included) and
prints its CPU time too: on a loaded machine wall time is mostly waiting for a core.
"""

from __future__ import annotations

import contextlib
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import common  # puts this checkout first on sys.path
import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from jupyter_ext.services.runs import RunRequest, RunService
from jupyter_ext.targets.local.target import LocalOptions
from jupyter_ext.tracking import background

TRACKING_S: list[float] = []  # the worker's time per run (create + finish the MLflow run), off the path
WAITS: dict[str, list[tuple[float, bool]]] = {}  # scenario -> (finalize's wait for the worker, id at final)

BUSY = "_end = time.perf_counter() + {s}\nwhile time.perf_counter() < _end:\n    pass\n"


def write(path: Path, cells: list[tuple[list[str], str]]) -> Path:
    notebook = new_notebook(cells=[new_code_cell(src, metadata={"tags": tags}) for tags, src in cells])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)
    return path


def linear(path: Path, work: float, last: str = "") -> Path:
    cells = [(["imports"], "import time\nimport numpy as np"), (["parameters"], "n = 1000")]
    cells.append((["step:s0"], BUSY.format(s=work) + "x0 = np.arange(n)"))
    for i in range(1, 5):
        cells.append(([f"step:s{i}"], BUSY.format(s=work) + f"x{i} = x{i - 1} + 1{last if i == 4 else ''}"))
    return write(path, cells)


def branches(path: Path, work: float) -> Path:
    return write(
        path,
        [
            (["imports"], "import time\nimport numpy as np"),
            (["step:source"], "x = np.arange(1000)"),
            (["step:left"], BUSY.format(s=2 * work) + "left = x * 2"),
            (["step:right"], BUSY.format(s=2 * work) + "right = x * 3"),
            (["step:join"], "total = int(left.sum() + right.sum())"),
        ],
    )


def run_papermill(path: Path, out: Path) -> float:
    import papermill

    start = time.perf_counter()
    papermill.execute_notebook(
        str(path), str(out), progress_bar=False, log_output=False, cwd=str(path.parent)
    )
    return time.perf_counter() - start


CPU_S: dict[str, list[float]] = {}  # CPU seconds of each timed call, by row


def cpu_seconds() -> float:
    """This process's CPU plus that of its children that have ended (kernels, the kernel fork server)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def with_cpu(row: str, fn) -> float:
    """Call ``fn`` (which returns its wall seconds) and keep its CPU seconds under ``row``."""
    before = cpu_seconds()
    wall = fn()
    CPU_S.setdefault(row, []).append(cpu_seconds() - before)
    return wall


def run_cellpipe(
    path: Path, data_dir: Path, parallel: int = 0, scenario: str = "", cache: bool = True
) -> float:
    """One default run (as `cellpipe run` does it, minus interpreter start-up); returns its wall time."""
    service = RunService(data_dir)
    request = RunRequest(notebook=path, target_options=LocalOptions(max_parallel=parallel), use_cache=cache)
    start = time.perf_counter()
    before = cpu_seconds()
    record = service.run(request)
    elapsed = time.perf_counter() - start
    CPU_S.setdefault(scenario, []).append(cpu_seconds() - before)
    if record.status.value != "succeeded":
        raise SystemExit(f"benchmark run failed: {record}")
    WAITS.setdefault(scenario, []).append(
        (record.timings.get("tracking_wait_s", 0.0), bool(record.tracking.mlflow_run_id))
    )
    tracked = service.wait_for_tracking(record.id)  # untimed: the user has the result already
    if tracked.tracking.status.value != "ok":
        raise SystemExit(f"benchmark run not tracked: {tracked.tracking}")
    TRACKING_S.append(tracked.timings.get("tracking_background_s", 0.0))
    if scenario in ("linear (cold worker)", "branches (cold worker)"):  # a data directory used once
        stop_cold_worker(data_dir)
    return elapsed


def stop_cold_worker(data_dir: Path) -> None:
    """End a cold row's tracking worker and reap it now, outside any CPU window (a worker reaped during a
    later run would add its MLflow import to that run's CPU)."""
    pid = background.worker_pid(data_dir)
    background.stop_worker(data_dir)
    if pid is not None:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def warm_worker(data_dir: Path) -> float:
    """Start the data directory's tracking worker and wait until it has imported MLflow: seconds taken."""
    began = time.perf_counter()
    background.ensure_worker(data_dir)
    log = data_dir / background.WORKER_LOG
    while not (log.exists() and " ready in " in log.read_text()):
        time.sleep(0.05)
    return time.perf_counter() - began


def worker_memory(data_dir: Path) -> tuple[float, float, float]:
    """The worker's resident memory now and at its peak (MiB), and its CPU seconds so far."""
    pid = background.worker_pid(data_dir)
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024, cpu


def run_cli(path: Path, data_dir: Path) -> tuple[float, float]:
    """`cellpipe run NOTEBOOK` in a fresh process: (wall, CPU seconds of the process)."""
    from bench_cli import run  # one way to time a whole process

    return run(
        [sys.executable, "-m", "jupyter_ext.cli.main", "run", str(path)], env={"CELLPIPE_HOME": str(data_dir)}
    )


def main() -> None:
    parser = common.arguments(__doc__)
    parser.add_argument("--work", type=float, default=1.0, help="seconds of CPU work per step (default 1)")
    parser.add_argument("--repeat", type=int, default=3, help="repeat each measurement, report medians")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run_papermill(linear(tmp / "warm.ipynb", 0.01), tmp / "warm.out.ipynb")  # imports out of the timing

        def median(fn) -> float:
            return statistics.median(fn(i) for i in range(args.repeat))

        nb = linear(tmp / "linear.ipynb", args.work)
        pm = median(
            lambda i: with_cpu("papermill, linear", lambda: run_papermill(nb, tmp / "linear.out.ipynb"))
        )
        cp = median(lambda i: run_cellpipe(nb, tmp / f"data-linear-{i}", scenario="linear (cold worker)"))
        rows.append(("linear 5 steps", pm, cp, cp / pm, 1.1))
        warm = tmp / "data-warm"
        ready = warm_worker(warm)
        cp = median(lambda i: run_cellpipe(nb, warm, scenario="linear (warm worker)", cache=False))
        rows.append(("linear, warm", pm, cp, cp / pm, 1.1))

        nb = branches(tmp / "branches.ipynb", args.work)
        pm = median(
            lambda i: with_cpu("papermill, branches", lambda: run_papermill(nb, tmp / "branches.out.ipynb"))
        )
        cp = median(lambda i: run_cellpipe(nb, tmp / f"data-branches-{i}", parallel=2,
                                           scenario="branches (cold worker)"))  # fmt: skip
        rows.append(("2 branches", pm, cp, cp / pm, 0.65))
        cp = median(
            lambda i: run_cellpipe(nb, warm, parallel=2, scenario="branches (warm worker)", cache=False)
        )
        rows.append(("branches, warm", pm, cp, cp / pm, 0.65))

        def cache_ratio(i: int) -> tuple[float, float]:
            data = tmp / f"data-cache-{i}"
            nb = linear(tmp / f"cache{i}.ipynb", args.work)
            first = run_cellpipe(nb, data, scenario="edit: first run (cold worker)")
            linear(nb, args.work, last=" + 0")  # edit only the last step
            return first, run_cellpipe(nb, data, scenario="edit: re-run (warm worker)")

        results = [cache_ratio(i) for i in range(args.repeat)]
        first = statistics.median(r[0] for r in results)
        rerun = statistics.median(r[1] for r in results)
        rows.append(("edit last step", first, rerun, rerun / first, 0.35))

        cached_nb = branches(tmp / "cached.ipynb", args.work)
        run_cellpipe(
            cached_nb, tmp / "data-cached", scenario="cached: first run (cold worker)"
        )  # fills the cache
        time.sleep(1)
        timings = [run_cli(cached_nb, tmp / "data-cached") for _ in range(args.repeat)]
        cached_wall = statistics.median(t[0] for t in timings)
        cached_cpu = statistics.median(t[1] for t in timings)
        service = RunService(tmp / "data-cached", background_tracking=False)
        cached_waits = []
        for record in service.list()[0]:  # the commands' background tracking, before the directory goes
            service.wait_for_tracking(record.id)
            cached_waits.append(
                (record.timings.get("tracking_wait_s", 0.0), bool(record.tracking.mlflow_run_id))
            )
        WAITS["cached re-run, CLI (warm worker)"] = cached_waits[: args.repeat]  # newest first: the commands'
        memory = worker_memory(warm)
        for directory in tmp.glob("data-*"):
            background.stop_worker(directory)

    print(f"work per step: {args.work}s, cores: {__import__('os').cpu_count()}")
    print(f"{'scenario':<16} {'baseline s':>11} {'cellpipe s':>11} {'ratio':>7} {'target':>7}")
    for name, base, ours, ratio, target in rows:
        verdict = "ok" if ratio <= target else "MISSED"
        print(f"{name:<16} {base:11.2f} {ours:11.2f} {ratio:7.2f} {'<=' + str(target):>7}  {verdict}")
    print(f"{'cached re-run':<16} {'-':>11} {cached_wall:11.2f} {'-':>7} {'<1.5 s':>7}  "
          f"{'ok' if cached_wall < 1.5 else 'MISSED'} (whole process; CPU {cached_cpu:.2f} s)")  # fmt: skip
    print("baseline: papermill top to bottom (linear, branches); the first cellpipe run (edit last step)")
    print("CPU seconds, medians (this process + kernels + kernel fork server; the tracking worker apart;")
    print("the work is a wall-clock busy loop: on a loaded machine it gets less than its seconds of CPU):")
    for row, seconds in CPU_S.items():
        print(f"  {row:<34} {statistics.median(seconds):6.2f}")
    print(f"tracking worker's time per run (create + finish the MLflow run, off the path): "
          f"median {statistics.median(TRACKING_S):.2f} s, max {max(TRACKING_S):.2f} s")  # fmt: skip
    print(f"a cold worker's start (import MLflow, open the store): {ready:.2f} s wall")
    print("finalize waited for the tracking worker (bound: CELLPIPE_TRACKING_WAIT_S, default 0.5 s):")
    for name, waits in WAITS.items():
        seconds = [w for w, _ in waits]
        named = sum(1 for _, has_id in waits if has_id)
        print(f"  {name:<34} median {statistics.median(seconds):.3f} s, max {max(seconds):.3f} s; "
              f"final record named the MLflow run in {named} of {len(waits)}")  # fmt: skip
    print(f"warm worker after {args.repeat} runs: RSS {memory[0]:.0f} MiB (peak {memory[1]:.0f} MiB), "
          f"CPU {memory[2]:.2f} s in all")  # fmt: skip
    print(common.load_average())


if __name__ == "__main__":
    main()
