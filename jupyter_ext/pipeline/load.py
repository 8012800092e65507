"""A notebook as something a cluster can run: a tagged pipeline, or a plain notebook run whole.

Cluster targets accept both kinds. A notebook with ``step:`` tags is analysed by
:func:`~jupyter_ext.pipeline.build.build_pipeline`; one without any is returned as a stepless
:class:`Pipeline` (name, kernel, notebook settings and the papermill ``parameters`` cell), which the pod
entry point runs whole with papermill. Deciding by the tags themselves, not by catching an analysis
error: an untagged notebook with code fails analysis with "code cell before the first step", not
"no steps".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jupyter_ext.notebook.params import parse_parameters_cell
from jupyter_ext.notebook.read import kernel_name, read_notebook
from jupyter_ext.notebook.settings import read_settings
from jupyter_ext.notebook.tags import parse_cell_tags
from jupyter_ext.pipeline.build import build_pipeline, pipeline_name_for
from jupyter_ext.pipeline.model import Pipeline


def has_steps(notebook: Any, *, name: str) -> bool:
    """Whether any code cell of a (read) notebook carries a ``step:``/``block:`` tag."""
    for index, cell in enumerate(notebook.cells, start=1):
        if cell.cell_type != "code":
            continue
        if parse_cell_tags(list(cell.get("metadata", {}).get("tags", [])), notebook=name, cell=index).steps:
            return True
    return False


def load_pipeline(path: str | Path, *, content: bytes | None = None) -> Pipeline:
    """The pipeline of a tagged notebook, or a stepless one for a notebook to run whole."""
    name = str(path)
    notebook = read_notebook(path, content=content)
    if has_steps(notebook, name=name):
        return build_pipeline(path, content=content)
    settings = read_settings(notebook.get("metadata", {}), notebook=name)
    parameters = []
    for index, cell in enumerate(notebook.cells, start=1):
        tags = list(cell.get("metadata", {}).get("tags", []))
        if cell.cell_type == "code" and parse_cell_tags(tags, notebook=name, cell=index).role == "parameters":
            # papermill injects after the first cell tagged parameters; that cell holds the defaults
            parameters = parse_parameters_cell(cell.source, notebook=name, cell=index)
            break
    return Pipeline(
        name=settings.pipeline_name or pipeline_name_for(name),
        notebook=name,
        steps=[],
        parameters=parameters,
        description=settings.description,
        experiment=settings.experiment,
        image=settings.image,
        enable_caching=settings.enable_caching,
        volumes=settings.volumes,
        kernel=kernel_name(notebook),
        data=settings.data,
    )
