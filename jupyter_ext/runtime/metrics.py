"""Record a step's pipeline metrics (called inside the step's kernel)."""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any

from jupyter_ext.util import write_json_atomic

METRICS_FILE = "_metrics.json"


def record(
    values: dict[str, Any], directory: str | Path, *, step: str | None = None, durable: bool = True
) -> dict[str, float]:
    """Write the metrics as floats; a metric that is not a real number is an error naming it.
    ``durable=False``: not fsynced (as ``marshal.save_all``)."""
    metrics: dict[str, float] = {}
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(
                f"metric '{name}' of step '{step}' is a {type(value).__name__}, not a number: "
                "pipeline metrics must be int or float (e.g. accuracy = float(score))"
            )
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"metric '{name}' of step '{step}' is {number}: metrics must be finite numbers")
        metrics[name] = number
    write_json_atomic(Path(directory) / METRICS_FILE, metrics, durable=durable)
    return metrics
