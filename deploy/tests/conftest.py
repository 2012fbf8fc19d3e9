"""pytest setup of the deploy/ validation: puts this directory on sys.path
and renders everything once per session (deploylib.all_renders)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import deploylib  # noqa: E402


@pytest.fixture(scope="session")
def renders() -> dict[str, list[deploylib.Obj]]:
    return deploylib.all_renders()


def pytest_report_header() -> list[str]:
    return [f"deploy: {deploylib.DEPLOY}", f"kubernetes schemas: {', '.join(deploylib.KUBE_VERSIONS)}"]
