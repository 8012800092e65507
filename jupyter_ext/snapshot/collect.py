"""Turn what a notebook names into the concrete files a snapshot stores, and what it skips and why.

Rules: a declared path (data: tag, metadata.cellpipe.data, --data) is captured even when it is a symlink,
as long as what it names lies inside the project root; outside it (``~/.ssh/id_rsa``, ``/etc/...``, a
symlink leading out) it is an error unless the caller allows it explicitly (``cellpipe snapshot
--allow-outside-root``, never the server), and then stored under ``_external/``. A missing declared path
is an error.
A detected path (a string literal naming an existing file or directory) is captured only inside the
project root, never through a symlink, and only within the detected-data size limit; otherwise it is
listed as skipped, with the reason.
"""

from __future__ import annotations

import glob
import os
import stat as stat_module
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from jupyter_ext.errors import SnapshotError
from jupyter_ext.snapshot import config
from jupyter_ext.snapshot.detect import DeclaredPath, Literal, looks_like_path
from jupyter_ext.snapshot.manifest import EXTERNAL_DIR
from jupyter_ext.snapshot.store import PutResult

IGNORED_DIRS = {".git", ".cellpipe", ".ipynb_checkpoints", "__pycache__"}
DECLARE_HINT = "declare it with a data:PATH tag to capture it"


@dataclass
class DataFile:
    path: str  # absolute path to read
    name: str  # POSIX path inside the snapshot, relative to the project root
    origin: str  # "declared" or "detected"
    cell: int | None
    named_as: str  # the tag value, metadata entry or literal that brought it in
    stat: os.stat_result
    declared_in: str | None = None  # for declared data: the tag or field that declared it

    def to_entry(self, put: PutResult) -> dict[str, Any]:
        entry = {
            "path": self.name,
            "hash": put.hash,
            "size": put.size,  # what was read, should the file have changed since it was listed
            "mode": stat_module.S_IMODE(self.stat.st_mode),
            "origin": self.origin,
            "cell": self.cell,
            "named_as": self.named_as,
        }
        if self.name.startswith(EXTERNAL_DIR + "/"):
            entry["source"] = self.path
        return entry


@dataclass
class Skipped:
    path: str  # as the notebook wrote it (or the file found inside a named directory)
    reason: str
    cell: int | None
    origin: str = "detected"

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "reason": self.reason, "cell": self.cell, "origin": self.origin}


@dataclass
class Collection:
    files: list[DataFile] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    detected_bytes: int = 0
    limit_exceeded: bool = False
    _seen: set[str] = field(default_factory=set)

    def add(self, data_file: DataFile) -> None:
        if data_file.path not in self._seen:
            self._seen.add(data_file.path)
            self.files.append(data_file)

    def has(self, path: str) -> bool:
        return path in self._seen


class Collector:
    def __init__(
        self,
        notebook_path: Path,
        project_root: Path,
        *,
        notebook_label: str,
        max_detected_bytes: int,
        exclude: tuple[Path, ...] = (),  # e.g. a store inside the project: never snapshot the snapshots
        allow_outside_root: bool = False,
        confine_to: Path | None = None,  # a server's root: nothing outside it, whatever else allows
    ) -> None:
        self.notebook_path = str(notebook_path)
        self.directory = str(notebook_path.parent)
        self.root = str(project_root)
        self.label = notebook_label
        self.max_detected_bytes = max_detected_bytes
        self.exclude = [str(path) for path in exclude]
        self.allow_outside_root = allow_outside_root
        self.confine = str(Path(confine_to).resolve()) if confine_to else None
        self.result = Collection()

    # -- declared --------------------------------------------------------------------------------------

    def add_declared(self, declared: DeclaredPath) -> None:
        pattern = os.path.expanduser(declared.spec)
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(os.path.join(self.directory, pattern), recursive=True))
            if not matches:
                raise self._declared_error(declared, f"'{declared.spec}' matches no files")
            for match in matches:
                self._add_declared_path(os.path.normpath(match), declared)
            return
        path = os.path.normpath(os.path.join(self.directory, pattern))
        if not os.path.exists(path):
            what = "is a broken symlink" if os.path.islink(path) else "not found"
            raise self._declared_error(
                declared, f"declared data '{declared.spec}' {what} (looked for {path})"
            )
        self._add_declared_path(path, declared)

    def _declared_error(self, declared: DeclaredPath, message: str, hint: str | None = None) -> SnapshotError:
        where = "tag" if declared.cell is not None else "entry"
        return SnapshotError(
            message,
            notebook=self.label,
            cell=declared.cell,
            field=declared.field,
            hint=hint or f"Fix the path (relative to the notebook's directory) or remove the {where}.",
        )

    def _add_declared_path(self, path: str, declared: DeclaredPath) -> None:
        real = os.path.realpath(path)
        if not self.allow_outside_root and not self._inside_root(real):
            via = f" (through the symlink {path})" if real != path else ""
            raise self._declared_error(
                declared,
                f"declared data '{declared.spec}' is {real}{via}, outside the project root {self.root}",
                hint="Move the data into the project (the notebook's git repository or directory); to "
                "capture files from elsewhere on purpose, run 'cellpipe snapshot --allow-outside-root'",
            )
        if self._outside_confinement(real):
            raise self._declared_error(
                declared,
                f"declared data '{declared.spec}' is outside the server's root directory",
                hint="Move the data under the directory Jupyter serves; a server never reads files outside it",
            )
        name = self._name_for(path)
        if os.path.isdir(path):  # follows a declared symlink on purpose
            self._walk(path, name, "declared", declared.cell, declared.spec, declared.field)
            return
        file_stat = os.stat(path)
        if not stat_module.S_ISREG(file_stat.st_mode):
            raise self._declared_error(declared, f"declared data '{declared.spec}' is not a regular file")
        self.result.add(
            DataFile(path, name, "declared", declared.cell, declared.spec, file_stat, declared.field)
        )

    def _name_for(self, path: str) -> str:
        """Relative to the project root; declared paths outside it go under _external/<absolute path>."""
        if self._inside_root(path):
            return PurePosixPath(Path(os.path.relpath(path, self.root))).as_posix()
        real = Path(os.path.realpath(path))
        parts = [part.replace(":", "") for part in real.parts[1:]]  # drop '/' (or a drive on Windows)
        name = PurePosixPath(EXTERNAL_DIR, *parts).as_posix()
        self.result.notes.append(f"{path} is outside the project root; stored as {name}")
        return name

    # -- detected --------------------------------------------------------------------------------------

    def add_detected(self, literal: Literal) -> None:
        text = literal.text
        path = os.path.normpath(os.path.join(self.directory, os.path.expanduser(text)))
        if path == self.notebook_path or self.result.has(path) or self._excluded(path):
            return
        if not os.path.lexists(path):
            if looks_like_path(text):
                self._skip(text, "not found", literal.cell)
            return
        if not self._inside_root(path):
            self._skip(text, f"outside the project root {self.root}; {DECLARE_HINT}", literal.cell)
            return
        if self._outside_confinement(os.path.realpath(path)):
            self._skip(text, "outside the server's root directory", literal.cell)
            return
        if path == self.root or self.directory == path or self.directory.startswith(path + os.sep):
            self._skip(
                text, "is the notebook's or project's own directory; declare the data it needs", literal.cell
            )
            return
        link = self._symlink_on_the_way(path)
        if link is not None:
            self._skip(text, f"symlink ({link}) not followed; {DECLARE_HINT}", literal.cell)
            return
        if os.path.isdir(path):
            self._walk(path, self._name_for(path), "detected", literal.cell, text)
            return
        file_stat = os.lstat(path)
        if not stat_module.S_ISREG(file_stat.st_mode):
            self._skip(text, "not a regular file", literal.cell)
            return
        self._add_detected_files(
            [DataFile(path, self._name_for(path), "detected", literal.cell, text, file_stat)],
            text,
            literal.cell,
        )

    def _add_detected_files(self, files: list[DataFile], text: str, cell: int) -> None:
        """All of a literal's files, or none of them when they would exceed the detected-data limit."""
        new = [data_file for data_file in files if not self.result.has(data_file.path)]
        size = sum(data_file.stat.st_size for data_file in new)
        if self.result.detected_bytes + size > self.max_detected_bytes:
            self.result.limit_exceeded = True
            self._skip(
                text,
                f"too large: {config.human_bytes(size)} would take detected data over the "
                f"{config.human_bytes(self.max_detected_bytes)} limit ({config.MAX_DETECTED_ENV}); {DECLARE_HINT}",
                cell,
            )
            return
        self.result.detected_bytes += size
        for data_file in new:
            self.result.add(data_file)

    # -- shared ----------------------------------------------------------------------------------------

    def _walk(
        self,
        top: str,
        top_name: str,
        origin: str,
        cell: int | None,
        named_as: str,
        declared_in: str | None = None,
    ) -> None:
        """Regular files under ``top``; symlinks inside are not followed (declare them to capture)."""
        found = []
        pending = [(top, top_name)]  # (directory, its name in the snapshot); scandir: one lstat per file
        while pending:
            directory, prefix = pending.pop()
            try:
                entries = list(os.scandir(directory))
            except OSError as exc:
                if origin == "declared":
                    raise SnapshotError(
                        f"cannot read directory {directory} of declared data '{named_as}': {exc.strerror or exc}",
                        notebook=self.label,
                        cell=cell,
                        field=declared_in,
                        hint="Make it readable by the user running cellpipe, or remove it from the declared data.",
                    ) from None
                self._skip(self._display(directory), f"unreadable ({exc.strerror or exc})", cell, origin)
                continue
            for entry in entries:
                if entry.is_symlink():
                    self._skip(
                        self._display(entry.path), f"symlink not followed; {DECLARE_HINT}", cell, origin
                    )
                elif entry.is_dir(follow_symlinks=False):
                    if entry.name not in IGNORED_DIRS and not self._excluded(entry.path):
                        pending.append((entry.path, f"{prefix}/{entry.name}"))
                else:
                    file_stat = entry.stat(follow_symlinks=False)
                    if stat_module.S_ISREG(file_stat.st_mode):
                        name = f"{prefix}/{entry.name}"
                        found.append(
                            DataFile(entry.path, name, origin, cell, named_as, file_stat, declared_in)
                        )
                    else:
                        self._skip(self._display(entry.path), "not a regular file", cell, origin)
        if not found:
            self.result.notes.append(f"{named_as}: directory {top} holds no files")
        if origin == "detected":
            self._add_detected_files(found, named_as, cell)
        else:
            for data_file in found:
                self.result.add(data_file)

    def _display(self, path: str) -> str:
        return os.path.relpath(path, self.directory) if self._inside_root(path) else path

    def _inside_root(self, path: str) -> bool:
        return path == self.root or path.startswith(self.root.rstrip(os.sep) + os.sep)

    def _outside_confinement(self, real: str) -> bool:
        if self.confine is None:
            return False
        return not (real == self.confine or real.startswith(self.confine.rstrip(os.sep) + os.sep))

    def _excluded(self, path: str) -> bool:
        if any(path == ex or path.startswith(ex + os.sep) for ex in self.exclude):
            return True
        relative = os.path.relpath(path, self.root) if self._inside_root(path) else ""
        return any(part in IGNORED_DIRS for part in Path(relative).parts)

    def _symlink_on_the_way(self, path: str) -> str | None:
        """The first symlink among the components of ``path`` below the project root, if any."""
        relative = Path(os.path.relpath(path, self.root))
        current = self.root
        for part in relative.parts:
            current = os.path.join(current, part)
            if os.path.islink(current):
                return os.path.relpath(current, self.directory)
        return None

    def _skip(self, path: str, reason: str, cell: int | None, origin: str = "detected") -> None:
        self.result.skipped.append(Skipped(path, reason, cell, origin))
