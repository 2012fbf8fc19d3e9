"""`larch-store --check-config` and `larch-agent --check-config` accept the
configuration files the chart (default and production values) and every
overlay render, so a deployment never ships a config its binary refuses.

The binaries are the workspace's debug builds (scripts/validate-deploy
builds them). A binary that does not offer --check-config yet is reported
as skipped, with the reason, rather than passed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import deploylib

RENDERS = ("helm-default", "helm-production", "kustomize-dev", "kustomize-staging",
           "kustomize-prod")


def binary(name: str) -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", deploylib.REPO / "target"))
    path = target / "debug" / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `cargo build --workspace --bins`")
    return path


def supports_check_config(path: Path) -> bool:
    proc = subprocess.run([str(path), "--help"], capture_output=True, text=True, timeout=30,
                          check=False)
    return proc.returncode == 0 and "--check-config" in proc.stdout


@pytest.mark.parametrize("name,key", [("larch-store", "store.yaml"),
                                      ("larch-agent", "agent.yaml")])
@pytest.mark.parametrize("render", RENDERS)
def test_rendered_config_passes_check_config(renders: dict[str, list[deploylib.Obj]],
                                             tmp_path: Path, render: str, name: str,
                                             key: str) -> None:
    configs = deploylib.config_files(renders[render], key)
    assert len(configs) == 1, f"{render}: one {key} expected, found {len(configs)}"
    path = binary(name)
    if not supports_check_config(path):
        pytest.skip(f"{name} has no --check-config yet (its --help does not list it)")
    source, text = configs[0]
    config = tmp_path / key
    config.write_text(text)
    proc = subprocess.run([str(path), "--check-config", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, f"{source}:\n{proc.stdout}{proc.stderr}"
