"""Rendering of everything under deploy/ into Kubernetes objects.

The validation tests (test_*.py) and regenerate.py share these helpers:
the Helm chart is rendered in-process with helm-python-sdk (Helm 4 as a
library, no helm binary), Kustomize overlays with `kubectl kustomize`, and
plain YAML files are loaded as they are. Each render is a list of objects
(dicts) tagged with where it came from, so a failing check names its source.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parent.parent
REPO = DEPLOY.parent
CHART = DEPLOY / "helm" / "larch"
KUSTOMIZE = DEPLOY / "kustomize"
BASE = KUSTOMIZE / "base"
OVERLAYS = ("dev", "staging", "prod")
ARGOCD = DEPLOY / "argocd"

# The Kubernetes versions every object is validated against: the oldest we
# support and the newest whose schemas kubernetes-validate bundles.
KUBE_VERSIONS = ("1.30.0", "1.37.0")

# Custom resources with no schema in kubernetes-validate, allowed by name.
ALLOWED_WITHOUT_SCHEMA = {
    ("argoproj.io/v1alpha1", "Application"),
    ("argoproj.io/v1alpha1", "AppProject"),
}

# Custom resources checked against schemas of our own (tests/schemas/): the
# fields of their CRDs the chart may use, strictly.
CUSTOM_SCHEMAS = DEPLOY / "tests" / "schemas" / "monitoring.coreos.com-v1.json"

# Values turning on every Prometheus Operator object (on top of the
# production values): the "helm-monitoring" render.
MONITORING_VALUES = {
    "prometheus": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    },
}


# The SimpleScalable example (on top of the production values): the
# "helm-scalable" render, with the Prometheus Operator objects on.
SCALABLE_VALUES_FILE = CHART / "values-simple-scalable.yaml"


def scalable_values() -> dict[str, Any]:
    """Production values, the SimpleScalable example and MONITORING_VALUES."""
    return merged(merged(values_file(CHART / "values-production.yaml"),
                         values_file(SCALABLE_VALUES_FILE)), MONITORING_VALUES)


def custom_schema(api_version: str, kind: str) -> dict[str, Any] | None:
    """Our schema of a custom resource, if we have one."""
    import json

    if api_version != "monitoring.coreos.com/v1":
        return None
    doc = json.loads(CUSTOM_SCHEMAS.read_text())
    if kind not in doc["kinds"]:
        return None
    return {**doc["kinds"][kind], "definitions": doc["definitions"]}


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`base` with `extra` merged in, recursively (maps only)."""
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merged(out[k], v)
        else:
            out[k] = v
    return out


@dataclass(frozen=True)
class Obj:
    """One rendered Kubernetes object and the render it came from."""

    source: str
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.body.get("kind", ""))

    @property
    def name(self) -> str:
        return str(self.body.get("metadata", {}).get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.body.get("metadata", {}).get("namespace", ""))

    def __str__(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.source}: {self.kind} {ns}{self.name}"


def load_documents(text: str, source: str) -> list[Obj]:
    """Parse a multi-document YAML stream, skipping empty documents."""
    objs = []
    for doc in yaml.safe_load_all(text):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ValueError(f"{source}: a document is not a mapping: {doc!r:.80}")
        objs.append(Obj(source, doc))
    return objs


def values_file(path: Path) -> dict[str, Any]:
    with path.open() as f:
        loaded = yaml.safe_load(f)
    return loaded or {}


def render_chart_text(values: dict[str, Any] | None, *, namespace: str = "larch",
                      name: str = "larch") -> dict[str, str]:
    """Render the chart: template path -> rendered text (NOTES.txt included)."""
    import helm_python as helm

    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema(values or {})
        return chart.render(values=values, name=name, namespace=namespace,
                            is_install=True)


def render_chart(values: dict[str, Any] | None, source: str, **kw: Any) -> list[Obj]:
    """Render the chart into objects (NOTES.txt excluded)."""
    rendered = render_chart_text(values, **kw)
    objs: list[Obj] = []
    for path in sorted(rendered):
        if path.endswith("NOTES.txt"):
            continue
        objs.extend(load_documents(rendered[path], f"{source} {path}"))
    return objs


def kubectl() -> str:
    found = shutil.which("kubectl")
    if not found:
        raise RuntimeError("kubectl is not on PATH: `kubectl kustomize` renders the overlays")
    return found


def kustomize_text(directory: Path) -> str:
    proc = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True,
                          text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory} failed:\n{proc.stderr}")
    return proc.stdout


def kustomize(directory: Path, source: str) -> list[Obj]:
    return load_documents(kustomize_text(directory), source)


@functools.cache
def all_renders() -> dict[str, list[Obj]]:
    """Every deployable render: the chart with default and production values
    (SingleBinary) and the SimpleScalable example, each Kustomize overlay,
    and the Argo CD applications."""
    renders = {
        "helm-default": render_chart({}, "helm-default"),
        "helm-production": render_chart(values_file(CHART / "values-production.yaml"),
                                        "helm-production"),
        "helm-monitoring": render_chart(merged(values_file(CHART / "values-production.yaml"),
                                               MONITORING_VALUES), "helm-monitoring"),
        "helm-scalable": render_chart(scalable_values(), "helm-scalable"),
    }
    for env in OVERLAYS:
        renders[f"kustomize-{env}"] = kustomize(KUSTOMIZE / "overlays" / env, f"kustomize-{env}")
    argo: list[Obj] = []
    for path in sorted(ARGOCD.rglob("*.yaml")):
        argo.extend(load_documents(path.read_text(), str(path.relative_to(REPO))))
    renders["argocd"] = argo
    return renders


def pod_spec(obj: Obj) -> dict[str, Any] | None:
    """The pod spec of a workload object, or None for other kinds."""
    body = obj.body
    if obj.kind == "Pod":
        return body.get("spec", {})
    if obj.kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}:
        return body.get("spec", {}).get("template", {}).get("spec", {})
    if obj.kind == "CronJob":
        return (body.get("spec", {}).get("jobTemplate", {}).get("spec", {})
                .get("template", {}).get("spec", {}))
    return None


def config_files(objs: list[Obj], key: str) -> list[tuple[str, str]]:
    """(source, text) of every ConfigMap data entry named `key`."""
    return [(str(o), o.body["data"][key]) for o in objs
            if o.kind == "ConfigMap" and key in (o.body.get("data") or {})]


def venv_bin(name: str) -> str:
    """A tool installed beside the running interpreter (the venv), else on PATH."""
    here = Path(sys.prefix) / "bin" / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is not installed: run scripts/validate-deploy")
    return found


_NEXT_PORT = [0]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, between 20000
    and 31999, as the Rust test kit picks them (`testkit/src/port.rs`):
    below the kernel's ephemeral range, so that no outgoing connection
    takes it before the server binds it, and distinct per call in this
    process (offset by its pid), so that two ports handed out before
    either is bound (a store's HTTP and gRPC) are never the same."""
    for _ in range(12_000):
        n = _NEXT_PORT[0]
        _NEXT_PORT[0] += 1
        port = 20_000 + (os.getpid() * 97 + n) % 12_000
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port between 20000 and 31999 on 127.0.0.1")


def http_get(url: str, context: ssl.SSLContext | None = None) -> tuple[int, str]:
    """Status and body of a GET (an https URL's certificate checked with
    `context`); HTTP errors are answers, not exceptions."""
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read().decode()


def wait_for_200(url: str, proc: subprocess.Popen[bytes], log: Path,
                 timeout: float = 60, context: ssl.SSLContext | None = None) -> None:
    """Wait until `url` answers 200 (over https checked with `context`);
    fail with the process's log if it exits or the time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if http_get(url, context)[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{url} never answered 200:\n{log.read_text()}")
        time.sleep(0.1)
