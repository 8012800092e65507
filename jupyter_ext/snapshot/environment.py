"""The environment a snapshot ran in: Python, installed packages, kernel, container image, git state."""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any

from jupyter_ext.snapshot import config
from jupyter_ext.snapshot.project import git_state

PACKAGES_CACHE_KEY = "cache/packages.json"


def capture_environment(
    notebook: dict[str, Any], project_root: Path, *, packages: list[str] | None = None
) -> dict[str, Any]:
    metadata = notebook.get("metadata") or {}
    kernelspec = metadata.get("kernelspec") or {}
    language = metadata.get("language_info") or {}
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
            "platform": platform.platform(),
        },
        # The packages of the Python running cellpipe: the notebook's kernel is expected to be the same
        # environment (kernel name and language version below let a reader check that).
        "packages": installed_packages() if packages is None else packages,
        "kernel": {
            "name": kernelspec.get("name"),
            "display_name": kernelspec.get("display_name"),
            "language": kernelspec.get("language") or language.get("name"),
            "language_version": language.get("version"),
        },
        "image": os.environ.get(config.IMAGE_ENV) or None,
        "git": git_state(project_root),
    }


def installed_packages() -> list[str]:
    """``name==version`` for every distribution on sys.path, sorted, one per normalised name."""
    from importlib import metadata

    pinned: dict[str, str] = {}
    for distribution in metadata.distributions():
        name, version = _name_and_version(distribution)
        if not name:
            continue
        key = re.sub(r"[-_.]+", "-", name).lower()
        pinned.setdefault(key, f"{name}=={version}")  # first on sys.path wins, as in import
    return [pinned[key] for key in sorted(pinned)]


def _name_and_version(distribution: Any) -> tuple[str | None, str | None]:
    """The Name and Version headers, read from the top of the metadata file: importlib's ``.metadata`` runs
    the e-mail parser over the whole file, long description included (~1.5 s for 450 distributions, most
    of a first snapshot of a small project). Falls back to it when the headers are not plainly there."""
    text = distribution.read_text("METADATA") or distribution.read_text("PKG-INFO") or ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the headers end at the first blank line
        key, _, value = line.partition(":")
        if key in ("Name", "Version") and key not in fields:
            fields[key] = value.strip()
    if "Name" in fields and "Version" in fields:
        return fields["Name"], fields["Version"]
    try:
        return distribution.metadata["Name"], distribution.version
    except Exception:  # a metadata directory without metadata: not a distribution to list
        return None, None


def packages_fingerprint() -> list[list[Any]]:
    """Each sys.path directory with the names of the distributions' metadata directories in it. Those names
    carry the name and version (``numpy-2.1.0.dist-info``), so an equal fingerprint means an equal package
    list; listing a directory takes a millisecond where parsing every METADATA file takes most of a second.
    (Directory mtimes would do too, but the current directory is on sys.path for ``python -m`` and changes
    whenever a file is written there.)"""
    fingerprint: list[list[Any]] = [[sys.executable]]
    for entry in sys.path:
        try:
            with os.scandir(entry or ".") as listing:
                names = sorted(
                    e.name for e in listing if e.name.endswith((".dist-info", ".egg-info", ".egg-link"))
                )
        except OSError:
            names = None
        fingerprint.append([entry, names])
    return fingerprint


def cached_packages(cached: bytes | None) -> tuple[list[str], bytes | None]:
    """The package list, reusing ``cached`` (from the store) when the fingerprint still matches.

    Returns the list and the bytes to save back (None when the cache was valid).
    """
    fingerprint = packages_fingerprint()
    if cached:
        try:
            payload = json.loads(cached)
            if payload.get("fingerprint") == fingerprint and isinstance(payload.get("packages"), list):
                return payload["packages"], None
        except (ValueError, AttributeError):
            pass  # unreadable cache: list again
    if _memo.get("fingerprint") != fingerprint:
        _memo.update(fingerprint=fingerprint, packages=installed_packages())
    return _memo["packages"], _encode(fingerprint, _memo["packages"])


def _encode(fingerprint: list[list[Any]], packages: list[str]) -> bytes:
    return json.dumps({"fingerprint": fingerprint, "packages": packages}).encode()


# The last listing in this process (a server takes many snapshots); checked against the fingerprint.
_memo: dict[str, Any] = {}
