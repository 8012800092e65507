"""Step cache: a step whose inputs are all unchanged is not executed again; its outputs are reused.

The key covers what can change a step's result: its code, the prelude, the values of the parameters it
reads, the content hashes of its input variables, the kernel and the environment (Python and the
installed package set). Entries live in ``<data dir>/cache/<key>/`` and are committed with a rename, so
a crashed step never leaves an entry that looks complete.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from jupyter_ext import __version__
from jupyter_ext.pipeline.model import Pipeline, Step
from jupyter_ext.util import private_dir, remove_abandoned, sha256_text, write_json_atomic, writer_unique_name

ENTRY_FILE = "entry.json"
STAGING_PREFIX = ".staging-"  # a step being stored; left behind only by a killed run
TRASH_PREFIX = ".trash-"


@lru_cache(maxsize=1)
def environment_fingerprint() -> str:
    """Python version plus the installed distributions (name and version, from their metadata directory
    names: listing site-packages takes milliseconds, parsing every METADATA file takes ~0.4 s)."""
    names: list[str] = []
    for entry in sys.path:
        try:
            with os.scandir(entry or ".") as listing:
                names.extend(e.name for e in listing if e.name.endswith((".dist-info", ".egg-info")))
        except OSError:
            continue
    return sha256_text(sys.version, __version__, *sorted(names))


def step_cache_key(
    pipeline: Pipeline, step: Step, parameters: dict[str, Any], input_hashes: dict[str, str]
) -> str:
    return sha256_text(
        "cellpipe-step-v1",
        json.dumps([c.source for c in pipeline.prelude]),
        json.dumps([c.source for c in step.cells]),
        json.dumps(
            {name: parameters.get(name) for name in sorted(step.parameters)}, sort_keys=True, default=repr
        ),
        json.dumps(input_hashes, sort_keys=True),
        json.dumps([step.outputs, step.metrics]),
        pipeline.kernel,
        environment_fingerprint(),
    )


class StepCache:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def lookup(self, key: str) -> dict[str, Any] | None:
        entry = self.root / key / ENTRY_FILE
        try:
            data = json.loads(entry.read_text())
        except (OSError, ValueError):  # absent, or torn by a power cut: a miss, the step runs again
            return None
        data["outputs_dir"] = str(self.root / key / "outputs")
        return data

    def staging_dir(self) -> Path:
        path = self.root / writer_unique_name(STAGING_PREFIX)
        private_dir(path / "outputs")  # cached outputs are the user's data: 0700 from the cache root down
        return path

    def commit(self, staging: Path, key: str, entry: dict[str, Any], *, replace: bool = False) -> Path:
        """Publish a staged step result under its key; returns the entry's outputs directory.

        ``replace``: the step was executed although an entry may exist (``--no-cache``, ``cache:disabled``):
        its fresh outputs must win, since downstream steps read them.
        """
        write_json_atomic(staging / ENTRY_FILE, entry, durable=False)  # a torn entry is only a cache miss
        final = self.root / key
        if replace and final.exists():
            trash = self.root / writer_unique_name(TRASH_PREFIX)
            final.rename(trash)
            shutil.rmtree(trash, ignore_errors=True)
        try:
            staging.rename(final)
        except OSError:  # the same key was committed meanwhile by a concurrent run: keep that one
            shutil.rmtree(staging, ignore_errors=True)
        return final / "outputs"

    def discard(self, staging: Path) -> None:
        shutil.rmtree(staging, ignore_errors=True)

    def clean_leftovers(self, *, dry_run: bool = False) -> list[Path]:
        """Remove staging and trash directories that killed runs left behind; returns them."""
        try:
            candidates = [p for p in self.root.iterdir() if p.name.startswith((STAGING_PREFIX, TRASH_PREFIX))]
        except OSError:
            return []
        return remove_abandoned(
            candidates, lambda path: shutil.rmtree(path, ignore_errors=True), dry_run=dry_run
        )
