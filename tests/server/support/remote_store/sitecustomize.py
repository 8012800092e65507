"""Put on a test server's PYTHONPATH: registers ``fakes3://``, an in-memory "remote" snapshot store, at start.

Cluster targets refuse stores on the server's machine (pods could not read them); this one passes that check
and keeps the uploaded snapshot in the server process (the tests look at what reaches the Kubernetes API).
"""

from fsspec.implementations.memory import MemoryFileSystem
from fsspec.registry import register_implementation


class FakeS3(MemoryFileSystem):
    protocol = ("fakes3",)
    store: dict = {}
    pseudo_dirs = [""]

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        return super()._strip_protocol(str(path).removeprefix("fakes3://"))


register_implementation("fakes3", FakeS3, clobber=True)
