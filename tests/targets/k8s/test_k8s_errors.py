"""User mistakes in Kubernetes settings: each is one TargetError line that says what and where."""

from __future__ import annotations

from pathlib import Path

import pytest

from jupyter_ext.errors import TargetError
from jupyter_ext.targets.k8s.objects import (
    make_cronjob,
    make_env,
    make_job,
    make_resources,
    resolve_namespace,
    validate_cron,
    validate_name,
)
from jupyter_ext.targets.k8s.schedule import validate_timezone


def error_text(excinfo: pytest.ExceptionInfo[TargetError]) -> str:
    text = str(excinfo.value)
    assert "\n" not in text  # one line, no traceback
    return text


# -- resources ----------------------------------------------------------------------------------------
def test_fractional_gpu() -> None:
    with pytest.raises(TargetError) as excinfo:
        make_resources({"nvidia.com/gpu": "1.5"}, step="train")
    text = error_text(excinfo)
    assert "step 'train'" in text and "limit:nvidia.com/gpu:1.5" in text
    assert "GPU count for 'nvidia.com/gpu' must be a positive whole number, got '1.5'" in text
    assert excinfo.value.field == "limit:nvidia.com/gpu:1.5"


@pytest.mark.parametrize("value", ["0", "-1", "one", "1e3"])
def test_gpu_count_must_be_positive_integer(value: str) -> None:
    with pytest.raises(TargetError, match=f"got '{value}'"):
        make_resources({"amd.com/gpu": value})


def test_unknown_resource() -> None:
    with pytest.raises(TargetError) as excinfo:
        make_resources({"foo": "1"}, step="prep")
    text = error_text(excinfo)
    assert "limit:foo:1" in text and "unknown resource 'foo'" in text
    assert "cpu, memory, ephemeral-storage or an extended resource like nvidia.com/gpu" in text


@pytest.mark.parametrize("name", ["gpu", "kubernetes.io/gpu", "nvidia/gpu", "hugepages-2Mi"])
def test_resources_outside_the_allowed_set(name: str) -> None:
    with pytest.raises(TargetError, match=f"unknown resource '{name}'"):
        make_resources({name: "1"})


def test_bad_quantity_suggests_the_kubernetes_spelling() -> None:
    with pytest.raises(TargetError) as excinfo:
        make_resources({"memory": "4GB"})
    text = error_text(excinfo)
    assert "'memory' is not a Kubernetes quantity, got '4GB'" in text and "'4Gi'" in text


@pytest.mark.parametrize("value", ["two", "2 cores", "-1", "1.2.3", "4Gb"])
def test_cpu_memory_must_be_quantities(value: str) -> None:
    with pytest.raises(TargetError, match="not a Kubernetes quantity"):
        make_resources({"cpu": value})


def test_zero_limit() -> None:
    with pytest.raises(TargetError, match="'memory' must be greater than zero"):
        make_resources({"memory": "0Gi"})


@pytest.mark.parametrize("value", ["500m", "2", "0.5", "4Gi", "512Mi", "1e3", "1.5G", "100k"])
def test_valid_quantities(value: str) -> None:
    assert make_resources({"cpu": value})["limits"]["cpu"] == value


def test_hand_built_resources_are_checked_too() -> None:
    with pytest.raises(TargetError, match="unknown resource 'foo'"):
        make_job("j", "ns", image="i", command=["c"], resources={"limits": {"foo": "1"}})


# -- cron -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "expr, expected",
    [
        ("0 25 * * *", "invalid cron '0 25 * * *': field 2 (hour) must be 0-23, got 25"),
        ("60 * * * *", "field 1 (minute) must be 0-59, got 60"),
        ("0 0 0 * *", "field 3 (day of month) must be 1-31, got 0"),
        ("0 0 * 13 *", "field 4 (month) must be 1-12, got 13"),
        ("0 0 * * 7", "field 5 (day of week) must be 0-6, got 7"),
        ("0 0 * * FUNDAY", "field 5 (day of week) must be a number 0-6 or a name, got FUNDAY"),
        ("*/0 * * * *", "field 1 (minute) step must be a positive number, got '/0'"),
        ("0 5-1 * * *", "field 2 (hour) range 5-1 goes backwards"),
        ("0 1,,2 * * *", "field 2 (hour) has an empty value in '1,,2'"),
        ("0 0 * *", "invalid cron '0 0 * *': expected 5 fields, got 4"),
        ("0 0 0 * * *", "expected 5 fields, got 6"),
        ("", "expected 5 fields, got 0"),
        ("@every 5m", "unknown macro"),
        ("TZ=UTC 0 3 * * *", "Kubernetes does not accept TZ= in the schedule"),
    ],
)
def test_bad_cron(expr: str, expected: str) -> None:
    with pytest.raises(TargetError) as excinfo:
        validate_cron(expr)
    assert expected in error_text(excinfo)
    assert excinfo.value.field == "schedule"


@pytest.mark.parametrize(
    "expr",
    [
        "0 3 * * *",
        "*/15 * * * *",
        "0 9-17/2 * * MON-FRI",
        "0 0 1 jan,jul *",
        "5,35 * ? * *",
        "@daily",
        "@HOURLY",
    ],
)
def test_good_cron(expr: str) -> None:
    validate_cron(expr)


def test_cronjob_rejects_bad_schedule_and_settings() -> None:
    with pytest.raises(TargetError, match="field 2 \\(hour\\)"):
        make_cronjob("nightly", "ns", schedule="0 24 * * *", image="i", command=["c"])
    with pytest.raises(TargetError, match="invalid concurrency policy 'Sometimes'"):
        make_cronjob(
            "nightly", "ns", schedule="@daily", concurrency_policy="Sometimes", image="i", command=["c"]
        )
    with pytest.raises(TargetError, match="at most 52 characters"):
        make_cronjob("n" * 53, "ns", schedule="@daily", image="i", command=["c"])


def test_timezone() -> None:
    assert validate_timezone("Europe/Berlin") == "Europe/Berlin"
    with pytest.raises(TargetError, match="unknown time zone 'Berlin'") as excinfo:
        validate_timezone("Berlin")
    assert "Europe/Berlin" in str(excinfo.value)


# -- names --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, problem",
    [
        ("Train_Model", "has uppercase letters"),
        ("train_model", "may only contain lowercase letters, digits and '-'"),
        ("-train", "must start and end with a letter or digit"),
        ("train-", "must start and end with a letter or digit"),
        ("t" * 64, "is 64 characters long, the limit is 63"),
        ("", "is empty"),
    ],
)
def test_invalid_names(name: str, problem: str) -> None:
    with pytest.raises(TargetError) as excinfo:
        validate_name(name)
    text = error_text(excinfo)
    assert f"invalid job name '{name}': it {problem}" in text
    assert "lowercase letters, digits and '-'" in text  # the rules are spelled out
    assert validate_name("train-model-2") == "train-model-2"


def test_invalid_name_suggests_a_valid_one() -> None:
    with pytest.raises(TargetError, match="e.g. 'train-model'"):
        validate_name("Train Model")


def test_make_job_validates_names() -> None:
    with pytest.raises(TargetError, match="invalid job name 'My Job'"):
        make_job("My Job", "ns", image="i", command=["c"])
    with pytest.raises(TargetError, match="invalid namespace name 'Team_A'"):
        make_job("job", "Team_A", image="i", command=["c"])


# -- pod settings ---------------------------------------------------------------------------------------
def test_env_mistakes() -> None:
    with pytest.raises(TargetError, match="invalid environment variable name '1ABC'"):
        make_env({"1ABC": "x"})
    with pytest.raises(TargetError, match="'TOKEN' is set twice"):
        make_env({"TOKEN": "literal"}, [("s", "k", "TOKEN")])
    with pytest.raises(TargetError, match="invalid secret name 'My_Secret'"):
        make_env(secrets=[("My_Secret", "k", "E")])
    with pytest.raises(TargetError, match="invalid key 'a/b' for secret 's'"):
        make_env(secrets=[("s", "a/b", "E")])


def test_volume_mistakes() -> None:
    kwargs = {"image": "i", "command": ["c"]}
    with pytest.raises(TargetError, match="mount point 'data' must be an absolute path"):
        make_job("j", "ns", volumes=[("pvc", "data")], **kwargs)
    with pytest.raises(TargetError, match="mount point '/tmp' is already in use"):
        make_job("j", "ns", volumes=[("pvc", "/tmp")], **kwargs)
    with pytest.raises(TargetError, match="invalid PersistentVolumeClaim name 'Data'"):
        make_job("j", "ns", volumes=[("Data", "/data")], **kwargs)
    with pytest.raises(TargetError, match="volume 'pvc' is mounted twice"):
        make_job("j", "ns", volumes=[("pvc", "/a"), ("pvc", "/b")], **kwargs)


def test_other_pod_mistakes() -> None:
    with pytest.raises(TargetError, match="no container image"):
        make_job("j", "ns", image="", command=["c"])
    with pytest.raises(TargetError, match="may not run as root"):
        make_job("j", "ns", image="i", command=["c"], run_as_user=0)
    with pytest.raises(TargetError, match="invalid image pull policy 'Sometimes'"):
        make_job("j", "ns", image="i", command=["c"], image_pull_policy="Sometimes")
    with pytest.raises(TargetError, match="backoff_limit must be a whole number >= 0"):
        make_job("j", "ns", image="i", command=["c"], backoff_limit=-1)
    with pytest.raises(TargetError, match="label 'team' has an invalid value 'data science'"):
        make_job("j", "ns", image="i", command=["c"], labels={"team": "data science"})
    with pytest.raises(TargetError, match="invalid annotation key 'my key'"):
        make_job("j", "ns", image="i", command=["c"], annotations={"my key": "v"})


# -- namespace ------------------------------------------------------------------------------------------
KUBECONFIG = """
apiVersion: v1
kind: Config
current-context: dev
contexts:
- name: dev
  context: {cluster: c, user: u, namespace: from-kubeconfig}
- name: prod
  context: {cluster: c, user: u}
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443"}
users:
- name: u
  user: {token: t}
"""


@pytest.fixture
def kubeconfig(tmp_path: Path) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    return str(path)


@pytest.fixture
def sa_file(tmp_path: Path) -> Path:
    path = tmp_path / "namespace"
    path.write_text("from-pod\n")
    return path


def test_namespace_precedence(kubeconfig: str, sa_file: Path, tmp_path: Path) -> None:
    env = {"CELLPIPE_NAMESPACE": "from-env"}
    missing = tmp_path / "missing"
    assert (
        resolve_namespace("explicit", environ=env, service_account_path=sa_file, kubeconfig=kubeconfig)
        == "explicit"
    )
    assert (
        resolve_namespace(None, environ=env, service_account_path=sa_file, kubeconfig=kubeconfig)
        == "from-env"
    )
    assert (
        resolve_namespace(None, environ={}, service_account_path=sa_file, kubeconfig=kubeconfig) == "from-pod"
    )
    assert (
        resolve_namespace(None, environ={}, service_account_path=missing, kubeconfig=kubeconfig)
        == "from-kubeconfig"
    )
    no_kubeconfig = str(tmp_path / "no-kubeconfig")
    assert (
        resolve_namespace(None, environ={}, service_account_path=missing, kubeconfig=no_kubeconfig)
        == "default"
    )
    # A context without a namespace falls through to "default".
    assert (
        resolve_namespace(
            None, environ={}, service_account_path=missing, kubeconfig=kubeconfig, context="prod"
        )
        == "default"
    )


def test_namespace_from_kubeconfig_env_var(kubeconfig: str, tmp_path: Path) -> None:
    env = {"KUBECONFIG": kubeconfig}
    assert resolve_namespace(environ=env, service_account_path=tmp_path / "missing") == "from-kubeconfig"


def test_bad_namespace_names_its_source(sa_file: Path) -> None:
    with pytest.raises(TargetError) as excinfo:
        resolve_namespace("Team A")
    assert str(excinfo.value).startswith("--namespace: invalid namespace name 'Team A'")
    with pytest.raises(TargetError, match="^CELLPIPE_NAMESPACE: invalid namespace name 'x_y'"):
        resolve_namespace(environ={"CELLPIPE_NAMESPACE": "x_y"}, service_account_path=sa_file)
