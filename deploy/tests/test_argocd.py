"""The Argo CD app of apps: the parent syncs the children, each child
points at an existing overlay that its project allows, syncs automatically
with prune and self-heal, and sync waves order store before agents."""

from __future__ import annotations

from pathlib import Path

import deploylib
from deploylib import Obj


def _apps(objs: list[Obj]) -> dict[str, Obj]:
    return {o.name: o for o in objs if o.kind == "Application"}


def test_parent_points_at_children(renders: dict[str, list[Obj]]) -> None:
    apps = _apps(renders["argocd"])
    parent = apps["larch"]
    path = parent.body["spec"]["source"]["path"]
    assert (deploylib.REPO / path).is_dir()
    children = deploylib.load_documents(
        "\n---\n".join(p.read_text() for p in sorted((deploylib.REPO / path).glob("*.yaml"))),
        path)
    names = {o.name for o in children if o.kind == "Application"}
    assert names == {f"larch-{env}" for env in deploylib.OVERLAYS}


def test_every_app_syncs_automatically(renders: dict[str, list[Obj]]) -> None:
    for app in _apps(renders["argocd"]).values():
        automated = app.body["spec"]["syncPolicy"]["automated"]
        assert automated == {"prune": True, "selfHeal": True}, app


def test_children_target_existing_overlays_allowed_by_project(
        renders: dict[str, list[Obj]]) -> None:
    objs = renders["argocd"]
    project = next(o for o in objs if o.kind == "AppProject")
    allowed_destinations = {(d["name"], d["namespace"]) for d in project.body["spec"]["destinations"]}
    allowed_cluster_kinds = {(k["group"], k["kind"])
                             for k in project.body["spec"]["clusterResourceWhitelist"]}
    waves = []
    for env in deploylib.OVERLAYS:
        app = _apps(objs)[f"larch-{env}"]
        spec = app.body["spec"]
        assert spec["project"] == project.name
        assert spec["source"]["repoURL"] in project.body["spec"]["sourceRepos"]
        overlay = deploylib.REPO / spec["source"]["path"]
        assert overlay == deploylib.KUSTOMIZE / "overlays" / env
        rendered = renders[f"kustomize-{env}"]
        for o in rendered:
            if o.namespace:
                assert (spec["destination"]["name"], o.namespace) in allowed_destinations, o
            else:
                group = o.body["apiVersion"].rpartition("/")[0]
                assert (group, o.kind) in allowed_cluster_kinds, o
        waves.append(int(app.body["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]))
    assert waves == sorted(waves) and len(set(waves)) == len(waves), "dev, staging, prod in order"


def _wave(o: Obj) -> int:
    return int((o.body["metadata"].get("annotations") or {})
               .get("argocd.argoproj.io/sync-wave", "0"))


def test_sync_waves_put_store_before_agents(renders: dict[str, list[Obj]]) -> None:
    for env in deploylib.OVERLAYS:
        objs = renders[f"kustomize-{env}"]
        store = next(o for o in objs if o.kind == "StatefulSet")
        agent = next(o for o in objs if o.kind == "DaemonSet")
        namespaces = [o for o in objs if o.kind == "Namespace"]
        assert _wave(store) < _wave(agent)
        assert all(_wave(n) < _wave(store) for n in namespaces)
        for o in objs:
            if o.kind in ("ResourceQuota", "LimitRange"):
                assert _wave(o) < _wave(store), o
            if o.namespace == agent.namespace and o.kind != "ResourceQuota" \
                    and o.kind != "LimitRange" and o.kind != "ConfigMap":
                assert _wave(o) == _wave(agent), o


def test_argocd_files_are_all_loaded() -> None:
    files = sorted(Path(deploylib.ARGOCD).rglob("*.yaml"))
    assert len(files) >= 5
