"""The record store: runs, schedules and schedule fire leases in ``<data dir>/cellpipe.db`` (SQLite through
SQLAlchemy), with each run's files (executed step notebooks, kernel logs) beside it in ``runs/<id>/``.

- One row per run: the columns that are filtered and sorted on (notebook, status, target, schedule, created)
  plus the whole record as JSON. Listing 50 of 10,000 runs is an index walk, not a directory scan.
- The schema is versioned (``PRAGMA user_version``); :data:`MIGRATIONS` take any older database to the
  current version in order, inside one transaction. Run records of cellpipe versions that kept one
  ``runs/<id>/record.json`` per run are imported once, on first open.
- A run still queued or running whose owner process is gone (see :mod:`.owner`; PID reuse does not fool it)
  is marked crashed when it is read, so nothing shows "running" forever. A cluster run (its record holds
  the Job / KFP run's ``handle``) is not: the cluster owns it, the run service asks the cluster instead.
- Any process may ask for a run to be cancelled (:meth:`RecordStore.request_cancel`): the request is a row of
  ``cancel_requests`` (who asked and when), which the process running the run polls for all its runs in one
  primary-key query (:meth:`RecordStore.cancel_requests`). It is a table of its own, not a field the requester
  writes into the record, because the owner rewrites the whole record as the run progresses; reads show it
  as the record's ``cancel_requested``.
- Private by default: the data directory is 0700, the database and run files 0600.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from jupyter_ext.errors import CellpipeError
from jupyter_ext.records.models import (
    ACTIVE_RUN_STATES,
    RunRecord,
    RunStatus,
    ScheduleRecord,
    StepStatus,
    Tracking,
)
from jupyter_ext.records.owner import owner_alive
from jupyter_ext.util import private_dir

DB_FILE = "cellpipe.db"
RUNS_DIR = "runs"
LEGACY_RECORD = "record.json"
SCHEMA_VERSION = 6
LATEST = "latest"

log = logging.getLogger(__name__)
_Record = TypeVar("_Record", RunRecord, ScheduleRecord)


class StoredRun(NamedTuple):
    """One run as stored: its JSON text changes whenever the record does (the key of what readers cache)."""

    id: str
    status: str
    data: str

    @property
    def is_final(self) -> bool:
        return self.status not in _ACTIVE_VALUES

    def record(self) -> RunRecord:
        return RunRecord.from_dict(json.loads(self.data))

    @classmethod
    def of(cls, record: RunRecord) -> StoredRun:
        """A record as it would be stored (for a run read differently from its row: refreshed, completed)."""
        return cls(record.id, record.status.value, json.dumps(record.to_dict(), default=str))


_ACTIVE_VALUES = frozenset(s.value for s in ACTIVE_RUN_STATES)

# Runs as stored, each with its cancel request if any: the owner's own saves of a record do not carry a
# request it has not noticed yet, and a run may end before its owner notices (or be stopped on its cluster
# from elsewhere); either way readers see who asked. One primary-key lookup per row, in the same query.
_SELECT_STORED = (
    "SELECT runs.id, runs.status, runs.data, cancel.requested, cancel.requested_by FROM runs"
    " LEFT JOIN cancel_requests AS cancel ON cancel.run_id = runs.id"
)


def _stored(row: Any) -> StoredRun:
    """A row of :data:`_SELECT_STORED`; its text includes the cancel request the record does not carry."""
    run = StoredRun(row[0], row[1], row[2])
    if row[3] is None:
        return run
    record = run.record()
    if record.cancel_requested is not None:
        return run
    record.cancel_requested = {"at": row[3], "by": row[4]}
    return StoredRun.of(record)


def _json_object(text: str | None) -> dict[str, Any] | None:
    """A JSON object stored in a record (``json_extract`` gives objects as text), or None."""
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _v1(conn: Any) -> None:
    """The first schema: runs only."""
    _ddl(conn, """
        CREATE TABLE runs (
            id TEXT PRIMARY KEY, notebook TEXT NOT NULL, status TEXT NOT NULL, target TEXT NOT NULL,
            created REAL NOT NULL, finished REAL, data TEXT NOT NULL)
        """, "CREATE INDEX runs_created ON runs (created)", "CREATE INDEX runs_notebook ON runs (notebook, created)",
    )  # fmt: skip


def _v2(conn: Any) -> None:
    """Runs know their source and schedule; schedules and their fire leases get tables."""
    _ddl(conn, "ALTER TABLE runs ADD COLUMN source TEXT NOT NULL DEFAULT 'cli'",
         "ALTER TABLE runs ADD COLUMN schedule_id TEXT",
         "CREATE INDEX runs_status ON runs (status, created)",
         "CREATE INDEX runs_schedule ON runs (schedule_id, created)",
         """CREATE TABLE schedules (
            id TEXT PRIMARY KEY, notebook TEXT NOT NULL, enabled INTEGER NOT NULL, target TEXT NOT NULL,
            created REAL NOT NULL, updated REAL NOT NULL, data TEXT NOT NULL)""",
         # one row per (schedule, fire time): whoever inserts it fires that time, nobody else
         """CREATE TABLE fire_leases (
            schedule_id TEXT NOT NULL, fire_time REAL NOT NULL, owner TEXT NOT NULL, acquired REAL NOT NULL,
            heartbeat REAL NOT NULL, run_id TEXT, PRIMARY KEY (schedule_id, fire_time))""",
    )  # fmt: skip


def _v3(conn: Any) -> None:
    """Indexes that match the listing order (newest first, id breaking ties) and cover the id: a page of
    runs is found in the index alone, and only its own rows' JSON is read."""
    _ddl(conn, "DROP INDEX runs_created", "DROP INDEX runs_notebook", "DROP INDEX runs_status",
         "DROP INDEX runs_schedule",
         "CREATE INDEX runs_by_time ON runs (created, id)",
         "CREATE INDEX runs_by_notebook ON runs (notebook, created, id)",
         "CREATE INDEX runs_by_status ON runs (status, created, id)",
         "CREATE INDEX runs_by_target ON runs (target, created, id)",
         "CREATE INDEX runs_by_schedule ON runs (schedule_id, created, id)",
    )  # fmt: skip


def _v4(conn: Any) -> None:
    """Cancel requests any process can make, for the process that runs the run to notice."""
    _ddl(
        conn,
        """CREATE TABLE cancel_requests (
            run_id TEXT PRIMARY KEY, requested REAL NOT NULL, requested_by TEXT NOT NULL)""",
    )


def _v5(conn: Any) -> None:
    """The tracking status as a column, with a partial index of the pending ones: the tracking worker polls
    for its work several times a second, and that must stay an index lookup with 10,000 stored runs."""
    _ddl(conn, "ALTER TABLE runs ADD COLUMN tracking TEXT NOT NULL DEFAULT 'off'",
         "UPDATE runs SET tracking = coalesce(json_extract(data, '$.tracking.status'), 'off')",
         "CREATE INDEX runs_tracking_pending ON runs (created) WHERE tracking = 'pending'",
    )  # fmt: skip


def _v6(conn: Any) -> None:
    """One notebook's runs of one status (the runs view's filter): counted and paged in the index alone.
    Without it SQLite walks every run of that status and reads each row for its notebook (5 ms of 10,000)."""
    _ddl(conn, "CREATE INDEX runs_by_notebook_status ON runs (notebook, status, created, id)")


# MIGRATIONS[n] takes a database at version n-1 to version n.
MIGRATIONS: dict[int, Callable[[Any], None]] = {1: _v1, 2: _v2, 3: _v3, 4: _v4, 5: _v5, 6: _v6}

# What the tracking worker writes into a run's record (jupyter_ext.tracking.background); a save with
# ``keep_tracking`` takes these from the stored row, so the service and the worker never undo each other.
TRACKING_KEYS = ("$.tracking", "$.links.mlflow", "$.timings.tracking_background_s")


def _ddl(conn: Any, *statements: str) -> None:
    from sqlalchemy import text

    for statement in statements:
        conn.execute(text(statement))


class RecordStore:
    def __init__(self, data_dir: str | Path) -> None:
        from sqlalchemy import create_engine, event

        self.data_dir = Path(data_dir)
        private_dir(self.data_dir)
        self.db_path = self.data_dir / DB_FILE
        if not self.db_path.exists():  # created private; SQLite gives its -wal/-shm files the same mode
            os.close(os.open(self.db_path, os.O_CREAT | os.O_WRONLY, 0o600))
        self.engine = create_engine(f"sqlite:///{self.db_path}", connect_args={"timeout": 30})

        @event.listens_for(self.engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # transactions are ours (BEGIN IMMEDIATE below)
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
            cursor.execute("PRAGMA synchronous=FULL")  # a committed final state survives a power cut
            cursor.close()

        self._migrate()

    # -- schema --------------------------------------------------------------------------------------
    def schema_version(self) -> int:
        with self._read() as conn:
            return int(conn.exec_driver_sql("PRAGMA user_version").scalar())

    def _migrate(self) -> None:
        with self._write() as conn:
            version = int(conn.exec_driver_sql("PRAGMA user_version").scalar())
            if version > SCHEMA_VERSION:
                raise CellpipeError(
                    f"the run store {self.db_path} was written by a newer cellpipe (schema {version})",
                    hint="upgrade cellpipe, or point CELLPIPE_HOME at another directory",
                )
            for step in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[step](conn)
            if version < SCHEMA_VERSION:
                conn.exec_driver_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")
            if version == 0:
                self._import_legacy(conn)

    def _import_legacy(self, conn: Any) -> None:
        """Runs recorded as ``runs/<id>/record.json`` by earlier versions become rows (the files stay)."""
        from jupyter_ext.records.legacy import legacy_record

        runs = self.data_dir / RUNS_DIR
        for path in sorted(runs.glob(f"*/{LEGACY_RECORD}")) if runs.is_dir() else []:
            try:
                record = legacy_record(json.loads(path.read_text()))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("cellpipe: not importing the run record %s: %s", path, exc)
                continue
            self._upsert(conn, record)

    # -- runs ----------------------------------------------------------------------------------------
    def run_dir(self, run_id: str) -> Path:
        return self.data_dir / RUNS_DIR / run_id

    def save_run(self, record: RunRecord, *, keep_tracking: bool = False, durable: bool = True) -> None:
        """Insert or replace the whole record (atomic: readers see the old row or the new one).

        ``keep_tracking``: the tracking worker owns the record's tracking (its MLflow ids and status, the
        MLflow link): they are taken from the stored row, in the same transaction, into ``record`` and the
        row, so a save by the run service never undoes what the worker wrote meanwhile.

        ``durable=False`` (a step's progress): committed without waiting for the disk (``synchronous=NORMAL``;
        in WAL mode it survives the process ending, not a power cut), about 0.3 ms instead of an fsync's
        2-10 ms on the runner's event loop. Status changes of the run itself stay fully synchronous."""
        with self._write(durable=durable) as conn:
            if keep_tracking:
                self._keep_tracking(conn, record)
            self._upsert(conn, record)

    def _keep_tracking(self, conn: Any, record: RunRecord) -> None:
        row = conn.exec_driver_sql(
            "SELECT "
            + ", ".join(f"json_extract(data, '{key}')" for key in TRACKING_KEYS)
            + " FROM runs WHERE id = ?",
            (record.id,),
        ).first()
        if row is None:
            return
        tracking, link, seconds = row
        if tracking is not None:
            record.tracking = Tracking.from_dict(json.loads(tracking))
        if link is not None:
            record.links["mlflow"] = link
        if seconds is not None:
            record.timings["tracking_background_s"] = seconds

    def _upsert(self, conn: Any, record: RunRecord) -> None:
        conn.exec_driver_sql(
            "INSERT OR REPLACE INTO runs (id, notebook, status, target, created, finished, source, schedule_id,"
            " tracking, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (record.id, record.notebook, record.status.value, record.target, record.created, record.finished,
             record.source, record.schedule_id, record.tracking.status.value,
             json.dumps(record.to_dict(), default=str)),
        )  # fmt: skip

    def update_run(self, run_id: str, change: Callable[[RunRecord], bool | None]) -> RunRecord | None:
        """Read, ``change`` and write one run in a single write transaction (a concurrent writer cannot slip
        in between); a deleted run stays deleted. ``change`` returning False writes nothing. Returns the
        record as it is now, or None when there is none."""
        return self._change_row("runs", run_id, RunRecord.from_dict, change, self._upsert)

    def _change_row(
        self, table: str, key: str, load: Callable[[dict], _Record], change: Callable[[_Record], bool | None],
        put: Callable[[Any, _Record], None],
    ) -> _Record | None:  # fmt: skip
        """Read, change, write one row of ``table`` (:meth:`update_run`, :meth:`change_schedule`)."""
        with self._write() as conn:
            row = conn.exec_driver_sql(f"SELECT data FROM {table} WHERE id = ?", (key,)).first()
            if row is None:
                return None
            record = load(json.loads(row[0]))
            if change(record) is not False:
                put(conn, record)
        return record

    def pending_tracking(self, *, since: float) -> list[tuple[str, RunStatus, str | None]]:
        """Runs created after ``since`` whose MLflow tracking is pending, oldest first, as (id, status,
        MLflow run id or None): an index lookup (``runs_tracking_pending``) whatever the number of runs."""
        with self._read() as conn:
            rows = conn.exec_driver_sql(
                "SELECT id, status, json_extract(data, '$.tracking.mlflow_run_id') FROM runs"
                " WHERE tracking = 'pending' AND created >= ? ORDER BY created",
                (since,),
            ).all()
        return [(r[0], RunStatus(r[1]), r[2]) for r in rows]

    def tracking_of(self, run_id: str) -> Tracking | None:
        """The run's tracking as stored now (None for no such run), without reading the whole record."""
        with self._read() as conn:
            row = conn.exec_driver_sql(
                "SELECT json_extract(data, '$.tracking') FROM runs WHERE id = ?", (run_id,)
            ).first()
        return None if row is None else Tracking.from_dict(json.loads(row[0] or "{}"))

    def resolve_run_id(self, text: str) -> str:
        """A full id, ``latest``, or a unique prefix (or unique suffix of 4+ characters) -> the full id."""
        text = (text or "").strip()
        with self._read() as conn:
            if text == LATEST:
                row = conn.exec_driver_sql(
                    "SELECT id FROM runs ORDER BY created DESC, id DESC LIMIT 1"
                ).first()
                if row is None:
                    raise CellpipeError(
                        f"no runs in {self.data_dir}", hint="start one with `cellpipe run NOTEBOOK`"
                    )
                return row[0]
            matches = [r[0] for r in conn.exec_driver_sql(
                "SELECT id FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT 6", (text, text + "\uffff"))]  # fmt: skip
            if not matches and len(text) >= 4:
                pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                matches = [r[0] for r in conn.exec_driver_sql(
                    "SELECT id FROM runs WHERE id LIKE ? ESCAPE '\\' LIMIT 6", (pattern,))]  # fmt: skip
        if text in matches:
            return text
        if not matches or not text:
            raise CellpipeError(f"no run '{text}' in {self.data_dir}", hint="list runs with `cellpipe runs`")
        if len(matches) > 1:
            raise CellpipeError(
                f"run id '{text}' is ambiguous: {', '.join(matches[:5])}", hint="give more characters"
            )
        return matches[0]

    def get_run(self, run_id: str) -> RunRecord:
        full = self.resolve_run_id(run_id)
        with self._read() as conn:
            row = conn.exec_driver_sql(f"{_SELECT_STORED} WHERE runs.id = ?", (full,)).first()
        if row is None:
            raise CellpipeError(
                f"no run '{run_id}' in {self.data_dir}", hint="list runs with `cellpipe runs`"
            )
        return self._check_alive(_stored(row).record())

    def list_runs(
        self, *, notebook: str | None = None, status: str | None = None, target: str | None = None,
        schedule_id: str | None = None, since: float | None = None, limit: int = 50, offset: int = 0,
    ) -> tuple[list[RunRecord], int]:  # fmt: skip
        """Newest first, with the total count of matching runs (for paging)."""
        rows, total = self.list_stored_runs(
            notebook=notebook, status=status, target=target, schedule_id=schedule_id, since=since,
            limit=limit, offset=offset,
        )  # fmt: skip
        return [row.record() for row in rows], total

    def list_stored_runs(
        self, *, notebook: str | None = None, status: str | None = None, target: str | None = None,
        schedule_id: str | None = None, since: float | None = None, limit: int = 50, offset: int = 0,
    ) -> tuple[list[StoredRun], int]:  # fmt: skip
        """:meth:`list_runs` as stored, without building records: for readers that only pass them on (the
        server caches what it sends per stored text, so a page of unchanged runs costs no conversion)."""
        self.recover_crashed()
        where, args = [], []
        for column, value in (("notebook", notebook), ("status", status), ("target", target),
                              ("schedule_id", schedule_id)):  # fmt: skip
            if value is not None:
                where.append(f"{column} = ?")
                args.append(str(value))
        if since is not None:
            where.append("created >= ?")
            args.append(since)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        order = "ORDER BY created DESC, id DESC"
        with self._read() as conn:
            total = conn.exec_driver_sql(f"SELECT count(*) FROM runs{clause}", tuple(args)).scalar()
            # the page's ids from the index alone, then only those rows' JSON
            rows = conn.exec_driver_sql(
                f"{_SELECT_STORED} WHERE runs.rowid IN (SELECT rowid FROM runs{clause} {order} LIMIT ? OFFSET ?)"
                " ORDER BY runs.created DESC, runs.id DESC",
                (*args, max(0, int(limit)), max(0, int(offset))),
            ).all()
        return [_stored(row) for row in rows], int(total)

    def all_run_ids(self) -> list[str]:
        with self._read() as conn:
            return [r[0] for r in conn.exec_driver_sql("SELECT id FROM runs ORDER BY id")]

    def delete_run(self, run_id: str) -> None:
        import shutil

        with self._write() as conn:
            conn.exec_driver_sql("DELETE FROM runs WHERE id = ?", (run_id,))
            conn.exec_driver_sql("DELETE FROM cancel_requests WHERE run_id = ?", (run_id,))
        shutil.rmtree(self.run_dir(run_id), ignore_errors=True)

    def recover_crashed(self) -> list[str]:
        """Mark every active run whose owner is gone as crashed; returns their ids.

        Every list calls this, so it reads only the active runs' owners (not their records) and asks once per
        distinct owner (usually one: the server) whether it lives; only a run found orphaned is read whole.
        Cluster runs (with a handle) are the cluster's: never crashed here."""
        marks = ",".join("?" * len(ACTIVE_RUN_STATES))
        with self._read() as conn:
            rows = conn.exec_driver_sql(
                f"SELECT id, json_extract(data, '$.owner'), json_extract(data, '$.handle') FROM runs"
                f" WHERE status IN ({marks})",
                tuple(s.value for s in ACTIVE_RUN_STATES),
            ).all()
        alive: dict[str | None, bool | None] = {}
        crashed = []
        for run_id, owner, handle in rows:
            if _json_object(handle):
                continue
            if owner not in alive:
                alive[owner] = owner_alive(_json_object(owner))
            if alive[owner] is not False:
                continue
            with self._read() as conn:
                row = conn.exec_driver_sql("SELECT data FROM runs WHERE id = ?", (run_id,)).first()
            if (
                row is not None
                and self._check_alive(RunRecord.from_dict(json.loads(row[0]))).status is RunStatus.CRASHED
            ):
                crashed.append(run_id)
        return crashed

    def _check_alive(self, record: RunRecord) -> RunRecord:
        if record.status.is_final or record.on_cluster or owner_alive(record.owner) is not False:
            return record
        record.status = RunStatus.CRASHED
        record.finished = record.finished or time.time()
        record.error = record.error or {"message": "the process running it stopped before the run finished"}
        for step in record.steps:
            if step.status is StepStatus.RUNNING:
                step.status = StepStatus.CRASHED
            elif step.status is StepStatus.PENDING:
                step.status = StepStatus.NOT_RUN
        with self._write() as conn:  # only if nobody finished it meanwhile
            current = conn.exec_driver_sql("SELECT status FROM runs WHERE id = ?", (record.id,)).scalar()
            if current in _ACTIVE_VALUES:
                self._keep_tracking(conn, record)  # the tracking worker's latest word
                self._upsert(conn, record)
        return record

    # -- cancel requests -----------------------------------------------------------------------------
    def request_cancel(self, run_id: str, by: str) -> RunRecord | None:
        """Ask whoever runs ``run_id`` to cancel it. The first request of a run is kept (a second one does not
        change who asked or when). Returns the record as it is now, with ``cancel_requested`` set when the run
        is still active; a final run gets no request; None when there is no such run."""
        query = f"{_SELECT_STORED} WHERE runs.id = ?"
        with self._write() as conn:
            row = conn.exec_driver_sql(query, (run_id,)).first()
            if row is None:
                return None
            if _stored(row).is_final:
                return _stored(row).record()
            conn.exec_driver_sql(
                "INSERT OR IGNORE INTO cancel_requests (run_id, requested, requested_by) VALUES (?, ?, ?)",
                (run_id, time.time(), by),
            )
            return _stored(conn.exec_driver_sql(query, (run_id,)).first()).record()

    def cancel_requests(self, run_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The cancel requests of these runs (one primary-key query): run id -> ``{"at": epoch, "by": who}``."""
        ids = list(run_ids)
        if not ids:
            return {}
        with self._read() as conn:
            rows = conn.exec_driver_sql(
                "SELECT run_id, requested, requested_by FROM cancel_requests"
                f" WHERE run_id IN ({','.join('?' * len(ids))})",
                tuple(ids),
            ).all()
        return {r[0]: {"at": r[1], "by": r[2]} for r in rows}

    # -- schedules (the schedule service owns the logic) ---------------------------------------------
    def save_schedule(self, schedule: ScheduleRecord) -> None:
        with self._write() as conn:
            self._put_schedule(conn, schedule)

    def change_schedule(
        self, schedule_id: str, change: Callable[[ScheduleRecord], bool | None]
    ) -> ScheduleRecord | None:
        """Read one schedule, ``change(schedule)`` it and write it back in one write transaction, so two
        processes changing it at once (a scheduler recording a fire, a user pausing) lose neither change.
        ``change`` returning False writes nothing. Returns the schedule as it is now (None if deleted)."""
        return self._change_row(
            "schedules", schedule_id, ScheduleRecord.from_dict, change, self._put_schedule
        )

    def _put_schedule(self, conn: Any, schedule: ScheduleRecord) -> None:
        conn.exec_driver_sql(
            "INSERT OR REPLACE INTO schedules (id, notebook, enabled, target, created, updated, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (schedule.id, schedule.notebook, int(schedule.enabled), schedule.target, schedule.created,
             schedule.updated, json.dumps(schedule.to_dict(), default=str)),
        )  # fmt: skip

    def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        with self._read() as conn:
            row = conn.exec_driver_sql("SELECT data FROM schedules WHERE id = ?", (schedule_id,)).first()
        return None if row is None else ScheduleRecord.from_dict(json.loads(row[0]))

    def list_schedules(self, *, notebook: str | None = None) -> list[ScheduleRecord]:
        query, args = "SELECT data FROM schedules", ()
        if notebook is not None:
            query, args = query + " WHERE notebook = ?", (notebook,)
        with self._read() as conn:
            rows = conn.exec_driver_sql(query + " ORDER BY created DESC, id DESC", args).all()
        return [ScheduleRecord.from_dict(json.loads(r[0])) for r in rows]

    def delete_schedule(self, schedule_id: str) -> None:
        with self._write() as conn:
            conn.exec_driver_sql("DELETE FROM schedules WHERE id = ?", (schedule_id,))
            conn.exec_driver_sql("DELETE FROM fire_leases WHERE schedule_id = ?", (schedule_id,))

    def acquire_fire_lease(self, schedule_id: str, fire_time: float, owner: str) -> bool:
        """True for exactly one caller per (schedule, fire time), across processes sharing this store."""
        now = time.time()
        with self._write() as conn:
            inserted = conn.exec_driver_sql(
                "INSERT OR IGNORE INTO fire_leases (schedule_id, fire_time, owner, acquired, heartbeat)"
                " VALUES (?, ?, ?, ?, ?)",
                (schedule_id, fire_time, owner, now, now),
            ).rowcount
        return inserted == 1

    def prune_fire_leases(self, before: float) -> int:
        """Forget the leases of fire times before ``before`` (long handled: no scheduler looks at them again);
        returns how many. Keeps the lease table at a few days of fires instead of growing for ever."""
        with self._write() as conn:
            return conn.exec_driver_sql("DELETE FROM fire_leases WHERE fire_time < ?", (before,)).rowcount

    # -- transactions --------------------------------------------------------------------------------
    @contextmanager
    def _write(self, *, durable: bool = True) -> Iterator[Any]:
        """One write transaction, taken at once (BEGIN IMMEDIATE) so two writers never deadlock."""
        with self.engine.connect() as conn:
            if not durable:
                conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.exec_driver_sql("ROLLBACK")
                    raise
                conn.exec_driver_sql("COMMIT")
            finally:
                if not durable:  # the connection goes back to the pool as every other one is
                    conn.exec_driver_sql("PRAGMA synchronous=FULL")

    @contextmanager
    def _read(self) -> Iterator[Any]:
        with self.engine.connect() as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()
