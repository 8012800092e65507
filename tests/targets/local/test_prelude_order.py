"""A kernel started ahead of its step may import the prelude's modules early, but only in an order the
prelude itself would: a module imported after the imports cell changed the environment, the import path or
anything else must see that change, as in a fresh kernel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jupyter_ext.services.runs import RunRequest, RunService

pytestmark = pytest.mark.slow

PROBE = "import os, sys\nSEEN = os.environ.get('CELLPIPE_PROBE')\n"


def installed_probe(site: Path, monkeypatch) -> None:
    """``cellpipe_probe`` as an installed module (outside the project) that reads the environment at import."""
    site.mkdir()
    (site / "cellpipe_probe.py").write_text(PROBE)
    import os

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))


def seen_by_steps(write_notebook, tmp_path, data_dir, imports: str) -> dict:
    out = tmp_path / "seen.json"
    notebook = write_notebook([
        (["imports"], imports),
        (["step:first"], f"import json\nopen({str(out)!r}, 'w').write(json.dumps(cellpipe_probe.SEEN))"),
        (["step:second", "prev:first"], f"open({str(out) + '2'!r}, 'w').write(json.dumps(cellpipe_probe.SEEN))"),
    ])  # fmt: skip
    record = RunService(data_dir).run(RunRequest(notebook=notebook, track=False)).to_dict()
    assert record["status"] == "succeeded", record
    return {"first": json.loads(out.read_text()), "second": json.loads(Path(str(out) + "2").read_text())}


def test_a_module_imported_after_the_imports_cell_sets_the_environment_sees_it(
    write_notebook, tmp_path, data_dir, monkeypatch
):
    installed_probe(tmp_path / "site", monkeypatch)
    imports = "import os\nos.environ['CELLPIPE_PROBE'] = 'set by the imports cell'\nimport cellpipe_probe"
    seen = seen_by_steps(write_notebook, tmp_path, data_dir, imports)
    assert seen == {"first": "set by the imports cell", "second": "set by the imports cell"}
