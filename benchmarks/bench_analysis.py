"""How analysis cost grows with notebook size: build_pipeline (tags + ast analysis + model) and full KFP compile.

    python benchmarks/bench_analysis.py [--sizes 10 100 1000] [--repeat 5] [--no-compile]

Generated notebooks: an imports cell, a parameters cell, then steps of 5 cells each; every step reads
variables of the two steps before it, so the DAG has real edges. Prints median times and the growth
ratio per 10x cells (10x = linear).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import common  # puts this checkout first on sys.path
import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from jupyter_ext.pipeline.build import build_pipeline


def make_notebook(cells: int, path: Path) -> Path:
    built = [new_code_cell("import math\nimport json", metadata={"tags": ["imports"]})]
    built.append(new_code_cell("scale = 2.0\nlabel = 'x'", metadata={"tags": ["parameters"]}))
    step = 0
    while len(built) < cells:
        tags = [f"step:s{step}"]
        reads = " + ".join(f"v{step - k}_0" for k in (1, 2) if step - k >= 0) or "scale"
        for j in range(5):
            if len(built) >= cells:
                break
            source = f"v{step}_{j} = math.sqrt(abs({reads})) * scale + {j}\nlog_{step}_{j} = json.dumps([v{step}_{j}])"
            built.append(new_code_cell(source, metadata={"tags": tags if j == 0 else []}))
        step += 1
    notebook = new_notebook(cells=built)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)
    return path


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = common.arguments(__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-compile", action="store_true", help="skip the KFP compile column")
    args = parser.parse_args()
    compile_pipeline = None
    if not args.no_compile:
        try:
            from jupyter_ext.targets.kfp.compile import compile_pipeline
        except ImportError:
            print("(KFP compiler not available: compile column skipped)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            path = make_notebook(size, Path(tmp) / f"nb{size}.ipynb")
            build_pipeline(path)  # warm imports (IPython transformer, nbformat) out of the timing
            analysis = median_time(lambda p=path: build_pipeline(p), args.repeat)
            pipeline = build_pipeline(path)
            compiled = None
            if compile_pipeline is not None:
                out = Path(tmp) / f"nb{size}.yaml"
                compiled = median_time(
                    lambda p=pipeline, o=out: compile_pipeline(p, o), max(1, args.repeat // 2)
                )
            rows.append((size, len(pipeline.steps), len(pipeline.edges), analysis, compiled))
    print(
        f"{'cells':>6} {'steps':>6} {'edges':>6} {'analysis s':>11} {'growth':>7} {'compile s':>10} {'growth':>7}"
    )
    previous = None
    for size, steps, edges, analysis, compiled in rows:
        growth = growth_c = ""
        if previous:
            factor = size / previous[0]
            growth = f"{analysis / previous[3] / factor * 10:.1f}x" if previous[3] else ""
            if compiled and previous[4]:
                growth_c = f"{compiled / previous[4] / factor * 10:.1f}x"
        comp = f"{compiled:10.3f}" if compiled is not None else f"{'-':>10}"
        print(f"{size:>6} {steps:>6} {edges:>6} {analysis:11.4f} {growth:>7} {comp} {growth_c:>7}")
        previous = (size, steps, edges, analysis, compiled)
    print("growth = time ratio per 10x cells (10.0x is linear)")


if __name__ == "__main__":
    main()
