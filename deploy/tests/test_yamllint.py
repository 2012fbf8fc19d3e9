"""yamllint is clean (warnings included) on every YAML file under deploy/
and on every rendered manifest."""

from __future__ import annotations

from pathlib import Path

import pytest
from yamllint import linter
from yamllint.config import YamlLintConfig

import deploylib

CONFIG_FILE = deploylib.DEPLOY / ".yamllint"


def _config() -> YamlLintConfig:
    return YamlLintConfig(file=str(CONFIG_FILE))


def _rendered_config() -> YamlLintConfig:
    # Rendered manifests embed the dashboards' JSON, whose PromQL lines are
    # long; every other rule applies.
    return YamlLintConfig(f"extends: {CONFIG_FILE}\nrules:\n  line-length: disable\n")


def lint(text: str, name: str, config: YamlLintConfig, path: str | None = None) -> list[str]:
    """Problems of `text`; `path` (relative to deploy/) selects per-file rules."""
    return [f"{name}:{p.line}:{p.column}: [{p.level}] {p.desc} ({p.rule})"
            for p in linter.run(text, config, path)]


def source_files() -> list[Path]:
    config = _config()
    files = sorted(p for pattern in ("*.yaml", "*.yml") for p in deploylib.DEPLOY.rglob(pattern))
    return [p for p in files
            if not config.is_file_ignored(str(p.relative_to(deploylib.DEPLOY)))]


def test_sources_are_lint_clean() -> None:
    config = _config()
    files = source_files()
    assert len(files) > 20
    assert not any("templates" in p.parts for p in files)
    problems = [p for f in files
                for p in lint(f.read_text(), str(f.relative_to(deploylib.REPO)), config,
                              str(f.relative_to(deploylib.DEPLOY)))]
    assert not problems, "\n".join(problems)


def test_rendered_chart_is_lint_clean() -> None:
    config = _rendered_config()
    problems = []
    for values_name in ("default", "production", "scalable"):
        values = ({} if values_name == "default"
                  else deploylib.scalable_values() if values_name == "scalable"
                  else deploylib.values_file(deploylib.CHART / "values-production.yaml"))
        for path, text in deploylib.render_chart_text(values).items():
            if path.endswith(".yaml") and text.strip():
                problems += lint(text, f"{values_name}:{path}", config)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("env", deploylib.OVERLAYS)
def test_rendered_overlay_is_lint_clean(env: str) -> None:
    text = deploylib.kustomize_text(deploylib.KUSTOMIZE / "overlays" / env)
    problems = lint(text, f"kustomize-{env}", _rendered_config())
    assert not problems, "\n".join(problems)


def test_linter_reports_problems() -> None:
    problems = lint("a: 1\na: 2\nb:   [1,2]  \n", "bad.yaml", _config())
    assert any("duplication of key" in p for p in problems)
    assert any("trailing spaces" in p for p in problems)
