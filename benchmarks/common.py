"""What the benchmarks here do the same way: a command line whose --help is the benchmark's docstring (what
it measures and how to read it), and the machine's load printed beside the figures (on a shared machine a
ratio means little without it).

Importing it puts this checkout first on ``sys.path``: a benchmark measures the code beside it (and may use
``tests.support``), not the cellpipe installed in the environment.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))


def arguments(doc: str | None) -> argparse.ArgumentParser:
    """A parser that shows ``doc`` (the benchmark's module docstring) as written."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def load_average() -> str:
    """'load average 1.23 0.98 0.80 on 2 CPUs' (over 1, 5 and 15 minutes)."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"
