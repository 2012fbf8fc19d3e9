"""Objects of a render refer to each other correctly: selectors select the
pods they are meant for, named ports exist, every ConfigMap, ServiceAccount,
PriorityClass and headless Service a pod names is in the render."""

from __future__ import annotations

from typing import Any

import pytest

from deploylib import Obj, pod_spec

RENDERS = ("helm-default", "helm-production", "helm-monitoring", "helm-scalable", "kustomize-dev", "kustomize-staging",
           "kustomize-prod")


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _pods(objs: list[Obj]) -> list[tuple[Obj, dict[str, str], dict[str, Any]]]:
    out = []
    for o in objs:
        spec = pod_spec(o)
        if spec is not None:
            labels = o.body["spec"]["template"]["metadata"]["labels"]
            out.append((o, labels, spec))
    return out


def _named(objs: list[Obj], kind: str) -> set[tuple[str, str]]:
    return {(o.namespace, o.name) for o in objs if o.kind == kind}


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A label selector with matchLabels and matchExpressions."""
    if not _matches(selector.get("matchLabels", {}), labels):
        return False
    for e in selector.get("matchExpressions", []):
        op, key, values = e["operator"], e["key"], e.get("values", [])
        if ((op == "In" and labels.get(key) not in values)
                or (op == "NotIn" and labels.get(key) in values)
                or (op == "Exists" and key not in labels)
                or (op == "DoesNotExist" and key in labels)):
            return False
    return True


def _monitor_problems(o: Obj, objs: list[Obj], pods: list[tuple[Obj, dict[str, str],
                      dict[str, Any]]], services: dict[tuple[str, str], Obj]) -> list[str]:
    """A ServiceMonitor selects exactly one Service, which has the endpoint's
    port; a PodMonitor selects pods whose containers declare it."""
    spec = o.body["spec"]
    namespaces = spec.get("namespaceSelector", {}).get("matchNames", [o.namespace])
    problems = []
    if o.kind == "ServiceMonitor":
        chosen = [s for (ns, _), s in services.items()
                  if ns in namespaces and _selects(spec["selector"], s.body["metadata"]["labels"])]
        if len(chosen) != 1:
            problems.append(f"{o}: selects {len(chosen)} Services, not exactly one")
        for svc in chosen:
            ports = {p.get("name") for p in svc.body["spec"]["ports"]}
            for ep in spec["endpoints"]:
                if ep["port"] not in ports:
                    problems.append(f"{o}: {svc} has no port {ep['port']}")
    else:
        chosen_pods = [(p, ps) for p, labels, ps in pods
                       if p.namespace in namespaces and _selects(spec["selector"], labels)]
        if not chosen_pods:
            problems.append(f"{o}: selects no pods")
        for p, ps in chosen_pods:
            declared = {port.get("name") for c in ps["containers"] for port in c.get("ports", [])}
            for ep in spec["podMetricsEndpoints"]:
                if ep["port"] not in declared:
                    problems.append(f"{o}: {p} declares no port {ep['port']}")
    return problems


def integrity_problems(objs: list[Obj]) -> list[str]:
    problems = []
    pods = _pods(objs)
    config_maps = _named(objs, "ConfigMap")
    accounts = _named(objs, "ServiceAccount")
    services = {(o.namespace, o.name): o for o in objs if o.kind == "Service"}
    priority = {o.name for o in objs if o.kind == "PriorityClass"}
    for o, labels, spec in pods:
        ns = o.namespace
        if not _matches(o.body["spec"]["selector"]["matchLabels"], labels):
            problems.append(f"{o}: selector does not match its pod template")
        for v in spec.get("volumes") or []:
            if "configMap" in v and (ns, v["configMap"]["name"]) not in config_maps:
                problems.append(f"{o}: ConfigMap {v['configMap']['name']} is not in {ns}")
        sa = spec.get("serviceAccountName", "default")
        if sa != "default" and (ns, sa) not in accounts:
            problems.append(f"{o}: ServiceAccount {sa} is not in {ns}")
        pc = spec.get("priorityClassName")
        if pc and pc not in priority and not pc.startswith("system-"):
            problems.append(f"{o}: PriorityClass {pc} is not in the render")
        if o.kind == "StatefulSet":
            headless = services.get((ns, o.body["spec"]["serviceName"]))
            if headless is None or headless.body["spec"].get("clusterIP") != "None":
                problems.append(f"{o}: serviceName is not a headless Service in {ns}")
    for (ns, name), svc in services.items():
        selected = [(o, spec) for o, labels, spec in pods
                    if o.namespace == ns and _matches(svc.body["spec"]["selector"], labels)]
        if not selected:
            problems.append(f"{svc}: selects no pods")
        for port in svc.body["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for o, spec in selected:
                declared = {p.get("name") for c in spec["containers"] for p in c.get("ports", [])}
                numbers = {p["containerPort"] for c in spec["containers"]
                           for p in c.get("ports", [])}
                if target not in declared and target not in numbers:
                    problems.append(f"{svc}: port {target} not declared by {o}")
    for o in objs:
        if o.kind in ("NetworkPolicy", "PodDisruptionBudget"):
            sel = (o.body["spec"].get("podSelector") if o.kind == "NetworkPolicy"
                   else o.body["spec"]["selector"]).get("matchLabels", {})
            if not any(p.namespace == o.namespace and _matches(sel, labels)
                       for p, labels, _ in pods):
                problems.append(f"{o}: selects no pods in {o.namespace}")
        if o.kind in ("ServiceMonitor", "PodMonitor"):
            problems.extend(_monitor_problems(o, objs, pods, services))
        if o.kind == "ClusterRoleBinding":
            for s in o.body.get("subjects", []):
                if s["kind"] == "ServiceAccount" and (s["namespace"], s["name"]) not in accounts:
                    problems.append(f"{o}: subject {s['namespace']}/{s['name']} missing")
    return problems


@pytest.mark.parametrize("render", RENDERS)
def test_references_resolve(renders: dict[str, list[Obj]], render: str) -> None:
    problems = integrity_problems(renders[render])
    assert not problems, "\n".join(problems)


def test_checker_finds_dangling_reference(renders: dict[str, list[Obj]]) -> None:
    objs = [o for o in renders["helm-default"] if o.kind != "ConfigMap"
            or not o.name.endswith("store-config")]
    assert any("ConfigMap larch-store-config is not in larch" in p
               for p in integrity_problems(objs))


def test_network_policies_admit_agents_and_grafana(renders: dict[str, list[Obj]]) -> None:
    for render in ("helm-production", "kustomize-prod"):
        objs = renders[render]
        store_np = next(o for o in objs if o.kind == "NetworkPolicy"
                        and o.body["spec"]["podSelector"]["matchLabels"]
                        .get("app.kubernetes.io/component") == "store")
        peers = [p for rule in store_np.body["spec"]["ingress"] for p in rule["from"]]
        agent_ns = next(o.namespace for o in objs if o.kind == "DaemonSet")
        assert any(p.get("namespaceSelector", {}).get("matchLabels", {})
                   .get("kubernetes.io/metadata.name") == agent_ns
                   and p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "agent"
                   for p in peers), render
        assert any(p.get("podSelector", {}).get("matchLabels", {})
                   .get("app.kubernetes.io/name") == "grafana" for p in peers), render
        # Egress: DNS and Alertmanager only (no object storage configured).
        egress_ports = sorted(port["port"] for rule in store_np.body["spec"]["egress"]
                              for port in rule["ports"])
        assert egress_ports == [53, 53, 9093], render
