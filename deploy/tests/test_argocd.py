"""The Argo CD app of apps: the parent syncs the children, each child
points at an existing overlay that its project allows, syncs automatically
with prune and self-heal, and sync waves order store before agents."""

from __future__ import annotations

import re
import subprocess
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


PINNED = re.compile(r"^([0-9a-f]{40}|v[0-9]+\.[0-9]+\.[0-9]+)$")


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(deploylib.REPO), *args], capture_output=True,
                          text=True, timeout=60, check=False)


def _commit(revision: str) -> str:
    proc = _git("rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    assert proc.returncode == 0, f"{revision} is not a commit or tag of this repository"
    return proc.stdout.strip()


def test_dev_follows_main_staging_and_prod_are_pinned(renders: dict[str, list[Obj]]) -> None:
    """Dev tracks main; staging and prod name a commit (40 hex digits) or a
    release tag, which exists here, holds their overlay, and is promoted in
    order: prod's revision is staging's or older, staging's is on the
    history of this checkout (a commit of main)."""
    apps = _apps(renders["argocd"])
    assert apps["larch-dev"].body["spec"]["source"]["targetRevision"] == "main"
    commits = {}
    for env in ("staging", "prod"):
        source = apps[f"larch-{env}"].body["spec"]["source"]
        revision = source["targetRevision"]
        assert PINNED.match(revision), f"larch-{env} follows {revision!r}, not a pinned revision"
        commits[env] = _commit(revision)
        tree = _git("ls-tree", "--name-only", commits[env], f"{source['path']}/kustomization.yaml")
        assert tree.stdout.strip() == f"{source['path']}/kustomization.yaml", (env, tree.stderr)
    assert _git("merge-base", "--is-ancestor", commits["prod"], commits["staging"]).returncode == 0, \
        "prod runs a revision staging has not run"
    assert _git("merge-base", "--is-ancestor", commits["staging"], "HEAD").returncode == 0, \
        "staging's revision is not in this history"


def test_pin_check_refuses_branches() -> None:
    for revision in ("main", "HEAD", "release-1", "a9e9885", "v1.2"):
        assert not PINNED.match(revision), revision
