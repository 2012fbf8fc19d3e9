"""The metrics contract of deploy/README.md ("Metrics the dashboards and
alerts use"), parsed, and synthetic series shaped by it.

test_monitoring.py checks the dashboards and alerts against this table and
backfills a real Prometheus with `synthetic_openmetrics()` to run every
dashboard query."""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import product

import deploylib

README = deploylib.DEPLOY / "README.md"
SECTION = "## Metrics"

# Example values for every label the table names (two where queries group or
# filter by them, so `sum by` and `status=~"5.."` have something to do).
LABEL_VALUES = {
    "route": ["loki_api_v1_push", "loki_api_v1_query_range"],
    "container": ["store", "agent"],
    "tenant": ["fake", "team-a"],
    "reason": ["rate_limited", "full"],
    "persistentvolumeclaim": ["data-larch-store-0"],
    "daemonset": ["larch-agent"],
    "kind": ["block", "record"],
    "result": ["ok", "failed"],
    "state": ["pending", "firing"],
    "alertmanager": ["http://alertmanager:9093"],
    "client": ["default"],
    "resource": ["memory"],
    "version": ["0.1.0"],
    "revision": ["unknown"],
    "program": ["larch-store"],
    "protocol": ["http", "grpc"],
    "token": ["agents"],
    "action": ["read", "write"],
    "file": ["tokens", "tls"],
    "listener": ["http"],
    "outcome": ["success", "failure"],
    "op": ["get_range", "put"],
    "direction": ["download", "upload"],
    "status": ["received", "processed"],
    "read": ["index", "decoded", "skipped"],
}
STATUS_VALUES = {"store": ["204", "500"], "agent": ["204", "429"]}
# Stores and agents under one generic job name, as a team's own pod scrape
# job gives them: the dashboards and alerts must not tell them apart by job.
JOBS = {"store": "kubernetes-pods", "agent": "kubernetes-pods", "kubelet": "kubelet",
        "cadvisor": "kubelet", "kube-state-metrics": "kube-state-metrics", "prometheus": None}


@dataclass(frozen=True)
class Metric:
    name: str
    type: str
    labels: tuple[str, ...]
    sources: tuple[str, ...]


def metrics() -> dict[str, Metric]:
    text = README.read_text()
    section = text[text.index(SECTION):]
    out = {}
    for line in section.splitlines()[1:]:
        if line.startswith("#"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 5 or not cells[0].startswith("`"):
            continue
        name = cells[0].strip("`")
        labels = tuple(re.findall(r"`([a-z_]+)`", cells[2]))
        sources = tuple(s.strip() for s in cells[3].split(","))
        out[name] = Metric(name, cells[1], labels, sources)
    return out


def referenced(expr: str) -> set[str]:
    """Metric names a PromQL expression uses (histogram suffixes removed)."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    names = set()
    for token in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_strings):
        if token == "up" or token.startswith(("larch_", "container_", "kubelet_", "kube_")):
            names.add(re.sub(r"_(bucket|sum|count)$", "", token)
                      if token.endswith(("_bucket", "_sum", "_count"))
                      and not token.startswith("kube") else token)
    return names


def _series_labels(metric: Metric, source: str) -> list[dict[str, str]]:
    base = {"namespace": "larch", "pod": f"larch-{source}-0", "node": "node-1"}
    job = JOBS.get(source)
    if metric.name == "up":
        return [dict(base, job=JOBS[c], container=c) for c in ("store", "agent")]
    if job:
        base["job"] = job
    if source in ("store", "agent"):
        # The container serving /metrics, as the scrape job and the
        # operator's monitors set it.
        base["container"] = source
    if source in ("kube-state-metrics", "cadvisor"):
        base["pod"] = "larch-store-0"
    names = list(metric.labels)
    choices = [STATUS_VALUES[source] if n == "status_code" else LABEL_VALUES[n] for n in names]
    return [dict(base, **dict(zip(names, combo))) for combo in product(*choices)]


def _fmt(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def synthetic_openmetrics(start: int, samples: int, step: int = 60) -> str:
    """Every metric of the table, with every label filled in, over `samples`
    points from `start` (Unix seconds): counters grow, gauges hold steady,
    histograms spread over three buckets."""
    lines = []
    for m in metrics().values():
        family = m.name.removesuffix("_total") if m.type == "counter" else m.name
        lines.append(f"# TYPE {family} {m.type}")
        series = [s for source in m.sources for s in _series_labels(m, source)]
        for labels in series:
            for i in range(samples):
                ts = start + i * step
                if m.type == "counter":
                    lines.append(f"{family}_total{_fmt(labels)} {i * 10} {ts}")
                elif m.type == "gauge":
                    lines.append(f"{family}{_fmt(labels)} {1 if m.name == 'up' else 5} {ts}")
                else:
                    for le, n in (("0.1", i), ("1.0", i * 5), ("+Inf", i * 10)):
                        lines.append(f"{family}_bucket{_fmt(dict(labels, le=le))} {n} {ts}")
                    lines.append(f"{family}_sum{_fmt(labels)} {i * 3} {ts}")
                    lines.append(f"{family}_count{_fmt(labels)} {i * 10} {ts}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"
