"""Put on a process's PYTHONPATH: registers ``fakes3://``, a "remote" snapshot store kept in a directory.

Cluster targets refuse stores on this machine (pods could not read them). This one passes that check, and,
unlike the in-memory one, every process given the same ``$CELLPIPE_TEST_FAKES3_DIR`` sees the same objects:
the test's own process (playing the pod that writes the run record) and a ``cellpipe`` subprocess reading it.
"""

import os

from fsspec.implementations.dirfs import DirFileSystem
from fsspec.implementations.local import LocalFileSystem
from fsspec.registry import register_implementation

DIR_ENV = "CELLPIPE_TEST_FAKES3_DIR"


class DiskFakeS3(DirFileSystem):
    protocol = ("fakes3",)
    cachable = False  # each test has its own directory

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(path=os.environ[DIR_ENV], fs=LocalFileSystem(auto_mkdir=True))

    @classmethod
    def _strip_protocol(cls, path):
        return str(path).removeprefix("fakes3://").rstrip("/")


register_implementation("fakes3", DiskFakeS3, clobber=True)
