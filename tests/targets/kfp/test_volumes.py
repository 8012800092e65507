"""Kale's volume types in a KFP package: existing claims, claims created for the run, claims bound to a PV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jupyter_ext.errors import TargetError
from jupyter_ext.pipeline.build import build_pipeline
from jupyter_ext.targets.k8s.objects import make_volumes
from jupyter_ext.targets.kfp.compile import compile_pipeline
from tests.targets.kfp.test_compile import executor, load_package

VOLUMES = [
    {"name": "scratch", "type": "new_pvc", "mount_point": "/scratch", "size": 5, "size_type": "Gi",
     "storage_class_name": "fast", "volume_access_mode": "rwo", "expose_as_env_var": True,
     "annotations": [{"key": "team", "value": "ml"}]},
    {"name": "archive", "type": "pv", "mount_point": "/archive", "size": "10Gi", "volume_access_mode": "rom"},
    {"name": "raw-data", "type": "pvc", "mount_point": "/data", "expose_as_env_var": True},
]  # fmt: skip


def volume_notebook(write_notebook: Any) -> Path:
    return write_notebook(
        [(["step:a"], "x = 1"), (["step:b"], "y = x")], metadata={"kubeflow_notebook": {"volumes": VOLUMES}}
    )


def test_created_claims_are_mounted_into_every_step(tmp_path: Path, write_notebook: Any) -> None:
    spec, platform = load_package(
        compile_pipeline(build_pipeline(volume_notebook(write_notebook)), tmp_path / "v.yaml")
    )
    tasks = spec["root"]["dag"]["tasks"]
    created = {
        t["taskInfo"]["name"]: t
        for t in tasks.values()
        if t["componentRef"]["name"].startswith("comp-createpvc")
    }
    assert set(created) == {"create volume scratch", "create volume archive"}

    def argument(task: dict, name: str) -> Any:
        return task["inputs"]["parameters"][name]["runtimeValue"]["constant"]

    scratch, archive = created["create volume scratch"], created["create volume archive"]
    assert argument(scratch, "size") == "5Gi" and argument(scratch, "access_modes") == ["ReadWriteOnce"]
    assert argument(scratch, "storage_class_name") == "fast" and argument(scratch, "annotations") == {
        "team": "ml"
    }
    assert argument(archive, "volume_name") == "archive" and argument(archive, "storage_class_name") == ""
    assert argument(archive, "access_modes") == ["ReadOnlyMany"]
    assert scratch["cachingOptions"] == {}  # never cached: a cached claim name would be an earlier run's

    for step in ("a", "b"):
        label = spec["components"][tasks[step]["componentRef"]["name"]]["executorLabel"]
        mounts = {m["mountPath"]: m for m in platform[label]["pvcMount"]}
        assert mounts["/data"]["constant"] == "raw-data"
        producers = {
            mounts[p]["pvcNameParameter"]["taskOutputParameter"]["producerTask"]
            for p in ("/scratch", "/archive")
        }
        assert producers == {t for t, task in tasks.items() if task in created.values()}
        env = {e["name"]: e["value"] for e in executor(spec, step)["env"]}
        assert env["KALE_VOLUME_SCRATCH"] == "/scratch" and env["KALE_VOLUME_RAW_DATA"] == "/data"


def test_the_kubernetes_target_refuses_to_pretend_a_new_claim_exists(write_notebook: Any) -> None:
    pipeline = build_pipeline(volume_notebook(write_notebook))
    with pytest.raises(TargetError, match="volume 'scratch' has type 'new_pvc': this target mounts existing"):
        make_volumes(pipeline.volumes)
    make_volumes(pipeline.volumes[2:])  # the existing claim is fine
