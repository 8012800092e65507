"""What reading a cluster run's record costs: refresh-on-read against a Kubernetes API (kmock on loopback).

    python benchmarks/bench_cluster_refresh.py                 # 200 repeats
    python benchmarks/bench_cluster_refresh.py --repeat 50 --active 10

A run whose Job exists is the cluster's: reading it while active asks the cluster (at most every
``RunService.refresh_seconds`` per run). Fills a fresh run store with 200 finished local runs and ``--active``
running Job runs (their Jobs created in kmock, still running), then times, each ``--repeat`` times, wall and
CPU of this process:

    get local          RunService.get of a finished local run: the baseline (no cluster involved)
    get job throttled  get of a running Job run asked about less than refresh_seconds ago: no API call
    refresh job        get of a running Job run whose last ask is older: kubeconfig load, one GET of the Job
    list 50 local      RunService.list of 50 runs, none of them active on a cluster
    list 50 + active   the same page with the --active running Job runs, each asked (refreshed times reset)
    list 50 throttled  that page again within refresh_seconds: no API call

Ratios are against ``get local`` / ``list 50 local`` measured in the same run. kmock answers from a thread
of this process (its CPU is counted here too); a real API server is farther away: its round trip adds to
``refresh job`` and, per active run, to ``list 50 + active`` (once per refresh_seconds per run).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common  # puts this checkout first on sys.path

from jupyter_ext.records.models import RunRecord, RunStatus, StepRecord
from jupyter_ext.services.runs import RunService
from tests.support.kube_cluster import write_kubeconfig

NS = "bench"


def serve_kmock(ready: threading.Event, stop: threading.Event, url: list[str]) -> None:
    from kmock import KubernetesEmulator, Server

    async def main() -> None:
        async with KubernetesEmulator() as emulator, Server(emulator) as server:
            emulator.resources["batch/v1/jobs"] = {}
            url.append(str(server.url).rstrip("/"))
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)

    asyncio.run(main())


def fill(service: RunService, config: str, active: int) -> tuple[str, list[str]]:
    from jupyter_ext.targets.k8s.client import KubernetesTarget
    from jupyter_ext.targets.k8s.objects import make_job

    steps = [StepRecord(name=f"step_{i}") for i in range(5)]
    base = time.time() - 10_000
    for index in range(200):
        record = RunRecord(id=f"20261130-000000-{index:06x}", notebook="/nb/train.ipynb", status=RunStatus.SUCCEEDED,
                           created=base + index, steps=steps)  # fmt: skip
        service.store.save_run(record)
    job_ids = []
    with KubernetesTarget(namespace=NS, kubeconfig=config) as cluster:
        for index in range(active):
            name = f"train-{index}"
            cluster.create_job(make_job(name, NS, image="busybox", command=["true"]))
            record = RunRecord(id=f"20261130-100000-{index:06x}", notebook="/nb/train.ipynb", target="job",
                               status=RunStatus.RUNNING, created=time.time() + index, steps=steps,
                               handle={"namespace": NS, "name": name, "store": "memory://bench",
                                       "kubeconfig": config})  # fmt: skip
            service.store.save_run(record)
            job_ids.append(record.id)
    return "20261130-000000-000000", job_ids


def timed(
    repeat: int, call: Callable[[], Any], before: Callable[[], Any] = lambda: None
) -> tuple[float, float]:
    """(median wall ms, median CPU ms) of ``call``; ``before`` runs untimed ahead of each call."""
    walls, cpus = [], []
    for _ in range(repeat):
        before()
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return statistics.median(walls), statistics.median(cpus)


def main() -> int:
    parser = common.arguments(__doc__)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--active", type=int, default=5, help="running Job runs in the listed page")
    args = parser.parse_args()
    ready, stop, url = threading.Event(), threading.Event(), []
    thread = threading.Thread(target=serve_kmock, args=(ready, stop, url), daemon=True)
    thread.start()
    ready.wait(30)
    with tempfile.TemporaryDirectory() as tmp:
        config = str(write_kubeconfig(Path(tmp) / "kubeconfig", url[0], NS))
        service = RunService(Path(tmp) / "data", background_tracking=False)
        local_id, job_ids = fill(service, config, args.active)

        def stale() -> None:
            for run_id in job_ids:
                service.store.update_run(run_id, lambda r: setattr(r, "refreshed", None))

        rows = [
            ("get local", timed(args.repeat, lambda: service.get(local_id))),
            (
                "get job throttled",
                timed(
                    args.repeat,
                    lambda: service.get(job_ids[0]),
                    lambda: service.store.update_run(
                        job_ids[0], lambda r: setattr(r, "refreshed", time.time())
                    ),
                ),
            ),  # fmt: skip
            ("refresh job", timed(args.repeat, lambda: service.get(job_ids[0]), stale)),
        ]
        local_page = lambda: service.list(limit=50, offset=args.active)  # noqa: E731  (skips the active runs)
        rows += [
            ("list 50 local", timed(args.repeat, local_page)),
            ("list 50 + active", timed(max(5, args.repeat // 10), lambda: service.list(limit=50), stale)),
            ("list 50 throttled", timed(args.repeat, lambda: service.list(limit=50))),
        ]
        checked = service.get(job_ids[0])
        assert checked.status is RunStatus.RUNNING and checked.refresh_error is None, checked.refresh_error
    stop.set()
    thread.join(10)
    print(f"{common.load_average()}; {args.active} running Job runs; median of each")
    print(f"{'':20s}{'wall ms':>10s}{'CPU ms':>10s}{'x baseline':>12s}")
    for name, (wall, cpu) in rows:
        baseline = rows[0][1][0] if name.startswith(("get", "refresh")) else rows[3][1][0]
        print(f"{name:20s}{wall:10.2f}{cpu:10.2f}{wall / baseline:12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
