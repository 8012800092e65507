"""The plain Kubernetes target: runs as batch/v1 Jobs and CronJobs.

:mod:`.objects` builds the manifests (pure functions), :mod:`.client` sends them (``KubernetesTarget``).
Import those modules directly; this package stays light so importing it does not load the API client.
"""
