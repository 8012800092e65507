"""Run store latency with many stored runs: list and get, in-process, p50/p99.

    python benchmarks/bench_run_store.py                 # 10,000 runs
    python benchmarks/bench_run_store.py --runs 2000 --repeat 200

Fills a fresh SQLite run store (``records/store.py``) with ``--runs`` finished runs of 5 steps each, spread
over 20 notebooks and all final statuses, plus 3 runs still "running" (their owner is this process, so
every list checks them for crashes). Then times, each ``--repeat`` times:

    list 50         the newest 50 runs and the total (what `cellpipe runs` and GET runs show)
    list 50 stored  the same as stored rows, no records built (what the server reads: it keeps the JSON it
                    sends for each final run, keyed by the stored text)
    list notebook   the newest 50 runs of one notebook
    list failed     the newest 50 failed runs
    list page 100   the 100th page of 50 (offset 4950)
    get id          one run by its full id
    get suffix      one run by its random part (the 6 hex characters `cellpipe runs show` accepts)
    get latest      the newest run

Baseline, in the same process: the layout it replaced, one ``runs/<id>/record.json`` per run, listed the way
the old store did (read every record, sort by time): the ratio shows what the index buys. Goal: p99 of
list/get under 20 ms.
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import common  # puts this checkout first on sys.path

from jupyter_ext.records.models import (
    RunRecord,
    RunStatus,
    StepRecord,
    StepStatus,
    Tracking,
    TrackingStatus,
)
from jupyter_ext.records.owner import current_owner
from jupyter_ext.records.store import RecordStore


def make_record(index: int, rng: random.Random) -> RunRecord:
    created = 1_790_000_000 + index * 37.0
    status = rng.choice(
        [RunStatus.SUCCEEDED] * 6 + [RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.CRASHED]
    )
    steps = [
        StepRecord(
            name=f"step_{i}",
            status=StepStatus.SUCCEEDED,
            started=created + i,
            finished=created + i + 1,
            duration_s=1.0,
            cell=3 + i,
            cells=[3 + i],
            depends_on=[f"step_{i - 1}"] if i else [],
            notebook=f"/home/u/.cellpipe/runs/r{index}/steps/step_{i}.ipynb",
            cache_key="ab" * 32,
            outputs={"x": {"backend": "dataframe", "bytes": 12345, "file": "x.parquet"}},
            metrics={"accuracy": 0.9} if i == 4 else {},
        )  # fmt: skip
        for i in range(5)
    ]
    return RunRecord(
        id=time.strftime("%Y%m%d-%H%M%S", time.gmtime(created)) + f"-{index:06x}",
        notebook=f"/home/u/project/notebook_{index % 20}.ipynb", status=status, created=created,
        started=created, finished=created + 6, duration_s=6.0, parameters={"n": index, "rate": 0.5},
        snapshot_id="cd" * 32, steps=steps, pipeline=f"notebook_{index % 20}", metrics={"accuracy": 0.9},
        tracking=Tracking(TrackingStatus.OK, mlflow_run_id="ef" * 16, tracking_uri="sqlite:///x/mlflow.db"),
    )  # fmt: skip


class Samples(list):
    """Wall milliseconds per call, with the CPU milliseconds of the same calls in ``cpu`` (on a loaded
    machine the wall time includes waiting for a core; the CPU time does not)."""

    cpu: list[float]


def timed(function, repeat: int) -> Samples:
    function()  # warm-up
    samples = Samples()
    samples.cpu = []
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.thread_time()
        function()
        samples.append((time.perf_counter() - start) * 1000)
        samples.cpu.append((time.thread_time() - cpu) * 1000)
    return samples


def line(name: str, samples: Samples) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{name:16} p50 {statistics.median(ordered):8.2f} ms   p99 {p99:8.2f} ms"
        f"   CPU p50 {statistics.median(samples.cpu):7.2f} ms   (n={len(ordered)})"
    )


def main() -> None:
    parser = common.arguments(__doc__)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="bench-run-store-") as tmp:
        records = [make_record(i, rng) for i in range(args.runs)]
        store = RecordStore(Path(tmp) / "data")
        began = time.perf_counter()
        with store._write() as conn:  # one transaction for the fill: we measure reads, not 10,000 fsyncs
            for record in records:
                store._upsert(conn, record)
        for i in range(3):
            running = make_record(args.runs + i, rng)
            running.status, running.owner = RunStatus.RUNNING, current_owner()
            store.save_run(running)
        fill = time.perf_counter() - began
        size = (Path(tmp) / "data" / "cellpipe.db").stat().st_size
        print(f"{args.runs} runs stored in {fill:.1f}s, database {size / 2**20:.1f} MiB")
        target = records[args.runs // 2]
        results = {
            "list 50": timed(lambda: store.list_runs(limit=50), args.repeat),
            "list 50 stored": timed(lambda: store.list_stored_runs(limit=50), args.repeat),
            "list notebook": timed(lambda: store.list_runs(notebook=target.notebook, limit=50), args.repeat),
            "list failed": timed(lambda: store.list_runs(status="failed", limit=50), args.repeat),
            "list page 100": timed(lambda: store.list_runs(limit=50, offset=4950), args.repeat),
            "get id": timed(lambda: store.get_run(target.id), args.repeat),
            "get suffix": timed(lambda: store.get_run(target.id[-6:]), args.repeat),
            "get latest": timed(lambda: store.get_run("latest"), args.repeat),
        }
        for name, samples in results.items():
            print(line(name, samples))
        print(f"{common.load_average()} (other work on the machine)")

        legacy = Path(tmp) / "legacy"
        for record in records:
            directory = legacy / record.id
            directory.mkdir(parents=True)
            (directory / "record.json").write_text(json.dumps(record.to_dict()))

        def legacy_list() -> list[dict]:
            found = [json.loads(p.read_text()) for p in legacy.glob("*/record.json")]
            return sorted(found, key=lambda r: r["created"], reverse=True)[:50]

        baseline = timed(legacy_list, max(3, args.repeat // 30))
        print(line("baseline list", baseline) + "   one JSON file per run, read all and sort")
        ratio = statistics.median(baseline) / statistics.median(results["list 50"])
        print(f"list 50 is {ratio:.0f}x faster than the baseline (medians)")
        worst = max(sorted(s)[min(len(s) - 1, int(len(s) * 0.99))] for s in results.values())
        print(f"worst p99 {worst:.2f} ms: {'within' if worst < 20 else 'OVER'} the 20 ms goal")


if __name__ == "__main__":
    main()
