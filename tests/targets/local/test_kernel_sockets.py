"""A `cellpipe run`'s kernels listen on Unix sockets in private directories, never on loopback TCP, and
leave neither sockets nor ipykernel's TCP warning behind."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from jupyter_ext.runtime.transport import SOCKET_DIR_PREFIX, fits
from tests.support.process_sockets import process_sockets

pytestmark = pytest.mark.slow

REPORT = """
def _report(path):
    import json, os
    from ipykernel.connect import get_connection_file

    with open(get_connection_file()) as connection:
        info = json.load(connection)
    directory = os.path.dirname(info["ip"])
    status = os.stat(directory) if info["transport"] == "ipc" else None
    report = {"transport": info["transport"], "dir": directory, **process_sockets(os.getpid())}
    if status is not None:
        report.update(mode=status.st_mode & 0o777, uid=status.st_uid)
    with open(path, "w") as out:
        json.dump(report, out)
"""


def _cell(name: str, reports: Path, *, step: bool = True) -> tuple[list[str], str]:
    source = inspect.getsource(process_sockets) + REPORT + f"_report({str(reports / name)!r})\n"
    return [f"step:{name}"] if step else [], source


@pytest.mark.parametrize("plain", [False, True], ids=["steps", "plain-papermill"])
def test_a_runs_kernels_listen_only_on_unix_sockets_in_private_directories(
    write_notebook, data_dir, tmp_path, plain
):
    """Each step's kernel (forked by the run's fork server), or papermill's one kernel for a notebook without
    step tags."""
    reports = tmp_path / "reports"
    reports.mkdir()
    names = ["whole"] if plain else ["first", "second"]
    notebook = write_notebook([_cell(name, reports, step=not plain) for name in names])
    runtime = Path(tempfile.mkdtemp(prefix="xdg-", dir="/tmp"))  # 0700 and short, like /run/user/UID
    try:
        env = {**os.environ, "CELLPIPE_HOME": str(data_dir), "XDG_RUNTIME_DIR": str(runtime)}
        run = subprocess.run(
            [sys.executable, "-m", "jupyter_ext.cli", "run", str(notebook), "--no-track"],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
        seen = {name: json.loads((reports / name).read_text()) for name in names}
        leftovers = list(runtime.iterdir())
    finally:
        subprocess.run(["rm", "-rf", str(runtime)], check=True)

    for report in seen.values():
        assert report["transport"] == "ipc"
        directory = Path(report["dir"])
        # (with a hostname near 64 characters, the pid@host name fits only under /tmp)
        assert directory.parent == (runtime if fits(str(runtime)) else Path(tempfile.gettempdir()))
        assert directory.name.startswith(SOCKET_DIR_PREFIX)
        assert (report["uid"], report["mode"]) == (os.getuid(), 0o700)
        assert report["tcp"] == []  # not even ipykernel's pipe for subprocess output
        assert {str(Path(path).parent) for path in report["unix"]} == {report["dir"]}
    assert len({report["dir"] for report in seen.values()}) == len(names)  # a directory per kernel
    assert leftovers == []  # every kernel's directory is gone with it
    assert not any(Path(report["dir"]).exists() for report in seen.values())
    (kernels_log,) = data_dir.glob("runs/*/kernels.log")
    assert "without encryption" not in kernels_log.read_text()  # ipykernel's warning about TCP
