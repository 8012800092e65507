"""The part of a snapshot that waits for the disk, when it finishes after ``take_snapshot`` returned.

``take_snapshot(..., durable="background")`` returns once every file is read, hashed and copied into the
store's temporary files and the id is known: the data is captured (later edits cannot change it). The
fsyncs, the naming of the new objects and the manifest then complete on a thread, while a local run's
first step starts. Until then the snapshot does not exist in the store (no manifest), so:

- whoever needs it to exist waits first: :meth:`Snapshot.wait_durable`, and every lookup of a snapshot id
  in this process (``SnapshotStore.resolve``: restore, rerun, verify, show) waits for a pending snapshot
  of that store that the id could name;
- the thread is not a daemon: the interpreter's exit (a ``cellpipe run`` ending, Ctrl-C, a server
  stopping) waits for it. A process killed meanwhile leaves no manifest, only objects that no snapshot
  names (each fsynced before it was named) and, where the filesystem has no anonymous files, temporary
  files of a dead writer: ``cellpipe gc`` and the next snapshot's clean-up remove them.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable

THREAD_NAME = "cellpipe-snapshot-durable"
# How much nicer the background part's threads are than the process: on a busy machine the run's own
# work (its kernels start meanwhile) gets the cores first; the syncs still progress (nice 10 weighs ~1/9).
BACKGROUND_NICENESS = 10

_lock = threading.Lock()
_pending: dict[str, list[Durability]] = {}  # store identity -> snapshots still being made durable there


class Durability:
    """Whether one snapshot's manifest is written yet; its first failure, if any."""

    def __init__(self, snapshot_id: str, store: str) -> None:
        self.snapshot_id = snapshot_id
        self.store = store  # the store's identity (its directory, or its URL)
        self._finished = threading.Event()
        self.error: BaseException | None = None

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    def start(self, work: Callable[[], None]) -> None:
        """Run ``work`` (which ends with :meth:`done` or :meth:`fail`) on a thread the exit waits for."""
        with _lock:
            _pending.setdefault(self.store, []).append(self)

        def run() -> None:
            lower_priority()
            work()

        threading.Thread(target=run, name=THREAD_NAME, daemon=False).start()

    def done(self) -> None:
        self._finish(None)

    def fail(self, error: BaseException) -> None:
        self._finish(error)

    def _finish(self, error: BaseException | None) -> None:
        self.error = error
        with _lock:
            waiting = _pending.get(self.store, [])
            if self in waiting:
                waiting.remove(self)
            if not waiting:
                _pending.pop(self.store, None)
        self._finished.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Whether it finished (successfully or not) within ``timeout`` seconds (None: no limit)."""
        return self._finished.wait(timeout)


def wait_for(store: str, id_prefix: str) -> None:
    """Wait for the pending snapshots of ``store`` whose id starts with ``id_prefix`` (any outcome)."""
    prefix = id_prefix.strip().lower()
    with _lock:
        waiting = [item for item in _pending.get(store, []) if item.snapshot_id.startswith(prefix)]
    for item in waiting:
        item.wait()


def pending_count() -> int:
    """How many snapshots this process is still making durable."""
    with _lock:
        return sum(len(items) for items in _pending.values())


def wait_all(timeout: float | None = None) -> bool:
    """Wait for every pending snapshot of this process; whether all finished within ``timeout``."""
    with _lock:
        waiting = [item for items in _pending.values() for item in items]
    return all(item.wait(timeout) for item in waiting)


def lower_priority() -> None:
    """Make the calling thread BACKGROUND_NICENESS nicer than the process's main thread (at most 19):
    Linux schedules threads one by one, so the rest of the process keeps its priority (a thread starts
    with its creator's, hence relative to the main thread's). Elsewhere, or where refused, nothing changes."""
    with contextlib.suppress(AttributeError, OSError):
        thread = threading.get_native_id()
        target = min(19, os.getpriority(os.PRIO_PROCESS, os.getpid()) + BACKGROUND_NICENESS)
        if os.getpriority(os.PRIO_PROCESS, thread) < target:
            os.setpriority(os.PRIO_PROCESS, thread, target)
