"""Runs as the HTTP API serves them, and a cache of that JSON for runs that no longer change.

A run goes out with its notebook path relative to the server's root, its executed step notebooks as API
links, and every string redacted (:meth:`ServerPaths.public`). Building that for a page of 50 runs - parse the
stored JSON, build the typed record, turn it back into a dict, redact, encode - was most of the time of
``GET runs``; yet most listed runs are final and read again and again unchanged.

So the JSON sent for a final run is kept, keyed by the run's id and the exact text stored for it: whatever
changes the record (tracking finishing in another process, a cluster refresh, a re-run's link, anything
written through the store) changes that text, and the next read builds the answer anew. A stale answer
would need the same stored text to mean something else, which it cannot. Active runs change every step and
are never cached. The cache is bounded (least recently used runs leave first) and safe across threads.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

from jupyter_ext.records.models import RunRecord
from jupyter_ext.records.store import StoredRun
from jupyter_ext.server.paths import ServerPaths

CACHE_CHARS = 32 * 1024 * 1024  # stored text and answer together: a few thousand typical runs
LOCAL_HANDLE_KEYS = (
    "kubeconfig",
    "context",
    "token_file",
)  # the server's own files: not the client's business


class RunPresenter:
    def __init__(self, paths: ServerPaths, *, cache_chars: int = CACHE_CHARS) -> None:
        self.paths = paths
        self.cache_chars = cache_chars
        self._cache: OrderedDict[str, tuple[str, str]] = OrderedDict()  # id -> (stored text, answer)
        self._chars = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def present(self, record: RunRecord) -> dict[str, Any]:
        """The record as the API serves it (before redaction): paths relative to the root, links to the
        executed step notebooks."""
        data = record.to_dict()
        data["notebook"] = self.paths.relative(data["notebook"])
        if data.get("handle"):
            data["handle"] = {k: v for k, v in data["handle"].items() if k not in LOCAL_HANDLE_KEYS}
        for step in data.get("steps", []):
            has_notebook = bool(step.get("notebook"))
            step["notebook"] = f"runs/{record.id}/steps/{step['name']}/notebook" if has_notebook else None
        return data

    def encode(self, data: Any) -> str:
        """Any answer as sent: redacted, then JSON."""
        return json.dumps(self.paths.public(data), default=str)

    def run_json(self, run: StoredRun) -> str:
        """The JSON of one stored run, from the cache when it was built from the same stored text."""
        with self._lock:
            cached = self._cache.get(run.id)
            if cached is not None and cached[0] == run.data:
                self._cache.move_to_end(run.id)
                self.hits += 1
                return cached[1]
            self.misses += 1
        answer = self.encode(self.present(run.record()))
        if run.is_final:
            self._keep(run, answer)
        return answer

    def page_json(self, runs: list[StoredRun], total: int) -> str:
        """``{"runs": [...], "total": N}``, byte for byte what encoding the whole page at once gives."""
        return '{"runs": [' + ", ".join(self.run_json(run) for run in runs) + f'], "total": {int(total)}}}'

    def _keep(self, run: StoredRun, answer: str) -> None:
        size = len(run.data) + len(answer)
        if size > self.cache_chars // 8:  # one huge record must not push out everything else
            return
        with self._lock:
            previous = self._cache.pop(run.id, None)
            if previous is not None:
                self._chars -= len(previous[0]) + len(previous[1])
            self._cache[run.id] = (run.data, answer)
            self._chars += size
            while self._chars > self.cache_chars:
                _, (data, old) = self._cache.popitem(last=False)
                self._chars -= len(data) + len(old)
