"""checkov (Kubernetes framework) on what each overlay renders: nothing fails, and every check
skipped is skipped on its resource with a written reason (annotation checkov.io/skipN)."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import DEPLOY, OVERLAYS, rendered

# checkov lives in its own venv (its pins clash with ours): .ci/deploy-tools.sh
CANDIDATES = [os.environ.get("CHECKOV", ""),
              os.path.join(os.environ.get("CHECKOV_VENV", "/opt/checkov-venv"), "bin", "checkov"),
              shutil.which("checkov") or ""]


def _checkov() -> str:
    for candidate in CANDIDATES:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip("checkov missing: run .ci/deploy-tools.sh (installs it into /opt/checkov-venv)")


@functools.cache
def _scan(directory: str) -> dict[str, Any]:
    done = subprocess.run(
        [_checkov(), "--directory", directory, "--framework", "kubernetes", "--skip-download",
         "--output", "json", "--compact"],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
    )
    # exit 1 = failed checks (reported below); anything else with no JSON is checkov breaking
    try:
        report = json.loads(done.stdout)
    except ValueError:
        raise AssertionError(f"checkov failed ({done.returncode}): {done.stderr[-2000:]}") from None
    reports = report if isinstance(report, list) else [report]
    return {
        "failed": [c for r in reports for c in r["results"].get("failed_checks", [])],
        "skipped": [c for r in reports for c in r["results"].get("skipped_checks", [])],
        "passed": sum(r["summary"]["passed"] for r in reports),
        "resources": sum(r["summary"]["resource_count"] for r in reports),
    }


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = Path(tmp_path_factory.mktemp("checkov"))
    for overlay in OVERLAYS:
        name = overlay.replace("/", "-") + ".yaml"
        (directory / name).write_text(yaml.safe_dump_all(list(rendered(overlay))))
    for app in sorted((DEPLOY / "argocd").glob("*.yaml")):
        (directory / f"argocd-{app.name}").write_text(app.read_text())
    return _scan(str(directory))


def test_checkov_finds_nothing(scan: dict[str, Any]) -> None:
    assert scan["resources"] > 80 and scan["passed"] > 1000
    assert [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in scan["failed"]] == []


def test_every_skip_has_a_reason(scan: dict[str, Any]) -> None:
    assert scan["skipped"]
    thin = [f"{c['check_id']} {c['resource']}" for c in scan["skipped"]
            if len((c["check_result"].get("suppress_comment") or "").split()) < 4]
    assert thin == []


def test_checkov_would_catch_a_privileged_app(tmp_path: Path) -> None:
    """The scan is live: an unprivileged-by-design container turned privileged fails it."""
    docs = [d for d in rendered("overlays/kubernetes") if d["kind"] == "Deployment"
            and d["metadata"]["name"] == "overseerr"]
    broken = yaml.safe_load(yaml.safe_dump(docs[0]))
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken))
    failed = {c["check_id"] for c in _scan(str(tmp_path))["failed"]}
    assert "CKV_K8S_16" in failed
