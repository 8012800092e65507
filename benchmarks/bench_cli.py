"""Whole-process start-up of quick commands: `cellpipe inspect` and `cellpipe compile` of a 10-step notebook.

    python benchmarks/bench_cli.py [--repeat 5] [--cells 50]

Each command runs in a fresh process (interpreter start-up, imports and work: what a user waits for).
Printed, medians: wall seconds and CPU seconds of the process (user + system), against `python -c pass`
measured in the same run (the interpreter's own start-up, the floor). Targets (issue 12): inspect under
0.5 s, compile under 1.5 s. On a loaded machine wall time is mostly waiting for a core: the CPU column
is what the command itself costs.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common  # puts this checkout first on sys.path
from bench_analysis import make_notebook

ROOT = Path(__file__).resolve().parents[1]


def run(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of one process, with this checkout first on its path and ``env`` set."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {done.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = common.arguments(__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cells", type=int, default=50, help="notebook size (5 cells a step; 50 = 10 steps)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        notebook = make_notebook(args.cells, Path(tmp) / "ten.ipynb")
        cellpipe = [sys.executable, "-m", "jupyter_ext.cli.main"]
        commands = {
            "python -c pass": ([sys.executable, "-c", "pass"], None),
            "cellpipe inspect": ([*cellpipe, "inspect", str(notebook)], 0.5),
            "cellpipe compile": ([*cellpipe, "compile", str(notebook), "-o", str(Path(tmp) / "p.yaml")], 1.5),
        }
        run(commands["cellpipe compile"][0])  # warm the page cache and .pyc files
        rows = []
        for name, (argv, target) in commands.items():
            samples = [run(argv) for _ in range(args.repeat)]
            rows.append(
                (
                    name,
                    statistics.median(s[0] for s in samples),
                    statistics.median(s[1] for s in samples),
                    target,
                )
            )
    print(f"{args.cells} cells, {os.cpu_count()} cores, medians of {args.repeat}")
    print(f"{'command':<18} {'wall s':>7} {'cpu s':>6} {'target':>7}")
    for name, wall, cpu, target in rows:
        verdict = (
            ""
            if target is None
            else f"<{target:<5}  wall {'ok' if wall < target else 'MISSED'}, cpu {'ok' if cpu < target else 'MISSED'}"
        )
        print(f"{name:<18} {wall:7.2f} {cpu:6.2f}  {verdict}")
    print(common.load_average())


if __name__ == "__main__":
    main()
