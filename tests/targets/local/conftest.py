import pytest


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """An isolated cellpipe data dir and MLflow store for each test."""
    directory = tmp_path / "cellpipe-data"
    monkeypatch.setenv("CELLPIPE_HOME", str(directory))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("CELLPIPE_STORE", raising=False)
    return directory
