"""What a snapshot store on S3 costs: requests, wall and CPU time per step, beside a local store.

Starts ``moto_server`` (a real S3 API) on loopback, makes a project of ``--files`` files of ``--kb`` KiB,
and runs each step against a fresh bucket and against a local store in the same run (the machine may be
loaded: compare the ratio and the request counts, not seconds). Requests are counted from the server's
access log. Loopback has no network latency: against AWS S3 or MinIO each request adds a round trip
(milliseconds), so the request count is the figure that carries over.

    first       take_snapshot into an empty store
    unchanged   take_snapshot again with a fresh store object (the stat cache skips hashing)
    restore     restore into an empty directory (every object re-hashed)
    verify      re-hash every object of the snapshot

    python benchmarks/bench_s3_store.py                 # 100 files of 100 KiB
    python benchmarks/bench_s3_store.py --files 1000 --kb 10
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import common  # puts this checkout first on sys.path

from jupyter_ext.snapshot import SnapshotStore, restore, take_snapshot
from tests.snapshot.conftest import write_file, write_notebook
from tests.support.s3_server import MotoServer, new_bucket


def requests_logged(log: Path) -> int:
    return sum(1 for line in log.read_text(errors="replace").splitlines() if "HTTP/1.1" in line)


def timed(step: Callable[[], object]) -> tuple[object, float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    result = step()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def run_steps(
    url: str, notebook: Path, work: Path, count: Callable[[], int]
) -> dict[str, tuple[int, float, float]]:
    rows = {}

    def step(name: str, action: Callable[[], object]) -> object:
        before = count()
        result, wall, cpu = timed(action)
        time.sleep(0.2)  # the server writes its log line after the answer
        rows[name] = (count() - before, wall, cpu)
        return result

    snapshot = step("first", lambda: take_snapshot(notebook, store=SnapshotStore.open(url)))
    step("unchanged", lambda: take_snapshot(notebook, store=SnapshotStore.open(url)))
    step("restore", lambda: restore(SnapshotStore.open(url), snapshot.id, work / f"restored-{len(url)}"))
    step("verify", lambda: SnapshotStore.open(url).verify(snapshot.id))
    return rows


def main() -> None:
    parser = common.arguments(__doc__)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--kb", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    server = MotoServer.start(work / "moto.log")
    try:
        bucket = new_bucket(server.endpoint)
        os.environ.update(bucket.env)
        for index in range(args.files):
            write_file(work / "project" / "data" / f"f{index:05d}.bin", os.urandom(args.kb << 10))
        notebook = write_notebook(work / "project" / "nb.ipynb", [("code", "x = 1", ["data:data"])])
        time.sleep(1.1)  # files older than the stat cache's freshness window
        local = run_steps(str(work / "local-store"), notebook, work, lambda: 0)
        remote = run_steps(bucket.url(), notebook, work, lambda: requests_logged(work / "moto.log"))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.files} files x {args.kb} KiB; {common.load_average()}")
    print(
        f"{'step':10} {'requests':>8} {'per file':>8} {'s3 wall':>8} {'s3 CPU':>7} {'local wall':>10} {'ratio':>6}"
    )
    for name, (requests, wall, cpu) in remote.items():
        local_wall = local[name][1]
        print(
            f"{name:10} {requests:8d} {requests / (args.files + 1):8.1f} {wall:8.2f} {cpu:7.2f}"
            f" {local_wall:10.2f} {wall / local_wall:5.1f}x"
        )


if __name__ == "__main__":
    main()
