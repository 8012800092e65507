"""The Zero to JupyterHub values (hub_config/z2jh/config.yaml) say what the Python config says."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from traitlets.config import Config

HUB_CONFIG = Path(__file__).parents[2] / "hub_config"
sys.path.insert(0, str(HUB_CONFIG))
import cellpipe_hub  # noqa: E402

VALUES = HUB_CONFIG / "z2jh" / "config.yaml"


def committed() -> dict:
    return yaml.safe_load(VALUES.read_text())


def test_committed_values_are_rendered_from_the_python_config():
    assert committed() == cellpipe_hub.z2jh_values(cellpipe_hub.HubSettings()), (
        "hub_config/z2jh/config.yaml is out of date: regenerate it with "
        "`env -i PATH=$PATH python hub_config/cellpipe_hub.py z2jh > hub_config/z2jh/config.yaml`"
    )


def test_values_carry_every_kubespawner_setting():
    """Chart keys plus hub.config.KubeSpawner give back exactly the Python config's KubeSpawner settings."""
    values = committed()
    singleuser = values["singleuser"]
    carried = dict(values["hub"]["config"]["KubeSpawner"])
    carried |= {
        "image": f"{singleuser['image']['name']}:{singleuser['image']['tag']}",
        "cmd": singleuser["cmd"],
        "default_url": singleuser["defaultUrl"],
        "uid": singleuser["uid"],
        "fs_gid": singleuser["fsGid"],
        "profile_list": singleuser["profileList"],
    }
    assert carried == cellpipe_hub.kubespawner_config(cellpipe_hub.HubSettings())
    assert singleuser["storage"] == {"type": "none"}  # the chart adds no second home volume
    assert values["cull"]["enabled"] and values["cull"]["timeout"] == cellpipe_hub.HubSettings().cull_timeout
    service, _ = cellpipe_hub.culler_service(cellpipe_hub.HubSettings())
    assert f"--timeout={values['cull']['timeout']}" in service["command"]


def test_extra_config_installs_the_provisioning_hook_from_the_mounted_module():
    values = committed()["hub"]
    module_path = Path(values["extraFiles"]["cellpipe"]["mountPath"])
    code = values["extraConfig"]["cellpipe"].replace(str(module_path.parent), str(HUB_CONFIG))
    c = Config()
    exec(compile(code, "extraConfig", "exec"), {"c": c})
    assert c.KubeSpawner.modify_pod_hook.__name__ == "cellpipe_modify_pod_hook"
    assert module_path.name == "cellpipe_hub.py"
