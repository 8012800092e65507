"""Settings read from the environment, each with the variable named where it is used."""

from __future__ import annotations

import os
import re

from jupyter_ext.errors import SnapshotError
from jupyter_ext.snapshot.hashing import ALGORITHMS

STORE_ENV = "CELLPIPE_STORE"
MAX_DETECTED_ENV = "CELLPIPE_MAX_DETECTED_BYTES"
FSYNC_ENV = "CELLPIPE_STORE_FSYNC"
IMAGE_ENV = "CELLPIPE_IMAGE"
SHARED_ENV = "CELLPIPE_STORE_SHARED"  # 1: a local store other users read (new files follow the umask)
STORE_HASH_ENV = "CELLPIPE_STORE_HASH"  # the hash a store created now names its objects by

DEFAULT_MAX_DETECTED_BYTES = 1 << 30

_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?\s*$", re.IGNORECASE)


def parse_size(text: str, *, field: str) -> int:
    """'1073741824', '500M', '2GiB', '1.5g' -> bytes (the 'i' forms are powers of 1024)."""
    match = _SIZE.match(text)
    if not match:
        raise SnapshotError(
            f"'{text}' is not a size", field=field, hint="Use bytes or a unit, e.g. 500M, 2GiB."
        )
    number, unit, binary = match.groups()
    unit = unit.lower()
    factor = 1024 ** ("kmgt".index(unit) + 1) if binary and unit else _UNITS[unit]
    return int(float(number) * factor)


def max_detected_bytes() -> int:
    value = os.environ.get(MAX_DETECTED_ENV)
    if not value:
        return DEFAULT_MAX_DETECTED_BYTES
    return parse_size(value, field=MAX_DETECTED_ENV)


def fsync_enabled() -> bool:
    """Whether new objects reach the disk before the manifest names them (survives a power cut)."""
    return os.environ.get(FSYNC_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def store_shared() -> bool:
    """Whether a local store is shared on purpose; by default what it holds is private to its user."""
    return os.environ.get(SHARED_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def store_hash(value: str | None = None) -> str | None:
    """The object hash asked for a store created now (``value``, else $CELLPIPE_STORE_HASH), None when
    nothing is asked: ``sha256`` makes a store that pod images with a cellpipe older than BLAKE3 can read."""
    field = STORE_HASH_ENV if value is None else "store hash"
    value = (os.environ.get(STORE_HASH_ENV, "") if value is None else value).strip().lower()
    if not value:
        return None
    if value not in ALGORITHMS:
        raise SnapshotError(
            f"'{value}' is not a store hash",
            field=field,
            hint=f"Use one of {', '.join(sorted(ALGORITHMS))}.",
        )
    return value


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
