"""`larch-store --check-config` and `larch-agent --check-config` accept the
configuration files the chart (default and production values) and every
overlay render, so a deployment never ships a config its binary refuses.

The binaries are the workspace's debug builds (scripts/validate-deploy
builds them). A binary that does not offer --check-config yet is reported
as skipped, with the reason, rather than passed. The store is also started
for real with the chart's configuration."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import contract
import deploylib

RENDERS = ("helm-default", "helm-production", "kustomize-dev", "kustomize-staging",
           "kustomize-prod")


def binary(name: str) -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", deploylib.REPO / "target"))
    path = target / "debug" / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `cargo build --workspace --bins`")
    return path


def supports_check_config(path: Path) -> bool:
    proc = subprocess.run([str(path), "--help"], capture_output=True, text=True, timeout=30,
                          check=False)
    return proc.returncode == 0 and "--check-config" in proc.stdout


@pytest.mark.parametrize("name,key", [("larch-store", "store.yaml"),
                                      ("larch-agent", "agent.yaml")])
@pytest.mark.parametrize("render", RENDERS)
def test_rendered_config_passes_check_config(renders: dict[str, list[deploylib.Obj]],
                                             tmp_path: Path, render: str, name: str,
                                             key: str) -> None:
    configs = deploylib.config_files(renders[render], key)
    assert len(configs) == 1, f"{render}: one {key} expected, found {len(configs)}"
    path = binary(name)
    if not supports_check_config(path):
        pytest.skip(f"{name} has no --check-config yet (its --help does not list it)")
    source, text = configs[0]
    config = tmp_path / key
    config.write_text(text)
    proc = subprocess.run([str(path), "--check-config", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, f"{source}:\n{proc.stdout}{proc.stderr}"


# --- the real binaries, started with the rendered configuration ----------------

def _stop(proc: subprocess.Popen[bytes], grace: float, log: Path) -> None:
    """SIGTERM, and the process must exit 0 within the pod's grace period."""
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"no exit within the {grace}s grace period:\n{log.read_text()}")
    assert code == 0, log.read_text()
    assert time.monotonic() - started < grace


def _grace(renders: dict[str, list[deploylib.Obj]], kind: str) -> float:
    obj = next(o for o in renders["helm-production"] if o.kind == kind)
    return float(obj.body["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])


def _families(metrics_text: str) -> set[tuple[str, str]]:
    return set(re.findall(r"^# TYPE (\S+) (\S+)", metrics_text, re.M))


def _unserved(metrics_text: str, source: str, registered_in: Path) -> tuple[list[str], int]:
    """Contract metrics of `source` neither served nor registered in the
    source file (families without series yet are not in the text)."""
    served = _families(metrics_text)
    files = sorted(registered_in.rglob("*.rs")) if registered_in.is_dir() else [registered_in]
    registered = {name for f in files for name in re.findall(r'"(larch_[a-z_]+)"', f.read_text())}
    missing, count = [], 0
    for m in contract.metrics().values():
        if source not in m.sources:
            continue
        family = m.name.removesuffix("_total") if m.type == "counter" else m.name
        if (family, m.type) in served or (m.name, m.type) in served:
            count += 1
        elif family not in registered and m.name not in registered:
            missing.append(f"{m.name} ({m.type})")
    return missing, count


@pytest.fixture(scope="module")
def store(renders: dict[str, list[deploylib.Obj]],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """larch-store started from the production store.yaml (addresses and
    data dir overridden by flags, as every key can be); yields its URL."""
    path = binary("larch-store")
    if not supports_check_config(path):
        pytest.skip("larch-store is not built yet (no --check-config in its --help)")
    tmp = tmp_path_factory.mktemp("store")
    (_, text), = deploylib.config_files(renders["helm-production"], "store.yaml")
    (tmp / "store.yaml").write_text(text)
    http = deploylib.free_port()
    log = tmp / "store.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(path), "--config", str(tmp / "store.yaml"), "--http-addr", f"127.0.0.1:{http}",
             "--grpc-addr", f"127.0.0.1:{deploylib.free_port()}", "--data-dir", str(tmp / "data")],
            stdout=out, stderr=subprocess.STDOUT)
        try:
            deploylib.wait_for_200(f"http://127.0.0.1:{http}/ready", proc, log)
            yield f"http://127.0.0.1:{http}"
        finally:
            if proc.poll() is None:
                _stop(proc, _grace(renders, "StatefulSet"), log)


def _push(store: str, values: list[list[str]]) -> int:
    body = json.dumps({"streams": [{"stream": {"app": "deploy-test"}, "values": values}]})
    req = urllib.request.Request(f"{store}/loki/api/v1/push", data=body.encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def _received_lines(store: str) -> int:
    text = deploylib.http_get(f"{store}/metrics")[1]
    return sum(int(float(v)) for v in re.findall(
        r"^larch_distributor_lines_received_total\{[^}]*\} (\S+)", text, re.M))


def test_store_serves_contract_metrics(store: str) -> None:
    """The store answers the probes' /ready and serves every `store` metric
    of deploy/README.md on /metrics, with the labels the dashboards use."""
    now = time.time_ns()
    # A line, the same line again (a duplicate), a month-old line (discarded).
    assert _push(store, [[str(now), "hello"]]) == 204
    assert _push(store, [[str(now), "hello"]]) == 204
    assert _push(store, [[str(now - 30 * 86400 * 10**9), "too old"]]) == 400
    status, text = deploylib.http_get(f"{store}/metrics")
    assert status == 200
    missing, served = _unserved(text, "store", deploylib.REPO / "store/src")
    assert not missing, f"larch-store does not serve: {missing}"
    assert served >= 12, sorted(_families(text))
    assert re.search(r'^larch_request_duration_seconds_count\{.*route="loki_api_v1_push"'
                     r'.*status_code="204"', text, re.M), text[:2000]
    assert re.search(r'^larch_discarded_entries_total\{.*reason=', text, re.M)


def test_agent_ships_a_pod_log_with_rendered_config(
        renders: dict[str, list[deploylib.Obj]], store: str, tmp_path: Path) -> None:
    """larch-agent started from the production agent.yaml (pods directory,
    positions, store and listen address overridden by flags) answers /ready,
    ships a CRI log line to the store, serves the `agent` metrics of
    deploy/README.md, and stops cleanly on SIGTERM."""
    path = binary("larch-agent")
    if not supports_check_config(path):
        pytest.skip("larch-agent is not built yet (no --check-config in its --help)")
    (_, text), = deploylib.config_files(renders["helm-production"], "agent.yaml")
    (tmp_path / "agent.yaml").write_text(text)
    pods = tmp_path / "pods"
    container = pods / "shop_web-0_0f9d2c1e-1111-2222-3333-444455556666" / "web"
    container.mkdir(parents=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
    (container / "0.log").write_text(f"{stamp} stdout F deploy-e2e-line\n")
    received_before = _received_lines(store)
    http = deploylib.free_port()
    log = tmp_path / "agent.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(path), "--config", str(tmp_path / "agent.yaml"), "--pods-dir", str(pods),
             "--positions", str(tmp_path / "positions.yaml"), "--store", store,
             "--http-addr", f"127.0.0.1:{http}", "--node-name", "node-1"],
            stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, KUBERNETES_SERVICE_HOST=""))
        try:
            base = f"http://127.0.0.1:{http}"
            deploylib.wait_for_200(f"{base}/ready", proc, log)
            deadline = time.monotonic() + 30
            while True:
                text = deploylib.http_get(f"{base}/metrics")[1]
                sent = re.search(r"^larch_agent_sent_entries_total (\d+)", text, re.M)
                if sent and int(sent.group(1)) >= 1:
                    break
                if time.monotonic() > deadline:
                    pytest.fail(f"the agent sent nothing:\n{text}\n{log.read_text()}")
                time.sleep(0.2)
            missing, served = _unserved(text, "agent", deploylib.REPO / "agent/src")
            assert not missing, f"larch-agent does not serve: {missing}"
            assert served >= 8, sorted(_families(text))
            assert _received_lines(store) > received_before
            query = urllib.parse.urlencode({"query": '{namespace="shop", pod="web-0"}',
                                            "start": time.time_ns() - 3600 * 10**9,
                                            "limit": 10})
            status, body = deploylib.http_get(f"{store}/loki/api/v1/query_range?{query}")
            # The store's query API is another part of the project; until it
            # serves query_range (404 before), the received-lines counter
            # above is the evidence that the line arrived.
            if status != 404:
                assert status == 200 and "deploy-e2e-line" in body, body[:2000]
        finally:
            if proc.poll() is None:
                _stop(proc, _grace(renders, "DaemonSet"), log)
