"""What a cold MLflow tracking worker costs the run it starts with, against a warm one, interleaved.

    python benchmarks/bench_tracking_worker.py [--work 1.0] [--repeat 5] [--code CHECKOUT]

Each round runs bench_runner's two-branch notebook (two ~2*WORK s branches on two cores) three ways, in
turn, so that a change of load hits all three alike: papermill; cellpipe in a new data directory (the run
starts the directory's tracking worker, which imports MLflow while the run executes: cold); cellpipe in
one data directory whose worker was warmed first (every later run, every server run). Between runs the
benchmark waits (untimed) until the worker has finished the run's tracking, so no run competes with the
previous one's.

Printed: the medians of wall time and their ratios to papermill, and cold minus warm (goal: ~0.02 of
papermill); for the cold runs, the worker's CPU seconds during the run (its whole process, from /proc),
split by what the machine was doing meanwhile (sampled every 0.1 s): taken while both cores were busy
(competing with the run) or while a core was idle; how often the final record named the MLflow run; the
worker's scheduling as /proc shows it while it imports and once it serves; then the CPU a starting
worker gets beside two busy loops in their own sessions, as a run's kernels are (no run: the clearest
figure on a loaded machine); the load average.

``--code`` runs another checkout's cellpipe (the worker too): the same benchmark before and after a change.
Page cache: MLflow's and the kernels' files are read once before the rounds (a warm-up import and
papermill run) and every round reads them again within seconds, so every round finds them cached.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import common  # the benchmarks' helpers; --code's checkout goes before it on sys.path in main()

HERE = Path(__file__).resolve().parent
TICK = os.sysconf("SC_CLK_TCK")


def parse() -> argparse.Namespace:
    parser = common.arguments(__doc__)
    parser.add_argument("--work", type=float, default=1.0, help="seconds of work per branch half (default 1)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds (each: papermill, cold, warm)")
    parser.add_argument("--code", type=Path, default=HERE.parent, help="the cellpipe checkout to measure")
    return parser.parse_args()


def process_cpu(pid: int) -> float | None:
    """CPU seconds of a whole process (all its threads, ended ones too); None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_idle() -> float:
    """Idle CPU seconds of the whole machine so far (all cores)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    return (int(fields[3]) + int(fields[4])) / TICK  # idle + iowait


def scheduling(pid: int) -> str:
    """The worker's autogroup nice, nice and the policy of each of its threads, as /proc shows them."""
    try:
        group = (Path(f"/proc/{pid}/autogroup").read_text().split() or ["(none)"])[-1]
        policies = []
        for task in sorted(Path(f"/proc/{pid}/task").iterdir()):
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            policies.append(f"nice {fields[16]} policy {fields[38]}")  # 0 normal, 5 idle
        return f"autogroup nice {group}; threads: {', '.join(policies)}"
    except OSError as exc:
        return f"unreadable ({exc})"


class WorkerSampler:
    """Samples, every 0.1 s while a run executes, the CPU of the data directory's worker and the machine's
    idle time: the worker's CPU taken while both cores were busy, and while a core was idle."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.busy_s = self.idle_s = 0.0
        self.seen: list[str] = []  # the worker's scheduling while it imports
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> WorkerSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        from jupyter_ext.tracking import background

        pid = last_cpu = None
        last_idle, last_t = machine_idle(), time.monotonic()
        cores = os.cpu_count() or 1
        while not self._stop.wait(0.1):
            idle, now = machine_idle(), time.monotonic()
            pid = pid or background.worker_pid(self.data_dir)
            cpu = process_cpu(pid) if pid else None
            if cpu is not None:
                if not self.seen and not background.worker_ready(self.data_dir):
                    self.seen.append(scheduling(pid))
                taken = cpu - (last_cpu or 0.0)
                idle_share = (idle - last_idle) / max(now - last_t, 1e-6) / cores
                if idle_share < 0.1:
                    self.busy_s += taken
                else:
                    self.idle_s += taken
                last_cpu = cpu
            last_idle, last_t = idle, now


BUSY = "import time\nend = time.monotonic() + {s}\nwhile time.monotonic() < end:\n    pass\n"


def share_beside_busy_sessions(seconds: float = 4.0) -> tuple[float, float]:
    """Start a cold worker beside two busy loops, each in its own session as a run's kernels are, and
    return the CPU seconds per second the worker and (the mean of) the loops got over ``seconds``, from
    0.5 s after its start on (its interpreter start-up runs before it yields)."""
    from jupyter_ext.tracking import background

    loops = [subprocess.Popen([sys.executable, "-c", BUSY.format(s=seconds + 2)], start_new_session=True)
             for _ in range(2)]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        time.sleep(0.3)
        pid = background.ensure_worker(Path(tmp))
        time.sleep(0.5)
        worker, busy = process_cpu(pid) or 0.0, [process_cpu(p.pid) or 0.0 for p in loops]
        time.sleep(seconds)
        worker = ((process_cpu(pid) or 0.0) - worker) / seconds
        busy = [((process_cpu(p.pid) or 0.0) - b) / seconds for p, b in zip(loops, busy, strict=True)]
        for loop in loops:
            loop.wait()
        background.stop_worker(Path(tmp))
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    return worker, statistics.mean(busy)


def main() -> None:
    args = parse()
    sys.path.insert(0, str(args.code.resolve()))
    sys.path.insert(1, str(HERE))
    import jupyter_ext  # noqa: F401  (this checkout's, before bench_runner puts its own on the path)

    # isort: split
    from bench_runner import branches, run_papermill, stop_cold_worker, warm_worker

    from jupyter_ext.services.runs import RunRequest, RunService
    from jupyter_ext.targets.local.target import LocalOptions
    from jupyter_ext.tracking import background

    walls: dict[str, list[float]] = {"papermill": [], "cold": [], "warm": []}
    taken: list[tuple[float, float]] = []
    named: dict[str, int] = {"cold": 0, "warm": 0}
    seen: list[str] = []
    subprocess.run([sys.executable, "-c", "import mlflow.tracking"], check=True)  # page cache, untimed
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        notebook = branches(tmp / "branches.ipynb", args.work)
        run_papermill(notebook, tmp / "out.ipynb")  # imports and kernel files warmed, untimed
        warm = tmp / "data-warm"
        warm_worker(warm)
        serving = scheduling(background.worker_pid(warm))

        def cellpipe(data_dir: Path, kind: str) -> float:
            service = RunService(data_dir)
            request = RunRequest(
                notebook=notebook, target_options=LocalOptions(max_parallel=2), use_cache=False
            )
            with WorkerSampler(data_dir) if kind == "cold" else contextlib.nullcontext() as sampler:
                began = time.perf_counter()
                record = service.run(request)
                wall = time.perf_counter() - began
            if record.status.value != "succeeded":
                raise SystemExit(f"benchmark run failed: {record.error}")
            named[kind] += bool(record.tracking.mlflow_run_id)
            tracked = service.wait_for_tracking(record.id)  # untimed: nothing left for the next run
            if tracked.tracking.status.value != "ok":
                raise SystemExit(f"benchmark run not tracked: {tracked.tracking}")
            if sampler is not None:
                taken.append((sampler.busy_s, sampler.idle_s))
                seen.extend(sampler.seen[:1])
                stop_cold_worker(data_dir)
            return wall

        for i in range(args.repeat):
            walls["papermill"].append(run_papermill(notebook, tmp / "out.ipynb"))
            walls["cold"].append(cellpipe(tmp / f"data-cold-{i}", "cold"))
            walls["warm"].append(cellpipe(warm, "warm"))
            print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in walls.items()), flush=True)
        background.stop_worker(warm)
        share = share_beside_busy_sessions()

    papermill = statistics.median(walls["papermill"])
    print(
        f"two branches of {2 * args.work:.1f} s, {args.repeat} rounds, cores: {os.cpu_count()}, code: {args.code}"
    )
    for kind in ("papermill", "cold", "warm"):
        median = statistics.median(walls[kind])
        print(f"  {kind:<10} median {median:6.2f} s  ratio {median / papermill:5.2f}  "
              f"(min {min(walls[kind]):.2f}, max {max(walls[kind]):.2f})")  # fmt: skip
    paired = [(c - w) / p for p, c, w in zip(walls["papermill"], walls["cold"], walls["warm"], strict=True)]
    print(f"  cold - warm, per round, in papermill's time: median {statistics.median(paired):+.3f} "
          f"(each: {' '.join(f'{x:+.3f}' for x in paired)})")  # fmt: skip
    busy = [b for b, _ in taken]
    idle = [i for _, i in taken]
    print(f"cold worker's CPU during the run, median: {statistics.median(busy):.2f} s while both cores were "
          f"busy, {statistics.median(idle):.2f} s while a core was idle")  # fmt: skip
    print(f"final record named the MLflow run: cold {named['cold']} of {args.repeat}, "
          f"warm {named['warm']} of {args.repeat}")  # fmt: skip
    print(f"worker scheduling while importing MLflow: {seen[0] if seen else 'not seen'}")
    print(f"worker scheduling once warm (serving): {serving}")
    print(f"a starting worker beside two busy loops in their own sessions (as a run's kernels): it got "
          f"{share[0]:.2f} CPU s per s, each loop {share[1]:.2f} (an equal share: 0.67 each on two idle cores)")  # fmt: skip
    print(common.load_average())


if __name__ == "__main__":
    main()
