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
tracking on): MLflow is logged by a detached worker after the result; the benchmark waits for it between
measurements (untimed, so it does not steal the next measurement's CPU) and prints how long it took.
The cached row runs the real command in a fresh process (interpreter start-up and imports included) and
prints its CPU time too: on a loaded machine wall time is mostly waiting for a core.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jupyter_ext.services.runs import RunRequest, RunService  # noqa: E402
from jupyter_ext.targets.local.target import LocalOptions  # noqa: E402

TRACKING_S: list[float] = []  # background tracking time of each tracked run

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


def run_cellpipe(path: Path, data_dir: Path, parallel: int = 0) -> float:
    """One default run (as `cellpipe run` does it, minus interpreter start-up); returns its wall time."""
    service = RunService(data_dir)
    request = RunRequest(notebook=path, target_options=LocalOptions(max_parallel=parallel))
    start = time.perf_counter()
    record = service.run(request)
    elapsed = time.perf_counter() - start
    if record.status.value != "succeeded":
        raise SystemExit(f"benchmark run failed: {record}")
    tracked = service.wait_for_tracking(record.id)  # untimed: the user has the result already
    if tracked.tracking.status.value != "ok":
        raise SystemExit(f"benchmark run not tracked: {tracked.tracking}")
    TRACKING_S.append(tracked.timings.get("tracking_background_s", 0.0))
    return elapsed


def run_cli(path: Path, data_dir: Path) -> tuple[float, float]:
    """`cellpipe run NOTEBOOK` in a fresh process: (wall, CPU seconds of the process)."""
    from bench_cli import run  # one way to time a whole process

    return run(
        [sys.executable, "-m", "jupyter_ext.cli.main", "run", str(path)], env={"CELLPIPE_HOME": str(data_dir)}
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
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
        pm = median(lambda i: run_papermill(nb, tmp / "linear.out.ipynb"))
        cp = median(lambda i: run_cellpipe(nb, tmp / f"data-linear-{i}"))
        rows.append(("linear 5 steps", pm, cp, cp / pm, 1.1))

        nb = branches(tmp / "branches.ipynb", args.work)
        pm = median(lambda i: run_papermill(nb, tmp / "branches.out.ipynb"))
        cp = median(lambda i: run_cellpipe(nb, tmp / f"data-branches-{i}", parallel=2))
        rows.append(("2 branches", pm, cp, cp / pm, 0.65))

        def cache_ratio(i: int) -> tuple[float, float]:
            data = tmp / f"data-cache-{i}"
            nb = linear(tmp / f"cache{i}.ipynb", args.work)
            first = run_cellpipe(nb, data)
            linear(nb, args.work, last=" + 0")  # edit only the last step
            return first, run_cellpipe(nb, data)

        results = [cache_ratio(i) for i in range(args.repeat)]
        first = statistics.median(r[0] for r in results)
        rerun = statistics.median(r[1] for r in results)
        rows.append(("edit last step", first, rerun, rerun / first, 0.35))

        cached_nb = branches(tmp / "cached.ipynb", args.work)
        run_cellpipe(cached_nb, tmp / "data-cached")  # the first run fills the cache
        time.sleep(1)
        timings = [run_cli(cached_nb, tmp / "data-cached") for _ in range(args.repeat)]
        cached_wall = statistics.median(t[0] for t in timings)
        cached_cpu = statistics.median(t[1] for t in timings)
        service = RunService(tmp / "data-cached", background_tracking=False)
        for record in service.list()[0]:  # the commands' background tracking, before the directory goes
            service.wait_for_tracking(record.id)

    print(f"work per step: {args.work}s, cores: {__import__('os').cpu_count()}")
    print(f"{'scenario':<16} {'baseline s':>11} {'cellpipe s':>11} {'ratio':>7} {'target':>7}")
    for name, base, ours, ratio, target in rows:
        verdict = "ok" if ratio <= target else "MISSED"
        print(f"{name:<16} {base:11.2f} {ours:11.2f} {ratio:7.2f} {'<=' + str(target):>7}  {verdict}")
    print(f"{'cached re-run':<16} {'-':>11} {cached_wall:11.2f} {'-':>7} {'<1.5 s':>7}  "
          f"{'ok' if cached_wall < 1.5 else 'MISSED'} (whole process; CPU {cached_cpu:.2f} s)")  # fmt: skip
    print("baseline: papermill top to bottom (linear, branches); the first cellpipe run (edit last step)")
    print(
        f"MLflow tracking in the background after each tracked run: median {statistics.median(TRACKING_S):.2f} s"
    )
    print(f"load average: {' '.join(f'{x:.1f}' for x in __import__('os').getloadavg())}")


if __name__ == "__main__":
    main()
