"""Kale's notebook settings: volumes of every type Kale accepts, and loud warnings for what is ignored."""

import pytest

from jupyter_ext.errors import NotebookError
from jupyter_ext.notebook.settings import kale_env_name, read_settings
from jupyter_ext.pipeline.model import Volume


def settings(**kale):
    return read_settings({"kubeflow_notebook": kale}, notebook="nb.ipynb")


def test_expose_as_env_var_true_is_kales_variable():
    read = settings(
        volumes=[{"name": "raw-data.v2", "type": "pvc", "mount_point": "/data", "expose_as_env_var": True}]
    )
    assert read.volumes == [Volume("raw-data.v2", "/data", "KALE_VOLUME_RAW_DATA_V2")]
    assert kale_env_name("raw-data") == "KALE_VOLUME_RAW_DATA"
    # false, and our own spelling (a variable name), still work
    assert (
        settings(volumes=[{"name": "a", "mount_point": "/a", "expose_as_env_var": False}])
        .volumes[0]
        .expose_as_env_var
        is None
    )
    assert (
        settings(volumes=[{"name": "a", "mount_point": "/a", "expose_as_env_var": "DATA"}])
        .volumes[0]
        .expose_as_env_var
        == "DATA"
    )


def test_two_volumes_deriving_the_same_variable_are_refused():
    with pytest.raises(NotebookError, match="both set the environment variable KALE_VOLUME_MY_DATA"):
        settings(volumes=[
            {"name": "my-data", "mount_point": "/a", "expose_as_env_var": True},
            {"name": "my.data", "mount_point": "/b", "expose_as_env_var": True},
        ])  # fmt: skip


def test_new_pvc_and_pv_volumes():
    read = settings(
        storage_class_name="standard",
        volume_access_mode="rwo",
        volumes=[
            {"name": "scratch", "type": "new_pvc", "mount_point": "/scratch", "size": 5, "size_type": "Gi",
             "annotations": [{"key": "team", "value": "ml"}, {"key": "", "value": ""}]},
            {"name": "archive", "type": "pv", "mount_point": "/archive", "size": "10Gi",
             "volume_access_mode": "rom", "storage_class_name": "fast"},
        ],
    )  # fmt: skip
    scratch, archive = read.volumes
    assert (scratch.type, scratch.size, scratch.storage_class, scratch.access_modes, scratch.annotations) == (
        "new_pvc", "5Gi", "standard", ["ReadWriteOnce"], {"team": "ml"},
    )  # fmt: skip
    assert (archive.type, archive.size, archive.access_modes) == ("pv", "10Gi", ["ReadOnlyMany"])
    assert read.warnings == []


@pytest.mark.parametrize(
    ("volume", "message"),
    [
        ({"name": "s", "type": "new_pvc", "mount_point": "/s"}, "a 'new_pvc' volume needs a size"),
        ({"name": "s", "type": "new_pvc", "mount_point": "/s", "size": 1, "volume_access_mode": "rw"},
         "unknown volume access mode 'rw'"),
        ({"name": "s", "type": "nfs", "mount_point": "/s"}, "volume type 'nfs' is not supported"),
        ({"name": "s", "type": "pcv", "mount_point": "/s"}, "Did you mean 'pvc'"),
        ({"name": "s", "mount_point": "/s", "expose_as_env_var": "not a name"}, "expose_as_env_var must be true"),
    ],
)  # fmt: skip
def test_volume_mistakes(volume, message):
    with pytest.raises(NotebookError, match=message) as info:
        settings(volumes=[volume])
    assert "metadata volumes[0]" in str(info.value)


def test_unimplemented_kale_settings_warn_once_each_by_name():
    read = settings(
        katib_run=True,
        katib_metadata={"parameters": []},
        snapshot_volumes=True,
        timeout=600,
        volumes=[
            {"name": "ws", "type": "clone", "mount_point": "/home/jovyan"},
            {"name": "d", "type": "pvc", "mount_point": "/d", "snapshot": True},
        ],
    )
    texts = [w.message + " " + (w.field or "") for w in read.warnings]
    for name in ("katib_run", "katib_metadata", "snapshot_volumes", "timeout"):
        assert sum(name in t for t in texts) == 1, name
    assert any("type 'clone'" in t for t in texts) and any("'snapshot'" in t for t in texts)
    assert [v.pvc for v in read.volumes] == ["d"]  # a clone is not mounted: nothing to mount


def test_off_settings_and_kale_bookkeeping_are_quiet():
    read = settings(katib_run=False, katib_metadata={"parameters": []}, snapshot_volumes=False,
                    abs_working_dir="/home/jovyan", marshal_path="/tmp/marshal",
                    security_context={"enabled": True, "run_as_user": 65534})  # fmt: skip
    assert read.warnings == []
    (warning,) = settings(security_context={"run_as_user": 1000}).warnings  # this one would be lost
    assert warning.field == "metadata security_context"


def test_unknown_setting_suggests_the_known_one():
    (warning,) = settings(pipline_name="x").warnings
    assert warning.field == "metadata pipline_name" and "did you mean 'pipeline_name'" in warning.hint
