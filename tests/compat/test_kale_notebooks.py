"""Kale's own test notebooks (vendored from the kubeflow-kale 2.3.0 wheel, see README.md) work unchanged.

Expected values come from what Kale 2.3.0 generates for the same notebooks (the wheel's
``kale/tests/assets/kfp_dsl/*.py``): e.g. ``kubernetes.mount_pvc(load_task, pvc_name="raw-data",
mount_path="/data")`` and ``set_env_variable(name="KALE_VOLUME_RAW_DATA", value="/data")`` on every step.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from jupyter_ext.cli.main import main
from jupyter_ext.errors import NotebookError
from jupyter_ext.pipeline.build import build_pipeline
from jupyter_ext.targets.kfp.compile import compile_pipeline
from tests.targets.kfp.test_compile import kfp_local, local_run, logged_metrics, run_package  # noqa: F401 (fixture)

KALE = Path(__file__).parent / "kale_notebooks"
VENDORED = {
    "mount_pvc.ipynb": "590a7fdb6421e006ed2ea702c7da42905d0071fa0c18621ee9a74f2b50423277",
    "mount_pvc_env_var.ipynb": "0891a1ab5775e95c659d66f371453b1ad9c74902903feee22002b40a29c1ae86",
    "pipeline_parameters_and_metrics.ipynb": "97ec410cc199ac7be93f6ddc45ef8492ef2b17ee94ff67a82b2943cfc5e96903",
}


def package(name: str, tmp_path: Path) -> tuple[dict, dict]:
    pipeline = build_pipeline(KALE / name)
    assert pipeline.warnings == []  # nothing in Kale's own notebooks is ignored or suspicious
    documents = list(yaml.safe_load_all(compile_pipeline(pipeline, tmp_path / "p.yaml").read_text()))
    return documents[0], documents[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def executor_of(spec: dict, task: str) -> str:
    return spec["components"][spec["root"]["dag"]["tasks"][task]["componentRef"]["name"]]["executorLabel"]


def test_the_vendored_notebooks_are_kales_bytes():
    assert {p.name for p in KALE.glob("*.ipynb")} == set(VENDORED)
    for name, digest in VENDORED.items():
        assert hashlib.sha256((KALE / name).read_bytes()).hexdigest() == digest


@pytest.mark.parametrize("name", ["mount_pvc.ipynb", "mount_pvc_env_var.ipynb"])
def test_volume_notebooks_compile_like_kale(name, tmp_path):
    spec, platform = package(name, tmp_path)
    assert set(spec["root"]["dag"]["tasks"]) == {"load", "train"}
    assert spec["root"]["dag"]["tasks"]["train"]["dependentTasks"] == ["load"]  # data_path flows
    for task in ("load", "train"):
        label = executor_of(spec, task)
        assert platform[label]["pvcMount"] == [{"constant": "raw-data", "mountPath": "/data", "pvcNameParameter": {
            "runtimeValue": {"constant": "raw-data"}}}]  # fmt: skip
        env = {
            e["name"]: e["value"]
            for e in spec["deploymentSpec"]["executors"][label]["container"].get("env", [])
        }
        if name == "mount_pvc_env_var.ipynb":
            assert env["KALE_VOLUME_RAW_DATA"] == "/data"
        else:
            assert "KALE_VOLUME_RAW_DATA" not in env


def test_parameters_and_metrics_notebook_compiles_like_kale(tmp_path):
    pipeline = build_pipeline(KALE / "pipeline_parameters_and_metrics.ipynb")
    assert [(p.name, p.type, p.default) for p in pipeline.parameters] == [
        ("d1", "int", 5), ("d2", "int", 6), ("booltest", "bool", True), ("strtest", "str", "test"),
    ]  # fmt: skip
    assert pipeline.metrics == ["d1", "d2", "sum_result"]  # print(d1): a parameter listed as a metric
    assert pipeline.step("create_matrix").limits == {"nvidia.com/gpu": "2"}
    spec, _ = package("pipeline_parameters_and_metrics.ipynb", tmp_path)
    assert set(spec["root"]["inputDefinitions"]["parameters"]) >= {"d1", "d2", "booltest", "strtest"}
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["create-matrix"]["cachingOptions"] == {"enableCache": True}  # cache:enabled on the step ...
    assert tasks["sum-matrix"]["cachingOptions"] == {}  # ... while the notebook turns caching off
    accelerator = spec["deploymentSpec"]["executors"][executor_of(spec, "create-matrix")]["container"][
        "resources"
    ]
    assert accelerator["accelerator"]["resourceCount"] == "2"


@pytest.mark.parametrize(
    ("name", "overrides", "metrics"),
    [
        # Kale's package calls the parameter d1; -p takes that or any other case
        (
            "pipeline_parameters_and_metrics.ipynb",
            ["-p", "D1=7", "-p", "booltest=no"],
            {"d1": 7.0, "d2": 6.0},
        ),
        ("mount_pvc_env_var.ipynb", [], {}),
    ],
)
def test_kale_notebooks_run_for_real(name, overrides, metrics, tmp_path, data_dir, capsys):
    notebook = tmp_path / name
    notebook.write_bytes((KALE / name).read_bytes())
    assert main(["run", str(notebook), "--no-track", "--json", *overrides]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["status"] == "succeeded"
    assert {k: v for k, v in record["metrics"].items() if k in metrics} == metrics
    if name.startswith("pipeline_parameters"):
        assert record["parameters"]["booltest"] is False and isinstance(
            record["metrics"]["sum_result"], float
        )
    assert notebook.read_bytes() == (KALE / name).read_bytes()  # the user's notebook is never modified


def test_what_kale_compiles_but_cellpipe_rightly_refuses(write_notebook):
    r_notebook = write_notebook([(["step:a"], "x <- 1")])
    data = json.loads(r_notebook.read_text())
    data["metadata"]["kernelspec"] = {"name": "ir", "display_name": "R", "language": "R"}
    r_notebook.write_text(json.dumps(data))
    with pytest.raises(NotebookError, match="the kernel language is R; cellpipe runs Python notebooks"):
        build_pipeline(r_notebook)
    undefined = write_notebook([(["step:a"], "x = 1"), (["step:b"], "y = x + never_defined")])
    with pytest.raises(
        NotebookError, match="cell 2: step 'b': name 'never_defined' is read but never defined"
    ):
        build_pipeline(undefined)


@pytest.mark.slow
@local_run
def test_kale_parameters_and_metrics_notebook_runs_under_kfp_local(tmp_path, kfp_local):  # noqa: F811
    pipeline = build_pipeline(KALE / "pipeline_parameters_and_metrics.ipynb")
    package = compile_pipeline(pipeline, tmp_path / "hp.yaml")
    run_dir = run_package(package, kfp_local, d1=3, d2=2)  # the KFP run parameters: Kale's names, d1 and d2
    metrics = logged_metrics(run_dir, "sum-matrix")
    assert metrics["d1"] == 3 and metrics["d2"] == 2 and 0 <= metrics["sum_result"] <= 6
