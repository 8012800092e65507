"""Snapshot stores as earlier versions of cellpipe left them, and digests computed without cellpipe.

Stores created before ``store.json`` existed name their objects by sha256 and carry no marker. Such a store
is made here the way that code made it: every object written under the sha256 of its bytes at
``objects/ab/cdef...``, each manifest (unchanged format) under the sha256 of its canonical JSON, nothing
else. It is derived from a store the current code wrote, by re-hashing each object with hashlib.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import blake3

from jupyter_ext.snapshot.manifest import canonical_json


def reference_digest(data: bytes, algorithm: str) -> str:
    """The digest by the libraries themselves (hashlib, the blake3 package), not through cellpipe."""
    if algorithm == "sha256":
        return hashlib.sha256(data).hexdigest()
    if algorithm == "blake3":
        return blake3.blake3(data).hexdigest()
    raise ValueError(algorithm)


def write_legacy_store(source: Path, target: Path) -> dict[str, str]:
    """Write at ``target`` the sha256, marker-less store holding the same snapshots as the store at
    ``source``; returns {snapshot id in source: id in target} (ids are sha256 of the manifests, whose
    hashes change with the objects' names)."""
    names = {}  # object digest in source -> sha256
    for path in sorted((source / "objects").glob("*/*")):
        data = path.read_bytes()
        name = hashlib.sha256(data).hexdigest()
        names[path.parent.name + path.name] = name
        (target / "objects" / name[:2]).mkdir(parents=True, exist_ok=True)
        (target / "objects" / name[:2] / name[2:]).write_bytes(data)
    ids = {}
    (target / "snapshots").mkdir(parents=True, exist_ok=True)
    for path in sorted((source / "snapshots").glob("*.json")):
        manifest = json.loads(path.read_bytes())
        for entry in [manifest["notebook"], *manifest.get("files", [])]:
            entry["hash"] = names[entry["hash"]]
        data = canonical_json(manifest)
        ids[path.stem] = hashlib.sha256(data).hexdigest()
        (target / "snapshots" / f"{ids[path.stem]}.json").write_bytes(data)
    return ids
