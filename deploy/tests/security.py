"""Security rules for rendered Kubernetes objects.

`violations(obj, namespaces)` returns what is wrong with one object, in
words; an empty list means it passes. The rules:

- every container (init containers too) has requests and limits for cpu and
  memory;
- every image is pinned: a tag other than `latest`, or a digest;
- every container: no privilege escalation, not privileged, all
  capabilities dropped and none added, read-only root filesystem;
- every pod: seccomp profile RuntimeDefault (or Localhost), no host
  network, PID or IPC namespaces, no host ports;
- every container that listens (declares ports) has liveness and readiness
  probes;
- every pod runs as non-root and meets the restricted Pod Security
  Standard (only ephemeral, config and claim volumes), except the agent
  (component "agent"), which is checked against what it may have instead:
  uid 0 with every capability dropped (deploy/helm/larch/values.yaml says
  why), hostPath volumes that are read-only except the positions directory;
- a namespace holding the store enforces the restricted level; a namespace
  holding the agent is the only one allowed the privileged level;
- RBAC: ClusterRoles and Roles grant only get, list and watch, on pods and
  namespaces, with no wildcards.
"""

from __future__ import annotations

from typing import Any

from deploylib import Obj, pod_spec

RESTRICTED_VOLUME_TYPES = {"configMap", "emptyDir", "projected", "secret", "downwardAPI",
                           "persistentVolumeClaim", "ephemeral", "csi"}
READ_ONLY_VERBS = {"get", "list", "watch"}
AGENT_RESOURCES = {"pods", "namespaces"}
POSITIONS_VOLUME = "positions"


def component(obj: Obj) -> str:
    labels = obj.body.get("metadata", {}).get("labels") or {}
    return str(labels.get("app.kubernetes.io/component", ""))


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def _image_pinned(image: str) -> str | None:
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image {image} has no tag (means latest)"
    tag = last.rsplit(":", 1)[1]
    if tag == "latest":
        return f"image {image} uses the latest tag"
    return None


def _effective(pod_sc: dict[str, Any], c_sc: dict[str, Any], key: str) -> Any:
    return c_sc[key] if key in c_sc else pod_sc.get(key)


def container_violations(c: dict[str, Any], pod_sc: dict[str, Any], *, agent: bool,
                         init: bool) -> list[str]:
    name = c.get("name", "?")
    out = []
    res = c.get("resources") or {}
    for kind in ("requests", "limits"):
        for r in ("cpu", "memory"):
            if r not in (res.get(kind) or {}):
                out.append(f"container {name}: no {kind}.{r}")
    pinned = _image_pinned(str(c.get("image", "")))
    if pinned:
        out.append(f"container {name}: {pinned}")
    sc = c.get("securityContext") or {}
    if sc.get("allowPrivilegeEscalation") is not False:
        out.append(f"container {name}: allowPrivilegeEscalation is not false")
    if sc.get("privileged"):
        out.append(f"container {name}: privileged")
    caps = sc.get("capabilities") or {}
    if "ALL" not in (caps.get("drop") or []):
        out.append(f"container {name}: capabilities not dropped (drop: [ALL])")
    if caps.get("add"):
        out.append(f"container {name}: adds capabilities {caps['add']}")
    if sc.get("readOnlyRootFilesystem") is not True:
        out.append(f"container {name}: root filesystem is writable")
    seccomp = (_effective(pod_sc, sc, "seccompProfile") or {}).get("type")
    if seccomp not in ("RuntimeDefault", "Localhost"):
        out.append(f"container {name}: seccomp profile is {seccomp or 'unset'}, "
                   "not RuntimeDefault")
    for port in c.get("ports") or []:
        if port.get("hostPort"):
            out.append(f"container {name}: uses host port {port['hostPort']}")
    if c.get("ports") and not init:
        for probe in ("livenessProbe", "readinessProbe"):
            if probe not in c:
                out.append(f"container {name}: serves ports but has no {probe}")
    run_as_user = _effective(pod_sc, sc, "runAsUser")
    if agent:
        if run_as_user != 0 and _effective(pod_sc, sc, "runAsNonRoot") is not True:
            out.append(f"container {name}: neither non-root nor the documented uid 0")
    else:
        if _effective(pod_sc, sc, "runAsNonRoot") is not True:
            out.append(f"container {name}: runAsNonRoot is not true")
        if run_as_user == 0:
            out.append(f"container {name}: runs as uid 0")
    return out


def pod_violations(obj: Obj, spec: dict[str, Any]) -> list[str]:
    agent = component(obj) == "agent"
    pod_sc = spec.get("securityContext") or {}
    out = []
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            out.append(f"pod uses {key}")
    init_names = {c.get("name") for c in spec.get("initContainers") or []}
    for c in _containers(spec):
        out.extend(container_violations(c, pod_sc, agent=agent,
                                        init=c.get("name") in init_names))
    volumes = spec.get("volumes") or []
    host_volumes = {v["name"] for v in volumes if "hostPath" in v}
    for v in volumes:
        kinds = set(v) - {"name"}
        if not agent and not kinds <= RESTRICTED_VOLUME_TYPES:
            out.append(f"volume {v.get('name')}: type {sorted(kinds)} not allowed by the "
                       "restricted Pod Security Standard")
    for c in _containers(spec):
        for m in c.get("volumeMounts") or []:
            if (m.get("name") in host_volumes and m.get("name") != POSITIONS_VOLUME
                    and not m.get("readOnly")):
                out.append(f"container {c.get('name')}: hostPath {m.get('name')} "
                           "mounted writable")
    if component(obj) == "store" and spec.get("automountServiceAccountToken") is not False:
        out.append("store pod mounts a service account token it does not need")
    return out


def rbac_violations(obj: Obj) -> list[str]:
    out = []
    for i, rule in enumerate(obj.body.get("rules") or []):
        verbs = set(rule.get("verbs") or [])
        resources = set(rule.get("resources") or [])
        if not verbs <= READ_ONLY_VERBS:
            out.append(f"rule {i}: verbs {sorted(verbs - READ_ONLY_VERBS)} beyond get/list/watch")
        if not resources <= AGENT_RESOURCES:
            out.append(f"rule {i}: resources {sorted(resources - AGENT_RESOURCES)} "
                       "beyond pods/namespaces")
        if set(rule.get("apiGroups") or []) - {""}:
            out.append(f"rule {i}: API groups other than core")
        if rule.get("nonResourceURLs"):
            out.append(f"rule {i}: non-resource URLs")
    return out


def violations(obj: Obj, namespaces: dict[str, dict[str, str]] | None = None) -> list[str]:
    """What is wrong with `obj`. `namespaces` maps the names of Namespace
    objects in the same render to their labels (for the Pod Security level)."""
    out: list[str] = []
    spec = pod_spec(obj)
    if spec is not None:
        out.extend(pod_violations(obj, spec))
        labels = (namespaces or {}).get(obj.namespace)
        if labels is not None:
            level = labels.get("pod-security.kubernetes.io/enforce")
            wanted = "privileged" if component(obj) == "agent" else "restricted"
            if level != wanted:
                out.append(f"namespace {obj.namespace} enforces {level!r}, "
                           f"a {component(obj) or 'workload'} needs {wanted!r}")
    if obj.kind in ("ClusterRole", "Role"):
        out.extend(rbac_violations(obj))
    return out


def namespace_labels(objs: list[Obj]) -> dict[str, dict[str, str]]:
    return {o.name: dict(o.body.get("metadata", {}).get("labels") or {})
            for o in objs if o.kind == "Namespace"}
