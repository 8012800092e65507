"""``cellpipe export``: every cheap check before the upload with all problems reported at once, and
``--preview`` (no store, image or upload) written as visibly not runnable files."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from jupyter_ext.cli.main import main
from tests.support.kube_cluster import write_kubeconfig
from tests.targets.conftest import FakeS3
from tests.targets.k8s.test_cli_cluster import IMAGE, NS, STORE


@pytest.fixture(autouse=True)
def isolated(fake_remote_store: str) -> None:
    """The in-memory "remote" store and a clean environment (tests/targets/conftest.py)."""


@pytest.fixture
def notebook(write_notebook: Callable[..., Path]) -> str:
    return str(
        write_notebook(
            [
                (["parameters"], "epochs = 3"),
                (["step:load"], "xs = list(range(epochs))"),
                (["step:train", "limit:cpu:2"], "total = sum(xs)"),
            ],  # fmt: skip
            name="train.ipynb",
        )
    )


@pytest.fixture
def kubeconfig(tmp_path: Path) -> str:
    return str(write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:9", NS))  # read, never contacted


def test_every_cheap_problem_is_reported_at_once_and_nothing_is_written(
    notebook: str, kubeconfig: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "deploy"
    code = main(["export", notebook, "-o", str(out), "-p", "epochs=many", "--cron", "99 * * *",
                 "--kubeconfig", kubeconfig])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "cellpipe: error: 4 problems, nothing was uploaded or written:" in err
    for problem in ("'many' is not a valid int", "--store: no snapshot store", "--image: no container image",
                    "invalid cron '99 * * *'"):  # fmt: skip
        assert problem in err
    assert not out.exists() and FakeS3.store == {}


def test_preview_needs_no_store_or_image_and_is_marked_not_runnable(
    notebook: str, kubeconfig: str, tmp_path: Path, capsys: pytest.CaptureFixture, umask_022: None
) -> None:
    out = tmp_path / "review"
    code = main(["export", notebook, "-o", str(out), "--preview", "--name", "train", "--cron", "0 3 * * *",
                 "--kubeconfig", kubeconfig])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["train.cronjob.preview.yaml", "train.job.preview.yaml"]
    for path in out.iterdir():
        text = path.read_text()
        assert text.startswith(f"# PREVIEW of the cellpipe export of {notebook}: NOT RUNNABLE.\n")
        manifest = yaml.safe_load(text)
        kubernetes_validate.validate(manifest, "1.34", strict=True)  # a real manifest, only not runnable
        assert "0" * 64 in text and "preview://no-snapshot-uploaded" in text
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert FakeS3.store == {}  # nothing uploaded
    assert "PREVIEW: nothing was uploaded and the files are NOT runnable" in capsys.readouterr().out


def test_kfp_preview(notebook: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "kfp"
    assert main(["export", notebook, "-o", str(out), "--target", "kfp", "--preview", "--image", IMAGE]) == 0
    (path,) = out.iterdir()
    assert path.name == "train.kfp.preview.yaml"
    text = path.read_text()
    assert text.startswith("# PREVIEW") and "NOT RUNNABLE" in text.splitlines()[0]
    assert len(list(yaml.safe_load_all(text))) == 2  # the pipeline spec and its Kubernetes platform spec
    assert FakeS3.store == {}


def test_exported_files_get_the_normal_mode(
    notebook: str, kubeconfig: str, tmp_path: Path, umask_022: None, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "deploy"
    code = main(
        ["export", notebook, "-o", str(out), "--store", STORE, "--image", IMAGE, "--kubeconfig", kubeconfig]
    )
    assert code == 0, capsys.readouterr().err
    assert [stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()] == [0o644]


def test_analysis_warnings_are_shown_with_the_notes(
    write_notebook: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    notebook = write_notebook([(["step:load"], "x = 1"), (["stpe:train"], "y = x")], name="typo.ipynb")
    assert main(["export", str(notebook), "-o", str(tmp_path / "out"), "--preview"]) == 0
    out = capsys.readouterr().out
    assert f"\nwarning: {notebook}: cell 2: tag 'stpe:train': not a cellpipe tag" in out
    assert "note: no image given: the preview names a placeholder image" in out


def test_limit_sets_the_job_pods_resources_and_is_refused_for_kfp(
    notebook: str, kubeconfig: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "limited"
    code = main(["export", notebook, "-o", str(out), "--preview", "--name", "train", "--kubeconfig", kubeconfig,
                 "--limit", "memory=8Gi", "--limit", "ephemeral-storage=30Gi"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    job = yaml.safe_load((out / "train.job.preview.yaml").read_text())
    kubernetes_validate.validate(job, "1.34", strict=True)
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"] == {
        "limits": {"cpu": "2", "memory": "8Gi", "ephemeral-storage": "30Gi"},  # cpu: limit:cpu:2 on train
        "requests": {"cpu": "2", "memory": "8Gi", "ephemeral-storage": "30Gi"},
    }
    assert all(v["emptyDir"].get("sizeLimit") for v in pod["volumes"] if "emptyDir" in v)

    code = main(
        ["export", notebook, "-o", str(tmp_path / "k"), "--target", "kfp", "--preview", "--limit", "cpu=1"]
    )
    assert code == 1 and "--limit: applies to Kubernetes Jobs only" in capsys.readouterr().err
    code = main(["export", notebook, "-o", str(tmp_path / "bad"), "--preview", "--kubeconfig", kubeconfig,
                 "--limit", "memory=lots"])  # fmt: skip
    assert code == 1 and "memory" in capsys.readouterr().err
