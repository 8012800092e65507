"""Cancel from another process: how long until a run is cancelled, and what watching for requests costs.

    python benchmarks/bench_cancel.py [--repeat 5] [--runs 10000]

1. Latency. A run whose one step sleeps 60 s executes in a ``cellpipe run`` subprocess (real kernel). Once
   the step runs, this process cancels it and times request -> record ``cancelled`` (the record's own
   times: ``finished - cancel_requested.at``), ``--repeat`` times each way:
     by request   RunService(...).cancel(id) here: the request is stored; the subprocess notices it at its
                  next poll (every 0.5 s) and cancels the run like Ctrl-C
     SIGINT       baseline: Ctrl-C sent to the subprocess (what a terminal user had before), timed from
                  the signal to the record turning final
   The ratio by request / SIGINT is what polling adds (expected: about half the poll interval).
2. Cost of watching. With ``--runs`` stored runs, the owner's one query for the requests of its active
   runs (``store.cancel_requests(ids)``), through ``asyncio.to_thread`` as the service does it, for 1, 10
   and 100 active runs: wall and CPU per poll, and CPU per second of running at the default interval.
   Baseline in the same run: one ``get_run`` by id (what any reader of a record pays).
The load average is printed with the figures: run it on a quiet machine for numbers to quote.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common  # puts this checkout first on sys.path
from bench_run_store import make_record

from jupyter_ext.records.models import RunStatus, StepStatus
from jupyter_ext.records.owner import current_owner
from jupyter_ext.records.store import RecordStore
from jupyter_ext.services.runs import CANCEL_POLL_S, RunService


def write_notebook(path: Path) -> Path:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    cell = new_code_cell("import time\ntime.sleep(60)")
    cell.metadata["tags"] = ["step:wait"]
    notebook = new_notebook(cells=[cell])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)
    return path


def start_run(notebook: Path, data_dir: Path) -> tuple[subprocess.Popen, str]:
    """A `cellpipe run` subprocess, once its step is running: (process, run id)."""
    env = {**os.environ, "CELLPIPE_HOME": str(data_dir)}
    cmd = [sys.executable, "-m", "jupyter_ext.cli", "run", str(notebook), "--no-track", "--no-cache"]
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store, seen = RecordStore(data_dir), set(RecordStore(data_dir).all_run_ids())
    deadline = time.time() + 120
    while time.time() < deadline:
        for record in store.list_runs(status="running")[0]:
            if record.id not in seen and record.steps[0].status is StepStatus.RUNNING:
                return process, record.id
        time.sleep(0.05)
    process.kill()
    raise SystemExit("the run did not start within 120 s")


def latency(notebook: Path, data_dir: Path, how: str) -> float:
    process, run_id = start_run(notebook, data_dir)
    time.sleep(0.3)  # the kernel is inside the cell
    if how == "request":
        record = asyncio.run(RunService(data_dir).cancel(run_id, by="bench", wait_s=30))
        took = record.finished - record.cancel_requested["at"]
    else:
        began = time.time()
        process.send_signal(signal.SIGINT)
        store = RecordStore(data_dir)
        while not (record := store.get_run(run_id)).is_final:
            time.sleep(0.01)
        took = record.finished - began
    process.wait(timeout=60)
    assert record.status is RunStatus.CANCELLED, record.status
    return took


def poll_cost(data_dir: Path, active: int, repeat: int) -> tuple[float, float]:
    """(wall ms, CPU ms) of one poll for ``active`` runs, as the service makes it (in a worker thread)."""
    store = RecordStore(data_dir)
    ids = [r.id for r in store.list_runs(limit=active)[0]]

    async def polls() -> None:
        for _ in range(repeat):
            await asyncio.to_thread(store.cancel_requests, ids)

    asyncio.run(polls())  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    asyncio.run(polls())
    return (time.perf_counter() - wall) * 1000 / repeat, (time.process_time() - cpu) * 1000 / repeat


def main() -> None:
    parser = common.arguments(__doc__)
    parser.add_argument("--repeat", type=int, default=5, help="cancels timed each way (default 5)")
    parser.add_argument(
        "--runs", type=int, default=10_000, help="runs stored for the poll cost (default 10000)"
    )
    args = parser.parse_args()
    print(f"{common.load_average()}; poll interval {CANCEL_POLL_S} s")
    with tempfile.TemporaryDirectory(prefix="bench-cancel-") as tmp:
        notebook = write_notebook(Path(tmp) / "slow.ipynb")
        data_dir = Path(tmp) / "data"
        results: dict[str, list[float]] = {"request": [], "SIGINT": []}
        for _ in range(args.repeat):  # interleaved: both ways see the same load
            for how in results:
                results[how].append(latency(notebook, data_dir, how))
        medians = {how: statistics.median(samples) for how, samples in results.items()}
        for how, samples in results.items():
            print(f"cancel by {how:8} median {medians[how]:.2f} s  (min {min(samples):.2f}, max {max(samples):.2f}, "
                  f"n={len(samples)})")  # fmt: skip
        print(f"ratio by request / SIGINT: {medians['request'] / medians['SIGINT']:.2f}")

        store_dir = Path(tmp) / "store"
        store, rng = RecordStore(store_dir), random.Random(7)
        with store._write() as conn:  # one transaction: we measure reads
            for i in range(args.runs):
                record = make_record(i, rng)
                if i >= args.runs - 100:  # the newest 100 are active, owned by this process
                    record.status, record.owner = RunStatus.RUNNING, current_owner()
                store._upsert(conn, record)
        target = store.list_runs(limit=1)[0][0].id
        began, cpu = time.perf_counter(), time.process_time()
        for _ in range(300):
            store.get_run(target)
        get_wall, get_cpu = (
            (time.perf_counter() - began) * 1000 / 300,
            (time.process_time() - cpu) * 1000 / 300,
        )
        print(f"{args.runs} stored runs; baseline get_run: {get_wall:.3f} ms wall, {get_cpu:.3f} ms CPU")
        for active in (1, 10, 100):
            wall, cpu = poll_cost(store_dir, active, 300)
            per_second = cpu / CANCEL_POLL_S / 1000 * 100
            print(f"poll for {active:3} active runs: {wall:.3f} ms wall, {cpu:.3f} ms CPU "
                  f"({cpu / get_cpu:.2f}x a get_run); {per_second:.2f}% of a core while running")  # fmt: skip


if __name__ == "__main__":
    main()
