"""Heavy libraries stay out of commands that do not need them (MLflow costs ~2 s, KFP ~0.5 s)."""

import json
import subprocess
import sys

import pytest

PROBE = """
import json, sys
from jupyter_ext.cli.main import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "mlflow": "mlflow" in sys.modules, "kfp": "kfp" in sys.modules,
                  "pandas": "pandas" in sys.modules}))
"""


def probe(*args, env=None):
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env, timeout=300
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_inspect_imports_neither_mlflow_nor_kfp_nor_pandas(notebooks):
    result = probe("inspect", str(notebooks / "branches.ipynb"))
    assert result == {"code": 0, "mlflow": False, "kfp": False, "pandas": False}


@pytest.mark.slow
def test_run_without_tracking_never_imports_mlflow(write_notebook, tmp_path):
    import os

    notebook = write_notebook([(["step:a"], "x = 1")])
    env = {**os.environ, "CELLPIPE_HOME": str(tmp_path / "home")}
    result = probe("run", str(notebook), "--no-track", env=env)
    assert result["code"] == 0 and result["mlflow"] is False and result["kfp"] is False


STARTUP_PROBE = """
import json, sys
from jupyter_ext.cli.main import main
code = main(sys.argv[1:])
real_iri = getattr(sys.modules.get("rfc3987_syntax"), "__spec__", None) is not None
commands = sorted(m.rsplit(".", 1)[1] for m in sys.modules if m.startswith("jupyter_ext.cli.") and not
                  m.rsplit(".", 1)[1].startswith("_") and m.rsplit(".", 1)[1] not in ("main", "progress"))
print(json.dumps({"code": code, "nbformat": "nbformat" in sys.modules, "jsonschema": "jsonschema" in sys.modules,
                  "sqlalchemy": "sqlalchemy" in sys.modules, "iri_grammars": real_iri, "commands": commands}))
"""


def test_a_command_imports_its_own_module_and_no_validation_libraries(notebooks, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", STARTUP_PROBE, "inspect", str(notebooks / "branches.ipynb")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"code": 0, "nbformat": False, "jsonschema": False, "sqlalchemy": False,
                      "iri_grammars": False, "commands": ["inspect"]}  # fmt: skip


def test_compile_imports_jsonschema_without_compiling_iri_grammars(notebooks, tmp_path):
    out = tmp_path / "p.yaml"
    done = subprocess.run(
        [sys.executable, "-c", STARTUP_PROBE, "compile", str(notebooks / "branches.ipynb"), "-o", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == 0 and out.is_file()
    assert result["jsonschema"] is True and result["iri_grammars"] is False  # kfp -> kubernetes-validate
    assert result["commands"] == ["compile"]


def test_deferred_iri_grammars_still_check_iris():
    code = (
        "from jupyter_ext.startup import defer_iri_grammars; defer_iri_grammars()\n"
        "import sys, jsonschema\n"
        "assert sys.modules['rfc3987_syntax'].__spec__ is None\n"
        "checker = jsonschema.FormatChecker()\n"
        "print(checker.conforms('https://example.org/a?b#c', 'iri'), checker.conforms('not an iri', 'iri'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.split() == ["True", "False"], done.stderr


def test_top_level_help_still_lists_every_command():
    from jupyter_ext.cli.main import COMMANDS

    done = subprocess.run([sys.executable, "-m", "jupyter_ext.cli.main", "--help"], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    listed = [
        line.split()[0] for line in done.stdout.splitlines() if line.startswith("    ") and line.split()
    ]
    assert done.returncode == 0 and set(COMMANDS) <= set(listed)
