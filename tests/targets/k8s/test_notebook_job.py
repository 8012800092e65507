"""Job/CronJob manifests for a whole notebook: schema-valid, the union of the steps' needs, values as JSON."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest

from jupyter_ext.errors import TargetError
from jupyter_ext.pipeline.build import build_pipeline
from jupyter_ext.pipeline.model import Parameter, Pipeline, Secret, SourceCell, Step, Volume
from jupyter_ext.targets.k8s.notebook_job import (
    JOB_NAME_LABEL,
    RUN_ID_ENV,
    NotebookRun,
    PodOptions,
    choose_image,
    make_notebook_cronjob,
    make_notebook_job,
    new_job_name,
    parameter_args,
    quantity_value,
)

SNAPSHOT = "7f3a" + "0" * 60
STORE = "s3://ml-bucket/cellpipe"
IMAGE = "ghcr.io/acme/cellpipe-runtime:1.0"


def step(name: str, **kwargs: Any) -> Step:
    return Step(name=name, cells=[SourceCell(1, "x = 1")], **kwargs)


def pipeline(**kwargs: Any) -> Pipeline:
    steps = kwargs.pop("steps") if "steps" in kwargs else [
        step("load", limits={"cpu": "500m", "memory": "1Gi"}, secrets=[Secret("s3-creds", "key", "S3_KEY")],
             labels={"team": "vision"}),
        step("train", limits={"cpu": "2", "memory": "512Mi", "nvidia.com/gpu": "1"},
             secrets=[Secret("s3-creds", "key", "S3_KEY"), Secret("db", "password", "DB_PASSWORD")],
             annotations={"example.com/ticket": "ML-1"}),
    ]  # fmt: skip
    defaults: dict[str, Any] = {
        "name": "Train Model",
        "notebook": "notebooks/train.ipynb",
        "steps": steps,
        "parameters": [Parameter("epochs", "int", 3), Parameter("layers", "list", [64, 32])],
        "volumes": [Volume("training-data", "/data", "DATA_DIR")],
    }
    return Pipeline(**{**defaults, **kwargs})


def run(p: Pipeline | None = None, **parameters: Any) -> NotebookRun:
    values = parameters or {"epochs": 20, "layers": [64, 32]}
    return NotebookRun(p or pipeline(), SNAPSHOT, STORE, "alice@example.com", values)


def options(**kwargs: Any) -> PodOptions:
    return PodOptions(**{"image": IMAGE, "namespace": "team-a", **kwargs})


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    spec = manifest["spec"]
    job_spec = spec["jobTemplate"]["spec"] if manifest["kind"] == "CronJob" else spec
    return job_spec["template"]["spec"]["containers"][0]


def pod(manifest: dict[str, Any]) -> dict[str, Any]:
    spec = manifest["spec"]
    return (spec["jobTemplate"]["spec"] if manifest["kind"] == "CronJob" else spec)["template"]["spec"]


def variants() -> dict[str, dict[str, Any]]:
    plain = pipeline(steps=[], parameters=[Parameter("alpha", "float", 0.5)], volumes=[])
    return {
        "job": make_notebook_job(run(), "train-model-20250101-030000-abcdef", options()),
        "job-all-options": make_notebook_job(
            run(),
            "train-model-1",
            options(
                active_deadline_seconds=3600,
                backoff_limit=2,
                ttl_seconds_after_finished=600,
                gpu_node_selector={"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB"},
                gpu_tolerations=[{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
                service_account="cellpipe-runner",
                env={"MLFLOW_TRACKING_URI": "http://mlflow:5000"},
                secrets=[Secret("store-creds", "access-key", "AWS_ACCESS_KEY_ID")],
                image_pull_policy="IfNotPresent",
            ),
        ),  # fmt: skip
        "plain-notebook-job": make_notebook_job(run(plain, alpha=0.9), "report-1", options()),
        "cronjob": make_notebook_cronjob(
            run(), "train-model", options(), schedule="0 3 * * MON-FRI", timezone="Europe/Berlin"
        ),
    }


@pytest.mark.parametrize("version", ["1.28", "1.34"])
@pytest.mark.parametrize("variant", ["job", "job-all-options", "plain-notebook-job", "cronjob"])
def test_manifests_are_schema_valid(variant: str, version: str) -> None:
    kubernetes_validate.validate(variants()[variant], version, strict=True)


def test_pod_runs_the_entry_point_with_json_parameters() -> None:
    c = container(make_notebook_job(run(), "train-model-1", options()))
    assert c["command"] == ["python", "-m", "jupyter_ext.services.job_main"]
    assert c["args"] == [
        "--store", STORE, "--snapshot", SNAPSHOT, "--run-id", "train-model-1",
        "-p", "epochs=20", "-p", "layers=[64,32]",
    ]  # fmt: skip
    assert c["image"] == IMAGE


def test_parameters_are_values_never_code() -> None:
    tricky = {"label": "x'); import os; os.system('rm -rf /')  #", "flag": True, "nothing": None}
    args = parameter_args(tricky)
    assert args[1] == "label=\"x'); import os; os.system('rm -rf /')  #\""
    assert args[3:] == ["flag=true", "-p", "nothing=null"]
    assert {a.split("=", 1)[0]: json.loads(a.split("=", 1)[1]) for a in args[1::2]} == tricky


def test_parameter_that_json_would_change_is_refused() -> None:
    with pytest.raises(TargetError) as excinfo:
        parameter_args({"mapping": {1: "one"}})
    assert str(excinfo.value) == (
        "parameter 'mapping': value {1: 'one'} does not survive JSON (dict keys must be strings). "
        "Use string keys, e.g. {'1': 2}"
    )


def test_resources_are_the_largest_limit_of_each_step() -> None:
    manifest = make_notebook_job(run(), "train-model-1", options(gpu_node_selector={"gpu": "a100"}))
    assert container(manifest)["resources"] == {
        "limits": {"cpu": "2", "memory": "1Gi", "nvidia.com/gpu": "1"},
        "requests": {"cpu": "2", "memory": "1Gi"},
    }
    spec = pod(manifest)
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["nodeSelector"] == {"gpu": "a100"}


def test_no_gpu_no_gpu_scheduling() -> None:
    cpu_only = pipeline(steps=[step("a", limits={"cpu": "1"})])
    spec = pod(make_notebook_job(run(cpu_only), "a-1", options(gpu_node_selector={"gpu": "a100"})))
    assert "tolerations" not in spec and "nodeSelector" not in spec


def test_bad_step_limit_names_the_step() -> None:
    bad = pipeline(steps=[step("train", limits={"memory": "4GB"})])
    with pytest.raises(
        TargetError, match="step 'train': limit:memory:4GB: 'memory' is not a Kubernetes quantity"
    ):
        make_notebook_job(run(bad), "train-1", options())


@pytest.mark.parametrize(
    "small, large", [("500m", "2"), ("512Mi", "1Gi"), ("1G", "1Gi"), ("1e3", "2k"), ("0.5", "600m")]
)
def test_quantities_compare_by_value(small: str, large: str) -> None:
    assert quantity_value(small) < quantity_value(large)


def test_secrets_by_reference_once_each_plus_extra() -> None:
    manifest = make_notebook_job(
        run(), "train-model-1", options(secrets=[Secret("store-creds", "access-key", "AWS_ACCESS_KEY_ID")])
    )
    env = {e["name"]: e for e in container(manifest)["env"]}
    assert env["S3_KEY"] == {
        "name": "S3_KEY",
        "valueFrom": {"secretKeyRef": {"name": "s3-creds", "key": "key"}},
    }
    assert env["DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "db", "key": "password"}
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {
        "name": "store-creds",
        "key": "access-key",
    }
    assert [e["name"] for e in container(manifest)["env"]].count("S3_KEY") == 1
    assert all("value" not in env[name] for name in ("S3_KEY", "DB_PASSWORD", "AWS_ACCESS_KEY_ID"))


def test_one_variable_two_secrets_is_an_error() -> None:
    clash = pipeline(steps=[step("a", secrets=[Secret("one", "k", "TOKEN")]),
                            step("b", secrets=[Secret("two", "k", "TOKEN")])])  # fmt: skip
    with pytest.raises(TargetError) as excinfo:
        make_notebook_job(run(clash), "x-1", options())
    assert str(excinfo.value) == (
        "notebooks/train.ipynb: secret:TOKEN: environment variable 'TOKEN' is one:k in step 'a' but two:k in "
        "step 'b'. All steps share one pod on this target; give the variables different names"
    )


def test_labels_and_annotations_find_the_run() -> None:
    manifest = make_notebook_job(run(), "train-model-1", options())
    meta = manifest["metadata"]
    assert meta["labels"] == {
        "app.kubernetes.io/managed-by": "cellpipe",
        "team": "vision",
        "cellpipe.io/owner": "alice-example.com",
        "cellpipe.io/run-id": "train-model-1",
        "cellpipe.io/snapshot-id": SNAPSHOT[:12],
        "cellpipe.io/pipeline": "Train-Model",
    }
    annotations = meta["annotations"]
    assert annotations["cellpipe.io/snapshot-id"] == SNAPSHOT
    assert annotations["cellpipe.io/notebook"] == "notebooks/train.ipynb"
    assert annotations["cellpipe.io/owner"] == "alice@example.com"
    assert annotations["cellpipe.io/store"] == STORE
    assert json.loads(annotations["cellpipe.io/parameters"]) == {"epochs": 20, "layers": [64, 32]}
    assert annotations["example.com/ticket"] == "ML-1"
    assert manifest["spec"]["template"]["metadata"]["labels"] == meta["labels"]


def test_steps_disagreeing_on_a_label() -> None:
    clash = pipeline(steps=[step("a", labels={"team": "x"}), step("b", labels={"team": "y"})])
    with pytest.raises(TargetError, match="label 'team' is 'x' in step 'a' but 'y' in step 'b'"):
        make_notebook_job(run(clash), "x-1", options())


def test_volumes_come_from_the_notebook() -> None:
    manifest = make_notebook_job(run(), "train-model-1", options())
    volumes = {v["name"]: v for v in pod(manifest)["volumes"]}
    assert volumes["pvc-training-data"] == {
        "name": "pvc-training-data",
        "persistentVolumeClaim": {"claimName": "training-data"},
    }
    c = container(manifest)
    assert {"name": "pvc-training-data", "mountPath": "/data"} in c["volumeMounts"]
    assert {"name": "DATA_DIR", "value": "/data"} in c["env"]


def test_cronjob_runs_get_their_id_from_the_job_name() -> None:
    manifest = make_notebook_cronjob(run(), "nightly", options(), schedule="0 3 * * *")
    c = container(manifest)
    assert "--run-id" not in c["args"]
    assert c["env"][-1] == {
        "name": RUN_ID_ENV,
        "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{JOB_NAME_LABEL}']"}},
    }
    labels = manifest["spec"]["jobTemplate"]["metadata"]["labels"]
    assert "cellpipe.io/run-id" not in labels and labels["cellpipe.io/schedule"] == "nightly"
    assert manifest["spec"]["concurrencyPolicy"] == "Forbid"


def test_invalid_cron_names_the_field() -> None:
    with pytest.raises(TargetError) as excinfo:
        make_notebook_cronjob(run(), "nightly", options(), schedule="0 25 * * *")
    assert str(excinfo.value) == "schedule: invalid cron '0 25 * * *': field 2 (hour) must be 0-23, got 25"


def test_invalid_names_are_explained_not_rewritten() -> None:
    with pytest.raises(TargetError) as excinfo:
        make_notebook_cronjob(run(), "Nightly_Train", options(), schedule="@daily")
    assert str(excinfo.value) == (
        "--name: invalid cronjob name 'Nightly_Train': it has uppercase letters. Use lowercase letters, digits "
        "and '-', at most 52 characters, starting and ending with a letter or digit, e.g. 'nightly-train'"
    )
    with pytest.raises(
        TargetError, match="--name: invalid job name 'a+': it is 70 characters long, the limit is 63"
    ):
        make_notebook_job(run(), "a" * 70, options())


def test_generated_job_names_fit_and_keep_the_run_id() -> None:
    name = new_job_name("A very long pipeline name that goes on and on and on and on forever")
    assert len(name) <= 63 and name.startswith("a-very-long-pipeline-name")
    assert name.rsplit("-", 3)[1].isdigit()  # ...-<YYYYmmdd>-<HHMMSS>-<hex>
    make_notebook_job(run(), name, options())  # valid as is


def test_run_id_env_is_reserved() -> None:
    with pytest.raises(TargetError, match="CELLPIPE_RUN_ID is set by cellpipe"):
        make_notebook_job(run(), "x-1", options(env={RUN_ID_ENV: "mine"}))


def test_image_choice() -> None:
    two = pipeline(image="base:1", steps=[step("a"), step("b", image="gpu:2")])
    assert choose_image(two, "all:3", None) == ("all:3", ["--image all:3 replaces the notebook's metadata: base:1, step b: gpu:2"])  # fmt: skip
    with pytest.raises(TargetError) as excinfo:
        choose_image(two, None, "default:1")
    assert str(excinfo.value) == (
        "notebooks/train.ipynb: --image: the notebook names 2 images (metadata: base:1, step b: gpu:2) but this "
        "target runs all steps in one pod. Pass --image with an image that has everything the steps need"
    )
    assert choose_image(pipeline(image="base:1"), None, "default:1") == ("base:1", [])
    assert choose_image(pipeline(), None, "default:1") == ("default:1", ["no --image: the pod runs default:1, from $CELLPIPE_IMAGE"])  # fmt: skip
    with pytest.raises(
        TargetError, match="no container image for the pod. Pass --image REF, set CELLPIPE_IMAGE"
    ):
        choose_image(pipeline(), None, None)


def test_from_a_tagged_notebook(write_notebook: Any) -> None:
    path = write_notebook(
        [
            (["parameters"], "n = 3"),
            (["step:load", "limit:memory:2Gi", "secret:s3-creds:key:S3_KEY"], "xs = list(range(n))"),
            (["step:train", "limit:nvidia.com/gpu:1"], "total = sum(xs)"),
        ],
        metadata={"cellpipe": {"volumes": [{"name": "data", "mount_point": "/data"}]}},
    )
    built = build_pipeline(path)
    manifest = make_notebook_job(NotebookRun(built, SNAPSHOT, STORE, "bob", {"n": 4}), "nb0-1", options())
    kubernetes_validate.validate(manifest, "1.34", strict=True)
    c = container(manifest)
    assert c["resources"]["limits"] == {
        "cpu": "2",
        "memory": "2Gi",
        "nvidia.com/gpu": "1",
    }  # cpu: the default
    assert c["args"][-2:] == ["-p", "n=4"]
    assert any(v.get("persistentVolumeClaim") == {"claimName": "data"} for v in pod(manifest)["volumes"])


# -- resources and scratch space (never BestEffort, never unbounded) --------------------------------------


def test_a_plain_notebook_job_gets_default_requests_and_limits() -> None:
    manifest = variants()["plain-notebook-job"]
    assert container(manifest)["resources"] == {
        "limits": {"cpu": "2", "memory": "4Gi"},
        "requests": {"cpu": "250m", "memory": "1Gi"},
    }
    kubernetes_validate.validate(manifest, "1.34", strict=True)


def test_limit_options_win_over_tags_and_defaults() -> None:
    plain = pipeline(steps=[], parameters=[], volumes=[])
    manifest = make_notebook_job(run(plain), "report-2", options(limits={"memory": "8Gi", "cpu": "100m"}))
    kubernetes_validate.validate(manifest, "1.34", strict=True)
    assert container(manifest)["resources"] == {
        "limits": {"cpu": "100m", "memory": "8Gi"},
        "requests": {"cpu": "100m", "memory": "8Gi"},  # what is set is requested in full
    }


def test_default_resources_are_configurable() -> None:
    from jupyter_ext.targets.k8s.notebook_job import default_resources

    configured = default_resources(
        {"CELLPIPE_JOB_REQUESTS": "cpu=1", "CELLPIPE_JOB_LIMITS": "cpu=4,memory=16Gi"}
    )
    assert configured == {"requests": {"cpu": "1"}, "limits": {"cpu": "4", "memory": "16Gi"}}
    assert default_resources({"CELLPIPE_JOB_REQUESTS": "none", "CELLPIPE_JOB_LIMITS": "none"}) == {
        "requests": {},
        "limits": {},
    }
    with pytest.raises(TargetError, match="CELLPIPE_JOB_LIMITS: 'memory' is not RESOURCE=VALUE"):
        default_resources({"CELLPIPE_JOB_LIMITS": "memory"})
    with pytest.raises(TargetError, match="limit:memory:lots"):
        default_resources({"CELLPIPE_JOB_LIMITS": "memory=lots"})
    plain = pipeline(steps=[], parameters=[], volumes=[])
    manifest = make_notebook_job(run(plain), "report-3", options(defaults=configured))
    assert container(manifest)["resources"] == {
        "limits": {"cpu": "4", "memory": "16Gi"},
        "requests": {"cpu": "1", "memory": "16Gi"},
    }


def test_a_default_request_never_exceeds_the_limit() -> None:
    plain = pipeline(steps=[], parameters=[], volumes=[])
    small = {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"cpu": "100m", "memory": "512Mi"}}
    resources = container(make_notebook_job(run(plain), "report-4", options(defaults=small)))["resources"]
    assert resources["requests"] == {"cpu": "100m", "memory": "512Mi"}


@pytest.mark.parametrize("variant", ["job", "plain-notebook-job", "cronjob"])
def test_scratch_volumes_have_a_size_limit(variant: str) -> None:
    empty_dirs = {v["name"]: v["emptyDir"] for v in pod(variants()[variant])["volumes"] if "emptyDir" in v}
    assert empty_dirs == {"tmp": {"sizeLimit": "2Gi"}, "work": {"sizeLimit": "20Gi"}}
