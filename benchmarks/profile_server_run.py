"""The time line of one run started from the Jupyter server ("Run as pipeline"): where its wall time goes.

    python benchmarks/profile_server_run.py [--work 1.0] [--pool N] [--runs 2] [--think 3] [--cpu]

Starts a real `jupyter server` on the default settings (or with a kernel pool of POOL kernels); RUNS + 1
times (run 0 is the server's first: it also pays the server's first-use imports and the MLflow worker's start),
opens the two-branch notebook of bench_server_runs.py (POST analyse, as the front end does: the default
pool's kernels start then), waits THINK seconds and POSTs it (tracking on, cache off), and prints, for each, in order and in seconds from
the POST: the record's creation and start, every step's cells (prelude, parameters, inputs, the user's code,
outputs, from nbclient's own timestamps in the executed step notebooks), each step's end as recorded, the
record's end and when the client's poll (GET runs/{id} every POLL s, default 0.25) first read it final. The load average
is printed with them: on a shared machine compare phases, not totals.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import common  # puts this checkout first on sys.path
from bench_server import Server
from bench_server_runs import FINAL, notebook, read, stamp, wait_until

from tests.server.test_kernel_pool import kernel_children


def cell_events(server: Server, route: str, step: str) -> list[tuple[float, float, str]]:
    """(start, end, label) of each executed cell of a step notebook (its API route), epoch seconds."""
    events = []
    for cell in server.api("GET", route).json()["cells"]:
        execution = cell["metadata"].get("execution", {})
        role = cell["metadata"].get("cellpipe", {}).get("role") or "injected parameters"
        if "iopub.execute_input" in execution and "shell.execute_reply" in execution:
            begin, end = stamp(execution["iopub.execute_input"]), stamp(execution["shell.execute_reply"])
            events.append((begin, end, f"  cell {step}: {role}"))
    return events


def one_run(server: Server, nb: Path, think: float, poll: float) -> tuple[float, float, dict]:
    answer = server.api("POST", "analyse", json={"path": nb.name})  # the notebook is opened
    if answer.status_code != 200:
        raise SystemExit(f"POST analyse: {answer.status_code} {answer.text}")
    time.sleep(think)
    print(f"{len(kernel_children(server.process.pid))} kernels waiting at the POST")
    posted = time.time()
    answer = server.api("POST", "runs", json={"path": nb.name, "use_cache": False, "track": True})
    if answer.status_code != 202:
        raise SystemExit(f"POST runs: {answer.status_code} {answer.text}")
    run_id = answer.json()["id"]
    wait_until(lambda: read(server, run_id)["status"] in FINAL, step=poll)
    seen = time.time()
    record = read(server, run_id)
    if record["status"] != "succeeded":
        raise SystemExit(f"run failed: {record}")
    wait_until(lambda: read(server, run_id)["tracking"]["status"] != "pending")  # off the next run's CPU
    return posted, seen, record


def main() -> None:
    parser = common.arguments(__doc__)
    parser.add_argument("--work", type=float, default=1.0)
    parser.add_argument(
        "--pool", type=int, default=None, help="kernel_pool_size (default: the server's default)"
    )
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--think", type=float, default=3.0, help="seconds from POST analyse to POST runs")
    parser.add_argument(
        "--poll", type=float, default=0.25, help="seconds between GET runs/{id} (default 0.25)"
    )
    parser.add_argument(
        "--cpu", action="store_true", help="branches do a fixed amount of CPU work, not a busy wait"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        nb = notebook(root / "branches.ipynb", args.work, cpu=args.cpu)
        os.environ.pop("CELLPIPE_KERNEL_POOL_SIZE", None)  # the default is the product's, not this shell's
        pool = [] if args.pool is None else [f"--CellpipeApp.kernel_pool_size={args.pool}"]
        server = Server(root, *pool)
        try:
            for number in range(
                args.runs + 1
            ):  # run 0: the server's first (its imports, the MLflow worker's start)
                posted, seen, record = one_run(server, nb, args.think, args.poll)
                events = [
                    (posted, posted, "POST runs"),
                    (record["created"], record["created"], "record created"),
                ]
                events.append((record["started"], record["started"], "record started (running)"))
                for step in record["steps"]:
                    events.extend(cell_events(server, step["notebook"], step["name"]))
                    events.append((step["finished"], step["finished"], f"step {step['name']} ended"))
                events.append((record["finished"], record["finished"], f"record final ({record['status']})"))
                events.append((seen, seen, "the client's poll reads it final"))
                print(f"run {number}: {seen - posted:.2f} s from POST to final; timings {record['timings']}")
                print(f"{'start':>7} {'end':>7} {'wall':>6}  phase")
                for begin, end, label in sorted(events):
                    print(f"{begin - posted:7.3f} {end - posted:7.3f} {end - begin:6.3f}  {label}")
        finally:
            server.stop()
    print(common.load_average())


if __name__ == "__main__":
    main()
