"""MLflow tracking off the critical path: one warm tracking worker per data directory.

Importing MLflow costs about two seconds of CPU and 190 MiB, more than many pipelines, so no run pays it.
One detached process per data directory (``python -m jupyter_ext.tracking.background DATA_DIR``, its own
session: it outlives the command that started it, and Ctrl-C in its terminal) imports MLflow once, on CPU
the runs leave idle (:func:`yielding_to_runs`), and serves the runs of every process using that directory:

- a tracked run's record is created with ``tracking.status`` ``pending`` and ``runs/<id>/tracking-job.json``
  (what tracking needs besides the record); the worker creates the run's MLflow run (RUNNING, lineage
  tags, parameters) and writes its ids and link into the record while the run executes;
- when the record turns final the worker logs the rest (metrics, a nested run per step), terminates the
  MLflow run with the run's status, and turns tracking ``ok``, or ``failed`` with the reason (MLflow down,
  bad URI, disk full: the run's own status never changes, and the worker goes on serving other runs).

The worker writes only the record's tracking part, in the store's update transaction; the run service
saves with ``keep_tracking``, so neither undoes the other. One worker at a time: it holds an exclusive lock
on ``<data dir>/tracking-worker.lock`` while it lives (the kernel drops it if the worker dies), and callers
start one only when that lock is free (:func:`ensure_worker`, a non-blocking ``flock``: no MLflow import).
It finds work with an index lookup (``runs_tracking_pending``) and exits after
``$CELLPIPE_TRACKING_IDLE_S`` seconds without any (default 300); one a Jupyter server started stays while
that server lives and exits once it is gone and nothing is pending. Nothing is lost when a worker dies: the
next one (started by the next run, or by a run service or Jupyter server opening the store) picks up
every pending run, and replaces what a killed attempt had left in MLflow.

Runs tracked inline (``background_tracking=False``: a Job pod) have no job file and are not the worker's.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from jupyter_ext.records.models import RunRecord, Tracking, TrackingStatus
from jupyter_ext.records.owner import owner_alive
from jupyter_ext.records.store import RecordStore
from jupyter_ext.util import (
    IDLE_AUTOGROUP_NICE,
    open_private,
    private_dir,
    set_autogroup_nice,
    write_json_atomic,
)

JOB_FILE = "tracking-job.json"
WORKER_LOCK = "tracking-worker.lock"
WORKER_LOG = "tracking-worker.log"
READY = "ready"  # written into the lock file after the pid once MLflow is imported
IDLE_ENV = "CELLPIPE_TRACKING_IDLE_S"
KEEP_FOR_ENV = "CELLPIPE_TRACKING_KEEP_FOR"  # a process (records.owner JSON) while which the worker stays
DEFAULT_IDLE_S = 300.0
POLL_S = 0.05  # one indexed query: ~0.1 ms
ALIVE_CHECK_S = 2.0  # how often a running run's owner is checked (a dead one turns the run crashed)
RESUME_WITHIN_S = 7 * 24 * 3600  # older pending runs are left alone (their MLflow store may be gone)
SERVING_NICE = 10  # the warm worker's nice value: the runs it serves come first
SERVING_AUTOGROUP_NICE = 0  # once it serves: what every new session gets
YIELD_FOR_S = 10.0  # the longest a starting worker yields: runs that short pay nothing for its start

_workers: list[
    tuple[subprocess.Popen, Path]
] = []  # started here (and for which directory); reaped when polled


def write_job(run_dir: Path, job: dict[str, Any]) -> None:
    """Keep what tracking needs besides the record (see :func:`~jupyter_ext.tracking.mlflow.tracking_job`)."""
    write_json_atomic(private_dir(run_dir) / JOB_FILE, job)


def idle_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get(IDLE_ENV) or DEFAULT_IDLE_S))
    except ValueError:
        return DEFAULT_IDLE_S


# -- callers -----------------------------------------------------------------------------------------
def stop_worker(data_dir: Path, timeout: float = 30.0) -> None:
    """Stop the data directory's worker, if one runs (what it was doing is picked up by the next one)."""
    pid = worker_pid(data_dir)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while worker_pid(data_dir) is not None and time.monotonic() < deadline:
        time.sleep(0.05)


def worker_pid(data_dir: Path) -> int | None:
    """The pid of the worker serving ``data_dir`` now, or None when none does."""
    text = _worker_text(data_dir)
    with contextlib.suppress(ValueError, IndexError):
        return int(text.split()[0]) if text else None
    return None


def worker_ready(data_dir: Path) -> bool:
    """Whether a worker serves ``data_dir`` with MLflow imported (it creates a new run's MLflow run within a
    poll, ~0.05 s, plus the store's own time)."""
    return READY in _worker_text(data_dir).split()


def _worker_text(data_dir: Path) -> str:
    """The lock file's text ("PID" then "ready") while a worker holds it; empty when none does."""
    path = Path(data_dir) / WORKER_LOCK
    if not path.exists():
        return ""
    with _lock(path) as free:
        if free:
            return ""
        with contextlib.suppress(OSError):
            return path.read_text()
    return ""


def ensure_worker(
    data_dir: Path, *, idle_s: float | None = None, keep_for: dict[str, Any] | None = None
) -> int | None:
    """Start the data directory's tracking worker unless one runs; returns the new worker's pid, or None
    when one was running already. Cheap: a non-blocking lock probe, then (rarely) a process start.
    ``keep_for``: an owner (:func:`~jupyter_ext.records.owner.current_owner`, a Jupyter server's) while
    which the worker does not exit idle."""
    data_dir = private_dir(Path(data_dir)).resolve()
    _workers[:] = [(w, d) for w, d in _workers if w.poll() is None]
    if any(d == data_dir for _w, d in _workers):
        return None  # ours, still starting (it takes the lock within its first second) or serving
    with _lock(data_dir / WORKER_LOCK) as free:
        if not free:
            return None
    import jupyter_ext

    package_root = str(Path(jupyter_ext.__file__).resolve().parents[1])  # the same cellpipe as ours
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
    }
    if idle_s is not None:
        env[IDLE_ENV] = str(idle_s)
    env.pop(KEEP_FOR_ENV, None)
    if keep_for:
        env[KEEP_FOR_ENV] = json.dumps(keep_for)
    with open_private(data_dir / WORKER_LOG, "ab") as log:  # -P: not the caller's working directory on
        worker = subprocess.Popen(  # the path (a user's mlflow.py or jupyter_ext/ there would be imported)
            [sys.executable, "-P", "-m", "jupyter_ext.tracking.background", str(data_dir)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True, close_fds=True,
        )  # fmt: skip
    _workers.append((worker, data_dir))
    return worker.pid


def has_work(store: RecordStore) -> bool:
    """Whether a recent run waits for the tracking worker now: its MLflow run is to be created, or its record
    is final (an index lookup, and a stat per pending run). A run executing with its MLflow run created is
    not waiting: its finalize starts a worker if none runs then."""
    return any(
        (status.is_final or not mlflow_run_id) and (store.run_dir(run_id) / JOB_FILE).is_file()
        for run_id, status, mlflow_run_id in store.pending_tracking(since=time.time() - RESUME_WITHIN_S)
    )


def wait_for_mlflow_run(store: RecordStore, run_id: str, timeout: float) -> float:
    """Wait (at most ``timeout`` seconds) until the worker has created the run's MLflow run or given up on
    it; returns the seconds waited. Never raises for a slow or missing worker: the record then goes final
    without the MLflow ids, and the worker adds them later. A worker still importing MLflow is not waited
    for: that takes seconds (3-23 s measured on a loaded 2-core machine), beyond any short bound."""
    began = time.monotonic()
    if not worker_ready(store.data_dir):
        return 0.0
    while True:
        tracking = store.tracking_of(run_id)
        if tracking is None or tracking.mlflow_run_id or tracking.status is not TrackingStatus.PENDING:
            break
        if time.monotonic() - began >= timeout:
            break
        time.sleep(0.02)
    return time.monotonic() - began


@contextlib.contextmanager
def _lock(path: Path) -> Any:
    """Yields whether the worker lock at ``path`` was free (taken, and released on exit) or is held."""
    with open_private(path, "ab") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# -- the worker --------------------------------------------------------------------------------------
@contextlib.contextmanager
def yielding_to_runs(for_at_most: float = YIELD_FOR_S) -> Iterator[None]:
    """While the worker starts (imports MLflow, opens the store), its session's scheduling group is at
    autogroup nice 19: it gets CPU time no run wants. Then, or after ``for_at_most`` seconds, nice 0, what
    every session gets.

    Why the autogroup: with autogroup scheduling (``kernel.sched_autogroup_enabled``, on in most kernels)
    each session is a scheduling group that shares the CPU equally with the other groups, whatever the nice
    values inside it. The worker has its own session, and so has each kernel of a run (jupyter_client and
    the fork server start them so): at nice 10 alone, a worker importing MLflow got as much CPU as each busy
    kernel (1.2 of 3.7 CPU seconds beside two busy kernels on two cores). Why a bound: at nice 19 a
    group gets ~1.5% of a core that others want, so on a machine kept busy by other work the import would
    wait for it indefinitely; past the bound it competes as any session, and a long run pays its ~3 s of CPU
    at most once. Without autogroups (a container's cgroup, autogroups off) the nice value ranks it
    (weight 110 against 1024 at nice 0). A worker started by hand shares its terminal's group: left alone."""
    pid = os.getpid()
    if os.getsid(0) != pid or not set_autogroup_nice(pid, IDLE_AUTOGROUP_NICE):
        yield
        return
    deadline = threading.Timer(for_at_most, set_autogroup_nice, (pid, SERVING_AUTOGROUP_NICE))
    deadline.daemon = True
    deadline.start()
    try:
        yield
    finally:
        deadline.cancel()
        set_autogroup_nice(pid, SERVING_AUTOGROUP_NICE)


class Worker:
    """Serves one data directory: start and finish the MLflow runs of its tracked runs."""

    def __init__(self, data_dir: Path) -> None:
        from jupyter_ext.tracking.mlflow import MlflowTracker

        self.store = RecordStore(data_dir)
        self.tracker = MlflowTracker(data_dir)
        self.start_s: dict[str, float] = {}  # run id -> seconds its MLflow run took to create
        self.not_ours: set[str] = set()  # pending runs without a job file (tracked inline elsewhere)
        self.checked: dict[str, float] = {}  # run id -> when it was last read while executing
        self.logged: dict[str, set[str]] = {}  # run id -> its steps logged while it executed

    def warm_up(self) -> None:
        """Import MLflow and open the default store now (a new sqlite store migrates for seconds), so the
        first run served is not the one that waits (:func:`serve` calls it yielding to runs)."""
        from jupyter_ext.tracking.mlflow import tracking_uri

        with contextlib.suppress(Exception):  # a broken store is reported with the run that uses it
            self.tracker.client_for(tracking_uri(self.store.data_dir)).search_experiments(max_results=1)

    def serve_once(self) -> bool:
        """Handle whatever waits now; returns whether there was anything to do."""
        did = False
        now = time.time()
        for run_id, status, mlflow_run_id in self.store.pending_tracking(since=now - RESUME_WITHIN_S):
            if run_id in self.not_ours:
                continue
            if status.is_final:
                did = self._finish(run_id) or did
            elif not mlflow_run_id:
                did = self._start(run_id) or did
            elif now - self.checked.get(run_id, 0.0) >= ALIVE_CHECK_S:
                self.checked[run_id] = now
                self._log_finished_steps(run_id)
        return did

    def _log_finished_steps(self, run_id: str) -> None:
        """A run executing: its steps are logged as they finish (and reading it marks it crashed if its
        owner is gone; it is then finished on the next poll)."""
        record = self._record(run_id)
        if record is None or record.is_final or not record.tracking.mlflow_run_id:
            return
        logged = self.logged.setdefault(run_id, set())
        for step in record.steps:
            if not step.status.is_final or step.name in logged:
                continue
            job = self._job(run_id)
            if job is None:
                return
            try:
                self.tracker.log_step(record, job, record.tracking, step.name)
            except Exception:  # MLflow down: the run's finish logs it, or says why it could not
                return
            logged.add(step.name)

    def _job(self, run_id: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.store.run_dir(run_id) / JOB_FILE).read_text())
        except FileNotFoundError:
            self.not_ours.add(run_id)
        except (OSError, ValueError) as exc:
            self._write(run_id, _failed(exc), only_if=lambda t: True)
        return None

    def _record(self, run_id: str) -> RunRecord | None:
        from jupyter_ext.errors import CellpipeError

        try:
            return self.store.get_run(run_id)
        except CellpipeError:  # deleted meanwhile
            return None

    def _start(self, run_id: str) -> bool:
        attempt = self._attempt(run_id, "start")
        if attempt is None:
            return False
        tracking, self.start_s[run_id] = attempt
        self._write(run_id, tracking, only_if=lambda t: not t.mlflow_run_id)
        return True

    def _finish(self, run_id: str) -> bool:
        attempt = self._attempt(run_id, "finish")
        if attempt is None:
            return False
        tracking, seconds = attempt
        self._write(run_id, tracking, only_if=lambda t: True, seconds=self.start_s.pop(run_id, 0.0) + seconds)
        self.checked.pop(run_id, None)
        return True

    def _attempt(self, run_id: str, stage: str) -> tuple[Tracking, float] | None:
        """Start or finish the run's MLflow run: (its tracking, seconds taken); None when not ours or gone."""
        job, record = self._job(run_id), self._record(run_id)
        if job is None or record is None:
            return None
        began = time.perf_counter()
        try:
            if stage == "start":
                tracking = self.tracker.start(record, job)
            else:
                logged = frozenset(self.logged.pop(run_id, ()))
                tracking = self.tracker.finish(record, job, record.tracking, logged=logged)
        except Exception as exc:  # MLflow down, bad URI, disk full: the record says why
            tracking = _failed(exc, job.get("tracking_uri"))
        return tracking, time.perf_counter() - began

    def _write(self, run_id: str, tracking: Tracking, *, only_if: Any, seconds: float | None = None) -> None:
        """Write the tracking part of the record, if it is still pending (and ``only_if`` holds)."""

        def change(record: RunRecord) -> bool:
            if record.tracking.status is not TrackingStatus.PENDING or not only_if(record.tracking):
                return False  # someone settled it meanwhile: nothing to write
            record.tracking = tracking
            if tracking.mlflow_url:
                record.links["mlflow"] = tracking.mlflow_url
            if seconds is not None:
                record.timings["tracking_background_s"] = round(seconds, 3)  # not in the wall time
            return True

        self.store.update_run(run_id, change)
        if tracking.status is TrackingStatus.FAILED:
            print(f"cellpipe: MLflow tracking of run {run_id} failed: {tracking.error}", flush=True)


def _failed(exc: BaseException, uri: str | None = None) -> Tracking:
    """Tracking failed, saying why; a user and password written into the tracking URI are not repeated."""
    from jupyter_ext.tracking.mlflow import shown_uri

    error = f"{type(exc).__name__}: {exc}"
    shown = shown_uri(uri) if uri else None
    if uri and shown != uri:
        secret = uri.split("//", 1)[-1].rsplit("@", 1)[0]  # user:password
        error = error.replace(uri, shown).replace(secret, "***")
    return Tracking(status=TrackingStatus.FAILED, error=error, tracking_uri=shown)


def serve(data_dir: Path, idle_s: float, keep_for: dict[str, Any] | None = None) -> int:
    """The worker's life: take the lock (or leave it to the worker holding it), serve until idle."""
    lock_path = data_dir / WORKER_LOCK
    with yielding_to_runs():  # from before the lock on: a caller sees its pid, it yields already
        handle = _take(lock_path)
        if handle is None:
            return 0  # another worker serves this directory
        worker = Worker(data_dir)
        print(f"cellpipe: tracking worker {os.getpid()} serving {data_dir}", flush=True)
        began = time.perf_counter()
        worker.warm_up()
    _say_ready(handle)
    print(f"cellpipe: tracking worker {os.getpid()} ready in {time.perf_counter() - began:.1f}s", flush=True)
    last_work = time.monotonic()
    while worker.store.db_path.exists():  # a deleted data directory has nothing left to serve
        try:
            busy = worker.serve_once()
        except Exception as exc:  # the store busy past its timeout, a bug of ours: go on serving
            print(f"cellpipe: tracking worker: {type(exc).__name__}: {exc}", flush=True)
            busy = False
        if busy:
            last_work = time.monotonic()
        elif _may_leave(time.monotonic() - last_work, idle_s, keep_for):
            handle.close()  # first let go, then look once more: a run saved before a caller's lock
            if not has_work(worker.store):  # probe (which saw us still holding it) is seen here
                break
            handle = _take(lock_path)
            if handle is None:
                break  # a new worker took over
            _say_ready(handle)
            last_work = time.monotonic()
        time.sleep(POLL_S)
    worker.store.close()
    return 0


def _may_leave(idle_for: float, idle_s: float, keep_for: dict[str, Any] | None) -> bool:
    """Idle long enough to exit. A worker kept for a Jupyter server stays while that server lives and leaves
    as soon as it is idle once the server is gone (a culled or stopped server leaves nothing running)."""
    alive = owner_alive(keep_for) if keep_for else None
    if alive is None:  # nobody to stay for (or on another host, out of sight): the idle time decides
        return idle_for >= idle_s
    return not alive


def _say_ready(handle: IO[bytes]) -> None:
    handle.write(f"{READY}\n".encode())
    handle.flush()


def _take(path: Path) -> IO[bytes] | None:
    """Take the worker lock for good (None when another worker holds it) and write our pid into it. A
    caller's probe holds the lock for microseconds: a few tries tell it from a worker holding it."""
    handle = open_private(path, "ab")
    for attempt in range(5):
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if attempt == 4:
                handle.close()
                return None
            time.sleep(0.02)
    os.truncate(path, 0)
    handle.write(f"{os.getpid()}\n".encode())
    handle.flush()
    return handle


def main(argv: list[str] | None = None) -> int:
    from jupyter_ext.startup import defer_iri_grammars

    defer_iri_grammars()
    (data_dir,) = argv if argv is not None else sys.argv[1:]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # its own session already; a stray Ctrl-C must not lose work
    with contextlib.suppress(OSError):
        os.nice(SERVING_NICE)  # the runs it serves come first on a busy machine
    for name, value in (("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2"), ("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")):
        os.environ.setdefault(
            name, value
        )  # an unreachable server fails a run's tracking in seconds, not minutes
    keep_for = None
    with contextlib.suppress(ValueError):
        keep_for = json.loads(os.environ.get(KEEP_FOR_ENV) or "null")
    return serve(Path(data_dir), idle_seconds(), keep_for)


if __name__ == "__main__":
    sys.exit(main())
