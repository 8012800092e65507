"""The KFP compiler: package structure, what KFP cannot express, the CLI, and real runs under kfp.local.

The ``slow`` tests execute compiled packages with ``kfp.local`` (one subprocess and one kernel per step),
loaded from the YAML the way a cluster would receive them, and compare with the local runner.
"""

from __future__ import annotations

import ast
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from jupyter_ext.cli.main import main
from jupyter_ext.errors import CellpipeError, TargetError
from jupyter_ext.pipeline.build import build_pipeline
from jupyter_ext.pipeline.model import Secret
from jupyter_ext.targets.kfp.compile import (
    DEFAULT_IMAGE,
    MAX_COMPONENT_SOURCE,
    PackageSpec,
    build_kfp_pipeline,
    compile_pipeline,
    component_source,
    plan_steps,
)

NOTEBOOKS = Path(__file__).parents[2] / "notebooks"
WINE = NOTEBOOKS / "wine_classifier.ipynb"
KALE = NOTEBOOKS / "kale_legacy.ipynb"


def load_package(path: Path) -> tuple[dict, dict]:
    """The pipeline spec and the Kubernetes platform spec ({} when there is none) of a compiled package."""
    documents = list(yaml.safe_load_all(path.read_text()))
    platform = (
        documents[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"] if len(documents) > 1 else {}
    )
    return documents[0], platform


def executor(spec: dict, task: str) -> dict:
    component = spec["root"]["dag"]["tasks"][task]["componentRef"]["name"]
    label = spec["components"][component]["executorLabel"]
    return spec["deploymentSpec"]["executors"][label]["container"]


def component_code(spec: dict, task: str) -> str:
    return executor(spec, task)["command"][-1]


# -- structure ---------------------------------------------------------------------------------------
def test_wine_package_structure(tmp_path: Path) -> None:
    out = compile_pipeline(
        build_pipeline(WINE), tmp_path / "wine.yaml", PackageSpec(parameters={"n_estimators": 987})
    )
    spec, platform = load_package(out)

    assert spec["pipelineInfo"]["name"] == "wine-classifier"
    tasks = spec["root"]["dag"]["tasks"]
    assert list(tasks) == ["evaluate", "load-data", "split", "train"]
    assert {t["taskInfo"]["name"] for t in tasks.values()} == {"load_data", "split", "train", "evaluate"}
    assert sorted(spec["components"]) == ["comp-evaluate", "comp-load-data", "comp-split", "comp-train"]

    # typed pipeline parameters with the notebook's defaults, one overridden
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert {n: (p["parameterType"], p["defaultValue"]) for n, p in params.items()} == {
        "n_estimators": ("NUMBER_INTEGER", 987),
        "max_depth": ("NUMBER_INTEGER", 4),
        "test_size": ("NUMBER_DOUBLE", 0.25),
        "seed": ("NUMBER_INTEGER", 42),
        # cellpipe's own: empty unless the package is compiled for (or run from) a snapshot
        "cellpipe_snapshot_id": ("STRING", ""),
        "cellpipe_store": ("STRING", ""),
    }
    # each component takes only the parameters its step reads (plus the lineage), wired from the pipeline's
    split = spec["components"]["comp-split"]["inputDefinitions"]
    assert split["parameters"] == {
        "test_size": {"parameterType": "NUMBER_DOUBLE"},
        "seed": {"parameterType": "NUMBER_INTEGER"},
        "cellpipe_snapshot_id": {"parameterType": "STRING"},
        "cellpipe_store": {"parameterType": "STRING"},
    }
    assert tasks["train"]["inputs"]["parameters"]["n_estimators"] == {
        "componentInputParameter": "n_estimators"
    }
    assert list(spec["components"]["comp-load-data"]["inputDefinitions"]["parameters"]) == [
        "cellpipe_snapshot_id",
        "cellpipe_store",
    ]

    # data edges are artifacts: one input per upstream step, one outputs directory per step
    evaluate = tasks["evaluate"]
    assert sorted(evaluate["dependentTasks"]) == ["split", "train"]
    assert evaluate["inputs"]["artifacts"] == {
        "from_train": {"taskOutputArtifact": {"outputArtifactKey": "outputs", "producerTask": "train"}},
        "from_split": {"taskOutputArtifact": {"outputArtifactKey": "outputs", "producerTask": "split"}},
    }
    outputs = spec["components"]["comp-evaluate"]["outputDefinitions"]["artifacts"]
    assert outputs["outputs"]["artifactType"]["schemaTitle"] == "system.Artifact"
    assert outputs["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"
    assert "metrics" not in spec["components"]["comp-train"]["outputDefinitions"]["artifacts"]

    for task in tasks:
        container = executor(spec, task)
        assert container["image"] == DEFAULT_IMAGE
        command = " ".join(container["command"])
        assert "pip install" not in command  # install_kfp_package=False: nothing installed at run time
        assert "987" not in command  # parameter values travel as KFP inputs, never in the code
        assert "execute_step" in command
        assert tasks[task]["cachingOptions"] == {"enableCache": True}
    # nothing Kubernetes-specific was asked for: only the non-root security context every step gets
    assert {name: set(settings) for name, settings in platform.items()} == {
        f"exec-{task.replace('_', '-')}": {"securityContext"} for task in tasks
    }


def test_component_embeds_only_its_own_step() -> None:
    pipeline = build_pipeline(WINE)
    plans = {plan.step: plan for plan in plan_steps(pipeline)}
    source = component_source(pipeline, plans["train"])
    ast.parse(source)
    assert "RandomForestClassifier(n_estimators" in source
    assert "train_test_split(" not in source  # the split step's cell is not carried by train
    assert "def train(\n    n_estimators: int,\n    max_depth: int,\n    seed: int," in source
    assert "log_metric" not in source
    assert "log_metric" in component_source(pipeline, plans["evaluate"])


def test_kale_package_settings(tmp_path: Path) -> None:
    spec, platform = load_package(compile_pipeline(build_pipeline(KALE), tmp_path / "kale.yaml"))
    tasks = spec["root"]["dag"]["tasks"]
    assert spec["root"]["inputDefinitions"]["parameters"]["radius"] == {
        "defaultValue": 2.0, "isOptional": True, "parameterType": "NUMBER_DOUBLE"
    }  # fmt: skip
    # prev:area only orders perimeter after area: a dependency without an artifact
    assert tasks["perimeter"]["dependentTasks"] == ["area"]
    assert "artifacts" not in tasks["perimeter"]["inputs"]
    assert sorted(tasks["ratio"]["dependentTasks"]) == ["area", "perimeter"]
    # limits, and the notebook's docker_image for every step
    ratio = executor(spec, "ratio")
    assert ratio["resources"]["resourceCpuLimit"] == "1"
    assert ratio["resources"]["resourceMemoryLimit"] == "512Mi"
    assert "resources" not in executor(spec, "area")
    assert {executor(spec, t)["image"] for t in tasks} == {"registry.example.com/ds/cellpipe:1.0"}
    # steps_defaults label:team:ds on every pod
    assert {name: e["podMetadata"]["labels"] for name, e in platform.items()} == {
        "exec-area": {"team": "ds"}, "exec-perimeter": {"team": "ds"}, "exec-ratio": {"team": "ds"}
    }  # fmt: skip


def test_image_precedence(tmp_path: Path) -> None:
    spec, _ = load_package(
        compile_pipeline(build_pipeline(KALE), tmp_path / "k.yaml", PackageSpec(image="example.com/rt:2"))
    )
    assert executor(spec, "area")["image"] == "example.com/rt:2"  # --image replaces the notebook's


def gpu_notebook(write_notebook: Any) -> Path:
    return write_notebook(
        [
            (["imports"], "import os"),
            (["parameters"], "epochs = 3"),
            (
                ["step:prepare", "cache:disabled", "annotation:example.com/owner:alice"],
                "data = list(range(epochs))",
            ),
            (
                [
                    "step:train",
                    "limit:nvidia.com/gpu:2",
                    "limit:memory:8Gi",
                    "image:registry.example.com/gpu:1",
                    "secret:db-credentials:password:DB_PASSWORD",
                    "label:tier:gpu",
                ],
                "model = sum(data)",
            ),
        ],  # fmt: skip
        metadata={
            "cellpipe": {
                "volumes": [{"name": "datasets", "mount_point": "/data", "expose_as_env_var": "DATA_DIR"}]
            }
        },
    )


def test_kubernetes_settings(tmp_path: Path, write_notebook: Any) -> None:
    pipeline = build_pipeline(gpu_notebook(write_notebook))
    out = compile_pipeline(
        pipeline, tmp_path / "gpu.yaml", PackageSpec(gpu_node_selector={"nvidia.com/gpu.product": "A100"})
    )
    spec, platform = load_package(out)
    tasks = spec["root"]["dag"]["tasks"]

    train = executor(spec, "train")
    assert train["image"] == "registry.example.com/gpu:1"
    accelerator = train["resources"]["accelerator"]
    assert (accelerator["resourceType"], accelerator["resourceCount"]) == ("nvidia.com/gpu", "2")
    assert train["resources"]["resourceMemoryLimit"] == "8Gi"
    assert {"name": "DATA_DIR", "value": "/data"} in train["env"]

    k8s_train = platform["exec-train"]
    assert k8s_train["nodeSelector"] == {"labels": {"nvidia.com/gpu.product": "A100"}}
    assert k8s_train["tolerations"] == [
        {"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}
    ]
    [secret] = k8s_train["secretAsEnv"]
    assert secret["secretName"] == "db-credentials"
    assert secret["keyToEnv"] == [{"envVar": "DB_PASSWORD", "secretKey": "password"}]  # a reference, no value
    assert k8s_train["podMetadata"] == {"labels": {"tier": "gpu"}}
    assert all(e["pvcMount"][0]["mountPath"] == "/data" for e in platform.values())

    k8s_prepare = platform["exec-prepare"]
    assert "nodeSelector" not in k8s_prepare and "tolerations" not in k8s_prepare  # no GPU, no GPU scheduling
    assert k8s_prepare["podMetadata"] == {"annotations": {"example.com/owner": "alice"}}
    assert tasks["prepare"]["cachingOptions"] == {}  # cache:disabled (KFP writes no enableCache)
    assert tasks["train"]["cachingOptions"] == {"enableCache": True}


def test_custom_gpu_tolerations(tmp_path: Path, write_notebook: Any) -> None:
    pipeline = build_pipeline(gpu_notebook(write_notebook))
    toleration = {
        "key": "gpu-pool",
        "operator": "Equal",
        "value": "a100",
        "effect": "NoExecute",
        "tolerationSeconds": 60,
    }
    _, platform = load_package(
        compile_pipeline(pipeline, tmp_path / "g.yaml", PackageSpec(gpu_tolerations=[toleration]))
    )
    assert platform["exec-train"]["tolerations"] == [
        {
            "key": "gpu-pool",
            "operator": "Equal",
            "value": "a100",
            "effect": "NoExecute",
            "tolerationSeconds": "60",
        }
    ]


# -- snapshot lineage ---------------------------------------------------------------------------------
SNAPSHOT = "ab12" * 16  # a full snapshot id: 64 hex digits


def test_lineage_parameters_labels_and_store_credentials(tmp_path: Path) -> None:
    pipeline = build_pipeline(KALE)
    out = compile_pipeline(
        pipeline,
        tmp_path / "kale.yaml",
        PackageSpec(
            snapshot_id=SNAPSHOT,
            store="s3://bucket/cellpipe",
            run_id="20260101-120000-abc123",
            owner="alice@example.com",
            env={"AWS_ENDPOINT_URL": "http://minio:9000"},
            secrets=[Secret("s3-creds", "secret-key", "AWS_SECRET_ACCESS_KEY")],
        ),
    )
    spec, platform = load_package(out)
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["cellpipe_snapshot_id"]["defaultValue"] == SNAPSHOT  # runs started from the UI use it too
    assert params["cellpipe_store"]["defaultValue"] == "s3://bucket/cellpipe"
    for task in spec["root"]["dag"]["tasks"].values():
        assert task["inputs"]["parameters"]["cellpipe_snapshot_id"] == {
            "componentInputParameter": "cellpipe_snapshot_id"
        }
    assert "snapshot_id=cellpipe_snapshot_id or None," in component_code(spec, "area")

    assert set(platform) == {"exec-area", "exec-perimeter", "exec-ratio"}
    for name, settings in platform.items():
        labels = settings["podMetadata"]["labels"]
        assert (
            labels
            == {
                "team": "ds",  # the notebook's own label stays
                "app.kubernetes.io/managed-by": "cellpipe",
                "cellpipe.io/owner": "alice-example.com",
                "cellpipe.io/run-id": "20260101-120000-abc123",
                "cellpipe.io/snapshot-id": SNAPSHOT[:12],
                "cellpipe.io/pipeline": pipeline.name,
            }
        ), name
        annotations = settings["podMetadata"]["annotations"]
        assert annotations["cellpipe.io/snapshot-id"] == SNAPSHOT
        assert annotations["cellpipe.io/store"] == "s3://bucket/cellpipe"
        assert annotations["cellpipe.io/owner"] == "alice@example.com"
        [secret] = settings["secretAsEnv"]  # a reference to the Secret, never its value
        assert (secret["secretName"], secret["keyToEnv"]) == (
            "s3-creds",
            [{"envVar": "AWS_SECRET_ACCESS_KEY", "secretKey": "secret-key"}],
        )
    assert {"name": "AWS_ENDPOINT_URL", "value": "http://minio:9000"} in executor(spec, "ratio")["env"]


def test_recurring_lineage_has_no_run_id_label(tmp_path: Path) -> None:
    out = compile_pipeline(
        build_pipeline(KALE), tmp_path / "k.yaml", PackageSpec(snapshot_id=SNAPSHOT, store="gs://b/c")
    )
    _, platform = load_package(out)
    labels = platform["exec-area"]["podMetadata"]["labels"]
    assert labels["cellpipe.io/snapshot-id"] == SNAPSHOT[:12]
    assert "cellpipe.io/run-id" not in labels and "cellpipe.io/owner" not in labels


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"snapshot_id": "not-an-id", "store": "s3://b"}, "snapshot_id", "is not a snapshot id"),
        ({"snapshot_id": SNAPSHOT}, "store", "without the store"),
        ({"snapshot_id": SNAPSHOT, "store": "s3://key:hunter2@minio/b"}, "store", "contains credentials"),
        ({"store": "az://c/p?sv=2020&sig=abc"}, "store", "contains credentials"),
        ({"env": {"HF_TOKEN": "hf_abc"}}, "env:HF_TOKEN", "looks like a credential"),
        # the words of a credential-named notebook parameter (looks_like_credential), pairs included
        ({"env": {"OPENAI_API_KEY": "hf_abc"}}, "env:OPENAI_API_KEY", "looks like a credential"),
    ],
)
def test_lineage_and_env_mistakes(options: dict, field: str, message: str) -> None:
    with pytest.raises(TargetError, match=message) as info:
        build_kfp_pipeline(build_pipeline(KALE), PackageSpec(**options))
    assert info.value.field == field
    assert info.value.hint
    assert "hunter2" not in str(info.value) and "hf_abc" not in str(info.value)


def test_env_without_credential_words_is_fine() -> None:
    build_kfp_pipeline(
        build_pipeline(KALE),
        PackageSpec(env={"TOKENIZERS_PARALLELISM": "false", "MAX_TOKENS": "9", "KEY_PREFIX": "a"}),
    )


def test_user_parameter_with_the_reserved_prefix(write_notebook: Any) -> None:
    notebook = write_notebook([(["parameters"], "cellpipe_store = 'x'"), (["step:a"], "y = cellpipe_store")])
    with pytest.raises(TargetError, match="reserved for cellpipe") as info:
        build_kfp_pipeline(build_pipeline(notebook))
    assert info.value.field == "parameter 'cellpipe_store'"
    assert str(info.value).endswith("Rename it in the parameters cell")


# -- what KFP cannot express ------------------------------------------------------------------------
STEP_ERRORS = [
    (["limit:ephemeral-storage:1Gi"], "KFP cannot set an ephemeral-storage limit"),
    (["limit:nvidia.com/gpu:1", "limit:amd.com/gpu:1"], "one accelerator type"),
    (["limit:memory:1.5Gi"], "KFP does not accept the memory limit '1.5Gi'"),
    (["limit:example.com/fpga:0.5"], "must be a positive whole number"),
]


@pytest.mark.parametrize(("tags", "message"), STEP_ERRORS)
def test_step_settings_kfp_cannot_express(write_notebook: Any, tags: list[str], message: str) -> None:
    pipeline = build_pipeline(write_notebook([(["step:fit", *tags], "x = 1")]))
    with pytest.raises(TargetError, match=message) as info:
        build_kfp_pipeline(pipeline)
    assert info.value.step == "fit"
    assert info.value.hint
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("_hidden = 1", "KFP does not accept this parameter name"),
        ("Output = 1", "KFP does not accept this parameter name"),
        ("label = None", "has no value"),
        (f"seed = {2**60}", "too large"),
        ("table = {'a': None}", "as JSON"),  # {1: 'a'} is refused by the parameters cell itself
    ],
)
def test_parameters_kfp_cannot_carry(write_notebook: Any, source: str, message: str) -> None:
    pipeline = build_pipeline(write_notebook([(["parameters"], source), (["step:a"], "x = 1")]))
    with pytest.raises(TargetError, match=message) as info:
        build_kfp_pipeline(pipeline)
    assert info.value.field and info.value.field.startswith("parameter ")


def test_none_default_needs_a_value(tmp_path: Path, write_notebook: Any) -> None:
    pipeline = build_pipeline(write_notebook([(["parameters"], "label = None"), (["step:a"], "x = label")]))
    spec, _ = load_package(
        compile_pipeline(pipeline, tmp_path / "p.yaml", PackageSpec(parameters={"label": "abc"}))
    )
    assert spec["root"]["inputDefinitions"]["parameters"]["label"]["defaultValue"] == "abc"


def test_bad_toleration_and_node_selector(write_notebook: Any) -> None:
    pipeline = build_pipeline(write_notebook([(["step:a", "limit:nvidia.com/gpu:1"], "x = 1")]))
    with pytest.raises(TargetError, match="invalid toleration"):
        build_kfp_pipeline(pipeline, PackageSpec(gpu_tolerations=[{"key": "k", "operator": "Maybe"}]))
    with pytest.raises(TargetError, match="invalid node selector"):
        build_kfp_pipeline(pipeline, PackageSpec(gpu_node_selector={"gpu": "has spaces"}))


def test_oversized_step_and_output_suffix(tmp_path: Path, write_notebook: Any) -> None:
    big = "blob = " + repr("x" * MAX_COMPONENT_SOURCE)
    pipeline = build_pipeline(write_notebook([(["step:a"], big)]))
    with pytest.raises(TargetError, match="KiB") as info:
        build_kfp_pipeline(pipeline)
    assert info.value.step == "a"
    with pytest.raises(TargetError, match=r"\.yaml"):
        compile_pipeline(build_pipeline(KALE), tmp_path / "out.json")
    assert not (tmp_path / "out.json").exists()


def test_unknown_override_is_a_user_error() -> None:
    with pytest.raises(CellpipeError, match="unknown parameter 'nope'"):
        build_kfp_pipeline(build_pipeline(WINE), PackageSpec(parameters={"nope": 1}))


# -- CLI -------------------------------------------------------------------------------------------
def test_cli_compile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pipeline.yaml"
    assert main(["compile", str(WINE), "-o", str(out), "-p", "n_estimators=7"]) == 0
    spec, _ = load_package(out)
    assert spec["root"]["inputDefinitions"]["parameters"]["n_estimators"]["defaultValue"] == 7
    printed = capsys.readouterr().out.strip()
    compiled, note = printed.splitlines()
    assert compiled == f"compiled 'wine-classifier': 4 steps, 4 parameters -> {out}"
    assert note.startswith("note: no --image: steps run in cellpipe/runtime:0.1.0, cellpipe's default image")
    assert [p.name for p in tmp_path.iterdir()] == ["pipeline.yaml"]  # no temporary file left behind
    assert main(["compile", str(WINE), "-o", str(out), "--image", "registry.example.com/rt:2"]) == 0
    assert "note:" not in capsys.readouterr().out  # an image the user chose needs no note


def test_cli_bad_parameter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pipeline.yaml"
    assert main(["compile", str(WINE), "-o", str(out), "-p", "n_estimators=many"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("cellpipe: error:") and "n_estimators" in err
    assert len(err.splitlines()) == 1
    assert not out.exists()


def test_cli_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["compile", "--help"])
    assert "cellpipe compile train.ipynb -o train.yaml" in capsys.readouterr().out


# -- real runs under kfp.local -------------------------------------------------------------------------
@pytest.fixture
def kfp_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """kfp.local with the subprocess runner; each task's ephemeral_component.py dir lands in our tmp."""
    from kfp import local
    from kfp.local import config

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # `mktemp -d` in each task's command, and the step workdirs
    root = tmp_path / "pipeline_root"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    try:
        yield root
    finally:
        config.LocalExecutionConfig.instance = None
        leftovers = list(scratch.glob("*/ephemeral_component.py"))
        shutil.rmtree(scratch, ignore_errors=True)
        assert leftovers, "the tasks' temporary files were expected under TMPDIR"


def run_package(package: Path, root: Path, **arguments: Any) -> Path:
    """Run a compiled package under kfp.local, loaded from its YAML; return the run's directory."""
    from kfp import components

    pipeline = components.load_component_from_file(str(package))
    pipeline(**arguments)
    [run_dir] = root.iterdir()
    return run_dir


def logged_metrics(run_dir: Path, task: str) -> dict[str, float]:
    output = json.loads((run_dir / task / "executor_output.json").read_text())
    return output["artifacts"]["metrics"]["artifacts"][0]["metadata"]


# kfp.local says what it ignores (display names, resources) and that our image is not a stock Python one.
local_run = pytest.mark.filterwarnings(
    "ignore:.*no effect in the current local runner:UserWarning",
    "ignore:.*non-Python base image:RuntimeWarning",
)
WINE_OVERRIDES = {"n_estimators": 3, "max_depth": 1, "test_size": 0.5, "seed": 3}


@pytest.mark.slow
@local_run
def test_compiled_wine_runs_like_the_local_runner(tmp_path: Path, kfp_local: Path) -> None:
    import joblib

    from jupyter_ext.services.runs import run_pipeline

    pipeline = build_pipeline(WINE)
    package = compile_pipeline(
        pipeline, tmp_path / "wine.yaml", PackageSpec(parameters={"n_estimators": 3, "max_depth": 1})
    )
    # two parameters as compiled defaults, two passed at run time
    run_dir = run_package(package, kfp_local, test_size=0.5, seed=3)

    for task, files in {
        "load-data": ["df.parquet"],
        "split": ["X_train.parquet", "y_train.parquet", "X_test.parquet", "y_test.parquet"],
        "train": ["model.joblib"],
        "evaluate": ["evaluate.ipynb", "_metrics.json"],
    }.items():
        outputs = run_dir / task / "outputs"
        assert all((outputs / name).is_file() for name in files), (
            task,
            sorted(p.name for p in outputs.iterdir()),
        )
    model = joblib.load(run_dir / "train" / "outputs" / "model.joblib")
    assert (model.n_estimators, model.max_depth, model.random_state) == (3, 1, 3)

    kfp_metrics = logged_metrics(run_dir, "evaluate")  # what metrics.log_metric recorded
    assert kfp_metrics == json.loads((run_dir / "evaluate" / "outputs" / "_metrics.json").read_text())

    record = run_pipeline(
        pipeline,
        workdir=tmp_path,
        data_dir=tmp_path / "local",
        parameters=WINE_OVERRIDES,
        use_cache=False,
    ).to_dict()
    assert record["status"] == "succeeded", record
    assert set(kfp_metrics) == {"accuracy", "f1"}
    assert kfp_metrics == pytest.approx(record["metrics"], rel=0, abs=1e-12)
    assert kfp_metrics["accuracy"] < 0.9  # these parameters make a weak model: the defaults would give 1.0


@pytest.mark.slow
@local_run
def test_compiled_types_and_awkward_names_run(tmp_path: Path, kfp_local: Path, write_notebook: Any) -> None:
    """list/dict/bool/str parameters arrive typed; a step named 'class' and a parameter named 'json' work."""
    notebook = write_notebook(
        [
            (["parameters"], 'json = "hello"\nflags = [1, 2]\nopts = {"a": 1}\nverbose = True\nRate = 0.5'),
            (["step:class"], 'total = sum(flags) + opts["a"]\nlabel = json.upper()'),
            (["step:report"], 'score = total * Rate if verbose else 0.0\nassert label == "HI", label'),
            (["pipeline-metrics"], "score"),
        ]
    )
    package = compile_pipeline(
        build_pipeline(notebook), tmp_path / "names.yaml", PackageSpec(parameters={"json": "hi"})
    )
    run_dir = run_package(package, kfp_local, flags=[1, 2, 3], opts={"a": 4})
    assert logged_metrics(run_dir, "report") == {"score": (6 + 4) * 0.5}


@pytest.mark.slow
@local_run
def test_compiled_step_reads_relative_data_from_the_snapshot(
    tmp_path: Path, kfp_local: Path, write_notebook: Any
) -> None:
    """With cellpipe_snapshot_id/cellpipe_store the step runs in the restored notebook's directory."""
    from jupyter_ext.snapshot import take_snapshot

    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "values.txt").write_text("1\n2\n3\n")
    notebook = write_notebook(
        [
            (["step:total"], "total = sum(int(line) for line in open('data/values.txt'))"),
            (["pipeline-metrics"], "total"),
        ],
        metadata={"cellpipe": {"data": ["data/values.txt"]}},
        name="project/sum.ipynb",
    )
    pipeline = build_pipeline(notebook)
    store = str(tmp_path / "store")
    snapshot = take_snapshot(notebook, store=store)
    # The data exists only in the store now: the step must read the snapshot, not the project directory.
    shutil.rmtree(project / "data")
    package = compile_pipeline(
        pipeline, tmp_path / "sum.yaml", PackageSpec(snapshot_id=snapshot.id, store=store)
    )
    run_dir = run_package(package, kfp_local)
    assert logged_metrics(run_dir, "total") == {"total": 6}


def test_every_step_runs_non_root(tmp_path: Path, write_notebook: Any) -> None:
    import kubernetes_validate

    pipeline = build_pipeline(write_notebook([(["step:a"], "x = 1"), (["step:b"], "y = x")]))
    _, platform = load_package(compile_pipeline(pipeline, tmp_path / "p.yaml"))
    contexts = {name: spec["securityContext"] for name, spec in platform.items()}
    assert len(contexts) == 2
    for context in contexts.values():
        assert context == {"runAsNonRoot": True, "runAsUser": "1000", "runAsGroup": "100"}
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {
                "containers": [
                    {
                        "name": "c",
                        "image": "i",
                        "securityContext": {**context, "runAsUser": 1000, "runAsGroup": 100},
                    }
                ]
            },
        }
        kubernetes_validate.validate(pod, "1.34", strict=True)  # the fields are a container securityContext's
