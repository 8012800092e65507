"""The snapshot commands through cellpipe's main(): output, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from jupyter_ext.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return str(tmp_path / "store")


def test_snapshot_prints_id_sizes_and_skipped(
    capsys: pytest.CaptureFixture[str], project: Path, store_url: str, write_nb
) -> None:
    notebook = write_nb(
        project / "cli.ipynb", [("code", "a = open('data/train.csv')\nb = open('gone/x.csv')")]
    )
    code, out, err = run(capsys, "snapshot", str(notebook), "--store", store_url)
    assert code == 0, err
    assert out.startswith("snapshot ")
    assert "data      1 files, 7.8 KiB (1 detected in code)" in out
    assert "already in the store (deduplicated)" in out
    assert "cell 1: gone/x.csv: not found" in out

    code, out, _ = run(capsys, "snapshot", str(notebook), "--store", store_url, "--json")
    summary = json.loads(out)
    assert summary["new_bytes"] == 0 and summary["hashed_bytes"] == 0
    assert summary["deduplicated_bytes"] == summary["bytes"]


def test_list_show_verify_restore(
    capsys: pytest.CaptureFixture[str], notebook: Path, store_url: str, tmp_path: Path
) -> None:
    run(capsys, "snapshot", str(notebook), "--store", store_url)
    code, out, _ = run(capsys, "snapshots", "list", "--store", store_url)
    assert code == 0
    header, line = out.splitlines()
    assert header.split()[:2] == ["ID", "CREATED"]
    short = line.split()[0]
    assert len(short) == 12 and line.endswith("train.ipynb")

    code, out, _ = run(capsys, "snapshots", "show", short[:6], "--store", store_url)
    assert code == 0
    assert "data/train.csv" in out and "kernel    python3" in out

    code, out, _ = run(capsys, "snapshots", "show", short, "--store", store_url, "--json")
    assert json.loads(out)["notebook"]["path"] == "train.ipynb"

    code, out, _ = run(capsys, "snapshots", "verify", "--store", store_url)
    assert code == 0 and out.startswith(f"ok      {short}")

    code, out, _ = run(capsys, "restore", short, str(tmp_path / "out"), "--store", store_url)
    assert code == 0
    assert (tmp_path / "out" / "data" / "train.csv").read_bytes() == (
        notebook.parent / "data" / "train.csv"
    ).read_bytes()


def test_verify_fails_with_exit_1_on_corruption(
    capsys: pytest.CaptureFixture[str], notebook: Path, store_url: str
) -> None:
    run(capsys, "snapshot", str(notebook), "--store", store_url)
    objects = sorted(p for p in Path(store_url, "objects").rglob("*") if p.is_file())
    objects[0].write_bytes(b"rotten")
    code, out, _ = run(capsys, "snapshots", "verify", "--store", store_url)
    assert code == 1
    assert "FAILED" in out and "1 of 1 snapshots failed verification" in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["snapshots", "list", "--store", "nosuch://x"], "unknown store URL scheme 'nosuch://'"),
        (["snapshots", "show", "abc", "--store", "{store}"], "no snapshot 'abc' in the store"),
        (["restore", "{id}", "{busy}", "--store", "{store}"], "is not empty"),
        (["snapshot", "{missing}", "--store", "{store}"], "notebook not found"),
    ],
)
def test_errors_are_one_line_without_traceback(
    capsys: pytest.CaptureFixture[str],
    notebook: Path,
    store_url: str,
    tmp_path: Path,
    argv: list[str],
    expected: str,
) -> None:
    run(capsys, "snapshot", str(notebook), "--store", store_url)
    snapshot_id = os.listdir(Path(store_url, "snapshots"))[0][:12]
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    values = {
        "store": store_url,
        "id": snapshot_id,
        "busy": str(busy),
        "missing": str(tmp_path / "nope.ipynb"),
    }
    code, out, err = run(capsys, *[arg.format(**values) for arg in argv])
    assert code == 1
    assert err.startswith("cellpipe: error: ") and expected in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_help_texts_teach(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, words in [
        (["snapshot", "--help"], ["data:PATH", "CELLPIPE_MAX_DETECTED_BYTES", "examples:"]),
        (["snapshots", "--help"], ["unique prefix", "verify"]),
        (["restore", "--help"], ["--force", "_external"]),
    ]:
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 0
        out = capsys.readouterr().out
        assert all(word in out for word in words), (argv, out)
