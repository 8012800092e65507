"""Runs started from the Jupyter server ("Run as pipeline"), on the default settings and with other pool sizes.

    python benchmarks/bench_server_runs.py [--work 1.0] [--repeat 3] [--pool 0 2 3] [--think 3] [--poll 0.25] [--cpu]

A real `jupyter server` is started on the DEFAULT settings (first line: what users get), then one per
`--CellpipeApp.kernel_pool_size=POOL` for comparison. Each run is what a user does: the notebook is opened
(POST analyse, as the front end does; the default pool starts its kernels then, with the notebook's
installed imports), THINK seconds pass, then "Run as pipeline" (POST runs, tracking on, cache off). REPEAT
runs per server. Printed, medians of the runs after each server's first, and its first run beside:
  first code   seconds from the POST to the first line of the first step executing (it writes time.time()
               to a file)                                               target <= 0.5 s on a warm server
  whole run    seconds from the POST until the run's status turned final (the record's `finished`, written
               as it turns final; the client polls GET runs/{id} every POLL s to learn it), against
               papermill running the same notebook top to bottom (its API, in this process, imports
               warmed up): the ratio                                    target <= 0.5 (2x faster)
  CPU          CPU seconds of the server and every process under it during the run (sampled every 0.05 s;
               a kernel's last 0.05 s before it exits are missed), beside papermill's (this process and
               its kernel). The steps' work is a wall-clock busy loop: on a loaded machine it gets less CPU.
  waiting      kernels waiting in the pool when the run was posted
Between runs the benchmark waits, untimed, for the run's background MLflow tracking, so that one
measurement does not steal CPU from the next. After the runs, the memory of each server's waiting pool
(USS: what stopping it frees) is printed. The load average is printed with the figures, and, for the
tracking worker the server pre-starts: how often the final record already named the MLflow run, and how
long finalize waited for it (part of "whole run").
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import common  # puts this checkout first on sys.path
import psutil
from bench_runner import BUSY, CPU_S, run_papermill, with_cpu, write
from bench_server import Server

from tests.server.test_kernel_pool import kernel_children  # the test's own counting

CPU_WORK = "_n = {n}\nwhile _n:\n    _n -= 1\n"  # a fixed amount of CPU work (--cpu)


def cpu_iterations(seconds: float) -> int:
    """How many turns of CPU_WORK's loop take ``seconds`` of CPU here (measured once, in this process)."""
    turns = 2_000_000
    began = time.process_time()
    exec(CPU_WORK.format(n=turns))  # noqa: S102 - our own constant code
    return int(turns * seconds / max(time.process_time() - began, 1e-6))


def notebook(path: Path, work: float, cpu: bool = False) -> Path:
    """The two-branch notebook: a short source step, two branches of 2 x ``work`` seconds each (a wall-clock
    busy loop; ``cpu``: a fixed amount of CPU work instead, which takes longer when CPU is short), a join."""
    marker = path.parent / "first_code_started"
    branch = CPU_WORK.format(n=cpu_iterations(2 * work)) if cpu else BUSY.format(s=2 * work)
    return write(
        path,
        [
            (["imports"], "import time\nimport numpy as np"),
            (["step:source"], f"open({str(marker)!r}, 'w').write(repr(time.time()))\nx = np.arange(1000)"),
            (["step:left"], branch + "left = x * 2"),
            (["step:right"], branch + "right = x * 3"),
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


class TreeCPU:
    """CPU seconds used by a process and all its descendants since :meth:`__init__`, from samples: the last
    CPU time seen of each process counts, so a process that ended between samples loses its last moments."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.base = self._now()
        self.seen = dict(self.base)

    def _now(self) -> dict[int, float]:
        found = {}
        for process in [self.root, *self.root.children(recursive=True)]:
            try:
                times = process.cpu_times()
                found[process.pid] = times.user + times.system
            except psutil.Error:
                continue
        return found

    def sample(self) -> None:
        self.seen.update(self._now())

    def used(self) -> float:
        return sum(cpu - self.base.get(pid, 0.0) for pid, cpu in self.seen.items())


def pool_memory(server: Server) -> tuple[int, float, float]:
    """(kernels waiting, their USS MiB in all, the kernel fork server's USS MiB)."""
    kernels, forker = 0, 0.0
    uss = 0.0
    for child in psutil.Process(server.process.pid).children(recursive=True):
        try:
            command = " ".join(child.cmdline())
            if "jupyter_ext.runtime.kernel_fork" in command:
                forker += child.memory_full_info().uss / 2**20
            elif child.pid in kernel_children(server.process.pid):
                kernels += 1
                uss += child.memory_full_info().uss / 2**20
        except psutil.Error:
            continue
    return kernels, uss, forker


TRACKING: list[
    tuple[float, bool]
] = []  # per run: finalize's wait for the tracking worker, MLflow id at final


@dataclass
class Runs:
    label: str
    firsts: list[float] = field(default_factory=list)
    wholes: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)
    memory: tuple[int, float, float] = (0, 0.0, 0.0)


def stamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def measure(
    root: Path, nb: Path, label: str, server_args: list[str], *, repeat: int, think: float, poll: float
) -> Runs:
    server = Server(root, *server_args)
    marker = nb.parent / "first_code_started"
    runs = Runs(label)
    try:
        time.sleep(2.0)  # the server's own start-up work (analysis worker, tracking worker) out of the way
        for _ in range(repeat):
            answer = server.api("POST", "analyse", json={"path": nb.name})  # the notebook is opened
            if answer.status_code != 200:
                raise SystemExit(f"POST analyse: {answer.status_code} {answer.text}")
            time.sleep(think)  # the user looks at it, then clicks "Run as pipeline"
            runs.waiting.append(len(kernel_children(server.process.pid)))
            marker.unlink(missing_ok=True)
            cpu = TreeCPU(server.process.pid)
            started = time.time()
            answer = server.api("POST", "runs", json={"path": nb.name, "use_cache": False, "track": True})
            if answer.status_code != 202:
                raise SystemExit(f"POST runs: {answer.status_code} {answer.text}")
            run_id = answer.json()["id"]
            wait_until(lambda r=run_id, c=cpu: c.sample() or read(server, r)["status"] in FINAL, step=poll)
            runs.cpus.append(cpu.used())
            record = read(server, run_id)
            if record["status"] != "succeeded":
                raise SystemExit(f"run failed: {record}")
            runs.wholes.append(float(record["finished"]) - started)  # epoch s: when it turned final
            TRACKING.append(
                (record["timings"].get("tracking_wait_s", 0.0), bool(record["tracking"]["mlflow_run_id"]))
            )
            runs.firsts.append(float(marker.read_text()) - started)
            wait_until(lambda r=run_id: read(server, r)["tracking"]["status"] != "pending")
        time.sleep(think)  # refilled
        runs.memory = pool_memory(server)
    finally:
        server.stop()
    return runs


def main() -> None:
    parser = common.arguments(__doc__)
    parser.add_argument("--work", type=float, default=1.0, help="seconds of CPU work per unit (default 1)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--pool", type=int, nargs="*", default=[0, 2, 3],
        help="kernel_pool_size of the servers compared with the default one (default 0 2 3)",
    )  # fmt: skip
    parser.add_argument(
        "--think", type=float, default=3.0,
        help="seconds between opening the notebook (POST analyse) and POST runs (default 3)",
    )  # fmt: skip
    parser.add_argument(
        "--poll", type=float, default=0.25,
        help="seconds between GET runs/{id} while a run executes (default 0.25; the front end polls every 1.5 s: "
        "each GET is work for the event loop the run's steps are driven from)",
    )  # fmt: skip
    parser.add_argument(
        "--cpu", action="store_true", help="branches do a fixed amount of CPU work, not a busy wait"
    )
    args = parser.parse_args()
    os.environ.pop("CELLPIPE_KERNEL_POOL_SIZE", None)  # the default is the product's, not this shell's
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        nb = notebook(root / "branches.ipynb", args.work, cpu=args.cpu)
        run_papermill(nb, Path(tmp) / "warm.out.ipynb")  # imports out of the timing
        timed = [
            (with_cpu("papermill", lambda: run_papermill(nb, Path(tmp) / "out.ipynb")))
            for _ in range(args.repeat)
        ]
        papermill, papermill_cpu = statistics.median(timed), statistics.median(CPU_S["papermill"])
        servers = [("default", [])] + [
            (str(pool), [f"--CellpipeApp.kernel_pool_size={pool}"]) for pool in args.pool
        ]
        rows = [
            measure(root, nb, label, server_args, repeat=args.repeat, think=args.think, poll=args.poll)
            for label, server_args in servers
        ]
    print(
        f"two-branch notebook, work {args.work}s ({'CPU work' if args.cpu else 'wall-clock busy loop'}), "
        f"cores {os.cpu_count()}, repeats {args.repeat}, think {args.think}s, poll {args.poll}s"
    )
    print(f"papermill (baseline, same run): {papermill:.2f} s wall, {papermill_cpu:.2f} s CPU")
    print("medians of each server's runs after its first; its first run (the server's first use) beside")
    print(f"{'kernel_pool_size':>16} {'first code s':>13} {'whole run s':>12} {'ratio':>6} {'CPU s':>6} "
          f"{'first run s':>12} {'ratio':>6}  targets: first code <= 0.5 s, ratio <= 0.5")  # fmt: skip
    for runs in rows:
        later = slice(1, None) if len(runs.wholes) > 1 else slice(None)
        first, whole = statistics.median(runs.firsts[later]), statistics.median(runs.wholes[later])
        cpu = statistics.median(runs.cpus[later])
        print(f"{runs.label:>16} {first:13.2f} {whole:12.2f} {whole / papermill:6.2f} {cpu:6.2f}"
              f" {runs.wholes[0]:12.2f} {runs.wholes[0] / papermill:6.2f}"
              f"   (each run: first code {', '.join(f'{f:.2f}' for f in runs.firsts)}; "
              f"whole {', '.join(f'{w:.2f}' for w in runs.wholes)}; CPU {', '.join(f'{c:.2f}' for c in runs.cpus)}; "
              f"waiting {', '.join(map(str, runs.waiting))})")  # fmt: skip
    for runs in rows:
        kernels, uss, forker = runs.memory
        print(f"memory held by the {runs.label} server's pool after its runs: {kernels} waiting kernels, "
              f"{uss:.1f} MiB USS in all ({uss / max(kernels, 1):.1f} each), kernel fork server {forker:.1f} MiB USS")  # fmt: skip
    waits = [w for w, _ in TRACKING]
    print(f"MLflow (the server's warm tracking worker): the final record named the MLflow run in "
          f"{sum(1 for _, named in TRACKING if named)} of {len(TRACKING)} runs; finalize waited for it "
          f"median {statistics.median(waits):.3f} s, max {max(waits):.3f} s")  # fmt: skip
    print(common.load_average())


if __name__ == "__main__":
    main()
