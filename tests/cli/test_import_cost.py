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
