"""`cellpipe run` of a notebook with ~1 GiB of declared data and a fresh store: how long until the first
step's code runs, and until the command ends, with the snapshot finishing in the background (as now) and
waiting for it to be durable before the run starts (as before: ``durable="wait"``, forced in the process by
a wrapper of take_snapshot; everything else is the same command).

    python benchmarks/bench_run_snapshot.py             # 1 GiB, 3 runs of each, alternating
    python benchmarks/bench_run_snapshot.py --mb 128 --repeat 1

Each run is a new `cellpipe run --no-track --no-cache` process with its own data directory (so its own
empty store: a first snapshot), from the same state: the previous run's output deleted, the data just
read (in the page cache) and nothing dirty left from before (sync). The first step writes the time its
code starts; "first step" is that minus the moment the process was started. Printed: the median wall
times of each variant, the process's CPU (user + system of it and its children: the kernels), the
record's own timings (prepare_s: analysis and the snapshot as far as the run waited for it;
snapshot_wait_s: how long the run's end waited for the snapshot to be durable), and the load.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common  # puts this checkout first on sys.path
from bench_snapshot import generate, read_all, remove

# The command line, in a process whose take_snapshot is forced to wait (or not) for durability.
WRAPPER = """
import sys
import jupyter_ext.snapshot as snapshot
if sys.argv.pop(1) == "wait":
    real = snapshot.take_snapshot
    def waiting(*args, **kwargs):
        kwargs["durable"] = "wait"
        return real(*args, **kwargs)
    snapshot.take_snapshot = waiting
from jupyter_ext.cli.main import main
sys.exit(main())
"""
VARIANTS = {"background (now)": "background", "waits for durable (before)": "wait"}


def write_run_notebook(project: Path, marker: Path) -> Path:
    """Two steps; the first writes the time its code starts. Declares the data directory."""
    cells = [
        ("step:first", f"import time\nopen({str(marker)!r}, 'w').write(repr(time.time()))", ["data:data"]),
        ("step:second", "done = 1", []),
    ]
    notebook = {
        "cells": [
            {"cell_type": "code", "source": source, "metadata": {"tags": [step, *tags]}, "outputs": [],
             "execution_count": None}
            for step, source, tags in cells
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }  # fmt: skip
    path = project / "run.ipynb"
    path.write_text(json.dumps(notebook))
    return path


def one_run(notebook: Path, marker: Path, home: Path, variant: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(common.REPOSITORY), "CELLPIPE_HOME": str(home)}
    env.pop("CELLPIPE_STORE", None)
    argv = [
        sys.executable,
        "-c",
        WRAPPER,
        variant,
        "run",
        "--no-track",
        "--no-cache",
        "--json",
        str(notebook),
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.time()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    ended = time.time()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"cellpipe run failed ({variant}): {done.stderr[-2000:]}")
    record = json.loads(done.stdout[done.stdout.index("{") :])
    return {
        "first step": float(marker.read_text()) - started,
        "end": ended - started,
        "CPU": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "prepare_s": record["timings"].get("prepare_s", 0.0),
        "snapshot_wait_s": record["timings"].get("snapshot_wait_s", 0.0),
    }


def main() -> None:
    parser = common.arguments(__doc__)
    parser.add_argument("--mb", type=int, default=1024, help="declared data in MiB (default 1024)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each variant (default 3)")
    parser.add_argument("--dir", default=None, help="where to put the data (default: the temp directory)")
    args = parser.parse_args()
    load_before = common.load_average()
    work = Path(tempfile.mkdtemp(prefix="bench-run-snapshot-", dir=args.dir))
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    try:
        project, home, marker = work / "project", work / "home", work / "first-step-at"
        files = generate(project, args.mb, 0.0)
        (project / "bench.ipynb").unlink()
        notebook = write_run_notebook(project, marker)
        time.sleep(0.1)
        for _ in range(max(1, args.repeat)):
            for name, variant in VARIANTS.items():
                remove(home)
                marker.unlink(missing_ok=True)
                read_all(files)
                os.sync()
                samples[name].append(one_run(notebook, marker, home, variant))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    total = sum(1 for _ in files)
    print(
        f"cellpipe run, first snapshot of {args.mb} MiB ({total} files) into a new store, fsync on; "
        f"median of {args.repeat}"
    )
    print(f"before: {load_before}; after: {common.load_average()}")
    keys = ["first step", "end", "CPU", "prepare_s", "snapshot_wait_s"]
    print(f"{'variant':<28}" + "".join(f"{key:>17}" for key in keys))
    medians = {
        name: {key: statistics.median(s[key] for s in runs) for key in keys} for name, runs in samples.items()
    }
    for name, values in medians.items():
        print(f"{name:<28}" + "".join(f"{values[key]:>16.3f}s" for key in keys))
    for name, runs in samples.items():
        each = ", ".join(f"{run['first step']:.2f}/{run['end']:.2f}" for run in runs)
        print(f"{name}: first step / end of each run, in order: {each}")
    now, before = medians["background (now)"], medians["waits for durable (before)"]
    print(
        f"first step's code starts {before['first step'] - now['first step']:.3f} s earlier "
        f"({now['first step'] / before['first step']:.2f}x); the command ends {now['end'] / before['end']:.2f}x "
        "as late"
    )


if __name__ == "__main__":
    main()
