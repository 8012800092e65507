"""A notebook as something a cluster can run: a tagged pipeline, or a plain notebook run whole.

Cluster targets accept both kinds. :func:`~jupyter_ext.pipeline.build.build_pipeline` tells them apart
by the tags themselves: a notebook without any ``step:``/``block:`` tag comes back as a plain
(stepless, ``Pipeline.is_plain``) pipeline with its name, kernel, notebook settings and papermill
``parameters`` cell, which the pod entry point runs whole with papermill.
"""

from __future__ import annotations

from pathlib import Path

from jupyter_ext.pipeline.build import build_pipeline
from jupyter_ext.pipeline.model import Pipeline


def load_pipeline(path: str | Path, *, content: bytes | None = None) -> Pipeline:
    """The pipeline of a tagged notebook, or a stepless one for a notebook to run whole."""
    return build_pipeline(path, content=content)
