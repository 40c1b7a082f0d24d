"""Issue 13, monitoring: every alert links its runbook section (the anchor exists in
docs/runbooks.md), and the dashboard says 0 instead of "No data" and shows only what needs
attention in its "not ok" panel. Queries are evaluated for real by promtool."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from symlinkd.cli import build_parser
from tests.deploy.manifests import DEPLOY, REPO
from tests.promtool import promtool_path

MONITORING = DEPLOY / "monitoring"
RUNBOOKS = REPO / "docs" / "runbooks.md"
RUNBOOK_BASE = "https://github.com/symlinkd/symlinkd/blob/main/docs/runbooks.md#"
GRAFANA = {"$__rate_interval": "5m", "$namespace": "media-stack"}
# Panels allowed to show "No data" on a symlinkd that has not finished a pass, and why.
MAY_BE_EMPTY = {
    "Mounts up": "no mount is known before the first probe",
    "Since last full pass": "a 0 would claim a pass just finished",
    "Version": "symlinkd_build_info exists from the start",
    "Links by verdict": "no link is judged before the first pass",
    "Mount state timeline": "no state before the first probe",
    "Pass duration": "no duration before the first pass",
}
LABELS = 'job="symlinkd", namespace="media-stack", instance="10.0.0.9:9090"'


def _alerts() -> list[dict[str, Any]]:
    spec = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())["spec"]
    return [r for g in spec["groups"] for r in g["rules"] if "alert" in r]


def _github_anchor(heading: str) -> str:
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def _runbook_sections() -> dict[str, str]:
    text = RUNBOOKS.read_text()
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    return {_github_anchor(parts[i]): parts[i + 1] for i in range(1, len(parts), 2)}


def test_every_alert_has_a_runbook_url_whose_anchor_exists() -> None:
    sections = _runbook_sections()
    for alert in _alerts():
        url = alert["annotations"].get("runbook_url", "")
        assert url.startswith(RUNBOOK_BASE), f"{alert['alert']}: runbook_url {url!r}"
        anchor = url.removeprefix(RUNBOOK_BASE)
        assert anchor in sections, f"{alert['alert']}: no section #{anchor} in docs/runbooks.md"
    # and no section for an alert that does not exist
    assert set(sections) == {_github_anchor(a["alert"]) for a in _alerts()}


@pytest.mark.parametrize("section", sorted(_runbook_sections()))
def test_each_runbook_says_what_it_means_how_to_confirm_what_to_do(section: str) -> None:
    text = _runbook_sections()[section]
    for part in ("**Means**", "**Confirm**", "**Do**"):
        assert part in text, f"#{section}: no {part}"
    assert re.search(r"kubectl -n media-stack|sd (scan|history|undo)", text), section


def test_runbooks_use_only_commands_the_cli_has() -> None:
    """Every `sd ...` line of a runbook parses with the real CLI parser (flags included)."""
    parser = build_parser()
    commands = re.findall(r"\bsd ([^`\n#|]*)", RUNBOOKS.read_text())
    assert commands
    for command in commands:
        args = shlex.split(command.replace("RUN_ID", "20261206T000000Z-abcdef"))
        try:
            parser.parse_args(args)
        except SystemExit:
            pytest.fail(f"runbooks.md: `sd {command.strip()}` is not a valid symlinkd command")


def _panels() -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = json.loads(
        (MONITORING / "dashboards" / "symlinkd.json").read_text())["panels"]
    return panels


def _promql(expr: str) -> str:
    for variable, value in GRAFANA.items():
        expr = expr.replace(variable, value)
    return expr


def test_not_ok_panels_leave_out_ok_and_not_symlink_and_hide_zero_series() -> None:
    negative = [(p["title"], t["expr"]) for p in _panels() for t in p.get("targets", [])
                if re.search(r"verdict!", t["expr"])]
    assert negative, "no 'not ok' panel"
    for title, expr in negative:
        assert 'verdict!~"ok|not_symlink"' in expr, title
        assert re.search(r"\) > 0\b", expr), f"{title}: zero series not hidden"


def test_there_is_a_mount_state_timeline() -> None:
    timelines = [p for p in _panels() if p["type"] == "state-timeline"
                 and any("symlinkd_mount_state" in t["expr"] for t in p["targets"])]
    assert timelines
    texts = {o["text"] for m in timelines[0]["fieldConfig"]["defaults"]["mappings"]
             for o in m["options"].values()}
    assert texts == {"ok", "degraded", "hung", "down"}


def _expected_zero(expr: str) -> str:
    """The labels of the 0 a query falls back to: '{}' for vector(0), else label_replace's."""
    found = re.search(r'label_replace\(vector\(0\), "(\w+)", "([^"]*)"', expr)
    return f'{{{found[1]}="{found[2]}"}}' if found else "{}"


Case = tuple[str, list[dict[str, Any]]]


def _promtool_eval(tmp_path: Path, series: list[tuple[str, str]],
                   cases: list[Case]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "none.yaml").write_text("groups: []\n")
    test = {"rule_files": ["none.yaml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in series],
        "promql_expr_test": [{"expr": e, "eval_time": "10m", "exp_samples": samples}
                             for e, samples in cases]}]}
    (tmp_path / "eval.test.yaml").write_text(yaml.safe_dump(test, sort_keys=False))
    return subprocess.run([promtool_path(), "test", "rules", "eval.test.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)


def test_panels_that_can_be_empty_show_zero_on_a_fresh_symlinkd(tmp_path: Path) -> None:
    """A symlinkd that has not broken, refused, crashed or notified anything yet: every panel
    outside MAY_BE_EMPTY evaluates to one 0, not to nothing ("No data")."""
    cases = [(_promql(t["expr"]), [{"labels": _expected_zero(t["expr"]), "value": 0}])
             for p in _panels() if p["title"] not in MAY_BE_EMPTY for t in p.get("targets", [])
             if "symlinkd_scan_duration_seconds_count" not in t["expr"]]  # passes: see above
    assert len(cases) >= 6
    fresh = [(f'symlinkd_build_info{{{LABELS}, version="0.1.0"}}', "1x15"),
             (f'symlinkd_links{{{LABELS}, mount="zurg", verdict="ok"}}', "100x15"),
             (f'symlinkd_links{{{LABELS}, mount="zurg", verdict="not_symlink"}}', "4x15"),
             (f'symlinkd_links{{{LABELS}, mount="zurg", verdict="dangling"}}', "0x15")]
    done = _promtool_eval(tmp_path, fresh, cases)
    assert done.returncode == 0, done.stdout + done.stderr


def test_not_ok_panel_shows_only_what_is_broken(tmp_path: Path) -> None:
    expr = next(_promql(t["expr"]) for p in _panels() for t in p.get("targets", [])
                if 'verdict!~"ok|not_symlink"' in t["expr"])
    series = [(f'symlinkd_links{{{LABELS}, mount="zurg", verdict="ok"}}', "100x15"),
              (f'symlinkd_links{{{LABELS}, mount="zurg", verdict="not_symlink"}}', "4x15"),
              (f'symlinkd_links{{{LABELS}, mount="zurg", verdict="loop"}}', "0x15"),
              (f'symlinkd_links{{{LABELS}, mount="torbox", verdict="dangling"}}', "3x15")]
    done = _promtool_eval(tmp_path, series, [
        (expr, [{"labels": '{mount="torbox", verdict="dangling"}', "value": 3}])])
    assert done.returncode == 0, done.stdout + done.stderr


def test_mount_state_timeline_is_one_row_per_mount_with_its_state(tmp_path: Path) -> None:
    expr = next(_promql(t["expr"]) for p in _panels() if p["type"] == "state-timeline"
                for t in p["targets"])
    series = [(f'symlinkd_mount_state{{{LABELS}, mount="zurg", state="{s}"}}', v)
              for s, v in (("ok", "1x15"), ("down", "0x15"), ("hung", "0x15"))]
    series += [(f'symlinkd_mount_state{{{LABELS}, mount="torbox", state="{s}"}}', v)
               for s, v in (("ok", "0x15"), ("hung", "1x15"), ("degraded", "0x15"))]
    done = _promtool_eval(tmp_path, series, [(expr, [{"labels": '{mount="zurg"}', "value": 0},
                                                     {"labels": '{mount="torbox"}', "value": 2}])])
    assert done.returncode == 0, done.stdout + done.stderr
