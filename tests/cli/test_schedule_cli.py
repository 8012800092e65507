"""``cellpipe schedule`` (local target) and ``cellpipe schedules list|show|pause|resume|delete``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from jupyter_ext.cli.main import main


@pytest.fixture
def notebook(write_notebook: Callable[..., Path]) -> str:
    """A plain papermill notebook: a parameters cell, no step tags."""
    cells = [(["parameters"], "alpha = 0.5\nlabel = 'base'"), ([], "print(alpha, label)")]
    return str(write_notebook(cells, name="report.ipynb"))


def one_error_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def listed(capsys: pytest.CaptureFixture) -> list[dict]:
    assert main(["schedules", "list", "--json"]) == 0
    return json.loads(capsys.readouterr().out)["schedules"]


def test_schedule_a_notebook_here_then_manage_it(
    notebook: str, data_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    code = main(["schedule", notebook, "--cron", "30 6 * * MON-FRI", "--timezone", "Europe/Berlin",
                 "-p", "alpha=2", "-p", "label=nightly", "--catch-up", "once"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith("schedule report (s") and "created: " in out
    assert "At 06:30, Monday through Friday (Europe/Berlin)   [30 6 * * MON-FRI]" in out
    assert "params    alpha=2.0 label='nightly'" in out
    assert "catch-up  once: after downtime, one run catches up" in out
    assert "local schedules fire only while the Jupyter server or `cellpipe scheduler` runs" in out
    (schedule,) = listed(capsys)
    assert schedule["parameters"] == {"alpha": 2.0, "label": "nightly"}
    assert schedule["survives_server_cull"] is False and schedule["target"] == "local"
    assert len(schedule["next_fire_times"]) == 5 and schedule["next_fire_times"][0].endswith(
        ("+01:00", "+02:00")
    )

    assert main(["schedules", "list"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split()[1:7] == ["report", "local", "30", "6", "*", "*"]
    assert "active" in table[1] and table[-1].startswith("local schedules fire only while")

    assert main(["schedules", "pause", schedule["id"][:5]]) == 0  # a unique prefix will do
    assert capsys.readouterr().out == f"schedule report ({schedule['id']}) paused\n"
    assert main(["schedules", "show", "report"]) == 0
    shown = capsys.readouterr().out
    assert "[paused]" in shown and "next      - (paused)" in shown and "runs      none yet" in shown
    assert main(["schedules", "resume", "report"]) == 0
    assert "resumed" in capsys.readouterr().out
    assert listed(capsys)[0]["enabled"] is True

    # again, same notebook and (default) name: replaced, not added
    assert main(["schedule", notebook, "--cron", "@hourly"]) == 0
    assert "replaced" in capsys.readouterr().out
    (again,) = listed(capsys)
    assert again["id"] == schedule["id"] and again["cron"] == "@hourly" and again["parameters"] == {}
    assert main(["schedule", notebook, "--cron", "@daily", "--name", "daily"]) == 0
    capsys.readouterr()
    assert [s["name"] for s in listed(capsys)] == ["daily", "report"]

    assert main(["schedules", "delete", schedule["id"]]) == 0
    assert "deleted; its runs stay" in capsys.readouterr().out
    assert [s["name"] for s in listed(capsys)] == ["daily"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--cron", "0 25 * * *"], "--cron: invalid cron '0 25 * * *': field 2 (hour) must be 0-23, got 25"),
        (["--cron", "@daily", "--timezone", "Mars/Olympus"], "--timezone: unknown time zone 'Mars/Olympus'"),
        (
            ["--cron", "@daily", "--target", "cronjob"],
            "--target: unknown target 'cronjob'. A Kubernetes CronJob",
        ),
        (
            ["--cron", "@daily", "--catch-up", "all"],
            "--catch-up: unknown catch-up 'all'. Use one of: skip, once",
        ),
        (["--cron", "@daily", "--image", "x"], "--image: applies to cluster schedules only"),
        (["--cron", "@daily", "-p", "alpha=high"], "'high' is not a valid float"),
        (["--cron", "@daily", "-p", "beta=1"], "unknown parameter 'beta'"),
    ],
)
def test_mistakes_are_one_line_and_save_nothing(
    notebook: str, data_dir: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    assert main(["schedule", notebook, *argv]) == 1
    assert message in one_error_line(capsys.readouterr().err)
    assert listed(capsys) == []


def test_unknown_schedules_and_old_spellings(data_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["schedules", "show", "nope"]) == 1
    assert one_error_line(capsys.readouterr().err) == (
        "cellpipe: error: schedule: no schedule 'nope'. `cellpipe schedules list` shows them"
    )
    assert main(["schedule", "list"]) == 1
    assert "Schedules are managed with `cellpipe schedules list`" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["schedule", "schedules", "scheduler"])
def test_help_teaches(command: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "culled" in text or "SIGTERM" in text
    assert f"cellpipe {command}" in text
