"""The step cache's durability: outputs are committed at once and persisted in the background; a lookup
trusts an entry only once its outputs are on disk, and a run is reported succeeded only after that."""

import base64
import errno
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from jupyter_ext.targets.local.cache import ENTRY_FILE, StepCache, environment_fingerprint

from .test_runner import launch, steps

CELLS = [
    (["parameters"], "n = 3"),
    (["step:make"], "values = list(range(n))"),
    (["step:total"], "total = sum(values)"),
    (["pipeline-metrics"], "total"),
]


def entries(data_dir: Path) -> dict[str, dict]:
    """step name -> its cache entry as stored."""
    found = {}
    for path in (data_dir / "cache").glob(f"*/{ENTRY_FILE}"):
        entry = json.loads(path.read_text())
        found[entry["step"]] = entry | {"path": path}
    return found


def staged(cache: StepCache, value: bytes) -> Path:
    staging = cache.staging_dir()
    (staging / "outputs" / "x.pkl").write_bytes(value)
    return staging


def test_an_entry_is_trusted_only_once_made_durable_and_only_by_its_own_run(tmp_path):
    cache = StepCache(tmp_path / "cache")
    cache.commit(staged(cache, b"first"), "k", {"step": "s", "run_id": "r1"}, durable=False)
    assert cache.lookup("k") is None  # outputs not known to be on disk yet: a miss
    # a concurrent run replaced the entry meanwhile: r1 must not mark r2's outputs, whose fsync is r2's
    cache.commit(staged(cache, b"second"), "k", {"step": "s", "run_id": "r2"}, replace=True, durable=False)
    cache.make_durable("k", "r1")
    assert cache.lookup("k") is None
    cache.make_durable("k", "r2")
    entry = cache.lookup("k")
    assert entry is not None and entry["run_id"] == "r2" and entry["durable"] is True
    assert (Path(entry["outputs_dir"]) / "x.pkl").read_bytes() == b"second"
    cache.make_durable("gone", "r1")  # an entry removed meanwhile: nothing to do, no error
    # entries of earlier versions (no field) had their outputs fsynced before the entry was written
    legacy = tmp_path / "cache" / "old"
    (legacy / "outputs").mkdir(parents=True)
    (legacy / ENTRY_FILE).write_text(json.dumps({"step": "s", "run_id": "r0"}))
    assert cache.lookup("old") is not None


@pytest.mark.slow
def test_a_succeeded_run_has_every_entry_durable(write_notebook, data_dir):
    record = launch(write_notebook(CELLS), data_dir, track=False)
    assert record["status"] == "succeeded", record
    assert {name: e["durable"] for name, e in entries(data_dir).items()} == {"make": True, "total": True}


@pytest.mark.slow
def test_an_entry_a_crash_left_unpersisted_is_never_trusted(write_notebook, data_dir):
    """What a power cut between a step's commit and its persisting can leave: the entry not marked durable,
    its outputs torn. The next run executes the step again instead of loading them, and persists it."""
    notebook = write_notebook(CELLS)
    assert launch(notebook, data_dir, track=False)["metrics"] == {"total": 3.0}
    make = entries(data_dir)["make"]
    make["path"].write_text(json.dumps({k: v for k, v in make.items() if k != "path"} | {"durable": False}))
    for output in (make["path"].parent / "outputs").iterdir():
        output.write_bytes(output.read_bytes()[:3])  # torn
    again = launch(notebook, data_dir, track=False)
    assert again["status"] == "succeeded", again
    assert steps(again)["make"]["status"] == "succeeded"  # executed, not loaded from the torn entry
    assert again["metrics"] == {"total": 3.0}
    assert entries(data_dir)["make"]["durable"] is True
    third = launch(notebook, data_dir, track=False)
    assert {s["status"] for s in third["steps"]} == {"cached"}


@pytest.mark.slow
def test_outputs_that_cannot_be_persisted_fail_the_run(write_notebook, data_dir, monkeypatch):
    """A full or failing disk found while persisting a step's outputs: the run is not reported succeeded,
    and the record names the step and what to check (injected: a disk cannot be filled safely here)."""

    def disk_full(self, key, run_id):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(StepCache, "make_durable", disk_full)
    record = launch(write_notebook(CELLS), data_dir, track=False)
    assert record["status"] == "failed"
    assert "make" in record["error"]["text"] and "could not be written to disk" in record["error"]["text"]


def probe_wheel(directory: Path, version: str) -> Path:
    """A real wheel of a one-module package, built here (the tests download nothing)."""
    dist_info = f"cellpipe_probe-{version}.dist-info"
    files = {
        "cellpipe_probe.py": f"VERSION = {version!r}\n".encode(),
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: cellpipe-probe\nVersion: {version}\n".encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [
        f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}"
        for name, data in files.items()
    ]
    files[f"{dist_info}/RECORD"] = "\n".join([*record, f"{dist_info}/RECORD,,", ""]).encode()
    wheel = directory / f"cellpipe_probe-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return wheel


def pip_install(wheel: Path, target: Path) -> None:
    command = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--upgrade", "--quiet"]
    subprocess.run([*command, "--target", str(target), str(wheel)], check=True)


@pytest.mark.slow
def test_a_package_installed_while_the_process_lives_changes_the_cache_keys(
    write_notebook, data_dir, tmp_path, monkeypatch
):
    """A long-lived process (the Jupyter server) runs a notebook, the user pip-installs a package in a
    terminal, and runs it again in the same process: its steps execute again instead of being answered
    from results computed with the old packages. An unchanged environment is still answered from the cache."""
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    notebook = write_notebook(CELLS)
    first = launch(notebook, data_dir, track=False)
    assert {s["status"] for s in first["steps"]} == {"succeeded"}
    assert {s["status"] for s in launch(notebook, data_dir, track=False)["steps"]} == {"cached"}

    before = environment_fingerprint()
    pip_install(probe_wheel(tmp_path, "1.0"), site)
    installed = environment_fingerprint()
    pip_install(probe_wheel(tmp_path, "1.1"), site)  # an upgrade: same name, another version
    assert len({before, installed, environment_fingerprint()}) == 3

    again = launch(notebook, data_dir, track=False)
    assert {s["status"] for s in again["steps"]} == {"succeeded"}, again  # executed, not cached
    assert steps(again)["make"]["cache_key"] != steps(first)["make"]["cache_key"]
    assert again["metrics"] == {"total": 3.0}
    assert {s["status"] for s in launch(notebook, data_dir, track=False)["steps"]} == {"cached"}
