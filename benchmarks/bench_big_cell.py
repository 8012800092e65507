"""One big cell: analysis time against CPython's own ``ast.parse`` of the same text, in the same run.

    python benchmarks/bench_big_cell.py [--mb 1 4 10] [--repeat 2]

Two shapes: embedded data (one list literal) and many statements. The ratio to ``ast.parse`` is the
figure to watch (about 1 means cellpipe adds little to parsing; the absolute times depend on the
machine); equal ratios across sizes mean the analysis grows linearly.
"""

from __future__ import annotations

import ast
import json
import tempfile
import time
from pathlib import Path

import common  # puts this checkout first on sys.path

from jupyter_ext.pipeline.build import build_pipeline


def data_cell(megabytes: float) -> str:
    count = int(megabytes * 1e6 / 9)  # "1234567, " is about 9 bytes
    return "data = [" + ", ".join(str(i * 7) for i in range(count)) + "]\ntotal = sum(data)"


def statement_cell(megabytes: float) -> str:
    lines, size, budget = [], 0, int(megabytes * 1e6)
    while size < budget:  # exactly the size asked for (the lines grow with the numbers in them)
        lines.append(f"x{len(lines)} = round({len(lines)} * 0.5, 2)  # what? a note")
        size += len(lines[-1]) + 1
    return "\n".join(lines)


def notebook(source: str, path: Path) -> Path:
    cell = {"cell_type": "code", "metadata": {"tags": ["step:a"]}, "source": source, "outputs": [],
            "execution_count": None}  # fmt: skip
    path.write_text(json.dumps({"cells": [cell], "metadata": {"kernelspec": {"name": "python3"}},
                                "nbformat": 4, "nbformat_minor": 5}))  # fmt: skip
    return path


def timed(fn, repeat: int) -> float:
    """The best of ``repeat`` (the first call also pays for growing the allocator's arenas)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = common.arguments(__doc__)
    parser.add_argument("--mb", type=float, nargs="+", default=[1, 4, 10])
    parser.add_argument("--repeat", type=int, default=2, help="best of this many (default 2)")
    args = parser.parse_args()
    print(f"{'shape':<11} {'MB':>5} {'ast.parse s':>12} {'analysis s':>11} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        build_pipeline(notebook("x = 1", Path(tmp) / "warm.ipynb"))  # imports out of the timing
        for shape, make in (("data", data_cell), ("statements", statement_cell)):
            for megabytes in args.mb:
                source = make(megabytes)
                path = notebook(source, Path(tmp) / f"{shape}.ipynb")
                parse = timed(lambda s=source: ast.parse(s), args.repeat)
                analysis = timed(lambda p=path: build_pipeline(p), args.repeat)
                print(
                    f"{shape:<11} {len(source) / 1e6:5.1f} {parse:12.2f} {analysis:11.2f} {analysis / parse:6.2f}"
                )
    print(
        "goal (issue 12): a 10 MB cell analysed in under 5 s, cost linear in size (equal ratios across sizes)"
    )
    print(common.load_average())


if __name__ == "__main__":
    main()
