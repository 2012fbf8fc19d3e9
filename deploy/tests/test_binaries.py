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
import socket
import subprocess
import time
import urllib.error
import urllib.request
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


# --- the real store, started with the chart's configuration ---------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_store_starts_with_rendered_config_and_serves_contract_metrics(
        renders: dict[str, list[deploylib.Obj]], tmp_path: Path) -> None:
    """The store boots from the chart's store.yaml (addresses and data dir
    overridden by flags, as every key can be), answers the probes' /ready,
    serves every `store` metric of deploy/README.md on /metrics, and stops
    cleanly on SIGTERM within the chart's grace period."""
    path = binary("larch-store")
    if not supports_check_config(path):
        pytest.skip("larch-store is not built yet (no --check-config in its --help)")
    (_, text), = deploylib.config_files(renders["helm-production"], "store.yaml")
    config = tmp_path / "store.yaml"
    config.write_text(text)
    http, grpc = _free_port(), _free_port()
    log = (tmp_path / "store.log").open("w")
    proc = subprocess.Popen(
        [str(path), "--config", str(config), "--http-addr", f"127.0.0.1:{http}",
         "--grpc-addr", f"127.0.0.1:{grpc}", "--data-dir", str(tmp_path / "data")],
        stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{http}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _ = _get(f"{base}/ready")
                if status == 200:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("larch-store did not become ready:\n"
                            + (tmp_path / "store.log").read_text())
            time.sleep(0.1)
        # Pushes that give the per-tenant families series: a line, the same
        # line again (a duplicate) and a month-old line (discarded).
        now = time.time_ns()
        for values in ([[str(now), "hello"]], [[str(now), "hello"]],
                       [[str(now - 30 * 86400 * 10**9), "too old"]]):
            body = json.dumps({"streams": [{"stream": {"app": "deploy-test"}, "values": values}]})
            req = urllib.request.Request(f"{base}/loki/api/v1/push", data=body.encode(),
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    assert resp.status == 204
            except urllib.error.HTTPError as e:
                assert e.code == 400, e.read()
        status, metrics_text = _get(f"{base}/metrics")
        assert status == 200
        served = set(re.findall(r"^# TYPE (\S+) (\S+)", metrics_text, re.M))
        # Families without series yet (chunks flushed or deleted, which take
        # a flush or a retention pass) are not in the text; those must at
        # least be registered under the same name in the store's source.
        registered = set(re.findall(r'register\(\s*"([a-z_]+)"',
                                    (deploylib.REPO / "store/src/metrics.rs").read_text()))
        missing = []
        served_count = 0
        for m in contract.metrics().values():
            if "store" not in m.sources:
                continue
            family = m.name.removesuffix("_total") if m.type == "counter" else m.name
            if (family, m.type) in served:
                served_count += 1
            elif family not in registered:
                missing.append(f"{m.name} ({m.type})")
        assert not missing, f"larch-store does not serve: {missing}"
        assert served_count >= 12, served
        # The histogram's labels are the ones the dashboards group by.
        assert re.search(r'^larch_request_duration_seconds_count\{.*route="loki_api_v1_push"'
                         r'.*status_code="204"', metrics_text, re.M), metrics_text[:2000]
    finally:
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        log.close()
    grace = next(o for o in renders["helm-production"] if o.kind == "StatefulSet").body[
        "spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert code == 0, (tmp_path / "store.log").read_text()
    assert time.monotonic() - started < grace
