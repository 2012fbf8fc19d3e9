"""deploy/README.md's Sizing section and the resources the chart and the
overlays set cannot drift apart: the planning figures are read from the
section's first table, every row of its load tables is derived again from
them, and each row equals what the render it names gives the container
(requests, limits, volume, WAL bound)."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
import yaml

import deploylib
from deploylib import Obj

README = deploylib.DEPLOY / "README.md"
MIB = 2**20
GIB = 2**30

# The figures the section's planning table must give (the derivation below
# reads them by these names).
FIGURES = {
    "store_mbps_per_core_rf1", "store_mbps_per_core_rf3", "memory_fixed_mib",
    "memory_per_stream_kib", "memory_per_raw_byte_held", "max_chunk_age_s",
    "raw_mb_per_stream_held", "query_memory_mib_per_core", "memory_limit_extra_mib",
    "wal_bytes_per_raw_byte", "wal_segment_mib", "compression_ratio", "disk_headroom",
    "wal_outage_hours", "read_cache_headroom", "agent_mbps_per_core",
    "agent_memory_request_mib", "agent_memory_limit_mib",
}

UNITS = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
         "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity(value: Any) -> float:
    """A Kubernetes quantity (500m, 2, 1536Mi, 50Gi) or a store byte size
    (30GiB) as a number."""
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*?)B?", str(value).strip())
    assert match and match.group(2) in UNITS, f"not a quantity: {value!r}"
    return float(match.group(1)) * UNITS[match.group(2)]


def section() -> str:
    text = README.read_text()
    start = text.index("\n## Sizing\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table of `text`: rows of cells, header first (the
    separator row dropped)."""
    out: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                current.append(cells)
        elif current:
            out.append(current)
            current = []
    return out


def table_with(header_start: str) -> list[dict[str, str]]:
    """The section's table whose first header cell is `header_start`, as
    one dict per row keyed by the header."""
    found = [t for t in tables(section()) if t[0][0] == header_start]
    assert len(found) == 1, f"one table headed {header_start!r} in the Sizing section"
    header, *rows = found[0]
    assert rows, header_start
    for row in rows:
        assert len(row) == len(header), row
    return [dict(zip(header, row)) for row in rows]


def figures() -> dict[str, float]:
    """The planning figures: `name` in the first cell, the value leading
    the second."""
    out = {}
    for row in table_with("figure"):
        name = re.match(r"`([a-z0-9_]+)`", row["figure"])
        value = re.match(r"\*\*([0-9.,]+)", row["planning value"])
        assert name and value, row
        out[name.group(1)] = float(value.group(1).replace(",", ""))
    assert set(out) == FIGURES, set(out) ^ FIGURES
    return out


def cell(text: str) -> str:
    """A cell without the backticks that mark code."""
    return text.strip().strip("`")


def number(text: str) -> float:
    return float(cell(text).replace(",", ""))


def nearest(value: float, step: float) -> float:
    return max(step, round(value / step) * step)


def up(value: float, step: float) -> float:
    return math.ceil(value / step - 1e-9) * step


def mem_quantity(mib: float) -> str:
    return f"{int(mib)}Mi"


def cpu_quantity(cores: float) -> str:
    milli = round(cores * 1000)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def store_memory(f: dict[str, float], mbps: float, streams: float, views: int,
                 cpu_limit: float) -> tuple[float, float]:
    """(request, limit) in MiB of a store node taking `mbps` of raw lines,
    knowing `streams` streams `views` times (a write node's own ingester
    and its query side's view: 2)."""
    held_raw = min(mbps * 1e6 * f["max_chunk_age_s"],
                   streams * f["raw_mb_per_stream_held"] * 1e6)
    need = (f["memory_fixed_mib"]
            + views * streams * f["memory_per_stream_kib"] / 1024
            + held_raw * f["memory_per_raw_byte_held"] / MIB
            + f["query_memory_mib_per_core"] * cpu_limit)
    request = up(need, 256)
    return request, request + f["memory_limit_extra_mib"]


def cpu(ingest_cores: float, query_cores: float) -> tuple[float, float]:
    request = nearest(ingest_cores + query_cores, 0.25)
    return request, max(2 * request, 2.0)


def wal_bytes(f: dict[str, float], mbps: float) -> float:
    return (mbps * 1e6 * f["max_chunk_age_s"] * f["wal_bytes_per_raw_byte"]
            + f["wal_segment_mib"] * MIB)


def derive_store(f: dict[str, float], row: dict[str, str]) -> dict[str, str]:
    mbps = number(row["ingest MB/s"])
    streams = number(row["streams"])
    days = number(row["retention days"])
    cpu_request, cpu_limit = cpu(mbps / f["store_mbps_per_core_rf1"], number(row["query cores"]))
    mem_request, mem_limit = store_memory(f, mbps, streams, 1, cpu_limit)
    chunks = mbps * 1e6 * 86400 * days / f["compression_ratio"]
    volume = up((chunks + wal_bytes(f, mbps)) * f["disk_headroom"] / GIB, 10)
    return {"CPU request": cpu_quantity(cpu_request), "CPU limit": cpu_quantity(cpu_limit),
            "memory request": mem_quantity(mem_request), "memory limit": mem_quantity(mem_limit),
            "volume": f"{int(volume)}Gi"}


def derive_role(f: dict[str, float], row: dict[str, str]) -> dict[str, str]:
    role = cell(row["role"])
    query_cores = number(row["query cores"])
    streams = number(row["streams"])
    cache = quantity(cell(row["cache"]))
    if role == "write":
        mbps = number(row["ingest MB/s"])
        rf = number(row["replication factor"])
        nodes = number(row["nodes"])
        assert rf == 3, "the planning figures measure RF 3 only"
        cpu_request, cpu_limit = cpu(mbps / f["store_mbps_per_core_rf3"] / nodes, query_cores)
        node_mbps = mbps * rf / nodes
        node_streams = streams * rf / nodes
        mem_request, mem_limit = store_memory(f, node_mbps, node_streams, 2, cpu_limit)
        outage = node_mbps * 1e6 * f["wal_bytes_per_raw_byte"] * f["wal_outage_hours"] * 3600
        wal_bound = up((wal_bytes(f, node_mbps) + outage) / GIB, 10)
        volume = up((wal_bound * GIB + cache) * f["disk_headroom"] / GIB, 10)
        return {"CPU request": cpu_quantity(cpu_request), "CPU limit": cpu_quantity(cpu_limit),
                "memory request": mem_quantity(mem_request),
                "memory limit": mem_quantity(mem_limit),
                "WAL bound": f"{int(wal_bound)}GiB", "volume": f"{int(volume)}Gi"}
    assert role == "read", role
    cpu_request, cpu_limit = cpu(0.0, query_cores)
    mem_request, mem_limit = store_memory(f, 0.0, streams, 1, cpu_limit)
    volume = up(cache * f["read_cache_headroom"] / GIB, 1)
    return {"CPU request": cpu_quantity(cpu_request), "CPU limit": cpu_quantity(cpu_limit),
            "memory request": mem_quantity(mem_request), "memory limit": mem_quantity(mem_limit),
            "WAL bound": "—", "volume": f"{int(volume)}Gi"}


def derive_agent(f: dict[str, float], row: dict[str, str]) -> dict[str, str]:
    return {"CPU request": cpu_quantity(number(row["MB/s per node"]) / f["agent_mbps_per_core"]),
            "CPU limit": cpu_quantity(number(row["catching up, MB/s"]) / f["agent_mbps_per_core"]),
            "memory request": mem_quantity(f["agent_memory_request_mib"]),
            "memory limit": mem_quantity(f["agent_memory_limit_mib"])}


# --- the tables follow from the planning figures --------------------------------


def _same(row: dict[str, str], derived: dict[str, str]) -> None:
    for key, value in derived.items():
        assert cell(row[key]) == value, (
            f"{row}: {key} is {row[key]}, the planning figures give {value}")


def test_store_rows_follow_from_the_figures() -> None:
    f = figures()
    for row in table_with("values"):
        _same(row, derive_store(f, row))


def test_role_rows_follow_from_the_figures() -> None:
    f = figures()
    rows = table_with("role")
    assert [cell(r["role"]) for r in rows] == ["write", "read", "backend"]
    for row in rows[:2]:
        _same(row, derive_role(f, row))


def test_agent_rows_follow_from_the_figures() -> None:
    f = figures()
    for row in table_with("agents of"):
        _same(row, derive_agent(f, row))


def test_worked_example_follows_from_the_figures() -> None:
    """The example's figures, derived the same way (no rounding to the
    chart's steps: they are the sums the text shows)."""
    f = figures()
    text = section()
    mbps, streams, days = 50, 20_000, 30
    rf1_cores = mbps / f["store_mbps_per_core_rf1"]
    rf3_cores = mbps / f["store_mbps_per_core_rf3"]
    held = min(mbps * 1e6 * f["max_chunk_age_s"], streams * f["raw_mb_per_stream_held"] * 1e6)
    held_gib = held * f["memory_per_raw_byte_held"] / GIB
    chunks_tb = mbps * 1e6 * 86400 * days / f["compression_ratio"] / 1e12
    wal_gb = wal_bytes(f, mbps) / 1e9
    for shown in (f"{rf1_cores:.1f} cores", f"{rf3_cores:.0f} cores", f"{held_gib:.0f} GiB",
                  f"{chunks_tb:.1f} TB", f"{wal_gb:.0f} GB"):
        assert shown in text, f"the worked example should show {shown}"


# --- the renders carry the tables' figures ----------------------------------------

SCALABLE_DEFAULTS = {
    "deploymentMode": "SimpleScalable",
    "store": {"objectStorage": {"backend": "s3", "s3": {"bucket": "larch"}},
              "networkPolicy": {"egress": {"objectStorage": {
                  "peers": [{"ipBlock": {"cidr": "192.0.2.0/24"}}]}}}},
}

RENDERS = {
    "`values.yaml`": "helm-default",
    "`values-production.yaml`": "helm-production",
    "`overlays/dev`": "kustomize-dev",
    "`overlays/staging`": "kustomize-staging",
    "`overlays/prod`": "kustomize-prod",
}


def _container(objs: list[Obj], kind: str, name: str, container: str) -> tuple[Obj, dict[str, Any]]:
    found = [o for o in objs if o.kind == kind and o.name == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)}"
    spec = deploylib.pod_spec(found[0])
    assert spec is not None
    (c,) = [c for c in spec["containers"] if c["name"] == container]
    return found[0], c


def _resources_match(obj: Obj, c: dict[str, Any], row: dict[str, str]) -> None:
    res = c["resources"]
    for key, (kind, resource) in {"CPU request": ("requests", "cpu"),
                                   "CPU limit": ("limits", "cpu"),
                                   "memory request": ("requests", "memory"),
                                   "memory limit": ("limits", "memory")}.items():
        assert quantity(res[kind][resource]) == quantity(cell(row[key])), (
            f"{obj}: {kind}.{resource} is {res[kind][resource]}, deploy/README.md's Sizing "
            f"table gives {row[key]}")


def _claim_size(obj: Obj) -> float:
    (claim,) = obj.body["spec"]["volumeClaimTemplates"]
    return quantity(claim["spec"]["resources"]["requests"]["storage"])


def _empty_dir_limit(obj: Obj) -> float:
    spec = deploylib.pod_spec(obj)
    assert spec is not None
    (volume,) = [v for v in spec["volumes"] if v["name"] == "data"]
    return quantity(volume["emptyDir"]["sizeLimit"])


def _role_config(objs: list[Obj], role: str) -> dict[str, Any]:
    (cm,) = [o for o in objs if o.kind == "ConfigMap" and o.name == f"larch-{role}-config"]
    loaded: dict[str, Any] = yaml.safe_load(cm.body["data"]["store.yaml"])
    return loaded


def test_store_and_agents_carry_the_table(renders: dict[str, list[Obj]]) -> None:
    stores = {r["values"]: r for r in table_with("values")}
    agents = {r["agents of"]: r for r in table_with("agents of")}
    assert set(stores) == set(agents) == set(RENDERS)
    for where, render in RENDERS.items():
        objs = renders[render]
        sts, store = _container(objs, "StatefulSet", "larch-store", "store")
        _resources_match(sts, store, stores[where])
        assert _claim_size(sts) == quantity(cell(stores[where]["volume"])), (
            f"{sts}: volume, deploy/README.md gives {stores[where]['volume']}")
        ds, agent = _container(objs, "DaemonSet", "larch-agent", "agent")
        _resources_match(ds, agent, agents[where])


def test_roles_carry_the_table() -> None:
    objs = deploylib.render_chart(SCALABLE_DEFAULTS, "helm-scalable-defaults")
    rows = {cell(r["role"]): r for r in table_with("role")}
    cache = quantity(deploylib.values_file(deploylib.CHART / "values.yaml")
                     ["store"]["objectStorage"]["cacheSize"])
    for role, kind in (("write", "StatefulSet"), ("read", "Deployment"),
                       ("backend", "StatefulSet")):
        obj, c = _container(objs, kind, f"larch-{role}", "store")
        _resources_match(obj, c, rows[role])
        if role != "backend":
            assert quantity(cell(rows[role]["cache"])) == cache, role
    write, _ = _container(objs, "StatefulSet", "larch-write", "store")
    assert _claim_size(write) == quantity(cell(rows["write"]["volume"]))
    assert quantity(_role_config(objs, "write")["wal"]["max_size"]) == quantity(
        cell(rows["write"]["WAL bound"]))
    read, _ = _container(objs, "Deployment", "larch-read", "store")
    assert _empty_dir_limit(read) == quantity(cell(rows["read"]["volume"]))
    backend, _ = _container(objs, "StatefulSet", "larch-backend", "store")
    assert _empty_dir_limit(backend) == quantity(cell(rows["backend"]["volume"]))


def test_the_scalable_example_leaves_room_for_the_wal_and_the_cache(
        renders: dict[str, list[Obj]]) -> None:
    """The example's own volumes follow the section's rules: the write
    volume holds the WAL bound and the cache with the disk headroom, the
    read node's emptyDir the cache with its headroom."""
    f = figures()
    objs = renders["helm-scalable"]
    cfg = _role_config(objs, "write")
    cache = quantity(cfg["storage"]["cache"]["max_size"])
    wal = quantity(cfg["wal"]["max_size"])
    write, _ = _container(objs, "StatefulSet", "larch-write", "store")
    assert _claim_size(write) >= (wal + cache) * f["disk_headroom"]
    read, _ = _container(objs, "Deployment", "larch-read", "store")
    assert _empty_dir_limit(read) >= cache * f["read_cache_headroom"]


def test_a_drifted_row_or_value_is_caught() -> None:
    """The checks fail when a row no longer follows from the figures, and
    when a render no longer carries its row."""
    f = figures()
    row = next(r for r in table_with("values") if cell(r["values"]) == "values.yaml")
    # A quarter GiB off the row's request, whatever the row says.
    drifted = mem_quantity(quantity(cell(row["memory request"])) / MIB + 256)
    with pytest.raises(AssertionError):
        _same({**row, "memory request": drifted}, derive_store(f, row))
    doubled = {**f, "memory_per_raw_byte_held": 2 * f["memory_per_raw_byte_held"]}
    with pytest.raises(AssertionError):
        _same(row, derive_store(doubled, row))
    objs = deploylib.render_chart({"store": {"resources": {"requests": {"memory": drifted}}}},
                                  "drifted")
    sts, store = _container(objs, "StatefulSet", "larch-store", "store")
    with pytest.raises(AssertionError):
        _resources_match(sts, store, row)
