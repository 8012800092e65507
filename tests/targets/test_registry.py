"""The targets registry: every target has typed options, and says whether it is available and why not."""

from pathlib import Path

import pytest

from jupyter_ext.errors import CellpipeError
from jupyter_ext.targets.base import TargetSettings
from jupyter_ext.targets.k8s.options import JobOptions
from jupyter_ext.targets.kfp.options import KfpOptions
from jupyter_ext.targets.local.target import LocalOptions
from jupyter_ext.targets.registry import TARGETS, available_targets, get_target, options_for


@pytest.fixture(autouse=True)
def no_cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("CELLPIPE_STORE", "CELLPIPE_KFP_HOST", "KF_PIPELINES_ENDPOINT", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path))


def by_name(settings):
    return {t.name: t for t in available_targets(settings)}


def test_without_a_cluster_only_local_is_available_and_the_others_say_why():
    infos = by_name(None)
    assert list(infos) == list(TARGETS) == ["local", "job", "kfp"]
    assert infos["local"].available and infos["local"].reason is None
    assert not infos["job"].available and "no Kubernetes credentials" in infos["job"].reason
    assert not infos["kfp"].available and "no Kubeflow Pipelines host" in infos["kfp"].reason
    assert infos["kfp"].to_dict() == {"name": "kfp", "label": "Kubeflow Pipelines", "available": False,
                                      "reason": infos["kfp"].reason}  # fmt: skip


def test_cluster_targets_need_a_store_the_pods_can_reach(tmp_path: Path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    local_store = by_name(TargetSettings(store_url=str(tmp_path / "store"), kfp_host="http://kfp:8888",
                                         kubeconfig=str(kubeconfig)))  # fmt: skip
    assert "pods on the cluster cannot read it" in local_store["job"].reason
    assert "pods on the cluster cannot read it" in local_store["kfp"].reason
    ready = by_name(TargetSettings(store_url="s3://bucket/cellpipe", kfp_host="http://kfp:8888",
                                   kubeconfig=str(kubeconfig)))  # fmt: skip
    assert ready["job"].available and ready["kfp"].available


def test_options_are_typed_per_target():
    assert isinstance(options_for("local", None), LocalOptions)
    assert options_for("job", {"backoff_limit": 2}) == JobOptions(backoff_limit=2)
    assert isinstance(options_for("kfp", KfpOptions(host="h")), KfpOptions)
    with pytest.raises(CellpipeError, match="target 'kfp' takes KfpOptions, not JobOptions"):
        options_for("kfp", JobOptions())
    with pytest.raises(CellpipeError, match="invalid options for target 'job'"):
        options_for("job", {"no_such_option": 1})
    with pytest.raises(CellpipeError, match="unknown target 'mars'"):
        get_target("mars")
