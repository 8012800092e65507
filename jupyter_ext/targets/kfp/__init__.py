"""The Kubeflow Pipelines target: compile the pipeline model to a KFP v2 package (:mod:`.compile`), connect
to a KFP API server (:mod:`.connect`), submit and schedule packages, follow and cancel runs (:mod:`.submit`).

Import the modules directly; this package stays light so that importing it does not load ``kfp``.
"""
