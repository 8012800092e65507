"""The Dockerfiles (hub_config/images/) and Binder (binder/), checked statically: no container engine runs here.

Pinned versions equal constraints.txt, pip installs nothing unpinned, the final user is not root, nothing is
fetched at run time, every COPY source exists, and the images carry the names the configs default to.
"""

from __future__ import annotations

import re
import shlex
import sys
import tomllib
from pathlib import Path

import pytest

from jupyter_ext.targets.kfp.compile import DEFAULT_IMAGE

ROOT = Path(__file__).parents[2]
IMAGES = ROOT / "hub_config" / "images"
sys.path.insert(0, str(ROOT / "hub_config"))
import cellpipe_hub  # noqa: E402

DOCKERFILES = sorted(IMAGES.glob("*.Dockerfile"))
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonical(name)] = version.strip()
    return pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower().strip()


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")),
    )
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in text.splitlines() if line.strip()
    ]


def pip_installs(command: str) -> list[list[str]]:
    """The argument lists of every ``pip install`` in a shell command."""
    found = []
    for part in re.split(r"&&|;|\|\|", command):
        words = shlex.split(part)
        for i in range(len(words) - 1):
            if words[i] in ("pip", "pip3") and words[i + 1] == "install":
                found.append(words[i + 2 :])
    return found


def check_pip_install(args: list[str], pins: dict[str, str]) -> None:
    """Only the project itself (with -c constraints.txt) or NAME==VERSION equal to the constraints."""
    constrained = any(a in ("-c", "--constraint") for a in args) and "constraints.txt" in args
    packages = [a for a in args if not a.startswith("-") and a != "constraints.txt"]
    assert packages, f"pip install without packages: {args}"
    for package in packages:
        if package == "." or package.startswith(".["):
            assert constrained, f"the project is installed without -c constraints.txt: {args}"
            extras = re.findall(r"\[(.*)\]", package)
            for extra in extras[0].split(",") if extras else []:
                assert extra in PYPROJECT["project"]["optional-dependencies"], f"unknown extra {extra}"
            continue
        name, sep, version = package.partition("==")
        assert sep, f"unpinned pip install: {package}"
        assert pins.get(canonical(name)) == version, f"{package} does not match constraints.txt"
    assert not any(
        a.startswith(("--index-url", "--extra-index-url", "-U", "--upgrade", "--pre")) for a in args
    )


@pytest.mark.parametrize(
    "install",
    [
        ["numpy"],
        ["numpy==0.0.1"],
        ["."],
        ["-c", "constraints.txt", ".[nope]"],
        ["-U", "numpy==" + constraints()["numpy"]],
    ],
)
def test_the_pip_check_refuses_what_it_must(install):
    with pytest.raises(AssertionError):
        check_pip_install(install, constraints())
    assert pip_installs("apt-get update && pip install " + shlex.join(install)) == [install]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_is_pinned_non_root_and_offline_at_run_time(dockerfile):
    steps = instructions(dockerfile)
    args = dict(re.findall(r"^(\w+)=(\S+)$", " ".join(a for i, a in steps if i == "ARG"), re.M))
    base = [a for i, a in steps if i == "FROM"][-1]
    base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
    name, _, tag = base.partition(":")
    if name.startswith("cellpipe/"):  # built on one of these images: the same version, built from here
        assert (
            tag == PYPROJECT["project"]["version"] and (IMAGES / f"{name.split('/')[1]}.Dockerfile").exists()
        )
    else:
        assert tag and tag != "latest" and re.match(r"3\.11\.\d+-", tag), f"base image not pinned: {base}"
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"

    users = [a for i, a in steps if i == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must end as a non-root user"
    assert re.fullmatch(r"\d+:\d+", users[-1]), "numeric USER, so Kubernetes can verify runAsNonRoot"
    assert (
        users[-1] == f"{cellpipe_hub.NOTEBOOK_UID}:{cellpipe_hub.NOTEBOOK_GID}"
    )  # the pods' runAsUser/Group

    pins = constraints()
    runs = [a for i, a in steps if i == "RUN"]
    installs = [install for command in runs for install in pip_installs(command)]
    assert installs, "the image installs cellpipe"
    for install in installs:
        check_pip_install(install, pins)
    for command in runs:
        assert not re.search(r"\b(curl|wget)\b", command), "downloads outside pip/constraints"
    assert not any(i == "ADD" for i, _ in steps), "ADD can fetch URLs: use COPY"
    for instruction, arguments in steps:
        if instruction == "COPY":
            sources = [a for a in shlex.split(arguments) if not a.startswith("--")][:-1]
            assert all((ROOT / s).exists() for s in sources), f"COPY of a missing path: {arguments}"
    # at run time pip may not reach an index: nothing is downloaded when a step or a server runs
    envs = " ".join(a for i, a in steps if i == "ENV")
    assert "PIP_NO_INDEX=1" in envs
    assert not [a for i, a in steps if i in ("CMD", "ENTRYPOINT") and "install" in a]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_build_context_leaves_out_local_environments_and_data(dockerfile):
    ignored = [
        line
        for line in Path(f"{dockerfile}.dockerignore").read_text().splitlines()
        if not line.startswith("#")
    ]
    if ignored == ["*"]:  # an empty context: the Dockerfile must then copy nothing
        assert not [a for i, a in instructions(dockerfile) if i == "COPY"]
        return
    assert {"**/.venv", "**/node_modules", "**/.cellpipe", "jupyter_ext/labextension"} <= set(ignored)


def test_the_images_carry_the_names_the_configs_default_to():
    labels = {}
    for dockerfile in DOCKERFILES:
        label = re.search(r'org\.opencontainers\.image\.ref\.name="([^"]+)"', dockerfile.read_text()).group(1)
        assert f"-t {label} ." in dockerfile.read_text()  # the documented build command names it the same
        labels[dockerfile.name] = label
    defaults = cellpipe_hub.HubSettings()
    assert labels == {
        "notebook.Dockerfile": defaults.notebook_image,
        "runtime.Dockerfile": defaults.runtime_image,
        "runtime-gpu.Dockerfile": f"cellpipe/runtime-gpu:{PYPROJECT['project']['version']}",
    }
    assert defaults.runtime_image == DEFAULT_IMAGE  # what compiled pipelines name when nothing else is given
    assert f"cellpipe/runtime:{PYPROJECT['project']['version']}" == DEFAULT_IMAGE


def test_gpu_example_names_the_gpu_runtime_image_for_its_gpu_step():
    from jupyter_ext.pipeline.build import build_pipeline

    pipeline = build_pipeline(ROOT / "examples" / "gpu_training.ipynb")
    gpu_steps = [s for s in pipeline.steps if "nvidia.com/gpu" in s.limits]
    assert [s.image for s in gpu_steps] == [f"cellpipe/runtime-gpu:{PYPROJECT['project']['version']}"]
    assert all(s.image is None for s in pipeline.steps if s not in gpu_steps)  # the rest: the default image


def test_notebook_image_installs_jupyterhub_and_jupyterlab_through_the_hub_extra():
    hub = {canonical(re.split(r"[<>=]", r)[0]) for r in PYPROJECT["project"]["optional-dependencies"]["hub"]}
    assert {"jupyterlab", "jupyterhub"} <= hub
    assert '".[hub]"' in (IMAGES / "notebook.Dockerfile").read_text()


# -- Binder -------------------------------------------------------------------------------------------------
def test_binder_requirements_match_the_pins():
    pins = constraints()
    lines = [line.strip() for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines()]
    requirements = [line for line in lines if line and not line.startswith("#")]
    assert requirements
    for requirement in requirements:
        name, sep, version = requirement.partition("==")
        assert sep and pins.get(canonical(name)) == version, (
            f"binder pin {requirement} differs from constraints.txt"
        )
    assert canonical("jupyterlab") in {canonical(r.partition("==")[0]) for r in requirements}
    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip()
    assert runtime == "python-3.11"


def test_binder_post_build_installs_cellpipe_from_the_constraints_and_checks_the_extension():
    post_build = ROOT / "binder" / "postBuild"
    assert post_build.stat().st_mode & 0o100, "repo2docker runs postBuild only when it is executable"
    text = post_build.read_text()
    installs = [install for line in text.splitlines() for install in pip_installs(line)]
    assert installs
    for install in installs:
        check_pip_install([a for a in install if a != "-e"], constraints())
    assert "jupyter server extension list" in text and (ROOT / "examples").is_dir()
