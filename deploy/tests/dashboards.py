"""The Grafana dashboards of Larch, as code.

regenerate.py writes them to deploy/helm/larch/files/dashboards/*.json
(shipped by the chart's dashboard ConfigMap and usable with file
provisioning); test_monitoring.py checks that every query parses in a real
Prometheus and returns series for the metrics listed in deploy/README.md.

Every dashboard has the variables `datasource` (Prometheus), `loki` (a Larch
data source, for log panels) and `namespace`. No query depends on the scrape
job's name, which differs between deploy/prometheus/prometheus.yml, the
Prometheus Operator's monitors and a team's own scrape configuration:
Larch's own metrics are told apart by their names (`larch_agent_*` is the
agent's, served by an embedded agent too; the rest the store's, the ruler's
included), and the series every process serves alike (`up`, `process_*`)
by the `container` label (`store`, `agent`) that the shipped scrape job and
the operator set, as cAdvisor's series carry it.
"""

from __future__ import annotations

from typing import Any

PROM = {"type": "prometheus", "uid": "${datasource}"}
LOKI = {"type": "loki", "uid": "${loki}"}
# Metrics only the store (or only the agent) serves: the namespace alone.
STORE = 'namespace=~"$namespace"'
AGENT = 'namespace=~"$namespace"'
PUSH_ROUTES = 'route=~"loki_api_v1_push|api_prom_push|otlp_v1_logs|logproto_Pusher_Push"'
# HTTP 5xx, and failed gRPC pushes (their status_code is "error").
ERRORS = 'status_code=~"5..|error"'
# Series every process serves alike (`up`, `process_*`), and container
# metrics from the kubelet (cAdvisor).
STORE_CONTAINER = 'namespace=~"$namespace", container="store"'
AGENT_CONTAINER = 'namespace=~"$namespace", container="agent"'
QUERY_ROUTES = 'route=~"loki_api_v1_query_range|loki_api_v1_query|loki_api_v1_tail"'


class _Layout:
    """Places panels left to right on a 24-column grid, wrapping rows."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.row_height = 0
        self.next_id = 1

    def place(self, panel: dict[str, Any], w: int, h: int) -> dict[str, Any]:
        if self.x + w > 24:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        panel["id"] = self.next_id
        self.next_id += 1
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_height = max(self.row_height, h)
        return panel

    def row(self, title: str) -> dict[str, Any]:
        if self.x:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        panel = self.place({"type": "row", "title": title, "collapsed": False, "panels": []},
                           24, 1)
        self.x, self.y, self.row_height = 0, self.y + 1, 0
        return panel


def _targets(queries: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [{"datasource": PROM, "expr": expr, "legendFormat": legend, "refId": chr(65 + i),
             "range": True}
            for i, (expr, legend) in enumerate(queries)]


def quantiles(metric: str, selector: str, by: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """p99 and p50 queries (with legends) of histogram `metric`, per `by`."""
    group = ", ".join(("le", *by))
    legend = "".join(f" {{{{{label}}}}}" for label in by)
    return [(f"histogram_quantile({q}, sum by ({group}) "
             f"(rate({metric}_bucket{{{selector}}}[$__rate_interval])))", f"{name}{legend}")
            for q, name in (("0.99", "p99"), ("0.50", "p50"))]


def timeseries(title: str, queries: list[tuple[str, str]], unit: str,
               description: str) -> dict[str, Any]:
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": PROM,
        "targets": _targets(queries),
        "fieldConfig": {"defaults": {"unit": unit, "min": 0,
                                     "custom": {"fillOpacity": 10, "showPoints": "never"}},
                        "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
    }


def stat(title: str, expr: str, unit: str, description: str,
         thresholds: list[tuple[float | None, str]] | None = None) -> dict[str, Any]:
    steps = [{"color": color, "value": value}
             for value, color in (thresholds or [(None, "green")])]
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": PROM,
        "targets": _targets([(expr, "")]),
        "fieldConfig": {"defaults": {"unit": unit,
                                     "thresholds": {"mode": "absolute", "steps": steps}},
                        "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "value", "graphMode": "area"},
    }


def logs(title: str, expr: str, description: str) -> dict[str, Any]:
    return {
        "type": "logs",
        "title": title,
        "description": description,
        "datasource": LOKI,
        "targets": [{"datasource": LOKI, "expr": expr, "refId": "A", "queryType": "range"}],
        "options": {"showTime": True, "wrapLogMessage": True, "sortOrder": "Descending",
                    "enableLogDetails": True},
    }


def _variables() -> dict[str, Any]:
    return {"list": [
        {"name": "datasource", "label": "Prometheus", "type": "datasource",
         "query": "prometheus", "current": {}, "hide": 0, "refresh": 1},
        {"name": "loki", "label": "Logs", "type": "datasource", "query": "loki",
         "regex": "/Larch.*/", "current": {}, "hide": 0, "refresh": 1},
        {"name": "namespace", "label": "Namespace", "type": "query", "datasource": PROM,
         "query": {"query": 'label_values(larch_build_info, namespace)',
                   "refId": "ns"},
         "definition": 'label_values(larch_build_info, namespace)',
         "includeAll": True, "multi": True, "allValue": ".+", "current": {},
         "refresh": 2, "sort": 1, "hide": 0},
    ]}


def _dashboard(uid: str, title: str, description: str, panels: list[dict[str, Any]]
               ) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["larch"],
        "timezone": "browser",
        "editable": False,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "templating": _variables(),
        "annotations": {"list": []},
        "links": [{"title": "Larch", "type": "dashboards", "tags": ["larch"],
                   "asDropdown": True, "includeVars": True, "keepTime": True}],
        "panels": panels,
    }


def process_panels(lay: _Layout, selector: str, what: str) -> list[dict[str, Any]]:
    """CPU, memory and file descriptors as the process itself reports them
    (`process_*`, from /proc), per pod."""
    q = "$__rate_interval"
    return [
        lay.place(timeseries("Process CPU", [
            (f"sum by (pod) (rate(process_cpu_seconds_total{{{selector}}}[{q}]))", "{{pod}}")],
            "percentunit", f"CPU cores used by each {what} process (process_cpu_seconds_total)."), 8, 8),
        lay.place(timeseries("Process memory", [
            (f"sum by (pod) (process_resident_memory_bytes{{{selector}}})", "{{pod}}")],
            "bytes", f"Resident memory of each {what} process."), 8, 8),
        lay.place(timeseries("Open file descriptors", [
            (f"sum by (pod) (process_open_fds{{{selector}}})", "open {{pod}}"),
            (f"sum by (pod) (process_max_fds{{{selector}}})", "limit {{pod}}")],
            "short", f"File descriptors each {what} holds, and its limit."), 8, 8),
    ]


def overview() -> dict[str, Any]:
    lay = _Layout()
    p = [
        lay.place(stat("Stores up", f"sum(up{{{STORE_CONTAINER}}})", "none",
                       "Store targets Prometheus scrapes successfully.",
                       [(None, "red"), (1, "green")]), 4, 4),
        lay.place(stat("Agents up", f"sum(up{{{AGENT_CONTAINER}}})", "none",
                       "Agent targets (one per node) scraped successfully."), 4, 4),
        lay.place(stat("Ingest", f"sum(rate(larch_distributor_bytes_received_total{{{STORE}}}[$__rate_interval]))",
                       "Bps", "Log line bytes received by the stores."), 4, 4),
        lay.place(stat("Lines discarded", f"sum(rate(larch_discarded_entries_total{{{STORE}}}[$__rate_interval]))",
                       "short", "Lines the stores rejected (all reasons), per second.",
                       [(None, "green"), (0.001, "orange")]), 4, 4),
        lay.place(stat("Agent drops", f"sum(rate(larch_agent_dropped_entries_total{{{AGENT}}}[$__rate_interval]))",
                       "short", "Entries agents did not deliver (all reasons), per second.",
                       [(None, "green"), (0.001, "orange")]), 4, 4),
        lay.place(stat("Active streams", f"sum(larch_ingester_active_streams{{{STORE}}})", "short",
                       "Streams holding unflushed data in the stores."), 4, 4),
        lay.place(timeseries("Ingest by tenant", [
            (f"sum by (tenant) (rate(larch_distributor_bytes_received_total{{{STORE}}}[$__rate_interval]))",
             "{{tenant}}")], "Bps", "Received log line bytes per second, by tenant."), 12, 8),
        lay.place(timeseries("Agents: batched vs acknowledged", [
            (f"sum(rate(larch_agent_entries_total{{{AGENT}}}[$__rate_interval]))", "batched"),
            (f"sum(rate(larch_agent_sent_entries_total{{{AGENT}}}[$__rate_interval]))", "acknowledged")],
            "short", "Entries the agents batched and entries the store acknowledged, per "
                     "second; a lasting gap means deliveries fail or lag."), 12, 8),
        lay.place(timeseries("Request rate by route", [
            (f"sum by (route) (rate(larch_request_duration_seconds_count{{{STORE}}}[$__rate_interval]))",
             "{{route}}")], "reqps", "Store API requests per second."), 12, 8),
        lay.place(timeseries("Errors by route", [
            (f"sum by (route, status_code) (rate(larch_request_duration_seconds_count{{{STORE}, {ERRORS}}}[$__rate_interval]))",
             "{{route}} {{status_code}}")], "reqps", "Store requests answered with 5xx, and failed gRPC pushes."), 12, 8),
        lay.place(logs("Larch logs", '{namespace=~"$namespace", container=~"store|agent"}',
                       "The stores' and agents' own logs, from Larch itself."), 24, 10),
    ]
    return _dashboard("larch-overview", "Larch / Overview",
                      "Is the log pipeline healthy: ingest, errors, drops, agents.", p)


def store() -> dict[str, Any]:
    lay = _Layout()
    q = "$__rate_interval"
    p = [
        lay.row("Writes"),
        lay.place(timeseries("Push latency", [
            *quantiles("larch_request_duration_seconds", f"{STORE}, {PUSH_ROUTES}")],
            "s", "Push requests (HTTP, OTLP, gRPC), from receipt to acknowledgement (WAL on disk)."), 8, 8),
        lay.place(timeseries("Lines received", [
            (f"sum by (tenant) (rate(larch_distributor_lines_received_total{{{STORE}}}[{q}]))", "{{tenant}}")],
            "short", "Lines received per second (before validation), by tenant."), 8, 8),
        lay.place(timeseries("Discarded lines by reason", [
            (f"sum by (tenant, reason) (rate(larch_discarded_entries_total{{{STORE}}}[{q}]))",
             "{{tenant}} {{reason}}")],
            "short", "Lines rejected by validation and limits (rate_limited, line_too_long, ...)."), 8, 8),
        lay.place(timeseries("WAL commit latency", [
            *quantiles("larch_wal_commit_duration_seconds", STORE)],
            "s", "One write and fdatasync per group commit; pushes wait for it."), 8, 8),
        lay.place(timeseries("WAL writes", [
            (f"sum(rate(larch_wal_bytes_total{{{STORE}}}[{q}]))", "bytes/s"),
            (f"sum(increase(larch_wal_corruptions_total{{{STORE}}}[{q}]))", "corrupt records")],
            "Bps", "Bytes appended to the write-ahead log; corrupt records found on replay."), 8, 8),
        lay.place(timeseries("WAL group commits", [
            (f"histogram_quantile(0.50, sum by (le) (rate(larch_wal_group_requests_bucket{{{STORE}}}[{q}])))", "pushes per commit (p50)"),
            (f"sum(larch_wal_segments{{{STORE}}})", "segments on disk")],
            "short", "Pushes sharing one fsync; WAL segments not yet truncated."), 8, 8),
        lay.place(timeseries("Streams and duplicates", [
            (f"sum by (tenant) (larch_ingester_active_streams{{{STORE}}})", "streams {{tenant}}"),
            (f"sum by (tenant) (rate(larch_ingester_duplicate_entries_total{{{STORE}}}[{q}]))", "duplicates/s {{tenant}}")],
            "short", "Streams holding unflushed data; identical entries dropped (client retries)."), 8, 8),
        lay.place(timeseries("Chunks flushed", [
            (f"sum by (tenant) (rate(larch_ingester_chunks_flushed_total{{{STORE}}}[{q}]))", "{{tenant}}"),
            (f"sum(rate(larch_ingester_flush_failures_total{{{STORE}}}[{q}]))", "failures")],
            "short", "Chunks written per second, and failed writes (retried)."), 8, 8),
        lay.place(timeseries("Flush queue and chunk size", [
            (f"sum(larch_ingester_flush_queue_length{{{STORE}}})", "queued chunks"),
            (f"histogram_quantile(0.50, sum by (le) (rate(larch_ingester_chunk_size_bytes_bucket{{{STORE}}}[{q}])))", "chunk size p50 (bytes)")],
            "short", "Sealed chunks waiting to be written; size of written chunks."), 8, 8),
        lay.place(timeseries("Retention", [
            (f"sum by (tenant) (rate(larch_ingester_chunks_deleted_total{{{STORE}}}[{q}]))", "{{tenant}}")],
            "short", "Chunk files deleted by retention or compaction, per second."), 8, 8),
        lay.row("Reads"),
        lay.place(timeseries("Query latency", [
            *quantiles("larch_request_duration_seconds", f"{STORE}, {QUERY_ROUTES}", ("route",))],
            "s", "LogQL queries, by route."), 12, 8),
        lay.place(timeseries("Queries by status", [
            (f"sum by (route, status_code) (rate(larch_request_duration_seconds_count{{{STORE}, {QUERY_ROUTES}}}[{q}]))",
             "{{route}} {{status_code}}")],
            "reqps", "Query requests per second by route and status code (504: timeout)."), 12, 8),
        lay.row("Resources"),
        lay.place(timeseries("CPU", [
            (f"sum by (pod) (rate(container_cpu_usage_seconds_total{{{STORE_CONTAINER}}}[{q}]))", "{{pod}}")],
            "percentunit", "CPU cores used by each store container (cAdvisor)."), 8, 8),
        lay.place(timeseries("Memory", [
            (f"sum by (pod) (container_memory_working_set_bytes{{{STORE_CONTAINER}}})", "{{pod}}")],
            "bytes", "Working-set memory of each store container (cAdvisor)."), 8, 8),
        lay.place(timeseries("Volume used", [
            ('1 - sum by (persistentvolumeclaim) (kubelet_volume_stats_available_bytes{namespace=~"$namespace", persistentvolumeclaim=~"data-.*(store|write)-[0-9]+"}) / sum by (persistentvolumeclaim) (kubelet_volume_stats_capacity_bytes{namespace=~"$namespace", persistentvolumeclaim=~"data-.*(store|write)-[0-9]+"})',
             "{{persistentvolumeclaim}}")],
            "percentunit", "Share of the data volume (WAL, chunks, index) in use, from the kubelet."), 8, 8),
        *process_panels(lay, STORE_CONTAINER, "store"),
    ]
    return _dashboard("larch-store", "Larch / Store",
                      "Write path (push, WAL, head, flush), read path and resources of larch-store.", p)


def agent() -> dict[str, Any]:
    lay = _Layout()
    q = "$__rate_interval"
    p = [
        lay.place(timeseries("Files tailed", [
            (f"sum by (node) (larch_agent_files_tailed{{{AGENT}}})", "{{node}}")],
            "short", "Log files each agent is reading."), 8, 8),
        lay.place(timeseries("Read, batched, acknowledged", [
            (f"sum by (node) (rate(larch_agent_read_lines_total{{{AGENT}}}[{q}]))", "read {{node}}"),
            (f"sum by (node) (rate(larch_agent_entries_total{{{AGENT}}}[{q}]))", "batched {{node}}"),
            (f"sum by (node) (rate(larch_agent_sent_entries_total{{{AGENT}}}[{q}]))", "acknowledged {{node}}")],
            "short", "Lines read from files, entries batched (after joins and stages), entries "
                     "the store acknowledged, per node."), 8, 8),
        lay.place(timeseries("Dropped entries by reason", [
            (f"sum by (reason) (rate(larch_agent_dropped_entries_total{{{AGENT}}}[{q}]))", "{{reason}}")],
            "short", "Entries dropped by pipeline stages or rate limits, or rejected by the store."), 8, 8),
        lay.place(timeseries("Push latency", [
            *quantiles("larch_agent_request_duration_seconds", AGENT)],
            "s", "One push request, sent to answered."), 8, 8),
        lay.place(timeseries("Push outcomes and retries", [
            (f"sum by (status_code) (rate(larch_agent_request_duration_seconds_count{{{AGENT}}}[{q}]))", "{{status_code}}"),
            (f"sum(rate(larch_agent_batch_retries_total{{{AGENT}}}[{q}]))", "retries")],
            "reqps", "Pushes by outcome (HTTP or gRPC code, error, timeout) and retries."), 8, 8),
        lay.place(timeseries("Backlog", [
            (f"max by (node) (larch_agent_unread_bytes{{{AGENT}}})", "unread {{node}}"),
            (f"max by (node) (larch_agent_positions_lag_bytes{{{AGENT}}})", "unacknowledged {{node}}")],
            "bytes", "Bytes written to tailed files but not read yet (grows while the store is "
                     "unreachable: the files are the buffer), and bytes read but not yet "
                     "acknowledged."), 8, 8),
        lay.place(timeseries("Agents held back", [
            (f"sum(larch_agent_reading_paused{{{AGENT}}})", "paused")],
            "short", "Agents whose reading waits because the store takes batches slower than "
                     "they are made (back-pressure)."), 8, 8),
        lay.place(timeseries("CPU", [
            (f"sum by (pod) (rate(container_cpu_usage_seconds_total{{{AGENT_CONTAINER}}}[{q}]))", "{{pod}}")],
            "percentunit", "CPU cores used by each agent container (cAdvisor)."), 8, 8),
        lay.place(timeseries("Memory", [
            (f"sum by (pod) (container_memory_working_set_bytes{{{AGENT_CONTAINER}}})", "{{pod}}")],
            "bytes", "Working-set memory of each agent container (cAdvisor)."), 8, 8),
        *process_panels(lay, AGENT_CONTAINER, "agent"),
    ]
    return _dashboard("larch-agent", "Larch / Agent",
                      "larch-agent on every node: files, delivery, drops, lag, resources.", p)


def ruler() -> dict[str, Any]:
    lay = _Layout()
    q = "$__rate_interval"
    p = [
        lay.row("Rules"),
        lay.place(stat("Rule groups", f"sum(larch_ruler_rule_groups{{{STORE}}})", "short",
                       "Rule groups loaded, all tenants."), 6, 4),
        lay.place(stat("Rules", f"sum(larch_ruler_rules{{{STORE}}})", "short",
                       "Rules loaded, all tenants."), 6, 4),
        lay.place(stat("Firing alerts", f'sum(larch_ruler_alerts{{{STORE}, state="firing"}})', "short",
                       "Alerts firing now.", [(None, "green"), (1, "orange")]), 6, 4),
        lay.place(stat("Pending alerts", f'sum(larch_ruler_alerts{{{STORE}, state="pending"}})', "short",
                       "Alerts whose condition holds, not yet for their `for`."), 6, 4),
        lay.place(timeseries("Evaluations", [
            (f"sum by (tenant) (rate(larch_ruler_evaluations_total{{{STORE}}}[{q}]))", "{{tenant}}")],
            "short", "Rule group evaluations per second, by tenant."), 8, 8),
        lay.place(timeseries("Failures and missed evaluations", [
            (f"sum by (tenant) (rate(larch_ruler_evaluation_failures_total{{{STORE}}}[{q}]))", "failed {{tenant}}"),
            (f"sum by (tenant) (rate(larch_ruler_iterations_missed_total{{{STORE}}}[{q}]))", "missed {{tenant}}")],
            "short", "Rule evaluations that failed (see /prometheus/api/v1/rules for lastError) "
                     "and group evaluations skipped because the previous one ran past the "
                     "interval, per second."), 8, 8),
        lay.place(timeseries("Evaluation duration", [
            *quantiles("larch_ruler_evaluation_duration_seconds", STORE)],
            "s", "One group evaluation: every rule's LogQL query and the alert updates."), 8, 8),
        lay.place(timeseries("Alerts by state", [
            (f"sum by (state) (larch_ruler_alerts{{{STORE}}})", "{{state}}")],
            "short", "Pending and firing alerts of every rule."), 12, 8),
        lay.place(timeseries("Rules by tenant", [
            (f"sum by (tenant) (larch_ruler_rules{{{STORE}}})", "{{tenant}}")],
            "short", "Rules loaded per tenant."), 12, 8),
        lay.row("Alertmanager"),
        lay.place(timeseries("Alerts sent", [
            (f"sum by (alertmanager) (rate(larch_ruler_notifications_sent_total{{{STORE}}}[{q}]))", "sent {{alertmanager}}"),
            (f"sum by (alertmanager) (rate(larch_ruler_notification_errors_total{{{STORE}}}[{q}]))", "failed {{alertmanager}}"),
            (f"sum(rate(larch_ruler_notifications_dropped_total{{{STORE}}}[{q}]))", "dropped")],
            "short", "Alerts Alertmanager took, batches it did not take after retries, alerts "
                     "dropped from a full queue; per second."), 12, 8),
        lay.place(timeseries("Notification queue", [
            (f"sum(larch_ruler_notification_queue_length{{{STORE}}})", "queued")],
            "short", "Alerts waiting to be sent."), 12, 8),
        lay.row("Remote write"),
        lay.place(timeseries("Samples written", [
            (f"sum by (client) (rate(larch_ruler_remote_write_samples_sent_total{{{STORE}}}[{q}]))", "sent {{client}}"),
            (f"sum by (client, reason) (rate(larch_ruler_remote_write_samples_failed_total{{{STORE}}}[{q}]))", "failed {{client}} {{reason}}")],
            "short", "Recorded samples (and ALERTS series) the receiver took, and those dropped "
                     "(rejected, queue_full, shutdown); per second."), 12, 8),
        lay.place(timeseries("Queue and retries", [
            (f"sum by (client) (larch_ruler_remote_write_queue_length{{{STORE}}})", "queued {{client}}"),
            (f"sum by (client) (rate(larch_ruler_remote_write_retries_total{{{STORE}}}[{q}]))", "retries/s {{client}}")],
            "short", "Samples waiting to be written; requests retried after a failure."), 12, 8),
        lay.place(logs("Ruler logs", '{namespace=~"$namespace", container="store"} |~ "(?i)rule|alert|remote write"',
                       "The store's log lines about rules, alerts and remote write."), 24, 10),
    ]
    return _dashboard("larch-ruler", "Larch / Ruler",
                      "LogQL alerting and recording rules: evaluations, alerts, Alertmanager, remote write.", p)


def all_dashboards() -> dict[str, dict[str, Any]]:
    """File name (without .json) -> dashboard."""
    return {"larch-overview": overview(), "larch-store": store(), "larch-agent": agent(),
            "larch-ruler": ruler()}


def queries(board: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(panel title, datasource type, expression) of every query of a dashboard."""
    out = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["datasource"]["type"], target["expr"]))
    return out
