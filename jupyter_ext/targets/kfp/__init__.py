"""The Kubeflow Pipelines target: compile the pipeline model to a KFP v2 package (:mod:`.compile`).

Import :mod:`.compile` directly; this package stays light so that importing it does not load ``kfp``.
"""
