"""JupyterHub on Kubernetes for cellpipe: KubeSpawner notebook servers (CPU or GPU) that have cellpipe.

Deploy with the zero-to-jupyterhub Helm chart (``hub.extraConfig``) or run ``jupyterhub -f`` with it.
Settings come from environment variables so one file serves every cluster:

  CELLPIPE_NOTEBOOK_IMAGE   image with JupyterLab + cellpipe (default cellpipe/notebook:<version>)
  CELLPIPE_GPU_NODE_LABEL   node selector for GPU nodes, KEY=VALUE (default nvidia.com/gpu.present=true)
  CELLPIPE_STORE            snapshot store URL the servers and pods share (e.g. s3://bucket/cellpipe)
  CELLPIPE_STORE_SECRET     Secret with the store credentials, exposed as env (never written here)

Work submitted from a server (Jobs, CronJobs, KFP runs) lives in the cluster, in the user's namespace,
so it keeps running when the idle culler stops the server.
"""

import os

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

image = os.environ.get("CELLPIPE_NOTEBOOK_IMAGE", "cellpipe/notebook:0.1.0")
gpu_key, _, gpu_value = os.environ.get("CELLPIPE_GPU_NODE_LABEL", "nvidia.com/gpu.present=true").partition(
    "="
)
store = os.environ.get("CELLPIPE_STORE", "")
store_secret = os.environ.get("CELLPIPE_STORE_SECRET", "")

c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
c.KubeSpawner.image = image
c.KubeSpawner.default_url = "/lab"
c.KubeSpawner.cmd = ["jupyterhub-singleuser"]
# Notebook servers run as the unprivileged jovyan user (docker-stacks convention), never root.
c.KubeSpawner.uid = 1000
c.KubeSpawner.gid = 100
c.KubeSpawner.fs_gid = 100
c.KubeSpawner.allow_privilege_escalation = False
c.KubeSpawner.container_security_context = {"capabilities": {"drop": ["ALL"]}}
# Each user's pipelines are submitted into the user's own namespace.
c.KubeSpawner.enable_user_namespaces = True
c.KubeSpawner.user_namespace_template = "{hubnamespace}-{username}"
c.KubeSpawner.environment = {
    "CELLPIPE_NAMESPACE": "{hubnamespace}-{username}",
    "CELLPIPE_OWNER": "{username}",
    **({"CELLPIPE_STORE": store} if store else {}),
}
if store_secret:
    c.KubeSpawner.extra_container_config = {"envFrom": [{"secretRef": {"name": store_secret}}]}
c.KubeSpawner.storage_pvc_ensure = True
c.KubeSpawner.pvc_name_template = "claim-{username}"
c.KubeSpawner.storage_capacity = "10Gi"
c.KubeSpawner.volumes = [{"name": "home", "persistentVolumeClaim": {"claimName": "claim-{username}"}}]
c.KubeSpawner.volume_mounts = [{"name": "home", "mountPath": "/home/jovyan"}]

c.KubeSpawner.profile_list = [
    {
        "display_name": "CPU: 2 cores, 8 GiB",
        "slug": "cpu",
        "default": True,
        "kubespawner_override": {
            "cpu_limit": 2,
            "cpu_guarantee": 1,
            "mem_limit": "8G",
            "mem_guarantee": "4G",
        },
    },
    {
        "display_name": "GPU: 1 NVIDIA GPU, 8 cores, 32 GiB",
        "slug": "gpu",
        "kubespawner_override": {
            "cpu_limit": 8,
            "cpu_guarantee": 4,
            "mem_limit": "32G",
            "mem_guarantee": "16G",
            "extra_resource_limits": {"nvidia.com/gpu": "1"},
            "node_selector": {gpu_key: gpu_value},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
    },
]

# Stop idle servers after an hour; scheduled work is on the cluster, not in the server.
c.JupyterHub.services = [
    {
        "name": "idle-culler",
        "command": ["python3", "-m", "jupyterhub_idle_culler", "--timeout=3600"],
    }
]
c.JupyterHub.load_roles = [
    {
        "name": "idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    }
]
