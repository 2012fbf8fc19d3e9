"""The security rules (security.py) hold for every rendered object, and the
checker itself catches each kind of violation."""

from __future__ import annotations

import copy
from typing import Any

import pytest

import deploylib
import security
from deploylib import Obj

RENDERS = ("helm-default", "helm-production", "helm-monitoring", "helm-scalable", "kustomize-dev", "kustomize-staging",
           "kustomize-prod")


@pytest.mark.parametrize("render", RENDERS)
def test_rendered_objects_meet_security_rules(renders: dict[str, list[Obj]], render: str) -> None:
    objs = renders[render]
    namespaces = security.namespace_labels(objs)
    problems = [f"{obj}: {v}" for obj in objs for v in security.violations(obj, namespaces)]
    assert not problems, "\n".join(problems)
    # Every render has both workloads, so the rules were applied to them.
    kinds = {(o.kind, security.component(o)) for o in objs}
    assert {("StatefulSet", "store"), ("DaemonSet", "agent")} <= kinds


@pytest.mark.parametrize("render", ("kustomize-dev", "kustomize-staging", "kustomize-prod"))
def test_overlays_put_store_under_restricted_pod_security(renders: dict[str, list[Obj]],
                                                         render: str) -> None:
    objs = renders[render]
    labels = security.namespace_labels(objs)
    store = next(o for o in objs if o.kind == "StatefulSet")
    agent = next(o for o in objs if o.kind == "DaemonSet")
    assert labels[store.namespace]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels[agent.namespace]["pod-security.kubernetes.io/enforce"] == "privileged"
    assert store.namespace != agent.namespace


def test_agent_rbac_is_read_only_pods_and_namespaces(renders: dict[str, list[Obj]]) -> None:
    roles = [o for o in renders["helm-default"] if o.kind in ("ClusterRole", "Role")]
    assert len(roles) == 1
    rules = roles[0].body["rules"]
    assert rules == [{"apiGroups": [""], "resources": ["pods", "namespaces"],
                      "verbs": ["get", "list", "watch"]}]


# --- the checker catches what it should -------------------------------------


def _good_store() -> Obj:
    objs = deploylib.all_renders()["helm-default"]
    return copy.deepcopy(next(o for o in objs if o.kind == "StatefulSet"))


def _container(obj: Obj) -> dict[str, Any]:
    return obj.body["spec"]["template"]["spec"]["containers"][0]


def _mutate(change: str) -> Obj:
    obj = _good_store()
    spec = obj.body["spec"]["template"]["spec"]
    c = _container(obj)
    if change == "root":
        spec["securityContext"]["runAsUser"] = 0
    elif change == "non-root-unset":
        del spec["securityContext"]["runAsNonRoot"]
        del c["securityContext"]["runAsNonRoot"]
    elif change == "writable-rootfs":
        c["securityContext"]["readOnlyRootFilesystem"] = False
    elif change == "caps-kept":
        del c["securityContext"]["capabilities"]
    elif change == "caps-added":
        c["securityContext"]["capabilities"]["add"] = ["NET_ADMIN"]
    elif change == "escalation":
        del c["securityContext"]["allowPrivilegeEscalation"]
    elif change == "privileged":
        c["securityContext"]["privileged"] = True
    elif change == "no-limits":
        del c["resources"]["limits"]
    elif change == "no-memory-request":
        del c["resources"]["requests"]["memory"]
    elif change == "no-liveness":
        del c["livenessProbe"]
    elif change == "no-readiness":
        del c["readinessProbe"]
    elif change == "latest":
        c["image"] = "ghcr.io/larch-logs/larch-store:latest"
    elif change == "untagged":
        c["image"] = "ghcr.io/larch-logs/larch-store"
    elif change == "hostpath":
        spec["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    elif change == "host-network":
        spec["hostNetwork"] = True
    elif change == "seccomp":
        del spec["securityContext"]["seccompProfile"]
    elif change == "token":
        del spec["automountServiceAccountToken"]
    elif change == "init-without-limits":
        spec["initContainers"] = [dict(copy.deepcopy(c), name="init", resources={})]
    else:
        raise AssertionError(change)
    return obj


@pytest.mark.parametrize("change,expected", [
    ("root", "runs as uid 0"),
    ("non-root-unset", "runAsNonRoot is not true"),
    ("writable-rootfs", "root filesystem is writable"),
    ("caps-kept", "capabilities not dropped"),
    ("caps-added", "adds capabilities"),
    ("escalation", "allowPrivilegeEscalation is not false"),
    ("privileged", "privileged"),
    ("no-limits", "no limits.cpu"),
    ("no-memory-request", "no requests.memory"),
    ("no-liveness", "no livenessProbe"),
    ("no-readiness", "no readinessProbe"),
    ("latest", "uses the latest tag"),
    ("untagged", "has no tag"),
    ("hostpath", "not allowed by the restricted Pod Security Standard"),
    ("host-network", "pod uses hostNetwork"),
    ("seccomp", "not RuntimeDefault"),
    ("token", "service account token"),
    ("init-without-limits", "container init: no requests.cpu"),
])
def test_checker_flags_violation(change: str, expected: str) -> None:
    assert security.violations(_good_store()) == []
    found = security.violations(_mutate(change))
    assert any(expected in v for v in found), found


def test_checker_flags_writable_host_log_mount() -> None:
    objs = deploylib.all_renders()["helm-default"]
    agent = copy.deepcopy(next(o for o in objs if o.kind == "DaemonSet"))
    assert security.violations(agent) == []
    for m in agent.body["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]:
        if m["name"] == "pods":
            m["readOnly"] = False
    assert any("hostPath pods mounted writable" in v for v in security.violations(agent))


def test_checker_flags_store_in_privileged_namespace() -> None:
    store = _good_store()
    found = security.violations(store, {store.namespace: {
        "pod-security.kubernetes.io/enforce": "privileged"}})
    assert any("needs 'restricted'" in v for v in found), found


def test_checker_flags_broad_rbac() -> None:
    role = Obj("test", {"kind": "ClusterRole", "metadata": {"name": "x"}, "rules": [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]}]})
    found = security.violations(role)
    assert any("beyond get/list/watch" in v for v in found)
    assert any("beyond pods/namespaces" in v for v in found)
