"""Shared by the cluster-target tests: a "remote" snapshot store that lives in memory.

Cluster commands refuse local stores (pods could not read them), so their tests need a URL whose scheme is
not local: ``fakes3://``, an in-memory fsspec filesystem registered for the duration of a test.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from fsspec.implementations.memory import MemoryFileSystem

FAKE_STORE = "fakes3://ml-bucket/cellpipe"


class FakeS3(MemoryFileSystem):
    protocol = ("fakes3",)
    store: dict = {}  # its own dict: fsspec keeps a memory filesystem's files on the class
    pseudo_dirs = [""]

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        return super()._strip_protocol(str(path).removeprefix("fakes3://"))


@pytest.fixture
def fake_remote_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Register ``fakes3://``, clear cellpipe's environment settings, act as user alice; yields the URL."""
    registry = sys.modules["fsspec.registry"]
    monkeypatch.setitem(registry._registry, "fakes3", FakeS3)
    monkeypatch.setitem(registry.known_implementations, "fakes3", {"class": "FakeS3 (test)"})
    for name in (
        "CELLPIPE_STORE",
        "CELLPIPE_IMAGE",
        "CELLPIPE_NAMESPACE",
        "KUBECONFIG",
        "MLFLOW_TRACKING_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JUPYTERHUB_USER", "alice@example.com")
    yield FAKE_STORE
    FakeS3.store.clear()
    FakeS3.pseudo_dirs[:] = [""]
