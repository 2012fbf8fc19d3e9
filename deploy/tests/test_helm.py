"""The Helm chart: lints clean, its schema turns bad values into clear
errors, and the rendered configuration, namespaces and notes are right."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

import deploylib
from deploylib import Obj


@pytest.mark.parametrize("values_name", ("default", "production", "scalable"))
def test_chart_lints_without_warnings(values_name: str) -> None:
    values = ({} if values_name == "default"
              else deploylib.scalable_values() if values_name == "scalable"
              else deploylib.values_file(deploylib.CHART / "values-production.yaml"))
    report = helm.lint(str(deploylib.CHART), values, strict=True, kube_version="v1.30.0")
    assert report["errors"] == []
    # Severity 1 is informational (e.g. "icon is recommended").
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("values,expected", [
    ({"store": {"replicas": 2}}, "replicas"),
    ({"agent": {"image": {"digest": "sha256:xyz"}}}, "digest"),
    ({"store": {"replica": 1}}, "replica"),
    # null removes a default (Helm's rule), so these leave a container without limits.
    ({"store": {"resources": {"limits": None}}}, "limits"),
    ({"agent": {"resources": {"requests": {"memory": None}}}}, "memory"),
    ({"agent": {"storeURL": "ftp://store:3100"}}, "storeURL"),
    ({"agent": {"podsDir": "var/log/pods"}}, "podsDir"),
    ({"grafana": {"datasources": {"tenants": ["team/a"]}}}, "tenants"),
    ({"grafana": {"datasources": {"tenants": []}}}, "tenants"),
    ({"store": {"ports": {"http": 70000}}}, "http"),
    ({"store": {"persistence": {"size": "lots"}}}, "size"),
])
def test_schema_rejects_bad_values(values: dict[str, Any], expected: str) -> None:
    with helm.Chart.load(str(deploylib.CHART)) as chart:
        with pytest.raises(helm.HelmValuesError) as err:
            chart.validate_schema(values)
    assert expected in str(err.value)


def test_latest_tag_refused() -> None:
    with helm.Chart.load(str(deploylib.CHART)) as chart:
        with pytest.raises(helm.HelmError) as err:
            chart.render({"agent": {"image": {"tag": "latest"}}}, name="larch",
                         namespace="larch")
    assert 'image tag "latest" is not allowed: pin a version or a digest' in str(err.value)


def test_agents_only_release_needs_store_url() -> None:
    with pytest.raises(helm.HelmError) as err:
        deploylib.render_chart_text({"store": {"enabled": False}})
    assert "agent.storeURL is required" in str(err.value)
    with pytest.raises(helm.HelmError) as err:
        deploylib.render_chart_text({"store": {"enabled": False},
                                     "agent": {"storeURL": "grpc://logs.example.net:9095"}})
    assert "list the store's peers in agent.networkPolicy.egress.storePeers" in str(err.value)
    peers = [{"ipBlock": {"cidr": "192.0.2.10/32"}}]
    objs = deploylib.render_chart({"store": {"enabled": False},
                                   "agent": {"storeURL": "grpc://logs.example.net:9095",
                                             "networkPolicy": {"egress": {"storePeers": peers}}}},
                                  "agents-only")
    assert not [o for o in objs if "store" in o.name]
    agent_yaml = yaml.safe_load(deploylib.config_files(objs, "agent.yaml")[0][1])
    assert agent_yaml["store"] == "grpc://logs.example.net:9095"
    policy = next(o for o in objs if o.kind == "NetworkPolicy")
    assert {"to": peers} in policy.body["spec"]["egress"]
    assert not schema_problems_of(objs)


def _config(objs: list[Obj], key: str) -> dict[str, Any]:
    (_, text), = deploylib.config_files(objs, key)
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def test_store_config_owned_keys_match_ports_and_volume(renders: dict[str, list[Obj]]) -> None:
    objs = renders["helm-default"]
    cfg = _config(objs, "store.yaml")
    sts = next(o for o in objs if o.kind == "StatefulSet")
    container = sts.body["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert cfg["http_addr"] == f"0.0.0.0:{ports['http']}"
    assert cfg["grpc_addr"] == f"0.0.0.0:{ports['grpc']}"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert cfg["data_dir"] == mounts["data"]
    assert container["args"] == ["--config=/etc/larch/store.yaml"]
    # Defaults are the binary's documented defaults.
    assert cfg["limits"]["max_line_size"] == "256KB"
    assert cfg["limits"]["retention_period"] == "0s"
    assert cfg["wal"] == {"fsync": True}


def test_user_cannot_override_chart_owned_config_keys() -> None:
    objs = deploylib.render_chart({"store": {"config": {"http_addr": "0.0.0.0:1",
                                                        "query": {"timeout": "1m"}}}}, "t")
    cfg = _config(objs, "store.yaml")
    assert cfg["http_addr"] == "0.0.0.0:3100"
    assert cfg["query"] == {"timeout": "1m"}


def test_agent_config_points_at_store_service(renders: dict[str, list[Obj]]) -> None:
    objs = renders["helm-default"]
    cfg = _config(objs, "agent.yaml")
    svc = next(o for o in objs if o.kind == "Service" and o.name == "larch-store")
    assert cfg["store"] == f"http://{svc.name}.{svc.namespace}.svc.cluster.local:3100"
    assert cfg["pods_dir"] == "/var/log/pods"
    assert cfg["positions"] == "/var/lib/larch-agent/positions.yaml"
    ds = next(o for o in objs if o.kind == "DaemonSet")
    spec = ds.body["spec"]["template"]["spec"]
    env = {e["name"]: e for e in spec["containers"][0]["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["pods"]["hostPath"]["path"] == "/var/log/pods"
    assert volumes["positions"]["hostPath"] == {"path": "/var/lib/larch-agent",
                                                "type": "DirectoryOrCreate"}
    assert {"operator": "Exists"} in spec["tolerations"]
    assert spec["priorityClassName"] == "larch-agent"


def test_production_puts_agents_in_their_own_namespace(renders: dict[str, list[Obj]]) -> None:
    objs = renders["helm-production"]
    agent_side = [o for o in objs if o.body["metadata"].get("labels", {})
                  .get("app.kubernetes.io/component") == "agent" and o.namespace]
    assert agent_side and {o.namespace for o in agent_side} == {"larch-agent"}
    binding = next(o for o in objs if o.kind == "ClusterRoleBinding")
    assert binding.body["subjects"][0]["namespace"] == "larch-agent"
    store_side = {o.namespace for o in objs if o.body["metadata"].get("labels", {})
                  .get("app.kubernetes.io/component") == "store"}
    assert store_side == {"larch"}
    assert _config(objs, "store.yaml")["limits"]["retention_period"] == "744h"


def test_grafana_datasources_send_tenant_header(renders: dict[str, list[Obj]]) -> None:
    objs = renders["helm-production"]
    (_, text), = deploylib.config_files(objs, "larch-datasources.yaml")
    provisioning = yaml.safe_load(text)
    sources = provisioning["datasources"]
    assert [s["secureJsonData"]["httpHeaderValue1"] for s in sources] == ["fake", "platform"]
    for s in sources:
        assert s["type"] == "loki" and s["access"] == "proxy"
        assert s["jsonData"]["httpHeaderName1"] == "X-Scope-OrgID"
        assert s["url"] == "http://larch-store.larch.svc.cluster.local:3100"
    assert [s["isDefault"] for s in sources] == [True, False]


def test_grafana_basic_auth_password_comes_from_environment() -> None:
    objs = deploylib.render_chart({"grafana": {"datasources": {
        "basicAuth": {"enabled": True, "user": "grafana"}}}}, "t")
    (_, text), = deploylib.config_files(objs, "larch-datasources.yaml")
    source = yaml.safe_load(text)["datasources"][0]
    assert source["basicAuth"] is True and source["basicAuthUser"] == "grafana"
    assert source["secureJsonData"]["basicAuthPassword"] == "$LARCH_BASIC_AUTH_PASSWORD"


def test_dashboards_and_rules_shipped_in_configmaps(renders: dict[str, list[Obj]]) -> None:
    objs = renders["helm-default"]
    dashboards = next(o for o in objs if o.name == "larch-grafana-dashboards")
    assert dashboards.body["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = set(dashboards.body["data"])
    on_disk = {p.name for p in (deploylib.CHART / "files" / "dashboards").glob("*.json")}
    assert shipped == on_disk and len(shipped) == 4
    rules = next(o for o in objs if o.name == "larch-prometheus-rules")
    assert rules.body["data"]["larch-alerts.yaml"] == (
        deploylib.CHART / "files" / "prometheus" / "larch-alerts.yaml").read_text().rstrip("\n")


def test_notes_tell_how_to_reach_store_and_grafana() -> None:
    notes = next(text for path, text in deploylib.render_chart_text({}).items()
                 if path.endswith("NOTES.txt"))
    assert "kubectl -n larch port-forward svc/larch-store 3100:3100" in notes
    assert "export LARCH_ADDR=http://127.0.0.1:3100" in notes
    assert "larch query" in notes
    assert "X-Scope-OrgID" in notes
    assert "rollout status statefulset/larch-store" in notes
    assert "port-forward svc/grafana" in notes


def test_disabling_optional_parts_still_renders_valid_yaml() -> None:
    objs = deploylib.render_chart({
        "argocd": {"syncWaves": False}, "checksumAnnotations": False,
        "prometheus": {"scrapeAnnotations": False, "rules": {"enabled": False}},
        "grafana": {"datasources": {"enabled": False}, "dashboards": {"enabled": False}},
        "store": {"networkPolicy": {"enabled": False}, "podDisruptionBudget": {"enabled": False}},
        "agent": {"networkPolicy": {"enabled": False}, "priorityClass": {"create": False},
                  "rbac": {"create": False}, "metricsService": {"enabled": False}},
    }, "minimal")
    kinds = sorted(o.kind for o in objs)
    assert kinds == ["ConfigMap", "ConfigMap", "DaemonSet", "Service", "Service",
                     "ServiceAccount", "ServiceAccount", "StatefulSet"]
    for o in objs:
        assert "annotations" not in o.body["metadata"] or o.body["metadata"]["annotations"]
    assert not schema_problems_of(objs)


def schema_problems_of(objs: list[Obj]) -> list[str]:
    from test_schemas import schema_problems

    return [p for o in objs for v in deploylib.KUBE_VERSIONS for p in schema_problems(o, v)]


def test_auth_enabled_requires_agent_tenant() -> None:
    with pytest.raises(helm.HelmError) as err:
        deploylib.render_chart_text({"store": {"config": {"auth_enabled": True}}})
    assert "set agent.config.tenant_id" in str(err.value)
    objs = deploylib.render_chart({"store": {"config": {"auth_enabled": True}},
                                   "agent": {"config": {"tenant": "platform"}}}, "auth")
    assert yaml.safe_load(deploylib.config_files(objs, "agent.yaml")[0][1])["tenant"] == "platform"
    assert yaml.safe_load(deploylib.config_files(objs, "store.yaml")[0][1])["auth_enabled"] is True


def test_store_without_any_egress_renders_an_empty_list() -> None:
    objs = deploylib.render_chart({"store": {"networkPolicy": {"egress": {
        "dns": False, "alertmanager": {"peers": []}}}}}, "no-egress")
    policy = next(o for o in objs if o.kind == "NetworkPolicy" and o.name == "larch-store")
    assert policy.body["spec"]["egress"] == []
    assert "Egress" in policy.body["spec"]["policyTypes"]
    assert not schema_problems_of(objs)


def test_pod_monitors_select_pods_and_exclude_service_monitors() -> None:
    from test_integrity import integrity_problems
    from test_schemas import schema_problems

    values = deploylib.merged(deploylib.values_file(deploylib.CHART / "values-production.yaml"),
                              {"prometheus": {"podMonitor": {"enabled": True}}})
    objs = deploylib.render_chart(values, "pod-monitors")
    monitors = [o for o in objs if o.kind == "PodMonitor"]
    assert {m.name for m in monitors} == {"larch-store", "larch-agent"}
    assert not integrity_problems(objs)
    assert not [p for o in monitors for p in schema_problems(o, deploylib.KUBE_VERSIONS[0])]
    # The agents' PodMonitor lives in their namespace and scrapes their port.
    agent = next(m for m in monitors if m.name == "larch-agent")
    assert agent.namespace == "larch-agent"
    assert agent.body["spec"]["podMetricsEndpoints"][0]["port"] == "http-metrics"
    with pytest.raises(Exception, match="enable one of them"):
        deploylib.render_chart(deploylib.merged(values, {"prometheus": {
            "serviceMonitor": {"enabled": True}}}), "both")


def test_service_monitors_give_the_dashboards_job_labels(renders: dict[str, list[Obj]]) -> None:
    monitors = [o for o in renders["helm-monitoring"] if o.kind == "ServiceMonitor"]
    assert {m.name for m in monitors} == {"larch-store", "larch-agent"}
    for m in monitors:
        relabel = m.body["spec"]["endpoints"][0]["relabelings"][0]
        assert relabel == {"sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"],
                           "targetLabel": "job", "replacement": "larch-$1"}
        assert m.body["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_tokens_tls_and_their_clients() -> None:
    """Tokens and TLS from Secrets, a cert-manager Certificate, the agents'
    token and CA, Grafana's basic auth and CA: mounted where the rendered
    configurations say, probes over HTTPS."""
    objs = deploylib.render_chart({
        "store": {"auth": {"enabled": True, "tokensSecret": "larch-tokens"},
                  "tls": {"enabled": True, "clientAuthType": "VerifyClientCertIfGiven",
                          "certManager": {"enabled": True,
                                          "issuerRef": {"name": "ca", "kind": "ClusterIssuer"}}}},
        "agent": {"config": {"tenant_id": "team-a"}, "auth": {"tokenSecret": "agent-token"},
                  "tls": {"caSecret": "larch-store-tls", "clientCertSecret": "agent-cert"}},
        "grafana": {"datasources": {"basicAuth": {"enabled": True, "user": "grafana"},
                                    "tlsCA": {"enabled": True}}},
    }, "secure")
    assert not schema_problems_of(
        [o for o in objs if o.kind != "Certificate"])
    store = yaml.safe_load(deploylib.config_files(objs, "store.yaml")[0][1])
    assert store["auth"] == {"tokens_file": "/etc/larch/auth/tokens.yaml"}
    assert store["tls"] == {"cert_file": "/etc/larch/tls/tls.crt", "key_file": "/etc/larch/tls/tls.key",
                            "client_ca_file": "/etc/larch/tls/ca.crt",
                            "client_auth_type": "VerifyClientCertIfGiven"}
    sts = next(o for o in objs if o.kind == "StatefulSet").body["spec"]["template"]["spec"]
    secrets = {v["name"]: v["secret"]["secretName"] for v in sts["volumes"] if "secret" in v}
    assert secrets == {"auth": "larch-tokens", "tls": "larch-store-tls"}
    container = sts["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["auth"] == "/etc/larch/auth" and mounts["tls"] == "/etc/larch/tls"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS"
    cert = next(o for o in objs if o.kind == "Certificate").body
    assert cert["spec"]["secretName"] == "larch-store-tls"
    assert "larch-store.larch.svc.cluster.local" in cert["spec"]["dnsNames"]
    agent = yaml.safe_load(deploylib.config_files(objs, "agent.yaml")[0][1])
    assert agent["store"].startswith("https://larch-store.larch.svc.cluster.local:")
    assert agent["bearer_token_file"] == "/etc/larch-agent/auth/token"
    assert agent["tls_ca_file"] == "/etc/larch-agent/ca/ca.crt"
    assert agent["tls_cert_file"] == "/etc/larch-agent/client/tls.crt"
    (_, text), = deploylib.config_files(objs, "larch-datasources.yaml")
    source = yaml.safe_load(text)["datasources"][0]
    assert source["url"].startswith("https://")
    assert source["jsonData"]["tlsAuthWithCACert"] is True
    assert source["secureJsonData"]["tlsCACert"] == "$LARCH_CA_CERT"


def _monitor_endpoints(values: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """Component -> the endpoint of its ServiceMonitor or PodMonitor, after a
    schema check of every object rendered."""
    key = {"ServiceMonitor": "serviceMonitor", "PodMonitor": "podMonitor"}[kind]
    objs = deploylib.render_chart(deploylib.merged(values, {"prometheus": {key: {"enabled": True}}}),
                                  f"scrape-{kind}")
    assert not schema_problems_of([o for o in objs if o.kind != "Certificate"])
    field = "endpoints" if kind == "ServiceMonitor" else "podMetricsEndpoints"
    return {o.name.removeprefix("larch-"): o.body["spec"][field][0]
            for o in objs if o.kind == kind}


SECURE_STORE = {
    "store": {"auth": {"enabled": True, "tokensSecret": "larch-tokens"},
              "tls": {"enabled": True}},
    "agent": {"config": {"tenant_id": "team-a"}, "tls": {"caSecret": "larch-store-tls"}},
}


@pytest.mark.parametrize("kind", ("ServiceMonitor", "PodMonitor"))
def test_monitors_scrape_a_tls_store_over_https(kind: str) -> None:
    """With store.tls on, the store's monitor scrapes https with the CA of the
    store's Secret and a name of its certificate; the agents' stays http.
    /metrics stays open by default, so no token is sent."""
    plain = _monitor_endpoints({}, kind)
    assert plain["store"]["scheme"] == "http" and "tlsConfig" not in plain["store"]
    eps = _monitor_endpoints(SECURE_STORE, kind)
    assert eps["agent"]["scheme"] == "http" and "tlsConfig" not in eps["agent"]
    store = eps["store"]
    assert store["scheme"] == "https"
    assert store["tlsConfig"] == {"ca": {"secret": {"name": "larch-store-tls", "key": "ca.crt"}},
                                  "serverName": "larch-store.larch.svc"}
    assert "authorization" not in store
    # The name is one the chart's Certificate holds.
    objs = deploylib.render_chart(deploylib.merged(SECURE_STORE, {"store": {"tls": {"certManager": {
        "enabled": True, "issuerRef": {"name": "ca"}}}}}), "cert")
    cert = next(o for o in objs if o.kind == "Certificate").body
    assert store["tlsConfig"]["serverName"] in cert["spec"]["dnsNames"]
    # The pods say so too, for deploy/prometheus/prometheus.yml's TLS job.
    sts = next(o for o in objs if o.kind == "StatefulSet")
    assert sts.body["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scheme"] == "https"


@pytest.mark.parametrize("kind", ("ServiceMonitor", "PodMonitor"))
def test_monitors_send_a_token_and_client_certificate_when_the_store_asks(kind: str) -> None:
    closed = deploylib.merged(SECURE_STORE, {"store": {
        "config": {"auth": {"unauthenticated_paths": ["/ready"]}},
        "tls": {"clientAuthType": "RequireAndVerifyClientCert"}}})
    # Without the Secrets Prometheus needs, the chart says which is missing.
    with pytest.raises(helm.HelmError, match="prometheus.storeScrape.clientCertSecret is required"):
        _monitor_endpoints(closed, kind)
    with_cert = deploylib.merged(closed, {"prometheus": {"storeScrape": {
        "clientCertSecret": "prometheus-client", "caSecret": "store-ca",
        "serverName": "logs.example.org"}}})
    with pytest.raises(helm.HelmError, match="prometheus.storeScrape.tokenSecret is required"):
        _monitor_endpoints(with_cert, kind)
    eps = _monitor_endpoints(deploylib.merged(with_cert, {"prometheus": {"storeScrape": {
        "tokenSecret": "prometheus-token", "tokenKey": "larch"}}}), kind)
    store = eps["store"]
    assert store["tlsConfig"] == {
        "ca": {"secret": {"name": "store-ca", "key": "ca.crt"}},
        "serverName": "logs.example.org",
        "cert": {"secret": {"name": "prometheus-client", "key": "tls.crt"}},
        "keySecret": {"name": "prometheus-client", "key": "tls.key"},
    }
    assert store["authorization"] == {"type": "Bearer",
                                      "credentials": {"name": "prometheus-token", "key": "larch"}}
    assert "authorization" not in eps["agent"] and "tlsConfig" not in eps["agent"]
    # A token on /metrics without TLS: http with the token.
    no_tls = deploylib.merged(closed, {"store": {"tls": {"enabled": False}},
                                       "agent": {"tls": {"caSecret": ""}},
                                       "prometheus": {"storeScrape": {"tokenSecret": "t"}}})
    store = _monitor_endpoints(no_tls, kind)["store"]
    assert store["scheme"] == "http" and store["authorization"]["credentials"]["name"] == "t"
    # /metrics listed among the open paths: no token needed.
    open_metrics = deploylib.merged(with_cert, {"store": {"config": {"auth": {
        "unauthenticated_paths": ["/ready", "/metrics"]}}}})
    assert "authorization" not in _monitor_endpoints(open_metrics, kind)["store"]


def test_object_storage_values() -> None:
    """S3 from the values: the rendered storage block (credentials never in
    it), the credentials Secret as the store's environment, and a config
    the store's own --check-config accepts; a missing bucket is refused."""
    objs = deploylib.render_chart({
        "store": {"objectStorage": {
            "backend": "s3", "credentialsSecret": "larch-s3",
            "s3": {"endpoint": "http://minio.minio:9000", "bucket": "larch",
                   "forcePathStyle": True}}},
    }, "s3")
    assert not schema_problems_of(objs)
    (_, text), = deploylib.config_files(objs, "store.yaml")
    store = yaml.safe_load(text)
    # The keys are references the store expands from the Secret's
    # environment variables, never values.
    assert store["storage"] == {
        "backend": "s3", "cache": {"max_size": "10GiB"},
        "s3": {"bucket": "larch", "endpoint": "http://minio.minio:9000",
               "force_path_style": True, "access_key_id": "${AWS_ACCESS_KEY_ID}",
               "secret_access_key": "${AWS_SECRET_ACCESS_KEY}"}}
    sts = next(o for o in objs if o.kind == "StatefulSet").body["spec"]["template"]["spec"]
    assert sts["containers"][0]["envFrom"] == [{"secretRef": {"name": "larch-s3"}}]
    store_bin = deploylib.REPO / "target" / "debug" / "larch-store"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store.yaml"
        path.write_text(text)
        proc = subprocess.run([str(store_bin), "--check-config", "--config", str(path)],
                              capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        # The Secret's keys, or none of them (the AWS credential chain).
        for env in ({"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s/x+y"},
                    {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}):
            proc = subprocess.run([str(store_bin), "--check-config", "--config", str(path)],
                                  capture_output=True, text=True, timeout=60, check=False,
                                  env={**os.environ, **env})
            assert proc.returncode == 0, (env, proc.stderr)
    # The default keeps everything on the data volume, with no storage block.
    (_, text), = deploylib.config_files(deploylib.render_chart({}, "fs"), "store.yaml")
    assert "storage" not in yaml.safe_load(text)
    with pytest.raises(helm.HelmError) as err:
        deploylib.render_chart_text({"store": {"objectStorage": {"backend": "s3"}}})
    assert "store.objectStorage.s3.bucket is required" in str(err.value)
