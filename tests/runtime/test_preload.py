"""Importing a notebook's installed modules into a waiting kernel ahead of a run: installed modules only,
never the user's project's."""

from __future__ import annotations

import subprocess
import sys


def test_installed_modules_are_imported_and_project_modules_are_not(tmp_path):
    (tmp_path / "localhelpers.py").write_text("raise SystemExit('imported ahead')\n")
    (tmp_path / "localpackage").mkdir()
    (tmp_path / "localpackage" / "__init__.py").write_text("raise SystemExit('imported ahead')\n")
    code = (
        "import sys; from jupyter_ext.runtime.preload import import_installed; "
        f"sys.path.insert(0, {str(tmp_path)!r}); "
        "done = import_installed(['colorsys', 'localhelpers', 'localpackage', 'xml.dom', 'no_such_module_x', 'sys'], "
        f"[{str(tmp_path)!r}]); "
        "print(done, 'colorsys' in sys.modules, 'xml.dom' in sys.modules, 'localhelpers' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["['colorsys',", "'xml.dom',", "'sys']", "True", "True", "False"]
