"""Remembers the hash of each file by (path, size, mtime_ns, ctime_ns, inode), so unchanged data is not
read again. Persisted in the store as JSON; an unreadable cache is simply an empty one.

The cache records which hash its digests are (the store's algorithm, see hashing.py): a cache of another
algorithm is an empty one, so a digest of one algorithm is never looked up as a name of the other.
"""

from __future__ import annotations

import json
import os
import time

from jupyter_ext.snapshot.hashing import SHA256

VERSION = 1
MAX_ENTRIES = 200_000  # bounds the file (~25 MB); the least recently used entries go first
# A file written within the filesystem's timestamp granularity of when we read it could change again
# without its mtime moving (git's "racy clean" problem); such entries are not remembered. Kernel file
# timestamps come from a clock that lags real time by up to one tick (4-10 ms), hence the margin.
RACY_MARGIN_NS = 20_000_000
USED_RESOLUTION_S = 86_400  # how precisely "last used" is kept, for pruning the least recently used


class StatCache:
    def __init__(self, algorithm: str, entries: dict[str, list] | None = None) -> None:
        self.algorithm = algorithm  # what the digests are
        # path -> [size, mtime_ns, ctime_ns, inode, digest, last used (unix s)]
        self.entries: dict[str, list] = entries or {}
        self.changed = False

    @classmethod
    def from_bytes(cls, data: bytes | None, *, algorithm: str) -> StatCache:
        """The cache saved in ``data``, if its digests are ``algorithm``'s; else an empty one."""
        if not data:
            return cls(algorithm)
        try:
            payload = json.loads(data)
        except ValueError:
            return cls(algorithm)
        if not isinstance(payload, dict) or payload.get("version") != VERSION:
            return cls(algorithm)
        if payload.get("hash", SHA256) != algorithm:  # caches written before the field held sha256
            return cls(algorithm)
        entries = payload.get("entries")
        return cls(algorithm, entries if isinstance(entries, dict) else None)

    def to_bytes(self) -> bytes:
        if len(self.entries) > MAX_ENTRIES:
            newest = sorted(self.entries.items(), key=lambda item: item[1][5], reverse=True)
            self.entries = dict(newest[:MAX_ENTRIES])
        payload = {"version": VERSION, "hash": self.algorithm, "entries": self.entries}
        return json.dumps(payload, separators=(",", ":")).encode()

    def lookup(self, path: str, stat: os.stat_result) -> str | None:
        entry = self.entries.get(path)
        try:
            size, mtime_ns, ctime_ns, inode, digest, used = entry  # type: ignore[misc]
        except (TypeError, ValueError):
            return None  # absent or malformed
        if (size, mtime_ns, ctime_ns, inode) != (
            stat.st_size,
            stat.st_mtime_ns,
            stat.st_ctime_ns,
            stat.st_ino,
        ):
            return None
        now = int(time.time())
        if now - used > USED_RESOLUTION_S:  # refreshed coarsely, so that a pure hit rewrites nothing
            entry[5] = now
            self.changed = True
        return digest

    def record(self, path: str, stat: os.stat_result, digest: str, *, read_started_ns: int) -> bool:
        """Remember ``digest`` for ``path`` as it was at ``stat``; False when too recent to trust."""
        newest_change = max(stat.st_mtime_ns, stat.st_ctime_ns)
        if newest_change >= read_started_ns - RACY_MARGIN_NS:
            self.entries.pop(path, None)
            return False
        self.entries[path] = [
            stat.st_size,
            stat.st_mtime_ns,
            stat.st_ctime_ns,
            stat.st_ino,
            digest,
            int(time.time()),
        ]
        self.changed = True
        return True
