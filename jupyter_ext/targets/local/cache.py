"""Step cache: a step whose inputs are all unchanged is not executed again; its outputs are reused.

The key covers what can change a step's result: its code, the prelude, the values of the parameters it
reads, the content hashes of its input variables, the kernel and the environment (Python and the
installed package set). Entries live in ``<data dir>/cache/<key>/`` and are committed with a rename, so
a crashed step never leaves an entry that looks complete.

Durability: a step's outputs are written without fsync and committed at once, so that downstream steps
start without waiting for the disk; the runner then persists them in the background
(:meth:`StepCache.make_durable`) and only then marks the entry ``durable``. A lookup trusts only an entry
so marked: after a power cut an entry whose outputs may be torn is a miss, and the step runs again.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from jupyter_ext import __version__
from jupyter_ext.pipeline.model import Pipeline, Step
from jupyter_ext.snapshot.environment import packages_fingerprint
from jupyter_ext.util import private_dir, remove_abandoned, sha256_text, write_json_atomic, writer_unique_name

ENTRY_FILE = "entry.json"
DURABLE = "durable"  # entry field: its outputs, and the entry's names, were fsynced before it was set
STAGING_PREFIX = ".staging-"  # a step being stored; left behind only by a killed run
TRASH_PREFIX = ".trash-"


def environment_fingerprint() -> str:
    """Python, cellpipe and the installed distributions: the names of their metadata directories on
    sys.path, which carry name and version (the snapshot's listing; ~0.6 ms of CPU with 530 entries in
    site-packages, where parsing every METADATA file takes ~0.4 s). Where they are does not count, so a
    run from another directory or process finds the same entries.

    Taken once per run, never kept for a process: a long-lived Jupyter server must see a ``pip install``
    made in a terminal meanwhile, or steps would be answered from results of the old packages. Keeping it
    until site-packages' mtime changes would save that ~0.6 ms per run only (measured; see
    docs/local-runner.md, "Step cache")."""
    names = (name for _, listed in packages_fingerprint()[1:] for name in listed or ())
    return sha256_text(sys.version, __version__, *sorted(names))


def step_cache_key(
    pipeline: Pipeline,
    step: Step,
    parameters: dict[str, Any],
    input_hashes: dict[str, str],
    *,
    environment: str,
) -> str:
    """``environment``: the run's :func:`environment_fingerprint`."""
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
        environment,
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
        # an entry not yet made durable (its run is still persisting it, or was killed or lost power
        # before it did) may point at torn outputs. Entries of versions before the field had their
        # outputs fsynced before the entry was written.
        if data.get(DURABLE, True) is not True:
            return None
        data["outputs_dir"] = str(self.root / key / "outputs")
        return data

    def staging_dir(self) -> Path:
        path = self.root / writer_unique_name(STAGING_PREFIX)
        private_dir(path / "outputs")  # cached outputs are the user's data: 0700 from the cache root down
        return path

    def commit(
        self, staging: Path, key: str, entry: dict[str, Any], *, replace: bool = False, durable: bool = True
    ) -> Path:
        """Publish a staged step result under its key; returns the entry's outputs directory.

        ``replace``: the step was executed although an entry may exist (``--no-cache``, ``cache:disabled``):
        its fresh outputs must win, since downstream steps read them. ``durable=False``: the outputs were
        not fsynced; lookups skip the entry until :meth:`make_durable` has persisted it.
        """
        entry = {**entry, DURABLE: durable}
        write_json_atomic(staging / ENTRY_FILE, entry, durable=False)  # a torn entry is only a cache miss
        final = self.root / key
        if replace and final.exists():
            trash = self.root / writer_unique_name(TRASH_PREFIX)
            try:
                final.rename(trash)
            except FileNotFoundError:  # a concurrent run of the same step replaced it first
                pass
            else:
                shutil.rmtree(trash, ignore_errors=True)
        try:
            staging.rename(final)
        except OSError:  # the same key was committed meanwhile by a concurrent run: keep that one
            shutil.rmtree(staging, ignore_errors=True)
        return final / "outputs"

    def make_durable(self, key: str, run_id: str) -> None:
        """Persist an entry committed with ``durable=False`` (its outputs' data and names), then mark it
        durable: a power cut before the mark leaves an entry that lookups skip. The mark's and the entry's
        own names are not synced: if they do not reach the disk, the entry is a miss or absent, never
        trusted wrongly.

        Everything goes through the entry directory's descriptor: if a concurrent run replaced the entry
        meanwhile, this works on the replaced (trashed) one and never marks the other run's outputs."""
        try:
            entry_dir = os.open(self.root / key, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            return  # replaced and removed by a concurrent run: nothing of this run's is left to persist
        try:
            self._persist(entry_dir, run_id)
        except FileNotFoundError:  # replaced and removed meanwhile by a concurrent run of the same step
            return
        finally:
            os.close(entry_dir)

    def _persist(self, entry_dir: int, run_id: str) -> None:
        with open(ENTRY_FILE, opener=_at(entry_dir)) as fh:
            entry = json.load(fh)
        if entry.get("run_id") != run_id or entry.get(DURABLE) is True:
            return
        outputs = os.open("outputs", os.O_RDONLY | os.O_DIRECTORY, dir_fd=entry_dir)
        try:
            for name in os.listdir(outputs):
                descriptor = os.open(name, os.O_RDONLY, dir_fd=outputs)
                try:
                    os.fsync(descriptor)
                finally:
                    os.close(descriptor)
            os.fsync(outputs)  # the files' names
        finally:
            os.close(outputs)
        os.fsync(entry_dir)  # the outputs directory's name, before any mark can name it
        temporary = f".{ENTRY_FILE}.{os.urandom(6).hex()}.tmp"
        with open(temporary, "w", opener=_at(entry_dir, os.O_CREAT | os.O_EXCL)) as fh:
            json.dump({**entry, DURABLE: True}, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, ENTRY_FILE, src_dir_fd=entry_dir, dst_dir_fd=entry_dir)

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


def _at(directory: int, extra: int = 0) -> Any:
    """An ``open`` opener for names relative to the directory descriptor ``directory`` (files 0600)."""
    return lambda name, flags: os.open(name, flags | extra, 0o600, dir_fd=directory)
