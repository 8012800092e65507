"""The options of the Kubeflow Pipelines target: the API and its credentials, plus the cluster options."""

from __future__ import annotations

from dataclasses import dataclass

from jupyter_ext.targets.base import ClusterOptions


@dataclass
class KfpOptions(ClusterOptions):
    host: str | None = None  # default: $CELLPIPE_KFP_HOST, $KF_PIPELINES_ENDPOINT
    token: str | None = None  # avoid: prefer token_file
    token_file: str | None = None
    experiment: str | None = None  # default: the notebook's experiment_name, else "Default"
