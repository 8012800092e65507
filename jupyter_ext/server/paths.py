"""Paths at the HTTP boundary: what clients send is relative to the server root, and so is what they get back.

A request path becomes a real path inside the root (or a 400 naming the field); text and records going out
have the server's absolute paths, host name and process ids taken out, so a shared server tells a user
nothing about where it runs.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_ext.errors import CellpipeError
from jupyter_ext.server.validate import checked_string

MAX_PATH_CHARS = 1024
MAX_NAME_BYTES = 255  # of one file or folder name, as file systems allow
# keys that describe the serving process, not the run: never sent to a client
PRIVATE_KEYS = frozenset({"pid", "host", "hostname", "owner_pid", "owner_host", "owner"})


@dataclass
class ServerPaths:
    root: Path
    data_dir: Path
    _replacements: list[tuple[re.Pattern[str], str, str]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        self.data_dir = Path(self.data_dir).expanduser().resolve()
        self._root_prefix = str(self.root).rstrip("/") + "/"
        # (prefix, what it becomes before a "/", what it becomes alone); the data directory first: it may lie
        # in the root. A prefix counts only where a path component ends: /srv/root does not eat into /srv/root2.
        prefixes = [
            (str(self.data_dir), "<cellpipe data>/", "<cellpipe data>"),
            (str(self.root), "", "."),
            (str(Path.home()), "~/", "~"),
        ]
        self._replacements = [
            (re.compile(re.escape(prefix) + r"(/|(?=[\s\"'`,;:)\]]|\.(?:\s|$)|$))"), inside, alone)
            for prefix, inside, alone in prefixes
            if prefix not in ("", "/")
        ]
        host = socket.gethostname()
        self._host = host if len(host) > 2 else ""
        if self._host:
            self._replacements.append((re.compile(rf"\b{re.escape(self._host)}\b"), "<host>", "<host>"))

    def resolve(self, value: Any, *, field: str = "path") -> Path:
        """A notebook path from a client (relative to the root; a leading / means the root) inside the root."""
        if value is None or value == "":
            raise CellpipeError("no notebook path given", field=field, hint="send the notebook's path")
        value = checked_string(value, field, MAX_PATH_CHARS)
        if any(len(part.encode(errors="surrogatepass")) > MAX_NAME_BYTES for part in value.split("/")):
            raise CellpipeError(f"has a file or folder name longer than {MAX_NAME_BYTES} bytes", field=field)
        try:
            candidate = (self.root / value.lstrip("/")).resolve()
        except (OSError, RuntimeError, ValueError) as exc:  # too long a name, a symlink loop
            raise CellpipeError(
                f"'{self.redact(value)}' is not a usable path ({type(exc).__name__})", field=field
            ) from None
        if candidate != self.root and self.root not in candidate.parents:
            raise CellpipeError(f"'{self.redact(value)}' is outside the server's root directory", field=field)
        return candidate

    def relative(self, path: str | Path) -> str:
        """``path`` as the client knows it: relative to the root when inside it, else with private parts hidden."""
        text = str(path)
        if text.startswith(self._root_prefix) and "/../" not in text and "/./" not in text:
            return text[
                len(self._root_prefix) :
            ]  # the usual case (stored paths are resolved): no file system calls
        try:
            return Path(path).resolve().relative_to(self.root).as_posix()
        except (ValueError, OSError, RuntimeError):
            return self.redact(str(path))

    def redact(self, text: str) -> str:
        if "/" not in text and (not self._host or self._host not in text):
            return text  # most strings (names, ids, statuses): nothing to look for
        for pattern, inside, alone in self._replacements:
            text = pattern.sub(lambda match, i=inside, a=alone: i if match.group(1) else a, text)
        return text

    def public(self, value: Any, *, keep: frozenset[str] = frozenset({"parameters"})) -> Any:
        """A JSON-able value (a record, an error) safe to send: redacted strings, no process identity keys.

        Values under ``keep`` (the user's own parameters) are sent as they are."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {
                k: (v if k in keep else self.public(v, keep=keep))
                for k, v in value.items()
                if k not in PRIVATE_KEYS
            }
        if isinstance(value, list | tuple):
            return [self.public(v, keep=keep) for v in value]
        return value
