"""Manifests from jupyter_ext.targets.k8s.objects: schema-valid, hardened, secrets by reference only."""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import pytest

from jupyter_ext.targets.k8s.objects import (
    SCRATCH_ENV,
    WORK_DIR,
    make_env,
    make_job,
    make_resources,
    run_labels,
    sanitize_name,
    secret_env,
)

VARIANTS = ["plain-job", "gpu-job", "secrets-pvc-job", "cronjob"]
# The rules from the Kubernetes docs, written out independently of the code under test.
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def pod_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    spec = manifest["spec"]
    job_spec = spec["jobTemplate"]["spec"] if manifest["kind"] == "CronJob" else spec
    return job_spec["template"]["spec"]


@pytest.mark.parametrize("version", ["1.28", "1.34"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_manifest_is_schema_valid(manifests: dict[str, dict], variant: str, version: str) -> None:
    # strict=True also rejects fields the schema does not know (typos like `tolerationSeconds` in the wrong place).
    kubernetes_validate.validate(manifests[variant], version, strict=True)


@pytest.mark.parametrize("variant", VARIANTS)
def test_security_defaults(manifests: dict[str, dict], variant: str) -> None:
    pod = pod_spec(manifests[variant])
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1000
    assert pod["securityContext"]["fsGroup"] == 100
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # A read-only root needs writable scratch space for papermill and the kernel.
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert volumes[mounts["/tmp"]] == {"name": mounts["/tmp"], "emptyDir": {"sizeLimit": "2Gi"}}
    assert volumes[mounts[WORK_DIR]] == {"name": mounts[WORK_DIR], "emptyDir": {"sizeLimit": "20Gi"}}
    assert container["workingDir"] == WORK_DIR
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert all(env[k] == v for k, v in SCRATCH_ENV.items())


def test_run_as_user_is_configurable_but_never_root() -> None:
    job = make_job("j", "ns", image="img", command=["run"], run_as_user=4242)
    assert job["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 4242


def test_no_service_account_means_no_api_token(manifests: dict[str, dict]) -> None:
    assert pod_spec(manifests["plain-job"])["automountServiceAccountToken"] is False
    spec = pod_spec(manifests["secrets-pvc-job"])
    assert spec["serviceAccountName"] == "cellpipe-runner"
    assert "automountServiceAccountToken" not in spec


def test_secrets_only_as_secret_key_refs(manifests: dict[str, dict]) -> None:
    (container,) = pod_spec(manifests["secrets-pvc-job"])["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["AWS_ACCESS_KEY_ID"] == {
        "name": "AWS_ACCESS_KEY_ID",
        "valueFrom": {"secretKeyRef": {"name": "s3-creds", "key": "access-key"}},
    }
    assert env["DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "db.creds", "key": "pass_word"}
    assert "value" not in env["AWS_ACCESS_KEY_ID"] and "value" not in env["DB_PASSWORD"]
    assert env["LOG_LEVEL"] == {"name": "LOG_LEVEL", "value": "info"}


def test_secret_helper_takes_references_not_values() -> None:
    # A {"name": ..., "value": ...} entry (the shape of a literal env var) is not a secret reference.
    with pytest.raises(TypeError, match="triple"):
        secret_env([{"name": "TOKEN", "value": "hunter2"}])
    with pytest.raises(TypeError, match="triple"):
        secret_env([("only-two", "parts")])
    assert secret_env([("s", "k", "E")]) == [
        {"name": "E", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
    ]


def test_gpu_job_scheduling(manifests: dict[str, dict]) -> None:
    pod = pod_spec(manifests["gpu-job"])
    (container,) = pod["containers"]
    assert container["resources"] == {
        "limits": {"nvidia.com/gpu": "1", "cpu": "2", "memory": "4Gi"},
        "requests": {"cpu": "2", "memory": "4Gi"},  # GPUs only in limits: the API server copies them
    }
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["nodeSelector"] == {
        "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB",
        "kubernetes.io/os": "linux",
    }


def test_gpu_tolerations_are_configurable_and_not_duplicated() -> None:
    resources = make_resources({"amd.com/gpu": "2"})
    mine = {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
    job = make_job(
        "j", "ns", image="i", command=["c"], resources=resources, tolerations=[mine], gpu_tolerations=[mine]
    )
    assert pod_spec(job)["tolerations"] == [mine]
    default = make_job("j", "ns", image="i", command=["c"], resources=resources)
    assert pod_spec(default)["tolerations"] == [
        {"key": "amd.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]


def test_no_gpu_means_no_gpu_scheduling(manifests: dict[str, dict]) -> None:
    pod = pod_spec(manifests["plain-job"])
    assert "tolerations" not in pod and "nodeSelector" not in pod
    job = make_job("j", "ns", image="i", command=["c"], gpu_node_selector={"gpu": "yes"})
    assert "nodeSelector" not in pod_spec(job)


def test_pvc_volumes_and_env(manifests: dict[str, dict]) -> None:
    pod = pod_spec(manifests["secrets-pvc-job"])
    (container,) = pod["containers"]
    claims = {
        v["persistentVolumeClaim"]["claimName"]: v["name"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert set(claims) == {"training-data", "model-store"}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claims["training-data"]] == "/data"
    assert mounts[claims["model-store"]] == "/models"
    assert {"name": "DATA_DIR", "value": "/data"} in container["env"]


def test_cronjob_fields(manifests: dict[str, dict]) -> None:
    cron = manifests["cronjob"]
    spec = cron["spec"]
    assert spec["schedule"] == "0 3 * * MON-FRI"
    assert spec["timeZone"] == "Europe/Berlin"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] == 600
    assert spec["suspend"] is False
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (3, 3)
    assert spec["jobTemplate"]["metadata"]["labels"] == cron["metadata"]["labels"]
    assert spec["jobTemplate"]["spec"]["backoffLimit"] == 0


def test_job_defaults(manifests: dict[str, dict]) -> None:
    job = manifests["plain-job"]
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["ttlSecondsAfterFinished"] == 86400
    assert "activeDeadlineSeconds" not in job["spec"]
    assert job["spec"]["template"]["metadata"]["labels"] == job["metadata"]["labels"]


@pytest.mark.parametrize(
    "owner, run_id",
    [
        ("alice@example.com", "run-1"),
        ("Bob Smith (data team)", "2025-01-01T03:00:00Z"),
        ("-._weird_.-", "a" * 200),
        ("ünïcødé", "run/with/slashes"),
    ],
)
def test_run_labels_are_valid_label_values(owner: str, run_id: str) -> None:
    meta = run_labels(
        owner, "/home/jovyan/work/deep/dir/My Notebook (final) v2.ipynb", run_id, "snap:1", "My Pipeline!"
    )
    assert meta.labels["app.kubernetes.io/managed-by"] == "cellpipe"
    for key in ("cellpipe.io/owner", "cellpipe.io/run-id", "cellpipe.io/snapshot-id", "cellpipe.io/pipeline"):
        value = meta.labels[key]
        assert len(value) <= 63 and LABEL_VALUE.match(value), (key, value)
    assert (
        meta.annotations["cellpipe.io/notebook"] == "/home/jovyan/work/deep/dir/My Notebook (final) v2.ipynb"
    )
    assert meta.annotations["cellpipe.io/owner"] == owner
    # The labels are accepted into a manifest (which re-checks them).
    make_job("j", "ns", image="i", command=["c"], labels=meta.labels, annotations=meta.annotations)


def test_run_labels_skip_missing_ids() -> None:
    labels, _ = run_labels("alice", "nb.ipynb", "run-1")
    assert "cellpipe.io/snapshot-id" not in labels and "cellpipe.io/pipeline" not in labels


@pytest.mark.parametrize(
    "text",
    ["My Notebook.ipynb", "train_model", "UPPER--case__", "---", "", "ü" * 10, "x" * 300, "a.b.c/d e"],
)
def test_sanitize_name_is_always_a_dns_label(text: str) -> None:
    name = sanitize_name(text)
    assert DNS_LABEL.match(name) and len(name) <= 63, name


def test_sanitize_name_examples_and_truncation_keeps_names_distinct() -> None:
    assert sanitize_name("My Notebook: Train/Eval") == "my-notebook-train-eval"
    assert sanitize_name("train_model.ipynb") == "train-model-ipynb"
    long_a, long_b = "pipeline-" + "x" * 80 + "-a", "pipeline-" + "x" * 80 + "-b"
    assert sanitize_name(long_a) != sanitize_name(long_b)
    assert len(sanitize_name(long_a)) == 63
    assert len(sanitize_name(long_a, max_len=52)) == 52
    assert sanitize_name(long_a) == sanitize_name(long_a)  # deterministic: re-runs find the same objects


def test_make_env_keeps_order_and_stringifies() -> None:
    assert make_env({"A": 1, "B": True}) == [{"name": "A", "value": "1"}, {"name": "B", "value": "True"}]
