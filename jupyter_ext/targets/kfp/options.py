"""The options of the Kubeflow Pipelines target (the API and its credentials, plus the cluster options), and
the two choices made from them for every package: the steps' default image, and the compile call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_ext.errors import TargetError
from jupyter_ext.pipeline.model import Pipeline
from jupyter_ext.targets.base import ClusterOptions

NO_STEPS = "the notebook has no step: tags; Kubeflow Pipelines runs a notebook as a pipeline of steps"


@dataclass
class KfpOptions(ClusterOptions):
    host: str | None = None  # default: $CELLPIPE_KFP_HOST, $KF_PIPELINES_ENDPOINT
    token: str | None = None  # avoid: prefer token_file
    token_file: str | None = None
    experiment: str | None = None  # default: the notebook's experiment_name, else "Default"


def require_steps(
    pipeline: Pipeline, *, hint: str, notebook: str | None = None, field: str | None = None
) -> None:
    """Refuse a plain notebook (no step: tags) with the one message of every KFP entry point; ``hint`` says
    how the caller's user runs it whole instead."""
    if pipeline.is_plain:
        raise TargetError(NO_STEPS, notebook=notebook or pipeline.notebook, field=field, hint=hint)


def kfp_image(pipeline: Pipeline, explicit: str | None, default: str | None) -> tuple[str, list[str]]:
    """The image of steps without an ``image:`` tag: --image > the notebook's > $CELLPIPE_IMAGE > cellpipe's.

    Unlike a Job's single pod, each step is its own pod, so steps may name different images.
    """
    from jupyter_ext.targets.kfp.compile import DEFAULT_IMAGE

    image = explicit or pipeline.image or default
    if image or all(step.image for step in pipeline.steps):
        return image or DEFAULT_IMAGE, []
    return DEFAULT_IMAGE, [
        f"no --image: steps run in {DEFAULT_IMAGE}, cellpipe's default image; build it from "
        "hub_config/images/runtime.Dockerfile (docs/hub.md) or pass --image / set CELLPIPE_IMAGE"
    ]


def compile_for(
    options: KfpOptions, pipeline: Pipeline, directory: str | Path, *, parameters: dict[str, Any], image: str,
    snapshot_id: str, store: str, owner: str, run_id: str | None = None,
) -> Path:  # fmt: skip
    """The package of ``pipeline`` for one snapshot, in ``directory``, named after the pipeline."""
    from jupyter_ext.targets.k8s.names import sanitize_name
    from jupyter_ext.targets.kfp.compile import PackageSpec, compile_pipeline

    spec = PackageSpec(
        parameters=parameters, image=image, gpu_node_selector=options.gpu_node_selector, snapshot_id=snapshot_id,
        store=store, run_id=run_id, owner=owner, env=options.env, secrets=options.secrets,
    )  # fmt: skip
    return compile_pipeline(pipeline, Path(directory) / f"{sanitize_name(pipeline.name)}.yaml", spec)
