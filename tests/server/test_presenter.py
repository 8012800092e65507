"""What GET runs sends: the same bytes as encoding the whole page at once, and a cache of final runs that
never serves a run as it was before a change (tracking finishing, a refresh, any write through the store)."""

from __future__ import annotations

import json
import os
import socket

import pytest

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
from jupyter_ext.server.paths import ServerPaths
from jupyter_ext.server.presenter import RunPresenter


@pytest.fixture
def paths(tmp_path) -> ServerPaths:
    (tmp_path / "root").mkdir()
    return ServerPaths(root=tmp_path / "root", data_dir=tmp_path / "root" / ".cellpipe")


@pytest.fixture
def store(paths) -> RecordStore:
    return RecordStore(paths.data_dir)


def record(paths: ServerPaths, run_id: str, created: float, **kwargs) -> RunRecord:
    """A run that names the server's paths and host everywhere a real one does."""
    step_notebook = str(paths.data_dir / "runs" / run_id / "steps" / "a.ipynb")
    error = {"message": f"failed reading {paths.root}/data.csv on {socket.gethostname()}", "pid": 4}
    return RunRecord(
        id=run_id, notebook=str(paths.root / "sub" / "a.ipynb"), created=created,
        parameters={"path": str(paths.root / "kept.csv")},  # the user's own value: sent as it is
        steps=[StepRecord(name="a", status=StepStatus.FAILED, notebook=step_notebook, error=error),
               StepRecord(name="b", status=StepStatus.NOT_RUN)],
        owner=current_owner(), extra={"workdir": str(paths.root), "home": os.path.expanduser("~/x")}, **kwargs,
    )  # fmt: skip


def whole_page(paths: ServerPaths, presenter: RunPresenter, records: list[RunRecord], total: int) -> str:
    """How the handler encoded a page before the cache: the typed records, presented, redacted, encoded."""
    return json.dumps(
        paths.public({"runs": [presenter.present(r) for r in records], "total": total}), default=str
    )


def test_a_page_is_byte_for_byte_the_page_encoded_whole(paths, store):
    store.save_run(record(paths, "r1", 1, status=RunStatus.FAILED))
    store.save_run(record(paths, "r2", 2, status=RunStatus.RUNNING))  # active: its owner (we) lives
    store.save_run(record(paths, "r3", 3, status=RunStatus.SUCCEEDED))
    presenter = RunPresenter(paths)
    stored, total = store.list_stored_runs()
    expected = whole_page(paths, presenter, store.list_runs()[0], total)
    assert presenter.page_json(stored, total) == expected  # built
    assert presenter.page_json(*store.list_stored_runs()) == expected  # from the cache
    assert presenter.hits == 2  # the two final runs; the running one is built every time
    page = json.loads(expected)
    assert [r["id"] for r in page["runs"]] == ["r3", "r2", "r1"] and page["total"] == 3
    assert page["runs"][0]["notebook"] == "sub/a.ipynb"
    assert page["runs"][0]["steps"][0]["notebook"] == "runs/r3/steps/a/notebook"
    assert page["runs"][0]["parameters"] == {"path": str(paths.root / "kept.csv")}
    sent = json.dumps([{k: v for k, v in r.items() if k != "parameters"} for r in page["runs"]])
    assert str(paths.root) not in sent and '"pid"' not in sent
    assert socket.gethostname() not in sent or len(socket.gethostname()) <= 2  # short names are not hidden
    assert presenter.page_json([], 0) == json.dumps({"runs": [], "total": 0})


def test_a_changed_final_run_is_never_served_as_it_was(paths, store):
    store.save_run(
        record(paths, "r1", 1, status=RunStatus.SUCCEEDED, tracking=Tracking(TrackingStatus.PENDING))
    )
    presenter = RunPresenter(paths)

    def served() -> dict:
        return json.loads(presenter.page_json(*store.list_stored_runs()))["runs"][0]

    assert served()["tracking"]["status"] == "pending"
    assert served()["tracking"]["status"] == "pending" and presenter.hits == 1

    def tracked(run: RunRecord) -> None:  # what the background tracking process writes, final to final
        run.tracking = Tracking(TrackingStatus.OK, mlflow_run_id="abc")
        run.links["mlflow"] = "http://mlflow/abc"

    other_process = RecordStore(paths.data_dir)  # another connection, as the tracking worker has
    other_process.update_run("r1", tracked)
    assert served()["tracking"] == {**served()["tracking"], "status": "ok", "mlflow_run_id": "abc"}
    assert served()["links"] == {"mlflow": "http://mlflow/abc"}
    refreshed = other_process.get_run("r1")  # a whole record saved again: a cluster refresh
    refreshed.status, refreshed.error = RunStatus.FAILED, {"message": "the pod was evicted"}
    other_process.save_run(refreshed)
    assert served()["status"] == "failed" and served()["error"] == {"message": "the pod was evicted"}
    assert served() == json.loads(whole_page(paths, presenter, store.list_runs()[0], 1))["runs"][0]


def test_the_cache_stays_within_its_bound(paths, store):
    for i in range(40):
        store.save_run(record(paths, f"r{i:02d}", i, status=RunStatus.SUCCEEDED))
    one = len(store.list_stored_runs(limit=1)[0][0].data)
    presenter = RunPresenter(paths, cache_chars=12 * 2 * one)  # about ten runs
    for offset in range(0, 40, 5):
        presenter.page_json(*store.list_stored_runs(limit=5, offset=offset))
        assert presenter._chars <= presenter.cache_chars
    assert 5 <= len(presenter._cache) < 40
    newest = presenter.page_json(*store.list_stored_runs(limit=5, offset=35))  # the last page: still cached
    assert presenter.hits == 5 and newest == whole_page(
        paths, presenter, *store.list_runs(limit=5, offset=35)
    )
