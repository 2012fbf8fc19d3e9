"""deploymentMode SimpleScalable: the chart's write, read and backend roles
agree with each other and with the store. Every role's store.yaml passes
`larch-store --check-config` (S3, GCS and Azure); selectors pick exactly
the role's pods; read nodes list the write pods by the names the
StatefulSet and its headless Service give them, on the port they serve;
the PodDisruptionBudget, HorizontalPodAutoscaler and NetworkPolicies are
present and let through exactly the connections the roles make; monitors
cover every role; Grafana queries the read Service and agents push to the
write Service; the schema and the chart refuse what the mode cannot run."""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

import deploylib
from deploylib import Obj, pod_spec
from test_binaries import binary, supports_check_config
from test_integrity import _selects, integrity_problems

ROLES = ("write", "read", "backend")
NS = "larch"
# The environment the credentials Secret gives the store's containers.
SECRET_ENV = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "example-secret",
              "AZURE_STORAGE_ACCOUNT_KEY": "ZXhhbXBsZQ=="}


def _labels(o: Obj) -> dict[str, str]:
    return dict(o.body["metadata"].get("labels") or {})


def _role_of(o: Obj) -> str | None:
    return _labels(o).get("larch.dev/role")


def _workloads(objs: list[Obj]) -> dict[str, Obj]:
    """Role -> its workload."""
    out = {}
    for o in objs:
        if pod_spec(o) is not None and _role_of(o):
            assert _role_of(o) not in out, f"two workloads of role {_role_of(o)}"
            out[str(_role_of(o))] = o
    return out


def _pod_labels(o: Obj) -> dict[str, str]:
    return dict(o.body["spec"]["template"]["metadata"]["labels"])


def _config(objs: list[Obj], role: str) -> dict[str, Any]:
    cm = next(o for o in objs if o.kind == "ConfigMap" and o.name == f"larch-{role}-config")
    loaded: dict[str, Any] = yaml.safe_load(cm.body["data"]["store.yaml"])
    return loaded


def _find(objs: list[Obj], kind: str, name: str) -> Obj:
    found = [o for o in objs if o.kind == kind and o.name == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} in the render"
    return found[0]


def _seconds(duration: str) -> float:
    """A Go duration of h, m, s and ms parts (as the chart's values use)."""
    parts = re.findall(r"([0-9.]+)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)


def _bytes(size: str) -> float:
    """A Kubernetes quantity or a store byte size (Gi, GiB, G, GB, ...)."""
    m = re.fullmatch(r"([0-9.]+)\s*([KMGTP]?)(i?)B?", size)
    assert m, size
    base = 1024 if m.group(3) else 1000
    return float(m.group(1)) * base ** " KMGTP".index(m.group(2) or " ")


def _check_config(text: str, tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    path = binary("larch-store")
    if not supports_check_config(path):
        pytest.fail(f"{path} has no --check-config")
    config = tmp_path / "store.yaml"
    config.write_text(text)
    return subprocess.run([str(path), "--check-config", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, **env})


def _render(extra: dict[str, Any], source: str = "t") -> list[Obj]:
    return deploylib.render_chart(deploylib.merged(deploylib.scalable_values(), extra), source)


# --- configuration ---------------------------------------------------------------

GCS = {"store": {"objectStorage": {"backend": "gcs", "gcs": {"bucket": "larch-logs"},
                                   "credentialsSecret": "", "cacheDir": "/var/lib/larch/objcache"},
                 "serviceAccount": {"annotations": {
                     "iam.gke.io/gcp-service-account": "larch@project.iam.gserviceaccount.com"}}}}
AZURE = {"store": {"objectStorage": {"backend": "azure", "credentialsSecret": "larch-azure",
                                     "azure": {"account": "larchlogs", "container": "larch",
                                               "workloadIdentity": False}}}}
AZURE_WI = {"store": {"objectStorage": {"backend": "azure", "credentialsSecret": "",
                                        "azure": {"account": "larchlogs", "container": "larch",
                                                  "workloadIdentity": True}},
                      "serviceAccount": {"annotations": {
                          "azure.workload.identity/client-id": "00000000-0000-0000-0000-000000000000"}}}}
BACKENDS = {"s3": {}, "gcs": GCS, "azure": AZURE, "azure-workload-identity": AZURE_WI}


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_role_config_passes_check_config(backend: str, tmp_path: Path) -> None:
    """Each role's store.yaml is accepted by the store with the environment
    its pods get, names its own role as target, and is the file its
    workload mounts."""
    objs = _render(BACKENDS[backend], backend)
    assert not integrity_problems(objs)
    workloads = _workloads(objs)
    assert set(workloads) == set(ROLES)
    for role in ROLES:
        cfg = _config(objs, role)
        assert cfg["target"] == role
        assert cfg["storage"]["backend"] == backend.split("-")[0]
        volumes = {v["name"]: v for v in pod_spec(workloads[role])["volumes"]}  # type: ignore[index]
        assert volumes["config"]["configMap"]["name"] == f"larch-{role}-config"
        text = next(o for o in objs if o.kind == "ConfigMap"
                    and o.name == f"larch-{role}-config").body["data"]["store.yaml"]
        (tmp_path / role).mkdir()
        proc = _check_config(text, tmp_path / role, SECRET_ENV)
        assert proc.returncode == 0, f"{backend} {role}:\n{text}\n{proc.stdout}{proc.stderr}"
        # A Secret without the keys (or none, with workload identity): the
        # references expand to empty strings, the credential chain.
        proc = _check_config(text, tmp_path / role, {k: "" for k in SECRET_ENV})
        assert proc.returncode == 0, f"{backend} {role} without keys:\n{proc.stdout}{proc.stderr}"
    if backend == "gcs":
        assert _config(objs, "read")["storage"]["cache"] == {
            "max_size": "20GiB", "dir": "/var/lib/larch/objcache"}
    if backend == "azure":
        assert _config(objs, "write")["storage"]["azure"]["access_key"] == \
            "${AZURE_STORAGE_ACCOUNT_KEY}"
    for role, o in workloads.items():
        spec = pod_spec(o)
        assert spec is not None
        env_from = spec["containers"][0].get("envFrom")
        secret = deploylib.merged(deploylib.scalable_values(), BACKENDS[backend])["store"][
            "objectStorage"]["credentialsSecret"]
        assert env_from == ([{"secretRef": {"name": secret}}] if secret else None), role
        identity = _pod_labels(o).get("azure.workload.identity/use")
        assert identity == ("true" if backend == "azure-workload-identity" else None), role


def test_s3_keys_are_references_expanded_from_the_secret(renders: dict[str, list[Obj]]) -> None:
    for role in ROLES:
        s3 = _config(renders["helm-scalable"], role)["storage"]["s3"]
        assert s3["access_key_id"] == "${AWS_ACCESS_KEY_ID}"
        assert s3["secret_access_key"] == "${AWS_SECRET_ACCESS_KEY}"
        assert s3["bucket"] == "larch" and s3["force_path_style"] is True


# --- workloads, selectors, ports ---------------------------------------------------


def test_roles_and_their_selectors(renders: dict[str, list[Obj]]) -> None:
    """Write and backend are StatefulSets (backend exactly one pod), read a
    Deployment; every Service, PodDisruptionBudget, NetworkPolicy and
    HorizontalPodAutoscaler of a role selects that role's pods and no
    other; no SingleBinary store objects are left."""
    objs = renders["helm-scalable"]
    assert not integrity_problems(objs)
    workloads = _workloads(objs)
    assert {r: o.kind for r, o in workloads.items()} == {
        "write": "StatefulSet", "read": "Deployment", "backend": "StatefulSet"}
    assert workloads["write"].body["spec"]["replicas"] == 3
    assert workloads["backend"].body["spec"]["replicas"] == 1
    for role, o in workloads.items():
        labels = _pod_labels(o)
        assert labels["app.kubernetes.io/component"] == "store"
        assert labels["larch.dev/role"] == role
        assert o.body["spec"]["selector"]["matchLabels"]["larch.dev/role"] == role
    pods = {role: _pod_labels(o) for role, o in workloads.items()}
    checked = 0
    for o in objs:
        role = _role_of(o)
        if role is None or o.kind in ("StatefulSet", "Deployment", "ConfigMap"):
            continue
        if o.kind == "Service":
            selector = {"matchLabels": o.body["spec"]["selector"]}
        elif o.kind == "NetworkPolicy":
            selector = o.body["spec"]["podSelector"]
        elif o.kind == "PodDisruptionBudget":
            selector = o.body["spec"]["selector"]
        elif o.kind == "HorizontalPodAutoscaler":
            ref = o.body["spec"]["scaleTargetRef"]
            target = workloads[role]
            assert (ref["kind"], ref["name"]) == (target.kind, target.name), o
            checked += 1
            continue
        elif o.kind in ("ServiceMonitor", "PodMonitor"):
            selector = o.body["spec"]["selector"]
        else:
            raise AssertionError(f"{o}: a role's object the test does not know")
        chosen = {r for r, labels in pods.items() if _selects(selector, labels)}
        assert chosen == {role}, f"{o} selects {chosen}"
        checked += 1
    # 5 Services, 3 NetworkPolicies, 2 PodDisruptionBudgets, 1 autoscaler, 3 ServiceMonitors.
    assert checked == 14
    left = [o for o in objs if o.name == "larch-store" and o.kind != "ServiceAccount"]
    assert not left, left


def test_write_and_read_nodes_find_the_write_pods_through_dns(renders: dict[str, list[Obj]]) -> None:
    """cluster.dns of write and read nodes is <headless>.<ns>.svc.<domain>:<grpc>,
    where <headless> is the StatefulSet's serviceName, a headless Service
    publishing the gRPC port the write nodes listen on; both share the
    replication factor; the backend is no member."""
    objs = renders["helm-scalable"]
    sts = _workloads(objs)["write"]
    headless = _find(objs, "Service", sts.body["spec"]["serviceName"])
    assert headless.body["spec"]["clusterIP"] == "None"
    grpc_port = next(p for p in headless.body["spec"]["ports"] if p["name"] == "grpc")
    container = pod_spec(sts)["containers"][0]  # type: ignore[index]
    declared = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert grpc_port["targetPort"] == "grpc" and grpc_port["port"] == declared["grpc"]
    write_cfg = _config(objs, "write")
    assert write_cfg["grpc_addr"] == f"0.0.0.0:{declared['grpc']}"
    assert write_cfg["http_addr"] == f"0.0.0.0:{declared['http']}"
    expected = {"dns": f"{headless.name}.{NS}.svc.cluster.local:{grpc_port['port']}",
                "replication_factor": 3}
    assert _config(objs, "read")["cluster"] == expected
    assert write_cfg["cluster"] == expected
    assert "cluster" not in _config(objs, "backend")
    for role in ROLES:
        assert "write_nodes" not in (_config(objs, role).get("read") or {}), role


def test_scaling_the_write_nodes_needs_no_new_configuration() -> None:
    """The replica count changes the StatefulSet only: members come from
    DNS, so the read nodes are not rolled; the replication factor is a
    value of its own, refused above the replica count."""
    three = _render({}, "three")
    five = _render({"write": {"replicas": 5, "replicationFactor": 5}}, "five")
    assert _workloads(five)["write"].body["spec"]["replicas"] == 5
    assert _config(five, "read")["cluster"]["replication_factor"] == 5
    assert _config(three, "read")["cluster"]["dns"] == _config(five, "read")["cluster"]["dns"]
    more = _render({"write": {"replicas": 5}}, "more")

    def checksum(objs: list[Obj]) -> str:
        meta = _workloads(objs)["read"].body["spec"]["template"]["metadata"]
        return str(meta["annotations"]["checksum/config"])

    assert checksum(three) == checksum(more)


def test_services_for_pushes_and_queries(renders: dict[str, list[Obj]]) -> None:
    """Agents push to the write Service, Grafana queries the read Service,
    on ports those Services publish."""
    objs = renders["helm-scalable"]
    write = _find(objs, "Service", "larch-write")
    read = _find(objs, "Service", "larch-read")
    assert {p["name"]: p["port"] for p in write.body["spec"]["ports"]} == {"http": 3100, "grpc": 9095}
    assert {p["name"]: p["port"] for p in read.body["spec"]["ports"]} == {"http": 3100}
    agent = yaml.safe_load(deploylib.config_files(objs, "agent.yaml")[0][1])
    assert agent["store"] == f"http://larch-write.{NS}.svc.cluster.local:3100"
    (_, text), = deploylib.config_files(objs, "larch-datasources.yaml")
    for source in yaml.safe_load(text)["datasources"]:
        assert source["url"] == f"http://larch-read.{NS}.svc.cluster.local:3100"
    notes = next(t for p, t in deploylib.render_chart_text(deploylib.scalable_values()).items()
                 if p.endswith("NOTES.txt"))
    assert "port-forward svc/larch-read 3100:3100" in notes
    assert "rollout status statefulset/larch-write" in notes


def test_disruption_budget_autoscaler_and_spread(renders: dict[str, list[Obj]]) -> None:
    objs = renders["helm-scalable"]
    workloads = _workloads(objs)
    pdb = _find(objs, "PodDisruptionBudget", "larch-write")
    assert pdb.body["spec"]["maxUnavailable"] == 1
    hpa = _find(objs, "HorizontalPodAutoscaler", "larch-read")
    spec = hpa.body["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                      "name": "larch-read"}
    assert 1 <= spec["minReplicas"] <= spec["maxReplicas"]
    (metric,) = spec["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    # The autoscaler owns the count: the Deployment does not set one, and
    # its containers request CPU (utilization is relative to requests).
    read = workloads["read"]
    assert "replicas" not in read.body["spec"]
    assert pod_spec(read)["containers"][0]["resources"]["requests"]["cpu"]  # type: ignore[index]
    fixed = _workloads(_render({"read": {"autoscaling": {"enabled": False}, "replicas": 4}}))
    assert fixed["read"].body["spec"]["replicas"] == 4
    for role in ("write", "read"):
        constraints = pod_spec(workloads[role])["topologySpreadConstraints"]  # type: ignore[index]
        assert {c["topologyKey"] for c in constraints} == {"topology.kubernetes.io/zone",
                                                          "kubernetes.io/hostname"}
        for c in constraints:
            assert c["maxSkew"] == 1
            assert _selects(c["labelSelector"], _pod_labels(workloads[role]))
            assert not _selects(c["labelSelector"], _pod_labels(
                workloads["read" if role == "write" else "write"]))


def test_write_nodes_flush_before_they_leave(renders: dict[str, list[Obj]]) -> None:
    """SIGTERM flushes the heads to the bucket within shutdown_timeout, and
    the kubelet waits longer than the store's bound (shutdown_timeout +
    5.5 s); the WAL bound stays below the volume."""
    objs = renders["helm-scalable"]
    cfg = _config(objs, "write")
    assert cfg["ingester"]["flush_on_shutdown"] is True
    sts = _workloads(objs)["write"]
    grace = pod_spec(sts)["terminationGracePeriodSeconds"]  # type: ignore[index]
    assert grace > _seconds(cfg["shutdown_timeout"]) + 5.5
    size = sts.body["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    assert _bytes(cfg["wal"]["max_size"]) < _bytes(size)
    mounts = {m["name"]: m["mountPath"] for m in pod_spec(sts)["containers"][0]["volumeMounts"]}  # type: ignore[index]
    assert mounts["data"] == cfg["data_dir"]
    # Read and backend nodes keep nothing: their data directory is an emptyDir.
    for role in ("read", "backend"):
        volumes = {v["name"]: v for v in pod_spec(_workloads(objs)[role])["volumes"]}  # type: ignore[index]
        assert "emptyDir" in volumes["data"], role
        assert "flush_on_shutdown" not in _config(objs, role)["ingester"]
    # A read node's cache lives on its emptyDir, which must hold it.
    read_data = {v["name"]: v for v in pod_spec(_workloads(objs)["read"])["volumes"]}["data"]  # type: ignore[index]
    assert _bytes(read_data["emptyDir"]["sizeLimit"]) > _bytes(
        _config(objs, "read")["storage"]["cache"]["max_size"])


# --- NetworkPolicies: who may reach whom --------------------------------------------

def _ports_of(spec: dict[str, Any] | None) -> dict[str, int]:
    if spec is None:
        return {}
    return {p["name"]: p["containerPort"] for c in spec["containers"] for p in c.get("ports", [])
            if "name" in p}


def _peer_matches(peer: dict[str, Any], policy_ns: str, ns: str, labels: dict[str, str]) -> bool:
    if "ipBlock" in peer:
        return False
    if "namespaceSelector" in peer:
        if not _selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": ns}):
            return False
    elif ns != policy_ns:
        return False
    return "podSelector" not in peer or _selects(peer["podSelector"], labels)


def _port_matches(rule: dict[str, Any], port: int, dst_ports: dict[str, int]) -> bool:
    if "ports" not in rule:
        return True
    for p in rule["ports"]:
        want = p["port"]
        if want == port or dst_ports.get(str(want)) == port:
            return True
    return False


def _allowed(policies: list[Obj], src: tuple[str, dict[str, str]], dst: tuple[str, dict[str, str]],
             dst_ports: dict[str, int], port: int) -> bool:
    """Whether the NetworkPolicies let a pod (namespace, labels) open a TCP
    connection to another pod's port: egress of the source, ingress of the
    destination (a pod no policy selects for a direction is open)."""
    for (ns, labels), direction, other, key in ((src, "Egress", dst, "to"),
                                                (dst, "Ingress", src, "from")):
        mine = [p for p in policies if p.namespace == ns and direction in p.body["spec"]["policyTypes"]
                and _selects(p.body["spec"]["podSelector"], labels)]
        if not mine:
            continue
        rules = [r for p in mine for r in p.body["spec"].get(direction.lower()) or []]
        if not any((key not in r or any(_peer_matches(peer, ns, other[0], other[1])
                                         for peer in r[key]))
                   and _port_matches(r, port, dst_ports) for r in rules):
            return False
    return True


def test_network_policies_let_through_exactly_the_roles_paths(
        renders: dict[str, list[Obj]]) -> None:
    objs = renders["helm-scalable"]
    policies = [o for o in objs if o.kind == "NetworkPolicy"]
    workloads = _workloads(objs)
    pods = {role: (NS, _pod_labels(o)) for role, o in workloads.items()}
    ports = {role: _ports_of(pod_spec(o)) for role, o in workloads.items()}
    agent = next(o for o in objs if o.kind == "DaemonSet")
    pods["agent"] = (agent.namespace, _pod_labels(agent))
    pods["grafana"] = ("monitoring", {"app.kubernetes.io/name": "grafana"})
    pods["prometheus"] = ("monitoring", {"app.kubernetes.io/name": "prometheus"})
    bucket = ("minio", {"app.kubernetes.io/name": "minio"})
    http, grpc = 3100, 9095

    def ok(src: str, dst: str, port: int) -> bool:
        return _allowed(policies, pods[src], pods[dst], ports[dst], port)

    expected = {
        ("agent", "write", http): True, ("agent", "write", grpc): True,
        ("agent", "read", http): False, ("agent", "backend", http): False,
        ("read", "write", grpc): True, ("write", "write", grpc): True,
        ("read", "write", http): False, ("backend", "write", grpc): False,
        ("read", "read", grpc): False,
        ("grafana", "read", http): True, ("grafana", "write", http): False,
        ("grafana", "backend", http): False,
        ("prometheus", "write", http): True, ("prometheus", "read", http): True,
        ("prometheus", "backend", http): True,
        # The backend's ruler asks the read nodes its rules' queries; the
        # read nodes forward the rules API to it.
        ("backend", "read", http): True, ("backend", "write", http): False,
        ("read", "backend", http): True, ("write", "backend", http): False,
        ("read", "backend", grpc): False,
    }
    got = {k: ok(*k) for k in expected}
    assert got == expected
    for role in ROLES:
        assert _allowed(policies, pods[role], bucket, {}, 9000), role
        assert not _allowed(policies, pods[role], bucket, {}, 443), role
    # Ports named in the policies are ports the selected pods declare.
    for p in policies:
        role = _role_of(p)
        if role is None:
            continue
        for rule in p.body["spec"].get("ingress") or []:
            for port in rule.get("ports", []):
                assert isinstance(port["port"], int) or port["port"] in ports[role], p


# --- monitoring -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ("ServiceMonitor", "PodMonitor"))
def test_monitors_cover_every_role(kind: str) -> None:
    values = {"prometheus": {"serviceMonitor": {"enabled": kind == "ServiceMonitor"},
                             "podMonitor": {"enabled": kind == "PodMonitor"}}}
    objs = _render(values, kind)
    assert not integrity_problems(objs)
    monitors = {o.name: o for o in objs if o.kind == kind}
    assert set(monitors) == {"larch-write", "larch-read", "larch-backend", "larch-agent"}
    workloads = _workloads(objs)
    for role in ROLES:
        spec = monitors[f"larch-{role}"].body["spec"]
        endpoint = (spec.get("endpoints") or spec.get("podMetricsEndpoints"))[0]
        assert endpoint["port"] == "http"
        relabel = endpoint["relabelings"]
        # job larch-store from the component label (the dashboards' and
        # alerts' job), and the role as its own label.
        assert relabel[0]["replacement"] == "larch-$1"
        assert _pod_labels(workloads[role])["app.kubernetes.io/component"] == "store"
        assert {"sourceLabels": ["__meta_kubernetes_pod_label_larch_dev_role"],
                "targetLabel": "role"} in relabel
    from test_schemas import schema_problems

    assert not [p for o in monitors.values() for p in schema_problems(o, deploylib.KUBE_VERSIONS[0])]


# --- refusals ---------------------------------------------------------------------


@pytest.mark.parametrize("values,expected", [
    ({"deploymentMode": "SimpleScalable"}, "/store/objectStorage/backend"),
    ({"deploymentMode": "SimpleScalable", "store": {"objectStorage": {"backend": "filesystem"}}},
     "/store/objectStorage/backend"),
    ({"deploymentMode": "Microservices"}, "deploymentMode"),
    ({"backend": {"replicas": 2}}, "/backend/replicas"),
    ({"write": {"replicas": 0}}, "/write/replicas"),
    ({"write": {"topologySpread": {"zones": "Never"}}}, "zones"),
    ({"read": {"autoscaling": {"targetCPUUtilizationPercentage": 150}}},
     "targetCPUUtilizationPercentage"),
    ({"write": {"shutdownTimeout": "five minutes"}}, "shutdownTimeout"),
    ({"write": {"replicationFactor": 0}}, "/write/replicationFactor"),
    ({"store": {"tls": {"cluster": {"serverName": "Not A Name"}}}}, "serverName"),
])
def test_schema_refuses(values: dict[str, Any], expected: str) -> None:
    with helm.Chart.load(str(deploylib.CHART)) as chart:
        with pytest.raises(helm.HelmValuesError) as err:
            chart.validate_schema(values)
    assert expected in str(err.value)


@pytest.mark.parametrize("extra,expected", [
    ({"store": {"auth": {"enabled": True, "tokensSecret": "larch-tokens"}},
      "agent": {"config": {"tenant_id": "team-a"}}},
     "read.writeNodeTokenSecret is required"),
    ({"store": {"networkPolicy": {"egress": {"objectStorage": {"peers": []}}}}},
     "store.networkPolicy.egress.objectStorage.peers is required in SimpleScalable mode"),
    ({"write": {"replicas": 2, "replicationFactor": 3}},
     "write.replicationFactor must not exceed write.replicas"),
])
def test_chart_refuses(extra: dict[str, Any], expected: str) -> None:
    with pytest.raises(helm.HelmError) as err:
        deploylib.render_chart_text(deploylib.merged(deploylib.scalable_values(), extra))
    assert expected in str(err.value)


def test_tokens_reach_the_write_nodes(tmp_path: Path) -> None:
    """With tokens on, write and read nodes send the admin token of
    read.writeNodeTokenSecret to the write nodes: the file cluster.token_file
    names is mounted in their pods; the backend's ruler sends it with its
    queries to the read nodes."""
    objs = _render({"store": {"auth": {"enabled": True, "tokensSecret": "larch-tokens"}},
                    "agent": {"config": {"tenant_id": "team-a"}},
                    "read": {"writeNodeTokenSecret": "larch-read-token"}}, "auth")
    assert not integrity_problems(objs)
    path = Path(_config(objs, "read")["cluster"]["token_file"])
    assert _config(objs, "write")["cluster"]["token_file"] == str(path)
    workloads = _workloads(objs)
    for role, o in workloads.items():
        spec = pod_spec(o)
        assert spec is not None
        mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["auth"]["secret"]["secretName"] == "larch-tokens"
        volume = volumes[mounts[str(path.parent)]]
        assert volume["secret"]["secretName"] == "larch-read-token"
        assert [i["path"] for i in volume["secret"]["items"]] == [path.name]
        if role == "backend":
            assert "cluster" not in _config(objs, role)
            ruler = _config(objs, role)["ruler"]
            assert ruler["evaluation"]["query_frontend"]["token_file"] == str(path)
    text = next(o for o in objs if o.name == "larch-read-config").body["data"]["store.yaml"]
    proc = _check_config(text.replace("/etc/larch/auth/", f"{tmp_path}/"), tmp_path, SECRET_ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_ruler_has_its_own_query_token(tmp_path: Path) -> None:
    """backend.ruler.queryTokenSecret, when set, is the token the backend's
    ruler sends with its queries to the read nodes, mounted in the backend
    pod only; the write node token stays what the read and write nodes send
    each other."""
    objs = _render({"store": {"auth": {"enabled": True, "tokensSecret": "larch-tokens"}},
                    "read": {"writeNodeTokenSecret": "larch-read-token"},
                    "backend": {"ruler": {"queryTokenSecret": "larch-ruler-token",
                                          "queryTokenKey": "ruler"}}}, "ruler-token")
    assert not integrity_problems(objs)
    workloads = _workloads(objs)
    qf = _config(objs, "backend")["ruler"]["evaluation"]["query_frontend"]
    assert qf["token_file"] == "/etc/larch/ruler-query-token/ruler"
    for role, o in workloads.items():
        spec = pod_spec(o)
        assert spec is not None
        mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        if role == "backend":
            volume = volumes[mounts["/etc/larch/ruler-query-token"]]
            assert volume["secret"] == {"secretName": "larch-ruler-token",
                                        "items": [{"key": "ruler", "path": "ruler"}]}
        else:
            assert "/etc/larch/ruler-query-token" not in mounts, role
            assert "ruler-query-token" not in volumes, role
        assert volumes["write-node-token"]["secret"]["secretName"] == "larch-read-token", role
    assert _config(objs, "read")["cluster"]["token_file"] == "/etc/larch/write-node-token/token"
    text = next(o for o in objs if o.name == "larch-backend-config").body["data"]["store.yaml"]
    proc = _check_config(text.replace("/etc/larch/auth/", f"{tmp_path}/"), tmp_path, SECRET_ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_only_the_backend_runs_the_ruler() -> None:
    """One ruler for the store, so alerts are sent once: write and read
    nodes run none (a store.config.ruler or <role>.config.ruler cannot turn
    it back on), the backend evaluates as queries to the read Service."""
    objs = _render({"store": {"config": {"ruler": {"enabled": True,
                                                   "alertmanager_url": "http://am:9093"}}},
                    "read": {"config": {"ruler": {"enabled": True}}}}, "ruler")
    assert not integrity_problems(objs)
    for role in ("write", "read"):
        ruler = _config(objs, role)["ruler"]
        assert ruler["enabled"] is False, role
        assert ruler["alertmanager_url"] == "http://am:9093"
    # Read nodes forward the rules API to the backend Service; write
    # nodes serve none.
    backend_service = _find(objs, "Service", "larch-backend")
    backend_port = backend_service.body["spec"]["ports"][0]["port"]
    assert _config(objs, "read")["ruler"]["api_forward_url"] == \
        f"http://larch-backend.{NS}.svc.cluster.local:{backend_port}"
    assert "api_forward_url" not in _config(objs, "write")["ruler"]
    ruler = _config(objs, "backend")["ruler"]
    assert ruler["enabled"] is True
    assert ruler["alertmanager_url"] == "http://am:9093"
    # Rule groups and alert state in the bucket: the backend's data
    # directory is an emptyDir.
    assert ruler["storage"] == {"type": "bucket"}
    read_service = _find(objs, "Service", "larch-read")
    port = read_service.body["spec"]["ports"][0]["port"]
    assert ruler["evaluation"] == {
        "mode": "remote",
        "query_frontend": {"address": f"http://larch-read.{NS}.svc.cluster.local:{port}"},
    }
    # Every role's file, ruler keys included, passes --check-config (above).


def test_single_binary_is_the_default_and_unchanged(renders: dict[str, list[Obj]]) -> None:
    """deploymentMode SingleBinary renders exactly what the chart rendered
    before the mode existed: one store StatefulSet, no role objects."""
    explicit = deploylib.render_chart({"deploymentMode": "SingleBinary"}, "explicit")
    assert [o.body for o in explicit] == [o.body for o in renders["helm-default"]]
    for o in renders["helm-default"] + renders["helm-production"]:
        assert _role_of(o) is None, o
        assert o.kind not in ("Deployment", "HorizontalPodAutoscaler"), o
    assert [o.name for o in renders["helm-default"] if o.kind == "StatefulSet"] == ["larch-store"]


# --- the roles started for real ----------------------------------------------------


def _start(config: dict[str, Any], tmp: Path, name: str, grpc: int | None = None,
           ctx: ssl.SSLContext | None = None) -> tuple[subprocess.Popen[bytes], str, Path]:
    """larch-store with a rendered role configuration (addresses and data
    directory given by flags, as every key can be; gRPC on `grpc` or a free
    port), serving https checked with `ctx` when it is given; returns the
    process, its URL and its log once /ready answers 200."""
    (tmp / f"{name}.yaml").write_text(yaml.safe_dump(config))
    http = deploylib.free_port()
    log = tmp / f"{name}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(binary("larch-store")), "--config", str(tmp / f"{name}.yaml"),
             "--http-addr", f"127.0.0.1:{http}",
             "--grpc-addr", f"127.0.0.1:{grpc or deploylib.free_port()}",
             "--data-dir", str(tmp / name)],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **SECRET_ENV})
    url = f"{'https' if ctx else 'http'}://127.0.0.1:{http}"
    try:
        deploylib.wait_for_200(f"{url}/ready", proc, log, context=ctx)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc, url, log


def test_a_write_node_leaving_leaves_its_lines_in_the_bucket(
        renders: dict[str, list[Obj]], tmp_path: Path) -> None:
    """The rendered write, read and backend configurations run (their
    bucket swapped for a shared directory, the same code path through
    object_store, so no S3 server is needed): lines pushed to a write node
    that then gets SIGTERM, as a drain or a scale-down does, are in the
    bucket when it exits within its grace period, so a read node started
    afterwards with an empty data directory returns each of them once."""
    objs = renders["helm-scalable"]
    bucket = {"backend": "filesystem", "filesystem": {"dir": str(tmp_path / "bucket")}}
    configs = {role: {**_config(objs, role), "storage": bucket} for role in ROLES}
    # One write node and no cluster DNS here: the nodes run without cluster keys.
    for role in ("write", "read"):
        configs[role].pop("cluster")
    write, url, log = _start(configs["write"], tmp_path, "write")
    try:
        now = time.time_ns()
        lines = [[str(now + i), f"leaving-line-{i}"] for i in range(200)]
        body = json.dumps({"streams": [{"stream": {"app": "scale-down"}, "values": lines}]})
        req = urllib.request.Request(f"{url}/loki/api/v1/push", data=body.encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 204
        grace = pod_spec(_workloads(objs)["write"])["terminationGracePeriodSeconds"]  # type: ignore[index]
        started = time.monotonic()
        write.send_signal(signal.SIGTERM)
        assert write.wait(timeout=grace) == 0, log.read_text()
        assert time.monotonic() - started < grace
    finally:
        if write.poll() is None:
            write.kill()
            write.wait()
    # The write node is gone: the read node has only the bucket.
    read, url, log = _start(configs["read"], tmp_path, "read")
    backend = None
    try:
        query = urllib.parse.urlencode({"query": '{app="scale-down"}', "start": now - 10**9,
                                        "end": now + 10**10, "limit": 1000})
        status, text = deploylib.http_get(f"{url}/loki/api/v1/query_range?{query}")
        assert status == 200, text
        got = sorted(line for s in json.loads(text)["data"]["result"] for _, line in s["values"])
        assert got == sorted(line for _, line in lines), log.read_text()[-2000:]
        backend, _, _ = _start(configs["backend"], tmp_path, "backend")
    finally:
        for proc in (read, backend):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)


# --- TLS between the roles ---------------------------------------------------------

TLS = {"store": {"tls": {"enabled": True, "secretName": "larch-tls",
                         "clientAuthType": "VerifyClientCertIfGiven"}}}


def _render_tls(tls: dict[str, Any], source: str) -> list[Obj]:
    """The SimpleScalable chart with store.tls on, `tls` merged into it."""
    return _render(deploylib.merged(TLS, {"store": {"tls": tls}}), source)


def _secret_files(spec: dict[str, Any]) -> dict[str, str]:
    """Path in the store container -> "<Secret>/<key>" for every file its
    Secret volumes hold (a volume without items holds every key)."""
    volumes = {v["name"]: v for v in spec["volumes"]}
    out = {}
    for m in spec["containers"][0]["volumeMounts"]:
        secret = volumes.get(m["name"], {}).get("secret")
        if secret is None:
            continue
        keys = [i["key"] for i in secret.get("items") or []] or ["tls.crt", "tls.key", "ca.crt"]
        for k in keys:
            out[f"{m['mountPath']}/{k}"] = f"{secret['secretName']}/{k}"
    return out


def _tls_files(cfg: dict[str, Any]) -> list[str]:
    """Every certificate, key and CA file a role's configuration names."""
    tls = dict(cfg.get("tls") or {})
    tls.pop("client_auth_type", None)
    files = list(tls.values())
    ruler = cfg.get("ruler") or {}
    for client in ((cfg.get("cluster") or {}).get("tls") or {},
                   ruler.get("api_forward_client") or {},
                   ((ruler.get("evaluation") or {}).get("query_frontend") or {})):
        files += [v for k, v in client.items() if k in ("tls_ca_path", "tls_cert_path", "tls_key_path")]
    return files


@pytest.mark.parametrize("extra,files", [
    ({}, {"/etc/larch/tls/tls.crt": "larch-tls/tls.crt", "/etc/larch/tls/tls.key": "larch-tls/tls.key",
          "/etc/larch/tls/ca.crt": "larch-tls/ca.crt"}),
    ({"cluster": {"caSecret": "internal-ca", "clientCertSecret": "node-client"}},
     {"/etc/larch/cluster-ca/ca.crt": "internal-ca/ca.crt",
      "/etc/larch/cluster-client/tls.crt": "node-client/tls.crt",
      "/etc/larch/cluster-client/tls.key": "node-client/tls.key"}),
])
def test_roles_serve_tls_and_their_grpc_clients_check_it(extra: dict[str, Any],
                                                         files: dict[str, str],
                                                         tmp_path: Path) -> None:
    """With store.tls every role serves the certificate of the store's TLS
    Secret (probes and scrapes over https); the write and read nodes' gRPC
    clients (cluster.tls), the backend ruler's queries to the read nodes
    and the read nodes' forwarded rules API check the other side's
    certificate against a CA for the name the chart's Certificate holds,
    and present a client certificate because the nodes ask for one; every
    file a configuration names is one a mounted Secret holds, and every
    role's configuration passes the store's check."""
    objs = _render_tls(extra, "tls")
    assert not integrity_problems(objs)
    workloads = _workloads(objs)
    for role in ROLES:
        cfg = _config(objs, role)
        spec = pod_spec(workloads[role])
        assert spec is not None
        mounted = _secret_files(spec)
        assert cfg["tls"]["cert_file"] == "/etc/larch/tls/tls.crt", role
        for path in _tls_files(cfg):
            assert path in mounted, f"{role}: {path} is in no mounted Secret ({mounted})"
        container = spec["containers"][0]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["scheme"] == "HTTPS", (role, probe)
        annotations = workloads[role].body["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scheme"] == "https", role
        text = next(o for o in objs if o.kind == "ConfigMap"
                    and o.name == f"larch-{role}-config").body["data"]["store.yaml"]
        (tmp_path / role).mkdir()
        proc = _check_config(text, tmp_path / role, SECRET_ENV)
        assert proc.returncode == 0, f"{role}:\n{text}\n{proc.stdout}{proc.stderr}"
        if role == "backend":
            assert "cluster" not in cfg
            tls = dict(cfg["ruler"]["evaluation"]["query_frontend"])
            assert tls.pop("address").startswith("https://larch-read.larch.svc.cluster.local:")
            tls.pop("token_file", None)
        elif role == "read":
            tls = cfg["cluster"]["tls"]
            assert cfg["ruler"]["api_forward_url"].startswith("https://larch-backend.larch.svc.")
            assert cfg["ruler"]["api_forward_client"] == tls
        else:
            tls = cfg["cluster"]["tls"]
        assert tls["tls_enabled"] is True
        assert tls["tls_server_name"] == "larch-write-headless.larch.svc"
        for path in (tls["tls_ca_path"], tls["tls_cert_path"], tls["tls_key_path"]):
            assert mounted[path] == files.get(path, mounted[path]), (role, path)
        assert {p: mounted[p] for p in files if p in mounted} == {
            p: f for p, f in files.items() if p in (tls["tls_ca_path"], tls["tls_cert_path"],
                                                    tls["tls_key_path"])}
    # Agents push, Grafana queries over https.
    agent = yaml.safe_load(deploylib.config_files(objs, "agent.yaml")[0][1])
    assert agent["store"].startswith("https://larch-write.larch.svc.cluster.local:")
    # Without client certificates asked for, none is sent.
    plain = _render_tls({"clientAuthType": "NoClientCert"}, "tls-no-client")
    assert set(_config(plain, "write")["cluster"]["tls"]) == {
        "tls_enabled", "tls_server_name", "tls_ca_path"}


def _cert_manager(issuer: dict[str, str], source: str,
                  **tls: Any) -> tuple[list[Obj], dict[str, Any]]:
    """The chart with store.tls's certificate from cert-manager's `issuer`
    (and `tls` merged into store.tls): its objects and the spec of its
    Certificate."""
    objs = _render_tls({"secretName": "", "certManager": {"enabled": True, "issuerRef": issuer},
                        **tls}, source)
    return objs, next(o for o in objs if o.kind == "Certificate").body["spec"]


def test_the_certificate_names_every_role() -> None:
    """The cert-manager Certificate of SimpleScalable names every role's
    Services and the headless name the nodes' gRPC clients check, and is a
    client certificate too; the monitors check the same name."""
    objs, cert = _cert_manager({"name": "ca", "kind": "ClusterIssuer"}, "cert")
    names = set(cert["dnsNames"])
    for service in ("larch-write", "larch-read", "larch-backend", "larch-write-headless"):
        assert f"{service}.larch.svc" in names, service
        assert f"{service}.larch.svc.cluster.local" in names, service
    assert _config(objs, "write")["cluster"]["tls"]["tls_server_name"] in names
    assert set(cert["usages"]) >= {"server auth", "client auth"}
    secret = cert["secretName"]
    for o in _workloads(objs).values():
        volumes = {v["name"]: v for v in pod_spec(o)["volumes"]}  # type: ignore[index]
        assert volumes["tls"]["secret"]["secretName"] == secret
    monitors = [o for o in objs if o.kind == "ServiceMonitor" and _role_of(o)]
    assert len(monitors) == 3
    for m in monitors:
        endpoint = m.body["spec"]["endpoints"][0]
        assert endpoint["scheme"] == "https"
        assert endpoint["tlsConfig"]["serverName"] in names
    # A name of one's own is added to the Certificate.
    objs, cert = _cert_manager({"name": "ca"}, "cert-name",
                               cluster={"serverName": "larch-nodes.internal"})
    assert "larch-nodes.internal" in cert["dnsNames"]
    assert _config(objs, "read")["cluster"]["tls"]["tls_server_name"] == "larch-nodes.internal"


def _openssl(*args: str) -> None:
    proc = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def _test_pki(tmp: Path, names: list[str]) -> Path:
    """A test CA and one certificate it signs for `names` and 127.0.0.1,
    for servers and clients, as a TLS Secret holds them: tls.crt, tls.key,
    ca.crt in the returned directory."""
    d = tmp / "pki"
    d.mkdir()
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"),
             "-days", "1", "-subj", "/CN=larch test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    _openssl("req", "-new", *ec, "-keyout", str(d / "tls.key"), "-out", str(d / "tls.csr"),
             "-subj", "/CN=larch")
    sans = ",".join([f"DNS:{n}" for n in names] + ["IP:127.0.0.1"])
    (d / "ext.cnf").write_text(f"subjectAltName={sans}\nextendedKeyUsage=serverAuth,clientAuth\n"
                               "keyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n")
    _openssl("x509", "-req", "-in", str(d / "tls.csr"), "-CA", str(d / "ca.crt"),
             "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out", str(d / "tls.crt"),
             "-days", "1", "-extfile", str(d / "ext.cnf"))
    return d


def test_rendered_tls_configs_replicate_and_answer_over_tls(tmp_path: Path) -> None:
    """Two write nodes and a read node started from the rendered TLS
    configurations (the Secret's files from a test CA whose certificate
    holds the chart's server name, the members listed instead of resolved,
    a directory for the bucket): a push over https to one write node is
    acknowledged only once the other has it (replication factor 2, over
    gRPC with TLS and client certificates), and the read node, asking both
    over TLS, returns every line once over https."""
    objs = _render(TLS, "tls-run")
    pki = _test_pki(tmp_path, ["larch-write-headless.larch.svc"])
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    bucket = {"backend": "filesystem", "filesystem": {"dir": str(tmp_path / "bucket")}}
    grpc = [deploylib.free_port(), deploylib.free_port()]
    members = [f"127.0.0.1:{p}" for p in grpc]

    def config(role: str, me: str | None) -> dict[str, Any]:
        text = next(o for o in objs if o.kind == "ConfigMap"
                    and o.name == f"larch-{role}-config").body["data"]["store.yaml"]
        cfg: dict[str, Any] = yaml.safe_load(text.replace("/etc/larch/tls/", f"{pki}/"))
        cfg["storage"] = bucket
        cfg["cluster"].pop("dns")
        cfg["cluster"].update({"members": members, "replication_factor": 2,
                               "refresh_period": "200ms"})
        if me:
            cfg["cluster"]["self"] = me
        cfg["read"] = {**(cfg.get("read") or {}), "index_refresh_period": "200ms"}
        assert cfg["cluster"]["tls"]["tls_cert_path"] == f"{pki}/tls.crt"
        return cfg

    procs: list[subprocess.Popen[bytes]] = []
    try:
        urls = []
        for i in range(2):
            proc, url, _ = _start(config("write", members[i]), tmp_path, f"write{i}", grpc[i], ctx)
            procs.append(proc)
            urls.append(url)
        read, read_url, read_log = _start(config("read", None), tmp_path, "read", ctx=ctx)
        procs.append(read)
        now = time.time_ns()
        lines = [[str(now + i), f"tls-line-{i}"] for i in range(50)]
        body = json.dumps({"streams": [{"stream": {"app": "tls"}, "values": lines}]}).encode()
        deadline = time.monotonic() + 30
        while True:
            # Until both write nodes see each other (refresh_period).
            req = urllib.request.Request(f"{urls[0]}/loki/api/v1/push", data=body,
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
                    assert resp.status == 204
                    break
            except urllib.error.HTTPError as e:
                assert time.monotonic() < deadline, e.read().decode()
                time.sleep(0.2)
        query = urllib.parse.urlencode({"query": '{app="tls"}', "start": now - 10**9,
                                        "end": now + 10**10, "limit": 1000})
        got: list[str] = []
        while True:
            try:
                with urllib.request.urlopen(f"{read_url}/loki/api/v1/query_range?{query}",
                                            timeout=10, context=ctx) as resp:
                    result = json.loads(resp.read())["data"]["result"]
                got = sorted(line for s in result for _, line in s["values"])
                if got == sorted(line for _, line in lines):
                    break
            except urllib.error.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{got}\n{read_log.read_text()[-3000:]}"
            time.sleep(0.2)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
