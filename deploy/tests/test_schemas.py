"""Every rendered object is valid against the Kubernetes OpenAPI schemas of
the oldest and newest supported versions, strictly (unknown fields fail),
with kubernetes-validate's Python API. Its command line exits 0 for kinds
it has no schema for; here a missing schema fails, except for the Argo CD
custom resources, allowed by name."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

import deploylib
from deploylib import Obj


def schema_problems(obj: Obj, version: str) -> list[str]:
    own = deploylib.custom_schema(str(obj.body.get("apiVersion")), obj.kind)
    if own is not None:
        import jsonschema

        validator = jsonschema.Draft7Validator(own)
        return [f"{obj}: {'.'.join(str(p) for p in e.path)}: {e.message}"
                for e in validator.iter_errors(obj.body)]
    try:
        kubernetes_validate.validate(obj.body, version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        key = (obj.body.get("apiVersion"), obj.kind)
        if key in deploylib.ALLOWED_WITHOUT_SCHEMA:
            return []
        return [f"{obj}: no schema for {key[0]} {key[1]} in Kubernetes {version}"]
    except kubernetes_validate.ValidationError as e:
        path = ".".join(str(p) for p in e.path)
        return [f"{obj}: Kubernetes {version}: {path}: {e.message}"]
    return []


@pytest.mark.parametrize("version", deploylib.KUBE_VERSIONS)
@pytest.mark.parametrize("render", ("helm-default", "helm-production", "helm-monitoring",
                                    "helm-scalable",
                                    "kustomize-dev",
                                    "kustomize-staging", "kustomize-prod", "argocd"))
def test_objects_valid_against_kubernetes_schemas(renders: dict[str, list[Obj]], render: str,
                                                  version: str) -> None:
    objs = renders[render]
    assert objs, f"{render} rendered nothing"
    problems = [p for obj in objs for p in schema_problems(obj, version)]
    assert not problems, "\n".join(problems)


def test_strict_validation_rejects_unknown_field(renders: dict[str, list[Obj]]) -> None:
    store = copy.deepcopy(next(o for o in renders["helm-default"] if o.kind == "StatefulSet"))
    store.body["spec"]["replica"] = 1
    problems = schema_problems(store, deploylib.KUBE_VERSIONS[0])
    assert problems and "replica" in problems[0]


def test_unknown_custom_resource_fails() -> None:
    probe = Obj("test", {"apiVersion": "monitoring.coreos.com/v1", "kind": "Probe",
                         "metadata": {"name": "x"}, "spec": {}})
    problems = schema_problems(probe, deploylib.KUBE_VERSIONS[0])
    assert problems and "no schema" in problems[0]


def test_operator_objects_are_checked_strictly(renders: dict[str, list[Obj]]) -> None:
    kinds = {o.kind for o in renders["helm-monitoring"]}
    assert {"ServiceMonitor", "PrometheusRule"} <= kinds
    monitor = copy.deepcopy(next(o for o in renders["helm-monitoring"]
                                 if o.kind == "ServiceMonitor"))
    monitor.body["spec"]["endpoints"][0]["intervall"] = "30s"
    problems = schema_problems(monitor, deploylib.KUBE_VERSIONS[0])
    assert problems and "intervall" in problems[0]
    rule = copy.deepcopy(next(o for o in renders["helm-monitoring"] if o.kind == "PrometheusRule"))
    rule.body["spec"]["groups"][0]["rules"][0]["for"] = "five minutes"
    assert schema_problems(rule, deploylib.KUBE_VERSIONS[0])
