"""`cellpipe run / runs / rerun / inspect` end to end, through the CLI entry point."""

import json
import re

import pytest

from jupyter_ext.cli.main import main

pytestmark = pytest.mark.slow


def test_run_runs_show_and_rerun_from_snapshot(write_notebook, data_dir, capsys):
    cells = [(["parameters"], "n = 4"), (["step:make"], "values = list(range(n))"),
             (["step:total"], "total = sum(values)"), (["pipeline-metrics"], "total")]  # fmt: skip
    notebook = write_notebook(cells, name="sums.ipynb")
    assert main(["run", str(notebook), "-p", "n=5", "--no-track", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["metrics"] == {"total": 10.0} and record["parameters"] == {"n": 5}

    assert main(["runs"]) == 0
    listing = capsys.readouterr().out
    assert record["id"] in listing and "succeeded" in listing  # whole ids: `runs show` needs them

    # the snapshot commands see the run's snapshot in the same data directory
    assert main(["snapshots", "list"]) == 0
    assert record["snapshot_id"][:12] in capsys.readouterr().out

    assert main(["runs", "show", record["id"]]) == 0
    shown = capsys.readouterr().out
    assert "total=10" in shown and "make" in shown and "snapshot:" in shown

    # the working copy changes; rerun uses the run's snapshot and parameters, not the edited file
    cells[2] = (["step:total"], "total = sum(values) * 100")
    write_notebook(cells, name="sums.ipynb")
    assert main(["rerun", record["id"], "--no-track", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["metrics"] == {"total": 10.0}
    assert again["rerun_of"] == record["id"] and again["snapshot_id"] == record["snapshot_id"]
    assert [s["status"] for s in again["steps"]] == ["cached", "cached"]


def test_failed_run_exits_non_zero_with_the_cell(write_notebook, data_dir, capsys):
    notebook = write_notebook([(["step:boom"], "x = 1"), (None, "raise ValueError('bad input file')")])
    assert main(["run", str(notebook), "--no-track"]) == 1
    out = capsys.readouterr().out
    assert "step 'boom' failed" in out and "cell 2" in out and "ValueError: bad input file" in out
    assert "executed notebook:" in out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-p", "n=abc"], "parameter 'n' (-p): 'abc' is not a valid int"),
        (["-p", "m=1"], "unknown parameter 'm'"),
    ],
)
def test_bad_parameters_are_one_line_errors(write_notebook, data_dir, capsys, args, expected):
    notebook = write_notebook([(["parameters"], "n = 1"), (["step:a"], "x = n")])
    assert main(["run", str(notebook), "--no-track", *args]) == 1
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_missing_notebook_and_unknown_run(data_dir, capsys, tmp_path):
    assert main(["run", str(tmp_path / "nope.ipynb")]) == 1
    assert "nope.ipynb: no such file" in capsys.readouterr().err
    assert main(["runs", "show", "does-not-exist"]) == 1
    assert "no run 'does-not-exist'" in capsys.readouterr().err


def test_inspect_outputs(notebooks, capsys):
    assert main(["inspect", str(notebooks / "branches.ipynb")]) == 0
    out = capsys.readouterr().out
    assert "make_data -> stats: values" in out and "[1] stats   histogram" in out
    assert main(["inspect", str(notebooks / "branches.ipynb"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "branches"
    assert main(["inspect", str(notebooks / "branches.ipynb"), "--dot"]) == 0
    assert '"make_data" -> "stats" [label="values"]' in capsys.readouterr().out


def test_help_teaches_the_tag_language(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for tag in ("step:NAME", "prev:NAME", "pipeline-parameters", "limit:RESOURCE:VALUE", "Example notebook"):
        assert tag in out


def test_missing_kernel_is_a_clear_error_before_anything_runs(write_notebook, data_dir, capsys):
    notebook = write_notebook(
        [(["step:a"], "x = 1")],
        metadata={"kernelspec": {"name": "no-such-kernel", "display_name": "X", "language": "python"}},
    )
    assert main(["run", str(notebook), "--no-track"]) == 1
    err = capsys.readouterr().err
    assert "kernel 'no-such-kernel' is not installed here" in err and "Traceback" not in err
    assert not (data_dir / "runs").exists()  # nothing was started
    assert main(["runs"]) == 0
    assert f"no runs in {data_dir}" in capsys.readouterr().out


def test_listing_never_cuts_ids_and_the_summary_tells_where_the_time_went(write_notebook, data_dir, capsys,
                                                                          monkeypatch):  # fmt: skip
    notebook = write_notebook([(["step:a"], "x = 1"), (["step:b"], "y = x + 1")], name="two.ipynb")
    assert main(["run", str(notebook), "--no-track"]) == 0
    summary = capsys.readouterr().out
    # the wall time since the command started, and its parts; steps in pipeline order
    parts = r"\(start-up \d+\.\ds, (analyse and snapshot \d+\.\ds, )?kernel start \d+\.\ds, steps \d+\.\ds"
    assert re.search(r"succeeded in \d+\.\ds " + parts, summary), summary
    assert summary.index("a ") < summary.index("b ")
    # cached: still the real wall time, start-up and all, not "0.0s"
    assert main(["run", str(notebook), "--no-track"]) == 0
    cached = re.search(r"succeeded in (\d+\.\d)s \(start-up (\d+\.\d)s", capsys.readouterr().out)
    assert cached and float(cached[1]) >= float(cached[2]) > 0
    monkeypatch.setenv("COLUMNS", "50")
    assert main(["runs"]) == 0
    listing = capsys.readouterr().out
    ids = [line.split()[0] for line in listing.splitlines()[1:] if line.strip()]
    assert len(ids) == 2 and all(re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", i) for i in ids), listing
    assert main(["runs", "show", ids[0][-6:]]) == 0  # the random part is enough
    assert f"Run {ids[0]}" in capsys.readouterr().out


def test_one_order_everywhere_newest_first(write_notebook, data_dir, capsys):
    cells = [(["parameters"], "n = 1"), (["step:a"], "x = n")]
    notebook = write_notebook(cells, name="order.ipynb")
    assert main(["run", str(notebook), "--no-track", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    write_notebook([(["parameters"], "n = 2"), (["step:a"], "x = n + 1")], name="order.ipynb")  # new content
    assert main(["run", str(notebook), "--no-track", "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert main(["runs"]) == 0
    runs = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert runs == [second["id"], first["id"]]
    assert main(["snapshots", "list"]) == 0
    snapshots = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert snapshots == [second["snapshot_id"][:12], first["snapshot_id"][:12]]


def test_a_crashed_run_can_be_deleted_a_running_one_cannot(write_notebook, data_dir, capsys):
    from jupyter_ext.records.models import RunRecord, RunStatus
    from jupyter_ext.records.owner import current_owner
    from jupyter_ext.records.store import RecordStore

    store = RecordStore(data_dir)
    store.save_run(RunRecord(id="20261129-000000-aaaaaa", notebook="/p/a.ipynb", status=RunStatus.RUNNING,
                             owner={**current_owner(), "pid_start": -1}))  # fmt: skip
    store.save_run(RunRecord(id="20261129-000001-bbbbbb", notebook="/p/a.ipynb", status=RunStatus.RUNNING,
                             owner=current_owner(), created=2e9))  # fmt: skip
    assert main(["runs", "delete", "aaaaaa"]) == 0  # its owner is gone: crashed, so deletable
    assert "run 20261129-000000-aaaaaa deleted (crashed)" in capsys.readouterr().out
    assert main(["runs", "delete", "bbbbbb"]) == 1
    assert "run 20261129-000001-bbbbbb is running" in capsys.readouterr().err
    assert [r.id for r in store.list_runs()[0]] == ["20261129-000001-bbbbbb"]
