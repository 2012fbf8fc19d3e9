"""The Dockerfiles (not built here: their base images come from registries
this machine does not reach) pass hadolint and the image rules: multi-stage,
a distroless static final image with no shell, a non-root numeric user, an
exec-form entrypoint, pinned base images, and a binary the workspace has."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

import deploylib

DOCKERFILES = sorted((deploylib.DEPLOY / "docker").glob("*.Dockerfile"))


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def workspace_binaries() -> dict[str, set[str]]:
    proc = subprocess.run(["cargo", "metadata", "--no-deps", "--format-version", "1",
                           "--offline"], capture_output=True, text=True, check=True,
                          cwd=deploylib.REPO, timeout=120)
    meta = json.loads(proc.stdout)
    return {p["name"]: {t["name"] for t in p["targets"] if "bin" in t["kind"]}
            for p in meta["packages"]}


def test_one_dockerfile_per_binary() -> None:
    binaries = {b for bins in workspace_binaries().values() for b in bins}
    shipped = {p.name.removesuffix(".Dockerfile") for p in DOCKERFILES}
    assert {"larch-store", "larch-agent", "larch"} <= binaries
    assert shipped == {"larch-store", "larch-agent", "larch"}
    for path in DOCKERFILES:
        assert path.with_name(path.name + ".dockerignore").exists(), path


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_clean(path: Path) -> None:
    proc = subprocess.run([deploylib.venv_bin("hadolint"), str(path)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_image_rules(path: Path) -> None:
    ins = instructions(path)
    froms = [i for i, (word, _) in enumerate(ins) if word == "FROM"]
    assert len(froms) >= 2, "multi-stage build"
    final = ins[froms[-1]:]
    base = final[0][1]
    assert base.startswith("gcr.io/distroless/static"), base
    for _, arg in (ins[i] for i in froms):
        image = arg.split()[0]
        tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
        assert tag and tag != "latest", f"unpinned base image {image}"
    words = [w for w, _ in final]
    assert "RUN" not in words and "SHELL" not in words, "the final image has no shell"
    user = [a for w, a in final if w == "USER"]
    assert user and re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", user[-1]), "numeric non-root user"
    entry = [a for w, a in final if w == "ENTRYPOINT"]
    assert entry and entry[-1].startswith("["), "exec-form ENTRYPOINT"
    binary = path.name.removesuffix(".Dockerfile")
    assert json.loads(entry[-1]) == [f"/usr/local/bin/{binary}"]
    build = " ".join(a for w, a in ins if w == "RUN")
    match = re.search(r"cargo build --release --locked -p (\S+) --bin (\S+)", build)
    assert match, "cargo build --release --locked -p <crate> --bin <binary>"
    crate, built = match.groups()
    assert built == binary
    assert binary in workspace_binaries()[crate]
