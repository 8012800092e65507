"""Importing a notebook's installed modules into a waiting kernel ahead of a run: installed modules only,
never the user's project's."""

from __future__ import annotations

import subprocess
import sys


def test_installed_modules_are_imported_up_to_the_first_project_module(tmp_path):
    """The prelude's order is kept: nothing after a module that is not imported ahead (a project module may
    change what the next import finds), and never a project module."""
    (tmp_path / "localhelpers.py").write_text("raise SystemExit('imported ahead')\n")
    code = (
        "import sys; from jupyter_ext.runtime.preload import import_installed; "
        f"sys.path.insert(0, {str(tmp_path)!r}); "
        "done = import_installed(['colorsys', 'localhelpers', 'xml.dom', 'sys'], "
        f"[{str(tmp_path)!r}]); "
        "print(done, 'colorsys' in sys.modules, 'xml.dom' in sys.modules, 'localhelpers' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["['colorsys']", "True", "False", "False"]


def test_a_module_that_cannot_be_imported_ends_the_preload(tmp_path):
    code = (
        "import sys; from jupyter_ext.runtime.preload import import_installed; "
        f"done = import_installed(['colorsys', 'no_such_module_x', 'xml.dom'], [{str(tmp_path)!r}]); "
        "print(done, 'xml.dom' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["['colorsys']", "False"]
