"""Writes the files under deploy/ that are generated, or checks they are current.

    python deploy/tests/regenerate.py          # rewrite them
    python deploy/tests/regenerate.py --check  # exit 1 if any is stale

Generated files:
- deploy/kustomize/base/larch.yaml and base/config/{store,agent}.yaml: the
  Helm chart rendered with deploy/kustomize/base/values.yaml. The chart is
  the single source of the manifests; Kustomize users get exactly what Helm
  users get, without Helm. The two config files are split out so that the
  base's configMapGenerator (and overlays replacing them) give the ConfigMaps
  content-hash names, which restart the pods when a config changes.
- deploy/helm/larch/files/dashboards/*.json: the Grafana dashboards, from
  dashboards.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dashboards  # noqa: E402
import deploylib  # noqa: E402

HEADER = """\
# GENERATED from deploy/helm/larch with deploy/kustomize/base/values.yaml by
# deploy/tests/regenerate.py. Do not edit: change the chart or the values and
# run `scripts/validate-deploy --regenerate`.
"""

# ConfigMaps of the chart whose file goes to base/config/ instead of larch.yaml.
SPLIT_CONFIGS = {"larch-store-config": "store.yaml", "larch-agent-config": "agent.yaml"}


class _IndentedDumper(yaml.SafeDumper):
    """Indents block sequences under their key, as the hand-written YAML does."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
        return super().increase_indent(flow, False)


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> Any:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_IndentedDumper.add_representer(str, _str_presenter)


def dump_yaml(docs: list[dict[str, Any]]) -> str:
    return yaml.dump_all(docs, Dumper=_IndentedDumper, sort_keys=False, explicit_start=True,
                         width=1000)


def base_files() -> dict[Path, str]:
    values = deploylib.values_file(deploylib.BASE / "values.yaml")
    objs = deploylib.render_chart(values, "kustomize-base")
    docs = []
    files: dict[Path, str] = {}
    for obj in objs:
        split = SPLIT_CONFIGS.get(obj.name) if obj.kind == "ConfigMap" else None
        if split:
            files[deploylib.BASE / "config" / split] = HEADER + obj.body["data"][split]
        else:
            docs.append(obj.body)
    files[deploylib.BASE / "larch.yaml"] = HEADER + dump_yaml(docs)
    return files


def dashboard_files() -> dict[Path, str]:
    out = {}
    for name, board in dashboards.all_dashboards().items():
        out[deploylib.CHART / "files" / "dashboards" / f"{name}.json"] = (
            json.dumps(board, indent=2, sort_keys=False) + "\n")
    return out


def generated() -> dict[Path, str]:
    return {**base_files(), **dashboard_files()}


def stale() -> list[Path]:
    """Generated files whose committed content differs from a fresh render."""
    return [path for path, text in generated().items()
            if not path.exists() or path.read_text() != text]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args()
    if args.check:
        bad = stale()
        for path in bad:
            print(f"stale: {path.relative_to(deploylib.REPO)}", file=sys.stderr)
        return 1 if bad else 0
    # Dashboards first: the chart (and so the base) embeds them.
    for files in (dashboard_files, base_files):
        for path, text in files().items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(deploylib.REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
