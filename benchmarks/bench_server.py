"""The server extension over HTTP, against a real `jupyter server` process started here.

    python benchmarks/bench_server.py [--runs 10000] [--requests 200] [--submissions 50]
    python benchmarks/bench_server.py --scenarios store       # only the run store reads

Scenarios (targets from issues 9 and 10):
  analyse   POST analyse of a 100-cell notebook, over HTTP    p50/p99; in-process analysis of the same notebook
            (the baseline, same run) and the HTTP/baseline ratio
  store     GET runs (pages of 50, filtered) and GET runs/{id} with RUNS stored runs   p99 target < 50 ms;
            the same reads through the RecordStore in-process (baseline, target < 20 ms), and the server's
            own read path in-process (rows as stored + the cached JSON of each run); each page's first read
            (every run's JSON built) apart from the steady state; the server's CPU time per request; then the
            steady state again against a second server started with CELLPIPE_GC_FREEZE=0 (the p99 that
            full garbage collections of the server heap cost; --no-gc-baseline skips it)
  submit    SUBMISSIONS concurrent POST runs of a one-step notebook: time to accept each and all,
            every run accounted for (listed, final), kernels at once (must stay <= max_concurrent_runs + kernel_pool_size)

Each figure is printed; nothing is asserted. The machine's load matters: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common  # puts this checkout first on sys.path
import nbformat
import psutil
import requests
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tests.server.test_queue import kernels_of, write_sleeper  # the test's own counting
from tests.support.loopback import free_port

TOKEN = "cellpipe-bench"
HEADERS = {"Authorization": f"token {TOKEN}"}
SCENARIOS = ("analyse", "store", "submit")
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(label: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"{label:<34} n={len(ms):<5} p50 {statistics.median(ms):7.2f} ms   p99 {percentile(ms, 99):7.2f} ms"
        f"   max {max(ms):7.2f} ms"
    )


def hundred_cells(path: Path) -> Path:
    """100 cells: markdown notes, imports, parameters, and 24 steps of 3-4 code cells passing variables on."""
    cells = [
        new_markdown_cell("# A long notebook"),
        new_code_cell("import math\nimport json", metadata={"tags": ["imports"]}),
    ]
    cells.append(new_code_cell("n = 100\nrate = 0.5", metadata={"tags": ["pipeline-parameters"]}))
    previous = "n"
    step = 0
    while len(cells) < 100:
        name = f"s{step:02d}"
        cells.append(
            new_code_cell(
                f"v{step} = [{previous} * i for i in range(10)]", metadata={"tags": [f"step:{name}"]}
            )
        )
        cells.append(new_code_cell(f"w{step} = sum(v{step}) * rate\nprint(w{step})"))
        cells.append(new_markdown_cell(f"Step {name} done."))
        cells.append(new_code_cell(f"x{step} = math.sqrt(abs(w{step}))"))
        previous = f"x{step}"
        step += 1
    notebook = new_notebook(cells=cells[:100])
    notebook.metadata["kernelspec"] = KERNELSPEC
    nbformat.write(notebook, path)
    return path


class Server:
    def __init__(self, root: Path, *args: str, env: dict[str, str] | None = None) -> None:
        port = free_port()
        env = {
            **os.environ,
            "CELLPIPE_HOME": str(root / ".cellpipe"),
            "JUPYTER_PLATFORM_DIRS": "1",
            **(env or {}),
        }
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")) if p
        )
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(root.parent / f"bench-server-{port}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
             f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}", *args],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if requests.get(f"{self.url}/api/status", headers=HEADERS, timeout=2).ok:
                    return
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or too busy starting to answer
                time.sleep(0.3)
        self.stop()
        raise SystemExit("the server did not start")

    def api(self, method: str, route: str, **kwargs) -> requests.Response:
        return requests.request(
            method, f"{self.url}/cellpipe/api/{route}", headers=HEADERS, timeout=300, **kwargs
        )

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)
        self.log.close()


def timed(call) -> tuple[float, object]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def bench_analyse(server: Server, root: Path, requests_n: int) -> None:
    from jupyter_ext.server.analysis import analyse_notebook

    path = hundred_cells(root / "hundred.ipynb")
    content = path.read_bytes()
    local = [
        timed(lambda: analyse_notebook(str(path), "hundred.ipynb", content))[0] for _ in range(requests_n)
    ]
    body = {"path": "hundred.ipynb", "content": json.loads(content)}
    server.api("POST", "analyse", json=body).raise_for_status()  # warm the worker
    http = []
    for _ in range(requests_n):
        seconds, response = timed(lambda: server.api("POST", "analyse", json=body))
        assert response.status_code == 200, response.text
        http.append(seconds)
    steps = len(response.json()["pipeline"]["steps"])
    print(f"\nanalyse: 100-cell notebook, {steps} steps, {len(content) / 1024:.0f} KiB sent as a JSON object")
    print(summary("in-process analysis (baseline)", local))
    print(summary("POST analyse over HTTP", http))
    print(f"{'p99 ratio HTTP / in-process':<34} {percentile(http, 99) / percentile(local, 99):.2f}x")


def fill_store(data_dir: Path, root: Path, count: int) -> list[str]:
    from jupyter_ext.records.models import RunRecord, RunStatus, StepRecord, StepStatus
    from jupyter_ext.records.store import RecordStore

    store = RecordStore(data_dir)
    statuses = [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED]
    now = time.time() - count
    ids = []
    for i in range(count):
        record = RunRecord(
            id=f"bench-{i:06d}",
            notebook=str(root / f"nb{i % 20}.ipynb"),
            status=statuses[i % 3],
            source="cli",
            created=now + i,
            started=now + i,
            finished=now + i + 0.5,
            duration_s=0.5,
            parameters={"n": i},
            steps=[StepRecord(name=f"s{j}", status=StepStatus.SUCCEEDED, duration_s=0.1) for j in range(5)],
        )
        store.save_run(record)
        ids.append(record.id)
    return ids


def cpu_seconds(process: subprocess.Popen) -> float:
    times = psutil.Process(process.pid).cpu_times()
    return times.user + times.system


def read_plan(ids: list[str], requests_n: int) -> tuple[list[int], list[str]]:
    """The page offsets (20 distinct pages, each read ~10 times) and the runs got by id, in request order."""
    return [(i * 50) % 1000 for i in range(requests_n)], [
        ids[(i * 7919) % len(ids)] for i in range(requests_n)
    ]


def get_page(server: Server, offset: int, stored: int) -> float:
    seconds, response = timed(lambda: server.api("GET", "runs", params={"limit": 50, "offset": offset}))
    assert response.status_code == 200 and response.json()["total"] >= stored, response.text[:300]
    return seconds


def steady_reads(
    server: Server, pages: list[int], picks: list[str], stored: int
) -> tuple[list[float], list[float], list[float]]:
    """A page of 50, one notebook's failed runs, one run by id, in turn: what a busy runs view asks."""
    http_list, http_filtered, http_get = [], [], []
    for i, run_id in enumerate(picks):
        http_list.append(get_page(server, pages[i], stored))
        query = {"path": f"nb{i % 20}.ipynb", "status": "failed", "limit": 50}
        seconds, response = timed(lambda query=query: server.api("GET", "runs", params=query))
        assert response.status_code == 200, response.text[:300]
        http_filtered.append(seconds)
        seconds, response = timed(lambda run_id=run_id: server.api("GET", f"runs/{run_id}"))
        assert response.status_code == 200 and response.json()["id"] == run_id
        http_get.append(seconds)
    return http_list, http_filtered, http_get


def bench_store(server: Server, root: Path, ids: list[str], requests_n: int) -> list[float]:
    """Returns the steady-state GET runs page-of-50 latencies (for the garbage collection comparison)."""
    from jupyter_ext.records.store import RecordStore
    from jupyter_ext.server.paths import ServerPaths
    from jupyter_ext.server.presenter import RunPresenter

    store = RecordStore(root / ".cellpipe")
    pages, picks = read_plan(ids, requests_n)

    def filtered(i: int) -> dict:
        return {"notebook": str(root / f"nb{i % 20}.ipynb"), "status": "failed", "limit": 50}

    local_list = [timed(lambda o=o: store.list_runs(limit=50, offset=o))[0] for o in pages]
    local_filtered = [timed(lambda i=i: store.list_runs(**filtered(i)))[0] for i in range(requests_n)]
    local_get = [timed(lambda run_id=run_id: store.get_run(run_id))[0] for run_id in picks]
    # what the server does for a page, in-process: the rows as stored, the JSON of each run (built once)
    presenter = RunPresenter(ServerPaths(root=root, data_dir=root / ".cellpipe"))
    local_served = [
        timed(lambda o=o: presenter.page_json(*store.list_stored_runs(limit=50, offset=o)))[0] for o in pages
    ]

    first_reads = [get_page(server, offset, len(ids)) for offset in sorted(set(pages))]  # built, not cached
    cpu_before = cpu_seconds(server.process)
    http_list, http_filtered, http_get = steady_reads(server, pages, picks, len(ids))
    server_cpu_ms = (cpu_seconds(server.process) - cpu_before) * 1000 / (3 * requests_n)
    floor = [  # the server's own cheapest authenticated route: what any request costs before cellpipe runs
        timed(lambda: requests.get(f"{server.url}/api/status", headers=HEADERS, timeout=60))[0]
        for _ in range(requests_n)
    ]
    print(f"\nstore: {len(ids)} runs stored; {common.load_average()}")
    print(summary("list page of 50 (in-process)", local_list))
    print(summary("list filtered (in-process)", local_filtered))
    print(summary("get one (in-process)", local_get))
    print(summary("page of 50 as served (in-process)", local_served))
    print(summary("GET runs page, first read (HTTP)", first_reads))
    print(summary("GET runs page of 50 (HTTP)", http_list))
    print(summary("GET runs?path&status (HTTP)", http_filtered))
    print(summary("GET runs/{id} (HTTP)", http_get))
    print(summary("GET /api/status (HTTP floor)", floor))
    print(f"{'server CPU per request':<34} {server_cpu_ms:.2f} ms (the three kinds above, averaged)")
    print(
        f"{'p99 ratio HTTP / in-process':<34} page {percentile(http_list, 99) / percentile(local_list, 99):.2f}x"
        f"   filtered {percentile(http_filtered, 99) / percentile(local_filtered, 99):.2f}x"
        f"   get {percentile(http_get, 99) / percentile(local_get, 99):.2f}x"
    )
    return http_list


def bench_gc_baseline(root: Path, ids: list[str], requests_n: int, limit: int, frozen: list[float]) -> None:
    """The same steady-state reads against a server that does not freeze its startup objects: what the
    periodic full collections of the whole server heap cost (the p99 of GET runs before issue 9)."""
    pages, picks = read_plan(ids, requests_n)
    server = Server(root, f"--CellpipeApp.max_concurrent_runs={limit}", env={"CELLPIPE_GC_FREEZE": "0"})
    try:
        for offset in sorted(set(pages)):  # fill its cache, as the first server's was
            get_page(server, offset, len(ids))
        unfrozen = steady_reads(server, pages, picks, len(picks))[0]
    finally:
        server.stop()
    print("\ngarbage collection: startup objects frozen (default) vs not (CELLPIPE_GC_FREEZE=0)")
    print(summary("GET runs page of 50, frozen", frozen))
    print(summary("GET runs page of 50, not frozen", unfrozen))
    print(f"{'p99 ratio not frozen / frozen':<34} {percentile(unfrozen, 99) / percentile(frozen, 99):.2f}x")


def bench_submit(server: Server, root: Path, submissions: int, limit: int) -> None:
    write_sleeper(root / "sleeper.ipynb", 0.5)
    body = {"path": "sleeper.ipynb", "track": False, "use_cache": False}
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(submissions) as pool:
        results = list(
            pool.map(lambda _: timed(lambda: server.api("POST", "runs", json=body)), range(submissions))
        )
    accepted_all = time.perf_counter() - started
    assert all(r.status_code == 202 for _, r in results), [
        r.text for _, r in results if r.status_code != 202
    ][:1]
    ids = {r.json()["id"] for _, r in results}
    most_kernels = 0
    while True:
        most_kernels = max(most_kernels, kernels_of(psutil.Process(server.process.pid)))
        active = sum(
            server.api("GET", "runs", params={"status": s}).json()["total"] for s in ("queued", "running")
        )
        if not active:
            break
        time.sleep(0.2)
    finished_all = time.perf_counter() - started
    listed = {r["id"]: r["status"] for r in server.api("GET", "runs", params={"limit": 500}).json()["runs"]}
    statuses = [listed.get(run_id, "missing") for run_id in ids]
    print(f"\nsubmit: {submissions} concurrent POST runs, max_concurrent_runs={limit}")
    print(summary("time to accept one", [s for s, _ in results]))
    print(f"{'all accepted after':<34} {accepted_all:.2f} s; all finished after {finished_all:.2f} s")
    print(
        f"{'runs accounted for':<34} {len(ids)} distinct ids; "
        + ", ".join(f"{s}: {statuses.count(s)}" for s in sorted(set(statuses)))
    )
    # the server's warm pool (default 3, started by the first run) keeps kernels waiting beside the runs'
    pool = server.api("GET", "config").json().get("kernel_pool_size", 0)
    print(
        f"{'most kernels at once':<34} {most_kernels} (limit {limit + pool}: {limit} running + {pool} waiting in the pool)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000, help="runs stored for the list/get figures")
    parser.add_argument("--requests", type=int, default=200, help="requests per latency figure")
    parser.add_argument(
        "--submissions", type=int, default=50, help="concurrent run submissions (0: skip the submit scenario)"
    )
    parser.add_argument("--limit", type=int, default=2, help="max_concurrent_runs of the server")
    parser.add_argument(
        "--scenarios",
        nargs="+",
        choices=SCENARIOS,
        default=list(SCENARIOS),
        help="which to run (default: all)",
    )
    parser.add_argument(
        "--no-gc-baseline", dest="gc_baseline", action="store_false",
        help="skip the store reads against a second server that does not freeze its startup objects",
    )  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cellpipe-bench-server-") as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        started = time.perf_counter()
        ids = fill_store(root / ".cellpipe", root, args.runs)
        print(f"stored {args.runs} runs in {time.perf_counter() - started:.1f} s")
        server = Server(root, f"--CellpipeApp.max_concurrent_runs={args.limit}")
        try:
            if "analyse" in args.scenarios:
                bench_analyse(server, root, args.requests)
            if "store" in args.scenarios:
                frozen = bench_store(server, root, ids, args.requests)
            if "submit" in args.scenarios and args.submissions > 0:
                bench_submit(server, root, args.submissions, args.limit)
        finally:
            server.stop()
        if "store" in args.scenarios and args.gc_baseline:
            bench_gc_baseline(root, ids, args.requests, args.limit, frozen)


if __name__ == "__main__":
    main()
