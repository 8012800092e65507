"""The Kubernetes Pod Security Standards, "restricted" profile (which includes "baseline"), control by control.

Written from https://kubernetes.io/docs/concepts/security/pod-security-standards/ so a test can name the
control a pod breaks. ``violations(pod)`` lists the failing controls; the tests also break each control on
purpose to show its check can fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

Pod = dict[str, Any]

SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip
BASELINE_CAPABILITIES = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip
RESTRICTED_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
}  # fmt: skip


def containers(pod: Pod) -> Iterator[dict[str, Any]]:
    spec = pod["spec"]
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or []


def _pod_ctx(pod: Pod) -> dict[str, Any]:
    return pod["spec"].get("securityContext") or {}


def _ctx(container: dict[str, Any]) -> dict[str, Any]:
    return container.get("securityContext") or {}


def host_process(pod: Pod) -> bool:
    contexts = [_pod_ctx(pod), *(_ctx(c) for c in containers(pod))]
    return not any((ctx.get("windowsOptions") or {}).get("hostProcess") for ctx in contexts)


def host_namespaces(pod: Pod) -> bool:
    return not any(pod["spec"].get(key) for key in ("hostNetwork", "hostPID", "hostIPC"))


def privileged(pod: Pod) -> bool:
    return not any(_ctx(c).get("privileged") for c in containers(pod))


def baseline_capabilities(pod: Pod) -> bool:
    return all(set((_ctx(c).get("capabilities") or {}).get("add") or []) <= BASELINE_CAPABILITIES
               for c in containers(pod))  # fmt: skip


def host_path_volumes(pod: Pod) -> bool:
    return not any("hostPath" in volume for volume in pod["spec"].get("volumes") or [])


def host_ports(pod: Pod) -> bool:
    return not any(port.get("hostPort") for c in containers(pod) for port in c.get("ports") or [])


def apparmor(pod: Pod) -> bool:
    profiles = [(_pod_ctx(pod).get("appArmorProfile") or {}).get("type")]
    profiles += [(_ctx(c).get("appArmorProfile") or {}).get("type") for c in containers(pod)]
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    legacy = [
        v for k, v in annotations.items() if k.startswith("container.apparmor.security.beta.kubernetes.io/")
    ]
    return all(p in (None, "RuntimeDefault", "Localhost") for p in profiles) and all(
        v == "runtime/default" or v.startswith("localhost/") for v in legacy
    )


def selinux(pod: Pod) -> bool:
    allowed_types = {None, "", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
    options = [
        _pod_ctx(pod).get("seLinuxOptions") or {},
        *((_ctx(c).get("seLinuxOptions") or {}) for c in containers(pod)),
    ]
    return all(o.get("type") in allowed_types and not o.get("user") and not o.get("role") for o in options)


def proc_mount(pod: Pod) -> bool:
    return all(_ctx(c).get("procMount") in (None, "Default") for c in containers(pod))


def baseline_seccomp(pod: Pod) -> bool:
    profiles = [(_pod_ctx(pod).get("seccompProfile") or {}).get("type")]
    profiles += [(_ctx(c).get("seccompProfile") or {}).get("type") for c in containers(pod)]
    return "Unconfined" not in profiles


def sysctls(pod: Pod) -> bool:
    return all(s["name"] in SAFE_SYSCTLS for s in _pod_ctx(pod).get("sysctls") or [])


def volume_types(pod: Pod) -> bool:
    return all(set(v) - {"name"} <= RESTRICTED_VOLUME_TYPES for v in pod["spec"].get("volumes") or [])


def privilege_escalation(pod: Pod) -> bool:
    return all(_ctx(c).get("allowPrivilegeEscalation") is False for c in containers(pod))


def run_as_non_root(pod: Pod) -> bool:
    pod_level = _pod_ctx(pod).get("runAsNonRoot")
    return pod_level is not False and all(
        _ctx(c).get("runAsNonRoot") is True or (pod_level is True and _ctx(c).get("runAsNonRoot") is None)
        for c in containers(pod)
    )


def run_as_non_root_user(pod: Pod) -> bool:
    return _pod_ctx(pod).get("runAsUser") != 0 and all(_ctx(c).get("runAsUser") != 0 for c in containers(pod))


def restricted_seccomp(pod: Pod) -> bool:
    good = {"RuntimeDefault", "Localhost"}
    pod_level = (_pod_ctx(pod).get("seccompProfile") or {}).get("type")
    for c in containers(pod):
        own = (_ctx(c).get("seccompProfile") or {}).get("type")
        if own not in good and not (own is None and pod_level in good):
            return False
    return True


def restricted_capabilities(pod: Pod) -> bool:
    for c in containers(pod):
        capabilities = _ctx(c).get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            return False
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            return False
    return True


CONTROLS: dict[str, Callable[[Pod], bool]] = {
    "HostProcess": host_process,
    "Host Namespaces": host_namespaces,
    "Privileged Containers": privileged,
    "Capabilities (baseline)": baseline_capabilities,
    "HostPath Volumes": host_path_volumes,
    "Host Ports": host_ports,
    "AppArmor": apparmor,
    "SELinux": selinux,
    "/proc Mount Type": proc_mount,
    "Seccomp (baseline)": baseline_seccomp,
    "Sysctls": sysctls,
    "Volume Types": volume_types,
    "Privilege Escalation": privilege_escalation,
    "Running as Non-root": run_as_non_root,
    "Running as Non-root user": run_as_non_root_user,
    "Seccomp (restricted)": restricted_seccomp,
    "Capabilities (restricted)": restricted_capabilities,
}


def violations(pod: Pod) -> list[str]:
    return [name for name, holds in CONTROLS.items() if not holds(pod)]


def _first(pod: Pod) -> dict[str, Any]:
    return pod["spec"]["containers"][0].setdefault("securityContext", {})


# One way to break each control, applied to a compliant pod: its check must then fail.
BREAK: dict[str, Callable[[Pod], None]] = {
    "HostProcess": lambda p: _first(p).update(windowsOptions={"hostProcess": True}),
    "Host Namespaces": lambda p: p["spec"].update(hostPID=True),
    "Privileged Containers": lambda p: _first(p).update(privileged=True),
    "Capabilities (baseline)": lambda p: _first(p).update(capabilities={"drop": ["ALL"], "add": ["SYS_ADMIN"]}),
    "HostPath Volumes": lambda p: p["spec"].setdefault("volumes", []).append({"name": "h", "hostPath": {"path": "/"}}),
    "Host Ports": lambda p: p["spec"]["containers"][0].setdefault("ports", []).append({"containerPort": 80, "hostPort": 80}),
    "AppArmor": lambda p: _first(p).update(appArmorProfile={"type": "Unconfined"}),
    "SELinux": lambda p: _first(p).update(seLinuxOptions={"type": "spc_t"}),
    "/proc Mount Type": lambda p: _first(p).update(procMount="Unmasked"),
    "Seccomp (baseline)": lambda p: _first(p).update(seccompProfile={"type": "Unconfined"}),
    "Sysctls": lambda p: p["spec"].setdefault("securityContext", {}).update(sysctls=[{"name": "kernel.msgmax", "value": "1"}]),
    "Volume Types": lambda p: p["spec"].setdefault("volumes", []).append({"name": "n", "nfs": {"server": "x", "path": "/"}}),
    "Privilege Escalation": lambda p: _first(p).update(allowPrivilegeEscalation=True),
    "Running as Non-root": lambda p: _first(p).update(runAsNonRoot=False),
    "Running as Non-root user": lambda p: _first(p).update(runAsUser=0),
    "Seccomp (restricted)": lambda p: [_first(p).pop("seccompProfile", None), p["spec"]["securityContext"].pop("seccompProfile", None)],
    "Capabilities (restricted)": lambda p: _first(p).update(capabilities={"drop": ["NET_RAW"]}),
}  # fmt: skip
