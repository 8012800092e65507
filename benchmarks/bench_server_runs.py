"""Runs started from the Jupyter server ("Run as pipeline"), with and without the warm kernel pool.

    python benchmarks/bench_server_runs.py [--work 1.0] [--repeat 3] [--pool 2 3]

A real `jupyter server` is started with `--CellpipeApp.kernel_pool_size=0` and then each `=POOL`; once its pool
is full (the kernels are counted among the server's child processes), the two-branch notebook is submitted
with POST runs (tracking on, cache off) REPEAT times. Printed, medians of the runs after each server's first
(a server in use; the first run's whole time and ratio beside):
  first code   seconds from the POST to the first line of the first step executing (it writes time.time()
               to a file)                                               target <= 0.5 s on a warm server
  whole run    seconds from the POST until GET runs/{id} reads a final status, against papermill running
               the same notebook top to bottom (its API, in this process, imports warmed up): the ratio
                                                                        target <= 0.5 (2x faster)
Between repeats the benchmark waits, untimed, for the run's background MLflow tracking and for the pool to
refill, so that one measurement does not steal CPU from the next. Each server's first run finds kernels that
imported nothing ahead (the pool learns a notebook's installed modules from its runs: kernel_pool_preload);
the later ones find numpy loaded: every run's figures are printed, the first one first. The load average
is printed with them, and, for the tracking worker the server pre-starts: how often the final record
already named the MLflow run, and how long finalize waited for it (part of "whole run").
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import common  # puts this checkout first on sys.path
from bench_runner import BUSY, run_papermill, write
from bench_server import Server

from tests.server.test_kernel_pool import kernel_children  # the test's own counting


def notebook(path: Path, work: float) -> Path:
    marker = path.parent / "first_code_started"
    return write(
        path,
        [
            (["imports"], "import time\nimport numpy as np"),
            (["step:source"], f"open({str(marker)!r}, 'w').write(repr(time.time()))\nx = np.arange(1000)"),
            (["step:left"], BUSY.format(s=2 * work) + "left = x * 2"),
            (["step:right"], BUSY.format(s=2 * work) + "right = x * 3"),
            (["step:join"], "total = int(left.sum() + right.sum())"),
        ],
    )


def wait_until(condition, timeout: float = 300, step: float = 0.05) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False


FINAL = ("succeeded", "failed", "cancelled", "crashed")


def read(server: Server, run_id: str) -> dict:
    return server.api("GET", f"runs/{run_id}").json()


TRACKING: list[
    tuple[float, bool]
] = []  # per run: finalize's wait for the tracking worker, MLflow id at final


def measure(root: Path, nb: Path, pool: int, repeat: int) -> tuple[list[float], list[float]]:
    server = Server(root, f"--CellpipeApp.kernel_pool_size={pool}")
    marker = nb.parent / "first_code_started"
    firsts, wholes = [], []
    try:
        for _ in range(repeat):
            if not wait_until(lambda: len(kernel_children(server.process.pid)) >= pool, timeout=300):
                raise SystemExit("the pool did not fill")
            time.sleep(0.5)  # let the last kernel finish its start-up
            marker.unlink(missing_ok=True)
            started = time.time()
            answer = server.api("POST", "runs", json={"path": nb.name, "use_cache": False, "track": True})
            if answer.status_code != 202:
                raise SystemExit(f"POST runs: {answer.status_code} {answer.text}")
            run_id = answer.json()["id"]
            wait_until(lambda r=run_id: read(server, r)["status"] in FINAL)
            wholes.append(time.time() - started)
            record = read(server, run_id)
            if record["status"] != "succeeded":
                raise SystemExit(f"run failed: {record}")
            TRACKING.append(
                (record["timings"].get("tracking_wait_s", 0.0), bool(record["tracking"]["mlflow_run_id"]))
            )
            firsts.append(float(marker.read_text()) - started)
            wait_until(lambda r=run_id: read(server, r)["tracking"]["status"] != "pending")
    finally:
        server.stop()
    return firsts, wholes


def main() -> None:
    parser = common.arguments(__doc__)
    parser.add_argument("--work", type=float, default=1.0, help="seconds of CPU work per unit (default 1)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--pool", type=int, nargs="+", default=[2, 3],
        help="kernel_pool_size of the warm servers (default 2 and 3: a two-branch run needs 3 kernels at once)",
    )  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        nb = notebook(root / "branches.ipynb", args.work)
        run_papermill(nb, Path(tmp) / "warm.out.ipynb")  # imports out of the timing
        papermill = statistics.median(run_papermill(nb, Path(tmp) / "out.ipynb") for _ in range(args.repeat))
        rows = [(pool, *measure(root, nb, pool, args.repeat)) for pool in (0, *args.pool)]
    print(f"two-branch notebook, work {args.work}s, cores {os.cpu_count()}, repeats {args.repeat}")
    print(f"papermill (baseline, same run): {papermill:.2f} s")
    print("medians of each server's runs after its first; its first run (nothing preloaded yet) beside")
    print(f"{'kernel_pool_size':>16} {'first code s':>13} {'target':>7} {'whole run s':>12} {'ratio':>6} "
          f"{'target':>7} {'first run s':>12} {'ratio':>6}")  # fmt: skip
    for pool, firsts, wholes in rows:
        first, whole = statistics.median(firsts[1:] or firsts), statistics.median(wholes[1:] or wholes)
        print(f"{pool:>16} {first:13.2f} {'<=0.5':>7} {whole:12.2f} {whole / papermill:6.2f} {'<=0.5':>7}"
              f" {wholes[0]:12.2f} {wholes[0] / papermill:6.2f}"
              f"   (each run: first code {', '.join(f'{f:.2f}' for f in firsts)}; "
              f"whole {', '.join(f'{w:.2f}' for w in wholes)})")  # fmt: skip
    waits = [w for w, _ in TRACKING]
    print(f"MLflow (the server's warm tracking worker): the final record named the MLflow run in "
          f"{sum(1 for _, named in TRACKING if named)} of {len(TRACKING)} runs; finalize waited for it "
          f"median {statistics.median(waits):.3f} s, max {max(waits):.3f} s")  # fmt: skip
    print(common.load_average())


if __name__ == "__main__":
    main()
