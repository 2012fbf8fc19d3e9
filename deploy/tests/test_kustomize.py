"""The Kustomize base is the chart's current render, and each overlay's
resources fit the ResourceQuota and LimitRange it declares."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

import deploylib
import regenerate
from deploylib import Obj

UNITS = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
         "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity(value: Any) -> float:
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value))
    assert match and match.group(2) in UNITS, f"not a quantity: {value!r}"
    return float(match.group(1)) * UNITS[match.group(2)]


def duration_hours(value: str) -> float:
    match = re.fullmatch(r"(\d+)(h|m|s)", value)
    assert match, value
    return int(match.group(1)) / {"h": 1, "m": 60, "s": 3600}[match.group(2)]


def test_generated_files_are_current() -> None:
    stale = [str(p.relative_to(deploylib.REPO)) for p in regenerate.stale()]
    assert not stale, ("generated files are stale; run `scripts/validate-deploy --regenerate`: "
                       + ", ".join(stale))


def _containers(objs: list[Obj]) -> list[tuple[Obj, dict[str, Any]]]:
    out = []
    for o in objs:
        spec = deploylib.pod_spec(o)
        if spec is not None:
            out.extend((o, c) for c in spec["containers"])
    return out


@pytest.mark.parametrize("env", deploylib.OVERLAYS)
def test_containers_fit_limit_ranges(renders: dict[str, list[Obj]], env: str) -> None:
    objs = renders[f"kustomize-{env}"]
    ranges = {o.namespace: o for o in objs if o.kind == "LimitRange"}
    quotas = {o.namespace: o for o in objs if o.kind == "ResourceQuota"}
    assert set(ranges) == set(quotas) == {o.name for o in objs if o.kind == "Namespace"}
    for o, c in _containers(objs):
        limits = next(item for item in ranges[o.namespace].body["spec"]["limits"]
                      if item["type"] == "Container")
        for resource in ("cpu", "memory"):
            assert quantity(c["resources"]["limits"][resource]) <= quantity(
                limits["max"][resource]), f"{o} {resource} above LimitRange max"
            assert quantity(c["resources"]["requests"][resource]) <= quantity(
                c["resources"]["limits"][resource]), f"{o} {resource} request above limit"


@pytest.mark.parametrize("env", deploylib.OVERLAYS)
def test_store_fits_quota_and_agents_fit_the_planned_nodes(renders: dict[str, list[Obj]],
                                                           env: str) -> None:
    objs = renders[f"kustomize-{env}"]
    quotas = {o.namespace: o.body["spec"]["hard"] for o in objs if o.kind == "ResourceQuota"}
    for o, c in _containers(objs):
        hard = quotas[o.namespace]
        pods = 1 if o.kind == "StatefulSet" else int(hard["pods"])
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                need = quantity(c["resources"][kind][resource]) * pods
                assert need <= quantity(hard[f"{kind}.{resource}"]) * 1.0001, (
                    f"{o}: {pods} pods need {kind}.{resource} {need}, quota "
                    f"{hard[f'{kind}.{resource}']}")
    sts = next(o for o in objs if o.kind == "StatefulSet")
    size = sts.body["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    pvc_max = next(item for r in objs if r.kind == "LimitRange" and r.namespace == sts.namespace
                   for item in r.body["spec"]["limits"] if item["type"] == "PersistentVolumeClaim")
    assert quantity(size) <= quantity(pvc_max["max"]["storage"])
    assert quantity(size) <= quantity(quotas[sts.namespace]["requests.storage"])


def test_overlays_differ_in_retention_and_size(renders: dict[str, list[Obj]]) -> None:
    retention = []
    sizes = []
    for env in deploylib.OVERLAYS:
        objs = renders[f"kustomize-{env}"]
        (_, text), = deploylib.config_files(objs, "store.yaml")
        retention.append(duration_hours(yaml.safe_load(text)["limits"]["retention_period"]))
        sts = next(o for o in objs if o.kind == "StatefulSet")
        sizes.append(quantity(sts.body["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]
                              ["requests"]["storage"]))
        # The overlay's config replaced the base's, and the pods use it.
        cm = next(o for o in objs if o.kind == "ConfigMap" and o.name.startswith("larch-store-config"))
        volumes = sts.body["spec"]["template"]["spec"]["volumes"]
        assert {"name": "config", "configMap": {"name": cm.name}} in volumes
        assert cm.body["metadata"]["labels"]["larch.dev/environment"] == env
    assert retention == sorted(retention) and len(set(retention)) == 3, retention
    assert sizes == sorted(sizes) and len(set(sizes)) == 3, sizes


def test_overlay_store_configs_keep_the_base_keys(renders: dict[str, list[Obj]]) -> None:
    base = yaml.safe_load((deploylib.BASE / "config" / "store.yaml").read_text())

    def keys(d: dict[str, Any], prefix: str = "") -> set[str]:
        out = set()
        for k, v in d.items():
            out.add(prefix + k)
            if isinstance(v, dict):
                out |= keys(v, f"{prefix}{k}.")
        return out

    for env in deploylib.OVERLAYS:
        overlay = yaml.safe_load(
            (deploylib.KUSTOMIZE / "overlays" / env / "store.yaml").read_text())
        extra = {k for k in keys(overlay) - keys(base) if not k.startswith("overrides.")}
        assert keys(overlay) >= keys(base) and not extra, (env, extra, keys(base) - keys(overlay))
        for owned in ("http_addr", "grpc_addr", "data_dir"):
            assert overlay[owned] == base[owned], (env, owned)
