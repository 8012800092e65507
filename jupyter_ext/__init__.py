"""cellpipe: take a tagged Jupyter notebook to production without a rewrite.

The data path, one subpackage per stage::

    notebook/   cell tags, source analysis, parameters      (what the user wrote)
    pipeline/   the backend-independent pipeline model      (what to run)
    snapshot/   content-addressed notebook + data + env     (exactly what ran)
    runtime/    executes one step; the same code locally and in a pod
    targets/    local runner | Kubeflow Pipelines | Kubernetes Jobs, behind one interface (targets/registry.py)
    records/    typed run/schedule records and their SQLite store (what happened)
    services/   the one run lifecycle, scheduling, cluster submission, the Job pod's entry point
    tracking/   MLflow
    server/     Jupyter server extension: the HTTP API for the JupyterLab UI
    cli/        the ``cellpipe`` command

Import cost matters for the CLI: keep heavy imports (kfp, mlflow, pandas) inside functions.
"""

__version__ = "0.1.0"


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt JupyterLab extension (built from labextension/ at install; `jupyter labextension develop`)."""
    return [{"src": "labextension", "dest": "cellpipe-labextension"}]
