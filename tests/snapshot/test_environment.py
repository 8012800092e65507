"""The snapshot's package list: read cheaply, exactly what importlib.metadata says; cached by what is
installed, not by when the current directory changed."""

from __future__ import annotations

import re
import sys
from importlib import metadata

from jupyter_ext.snapshot import environment


def test_installed_packages_match_importlib_metadata():
    expected: dict[str, str] = {}
    for distribution in metadata.distributions():
        name = distribution.metadata["Name"]
        if name:
            expected.setdefault(re.sub(r"[-_.]+", "-", name).lower(), f"{name}=={distribution.version}")
    assert environment.installed_packages() == [expected[key] for key in sorted(expected)]


def test_the_package_cache_survives_files_written_in_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", ["", *sys.path])  # as under `python -m`
    packages, cache = environment.cached_packages(None)
    (tmp_path / "notes.txt").write_text("a new file changes the directory's mtime")
    again, rewrite = environment.cached_packages(cache)
    assert again == packages and rewrite is None  # a cache hit
    installed = tmp_path / "fake_pkg-1.0.dist-info"  # something installed there: listed again
    installed.mkdir()
    (installed / "METADATA").write_text("Metadata-Version: 2.1\nName: fake_pkg\nVersion: 1.0\n\nA package.\n")
    listed, rewrite = environment.cached_packages(cache)
    assert rewrite is not None and "fake_pkg==1.0" in listed
