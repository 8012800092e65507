"""JupyterHub on Kubernetes for cellpipe: KubeSpawner servers (CPU, 1 GPU, 4 GPUs) in per-user namespaces.

Run ``jupyterhub -f hub_config/jupyterhub_config.py`` in a hub that can reach the cluster, with the RBAC from
``python hub_config/cellpipe_hub.py rbac`` applied; or deploy with Zero to JupyterHub and ``z2jh/config.yaml``
(docs/hub.md). Everything is built by ``cellpipe_hub.py`` beside this file; settings come from environment
variables so one file serves every cluster:

  CELLPIPE_NOTEBOOK_IMAGE     the users' server image (default cellpipe/notebook:<version>; hub_config/images/)
  CELLPIPE_IMAGE              the image the users' Jobs and KFP steps run in (default cellpipe/runtime:<version>)
  CELLPIPE_NAMESPACE_TEMPLATE a user's namespace (default {hubnamespace}-{username})
  CELLPIPE_GPU_NODE_LABEL     node selector of GPU nodes, KEY=VALUE (default nvidia.com/gpu.present=true)
  CELLPIPE_STORE_BUCKET       S3/MinIO bucket of the snapshot store; a user's prefix is
  CELLPIPE_STORE_PREFIX       <prefix>/<username> (default cellpipe/users), with credentials from the
                              Secret cellpipe-store in that user's namespace (never one Secret for all)
  CELLPIPE_STORE_ENDPOINT     the S3 endpoint URL for MinIO (empty for AWS S3)
  CELLPIPE_KFP                "true": Kubeflow Pipelines multi-user (namespaces are Kubeflow profiles)
  CELLPIPE_CULL_TIMEOUT       idle seconds before the culler stops a server (default 3600)
  CELLPIPE_EGRESS_CIDRS       comma-separated CIDRs user pods may reach besides DNS/hub/KFP (store, API server)

Work submitted from a server (Jobs, CronJobs, KFP runs and recurring runs) lives in the user's namespace, so
it keeps running when the idle culler stops the server; schedules kept in the server (target local) stop.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cellpipe_hub import HubSettings, configure  # noqa: E402 - after the path insert above

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file
configure(c, HubSettings.from_env())
