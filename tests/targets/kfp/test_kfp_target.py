"""A run through the run service on the KFP target, against the loopback KFP server: compiled for the run's
snapshot, submitted, followed step by step into the record, cancelled by terminating the KFP run."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from jupyter_ext.records.models import RunStatus, StepStatus
from jupyter_ext.services.runs import RunRequest, RunService
from jupyter_ext.snapshot import SnapshotStore
from jupyter_ext.targets.kfp.options import KfpOptions
from jupyter_ext.targets.kfp.target import KfpTarget
from tests.support.waiting import eventually

if TYPE_CHECKING:
    from conftest import FakeKFP  # tests/targets/kfp/conftest.py

STORE = "fakes3://ml-bucket/cellpipe"
IMAGE = "ghcr.io/acme/cellpipe-runtime:1.0"
CELLS = [(["parameters"], "epochs = 3"), (["step:load"], "xs = list(range(epochs))"),
         (["step:train"], "total = sum(xs)")]  # fmt: skip


@pytest.fixture(autouse=True)
def isolated(fake_remote_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(KfpTarget, "poll_seconds", 0.0)


@pytest.fixture
def options(kfp_server: FakeKFP, tmp_path: Path) -> KfpOptions:
    token = tmp_path / "token"
    token.write_text("t0k\n")
    return KfpOptions(host=kfp_server.url, token_file=str(token), store=STORE, image=IMAGE)


def test_a_kfp_run_is_followed_into_the_record(
    kfp_server: FakeKFP, options: KfpOptions, write_notebook: Callable, data_dir: Path
) -> None:
    kfp_server.on_get["r-4"] = [  # ids are handed out in order: e-1, p-2, v-3, then the run
        lambda run: run.start().step("load", "Running"),
        lambda run: run.step("load", "Succeeded").step("train", "Running"),
        lambda run: run.step("train", "Succeeded").finish("Succeeded"),
    ]
    events: list[tuple[str, str]] = []
    record = RunService(data_dir).run(
        RunRequest(notebook=write_notebook(CELLS), target="kfp", target_options=options, parameters=["epochs=5"],
                   track=False),
        listener=lambda event, step, rec: events.append((event, [s.status.value for s in rec.steps])),
    )  # fmt: skip
    assert record.status is RunStatus.SUCCEEDED, record.to_dict()
    assert [(s.name, s.status) for s in record.steps] == [
        ("load", StepStatus.SUCCEEDED),
        ("train", StepStatus.SUCCEEDED),
    ]
    assert record.extra["kfp"]["run_id"] == "r-4" and record.links["kfp"].endswith("/#/runs/details/r-4")
    assert (record.snapshot_id,) == tuple(
        SnapshotStore.open(STORE).ids()
    )  # the snapshot went to the pods' store
    assert ("progress", ["running", "pending"]) in events and record.parameters == {"epochs": 5}
    run = next(r for r in kfp_server.take() if r.method == "POST" and r.path.endswith("/runs"))
    assert run.body["runtime_config"]["parameters"]["cellpipe_snapshot_id"] == record.snapshot_id


def test_a_failed_step_fails_the_run_and_says_which(
    kfp_server: FakeKFP, options: KfpOptions, write_notebook: Callable, data_dir: Path
) -> None:
    kfp_server.on_get["r-4"] = [lambda run: run.start().step("load", "Failed").finish("Failed")]
    record = RunService(data_dir).run(RunRequest(notebook=write_notebook(CELLS), target="kfp",
                                                 target_options=options, track=False))  # fmt: skip
    assert record.status is RunStatus.FAILED
    assert [s.status for s in record.steps] == [StepStatus.FAILED, StepStatus.NOT_RUN]
    assert "step load failed" in record.error["message"]


def test_cancel_terminates_the_kfp_run(
    kfp_server: FakeKFP, options: KfpOptions, write_notebook: Callable, data_dir: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr(KfpTarget, "poll_seconds", 0.05)

    async def scenario() -> None:
        service = RunService(data_dir)
        record = await service.submit(RunRequest(notebook=write_notebook(CELLS), target="kfp",
                                                 target_options=options, track=False))  # fmt: skip
        await eventually(
            lambda: service.get(record.id).extra.get("kfp"), timeout=30, interval=0.05, what="the KFP run"
        )
        cancelled = await service.cancel(record.id)
        assert cancelled.status is RunStatus.CANCELLED
        assert any(path.endswith("r-4:terminate") for _, path in kfp_server.paths())

    asyncio.run(scenario())


def test_a_plain_notebook_is_refused_with_the_way_out(
    kfp_server: FakeKFP, options: KfpOptions, write_notebook: Callable, data_dir: Path
) -> None:
    from jupyter_ext.errors import TargetError

    service = RunService(data_dir)
    with pytest.raises(TargetError, match="no step: tags") as refused:
        service.run(
            RunRequest(notebook=write_notebook([(None, "x = 1")]), target="kfp", target_options=options)
        )
    assert "target job" in refused.value.hint and service.list()[1] == 0  # before any record or upload
    assert not kfp_server.take()


def test_cellpipe_run_target_kfp_follows_and_records_the_run(
    kfp_server: FakeKFP, options: KfpOptions, write_notebook: Callable, data_dir: Path,
    capsys: pytest.CaptureFixture,
) -> None:  # fmt: skip
    from jupyter_ext.cli.main import main

    kfp_server.on_get["r-4"] = [lambda run: run.start().step("load", "Succeeded").step("train", "Succeeded")
                                .finish("Succeeded")]  # fmt: skip
    notebook = str(write_notebook(CELLS, name="train.ipynb"))
    code = main(["run", notebook, "--target", "kfp", "--host", options.host, "--token-file", options.token_file,
                 "--store", STORE, "--image", IMAGE, "--no-track", "--json"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    record = json_record(out)
    assert record["target"] == "kfp" and record["status"] == "succeeded"
    assert [s["status"] for s in record["steps"]] == ["succeeded", "succeeded"]
    assert main(["runs", "show", "latest"]) == 0 and record["id"] in capsys.readouterr().out


def json_record(out: str) -> dict:
    import json

    return json.loads(out[out.index("{") :])
