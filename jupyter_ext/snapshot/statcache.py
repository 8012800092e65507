"""Remembers the hash of each file by (path, size, mtime_ns, ctime_ns, inode), so unchanged data is not
read again. Persisted in the store as JSON; an unreadable cache is simply an empty one.
"""

from __future__ import annotations

import json
import os
import time

VERSION = 1
MAX_ENTRIES = 200_000  # bounds the file (~25 MB); the least recently used entries go first
# A file written within the filesystem's timestamp granularity of when we read it could change again
# without its mtime moving (git's "racy clean" problem); such entries are not remembered. Kernel file
# timestamps come from a clock that lags real time by up to one tick (4-10 ms), hence the margin.
RACY_MARGIN_NS = 20_000_000
USED_RESOLUTION_S = 86_400  # how precisely "last used" is kept, for pruning the least recently used


class StatCache:
    def __init__(self, entries: dict[str, list] | None = None) -> None:
        # path -> [size, mtime_ns, ctime_ns, inode, sha256, last used (unix s)]
        self.entries: dict[str, list] = entries or {}
        self.changed = False

    @classmethod
    def from_bytes(cls, data: bytes | None) -> StatCache:
        if not data:
            return cls()
        try:
            payload = json.loads(data)
        except ValueError:
            return cls()
        if not isinstance(payload, dict) or payload.get("version") != VERSION:
            return cls()
        entries = payload.get("entries")
        return cls(entries if isinstance(entries, dict) else None)

    def to_bytes(self) -> bytes:
        if len(self.entries) > MAX_ENTRIES:
            newest = sorted(self.entries.items(), key=lambda item: item[1][5], reverse=True)
            self.entries = dict(newest[:MAX_ENTRIES])
        return json.dumps({"version": VERSION, "entries": self.entries}, separators=(",", ":")).encode()

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
