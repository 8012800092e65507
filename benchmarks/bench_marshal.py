"""How fast a large DataFrame travels between two steps: Parquet vs cloudpickle.

Each backend saves the frame through ``marshal.save`` (atomic write, fsync, index) and loads it back with
``marshal.load``, in one process, as one step and then the next would. Reported per backend: the in-memory
size, save and load throughput (in-memory MiB per second), the file size and the Parquet/pickle ratios.

    python benchmarks/bench_marshal.py            # ~1 GiB frame
    python benchmarks/bench_marshal.py --mb 64    # quick

The load reads a file that was just written, so it usually comes from the page cache: it measures decoding,
not the disk. Memory: the frame plus one loaded copy at a time, plus the backends' buffers (about 3-4x
``--mb`` at peak).
"""

from __future__ import annotations

import argparse
import gc
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from jupyter_ext.runtime import marshal

MIB = 2**20
N_FLOAT, N_INT = 6, 2
CITIES = ["amsterdam", "berlin", "lisbon", "paris", "rome", "oslo", "madrid", "vienna", "porto", "dublin"]


def _hex_ids(rng: np.random.Generator, n: int) -> pa.LargeStringArray:
    """``n`` random 16-character hex strings, built directly as an Arrow string array (no Python objects)."""
    raw = rng.integers(0, 256, size=(n, 8), dtype=np.uint8)
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    chars = np.empty((n, 16), dtype=np.uint8)
    chars[:, 0::2] = digits[raw >> 4]
    chars[:, 1::2] = digits[raw & 15]
    offsets = np.arange(0, 16 * (n + 1), 16, dtype=np.int64)
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(chars))


def make_frame(mb: float, seed: int) -> pd.DataFrame:
    """About ``mb`` MiB in memory: 6 float64 and 2 int64 columns, a low- and a high-cardinality str column."""
    # Arrow strings take an offset (4 bytes, 8 for the large ids) plus their characters.
    bytes_per_row = 8 * (N_FLOAT + N_INT) + (4 + sum(map(len, CITIES)) / len(CITIES)) + (8 + 16)
    n = max(1, int(mb * MIB / bytes_per_row))
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {f"f{i}": rng.standard_normal(n) for i in range(N_FLOAT)}
    columns |= {f"i{i}": rng.integers(0, 1_000_000, n) for i in range(N_INT)}
    columns["city"] = pd.array(pa.array(CITIES).take(rng.integers(0, len(CITIES), n)), dtype="str")
    columns["id"] = pd.array(_hex_ids(rng, n), dtype="str")
    return pd.DataFrame(columns)


def measure(df: pd.DataFrame, directory: Path, repeat: int) -> dict[str, float | str]:
    """Best-of-``repeat`` save and load times through the public API, and the file size."""
    save_s = load_s = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        record = marshal.save("df", df, directory, step="produce")
        save_s = min(save_s, time.perf_counter() - start)
        start = time.perf_counter()
        back = marshal.load("df", directory, step="consume")
        load_s = min(load_s, time.perf_counter() - start)
        if not back.equals(df):
            raise SystemExit(f"{record['backend']}: the loaded frame differs from the saved one")
        del back
    (directory / record["file"]).unlink()  # free the disk before the next backend
    label = f"{record['backend']} ({Path(record['file']).suffix[1:]})"
    return {"backend": label, "save_s": save_s, "load_s": load_s, "file": record["bytes"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--mb", type=float, default=1024, help="in-memory size of the frame in MiB (default 1024)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per backend; the best is reported")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to write (default: a temporary directory)"
    )
    args = parser.parse_args(argv)

    start = time.perf_counter()
    df = make_frame(args.mb, args.seed)
    size = df.memory_usage(deep=True).sum()
    print(
        f"frame: {len(df):,} rows x {df.shape[1]} columns, {size / MIB:,.0f} MiB in memory "
        f"(built in {time.perf_counter() - start:.1f}s); pandas {pd.__version__}, pyarrow {pa.__version__}, "
        f"Python {platform.python_version()}"
    )

    results = []
    with tempfile.TemporaryDirectory(prefix="bench_marshal_", dir=args.dir) as tmp:
        results.append(measure(df, Path(tmp) / "parquet", args.repeat))
        # The same frame through the fallback: take the Parquet backend out for a moment.
        parquet = marshal.unregister("dataframe")
        try:
            results.append(measure(df, Path(tmp) / "pickle", args.repeat))
        finally:
            marshal.register(parquet, first=True)

    mib = size / MIB
    print()
    print(
        f"{'backend':<22} {'size MiB':>9} {'save s':>7} {'save MiB/s':>11} {'load s':>7} {'load MiB/s':>11} {'file MiB':>9}"
    )
    for r in results:
        print(
            f"{r['backend']:<22} {mib:>9,.0f} {r['save_s']:>7.2f} {mib / r['save_s']:>11,.0f} "
            f"{r['load_s']:>7.2f} {mib / r['load_s']:>11,.0f} {r['file'] / MIB:>9,.0f}"
        )
    pq, pk = results
    print(
        f"\nparquet/pickle: save time x{pq['save_s'] / pk['save_s']:.2f}, load time x{pq['load_s'] / pk['load_s']:.2f}, "
        f"file size x{pq['file'] / pk['file']:.2f}"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(f"peak RSS: {peak / MIB:,.0f} MiB")


if __name__ == "__main__":
    main()
