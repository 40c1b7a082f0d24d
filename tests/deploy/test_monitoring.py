"""Alerts and dashboard: promtool check/test rules pass, every alert has a unit test, every
dashboard query parses, and every metric they name is one symlinkd exports (from a real scrape
of symlinkd.metrics.Metrics)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from symlinkd.metrics import Metrics
from symlinkd.model import (
    EntryKind,
    Judgement,
    LinkFacts,
    MountHealth,
    MountState,
    Outcome,
    OutcomeResult,
    PlannedAction,
    Prune,
    PruneReason,
    Verdict,
)
from tests.deploy.manifests import DEPLOY, OVERLAYS, rendered
from tests.deploy.promql import metric_names
from tests.promtool import promtool_path

MONITORING = DEPLOY / "monitoring"
RULES_TEST = MONITORING / "tests" / "symlinkd-rules.test.yaml"
DASHBOARD = MONITORING / "dashboards" / "symlinkd.json"
# Series Prometheus itself makes for every scrape target, not symlinkd.
PROMETHEUS_OWN = {"up"}
# Grafana's variables, replaced the way Grafana would before a query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "24h",
                     "$namespace": "media-stack", "${namespace}": "media-stack"}


def _rule_spec() -> dict[str, Any]:
    rule = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    spec: dict[str, Any] = rule["spec"]
    return spec


def _alerts() -> dict[str, str]:
    return {r["alert"]: r["expr"] for g in _rule_spec()["groups"] for r in g["rules"]
            if "alert" in r}


def _dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = list(dashboard["panels"])
    for panel in list(panels):
        panels += panel.get("panels", [])  # rows
    exprs = [t["expr"] for p in panels for t in p.get("targets", []) if t.get("expr")]
    assert exprs, "dashboard without queries"
    return exprs


def _grafana_to_promql(expr: str) -> str:
    for variable, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr}"
    return expr


def _promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool_path(), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120, check=False)


def _scrape() -> str:
    """What symlinkd's /metrics says once every metric has seen a value."""
    metrics = Metrics(CollectorRegistry())
    mounts = {"zurg": MountState("zurg", "/mnt/media/zurg", MountHealth.OK),
              "torbox": MountState("torbox", "/mnt/media/torbox", MountHealth.DOWN)}
    metrics.observe_mounts(mounts)
    dangling = Judgement(LinkFacts("/mnt/media/stream/Movies/A.mkv", EntryKind.SYMLINK, 0.0,
                                   target="/mnt/media/zurg/__all__/A/A.mkv",
                                   resolved="/mnt/media/zurg/__all__/A/A.mkv", mount="zurg",
                                   errno=2), Verdict.DANGLING, 3.0)
    metrics.observe_links([dangling], list(mounts))
    metrics.observe_outcomes([Outcome(PlannedAction(dangling, Prune(PruneReason.DANGLING)),
                                      OutcomeResult.DONE)])
    metrics.scan_duration.labels(kind="full").observe(2.5)
    metrics.last_scan.labels(kind="full").set(time.time())
    metrics.unsafe_plans.labels(reason="max_prune").inc()
    metrics.notifications.labels(target="plex", result="failed").inc()
    metrics.pass_errors.labels(kind="full").inc()
    metrics.rename_events.labels(mount="zurg").inc()
    metrics.probes.labels(mount="zurg", result="failed").inc()
    metrics.links_unverified.labels(mount="zurg").set(3)
    return generate_latest(metrics.registry).decode()


def _exported_names() -> set[str]:
    return {sample.name for family in text_string_to_metric_families(_scrape())
            for sample in family.samples}


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    # promtool wants a plain rules file: the PrometheusRule's .spec
    (tmp_path / "symlinkd-rules.yaml").write_text(yaml.safe_dump(_rule_spec(), sort_keys=False))
    shutil.copy(RULES_TEST, tmp_path / RULES_TEST.name)
    return tmp_path


def test_promtool_check_rules(rules_dir: Path) -> None:
    done = _promtool("check", "rules", "symlinkd-rules.yaml", cwd=rules_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in done.stdout


def test_promtool_test_rules(rules_dir: Path) -> None:
    done = _promtool("test", "rules", RULES_TEST.name, cwd=rules_dir)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_test_rules_fails_when_an_alert_breaks(rules_dir: Path) -> None:
    """The unit tests bite: a mount-down alert that never fires fails them."""
    rules = rules_dir / "symlinkd-rules.yaml"
    rules.write_text(rules.read_text().replace("symlinkd_mount_up == 0", "symlinkd_mount_up == 2"))
    done = _promtool("test", "rules", RULES_TEST.name, cwd=rules_dir)
    assert done.returncode != 0
    assert "SymlinkdMountDown" in done.stdout + done.stderr


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    tests = yaml.safe_load(RULES_TEST.read_text())["tests"]
    cases = [c for t in tests for c in t.get("alert_rule_test", [])]
    for alert in _alerts():
        mine = [c for c in cases if c["alertname"] == alert]
        assert any(c["exp_alerts"] for c in mine), f"{alert}: no test where it fires"
        assert any(not c["exp_alerts"] for c in mine), f"{alert}: no test where it stays quiet"


def test_the_issue_asks_for_these_alerts() -> None:
    exprs = _alerts()
    assert any("symlinkd_mount_up" in e for e in exprs.values())                 # mount down
    assert any("symlinkd_last_scan_timestamp_seconds" in e for e in exprs.values())  # no pass
    assert any("symlinkd_links" in e for e in exprs.values())                    # broken rising
    assert any("symlinkd_unsafe_plans_total" in e for e in exprs.values())       # refused plan
    assert any("symlinkd_notifications_total" in e for e in exprs.values())      # notifier failing


def test_pass_overdue_threshold_is_twice_the_configured_interval() -> None:
    config = yaml.safe_load((DEPLOY / "base" / "symlinkd" / "symlinkd.yaml").read_text())
    interval = config["daemon"]["scan_interval_minutes"] * 60
    threshold = re.search(r"> (\d+)\s*$", _alerts()["SymlinkdPassOverdue"])
    assert threshold and int(threshold.group(1)) == 2 * interval


def test_scrape_is_what_the_metrics_contract_says() -> None:
    names = _exported_names()
    assert {"symlinkd_links", "symlinkd_mount_up", "symlinkd_mount_state",
            "symlinkd_scan_duration_seconds_bucket", "symlinkd_last_scan_timestamp_seconds",
            "symlinkd_actions_total", "symlinkd_unsafe_plans_total",
            "symlinkd_notifications_total", "symlinkd_build_info"} <= names
    done = subprocess.run([promtool_path(), "check", "metrics"], input=_scrape(),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_alerts_name_only_exported_metrics() -> None:
    exported = _exported_names() | PROMETHEUS_OWN
    used = {alert: metric_names(expr) for alert, expr in _alerts().items()}
    assert all(used.values())
    assert {a: sorted(n - exported) for a, n in used.items() if n - exported} == {}


def test_dashboard_names_only_exported_metrics() -> None:
    exported = _exported_names()
    unknown = {q: sorted(metric_names(_grafana_to_promql(q)) - exported)
               for q in _dashboard_queries()}
    assert {q: n for q, n in unknown.items() if n} == {}
    variables = json.loads(DASHBOARD.read_text())["templating"]["list"]
    for variable in variables:
        query = variable.get("definition") or ""
        found = re.fullmatch(r"label_values\((\w+),\s*\w+\)", query)
        if query:
            assert found and found.group(1) in exported, query


def test_dashboard_covers_what_the_issue_lists() -> None:
    queries = " ".join(_dashboard_queries())
    for metric in ("symlinkd_links", "symlinkd_mount_state", "symlinkd_scan_duration_seconds",
                   "symlinkd_actions_total", "symlinkd_notifications_total"):
        assert metric in queries, metric
    assert "by (verdict)" in queries and "by (mount, verdict)" in queries


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    queries = _dashboard_queries()
    rules: dict[str, Any] = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": _grafana_to_promql(q)}
        for i, q in enumerate(queries)]}]}
    (tmp_path / "dashboard.yaml").write_text(yaml.safe_dump(rules))
    done = _promtool("check", "rules", "dashboard.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    # and a broken one would not
    rules["groups"][0]["rules"].append({"record": "dashboard:broken",
                                        "expr": "sum by (mount (symlinkd_links)"})
    (tmp_path / "dashboard.yaml").write_text(yaml.safe_dump(rules))
    assert _promtool("check", "rules", "dashboard.yaml", cwd=tmp_path).returncode != 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_ship_rule_monitor_and_dashboard(overlay: str) -> None:
    docs = rendered(overlay)
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("ServiceMonitor", "symlinkd"), ("PrometheusRule", "symlinkd"),
            ("ConfigMap", "symlinkd-dashboard")} <= kinds
    dashboard = next(d for d in docs if d["metadata"]["name"] == "symlinkd-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["symlinkd.json"]) == json.loads(DASHBOARD.read_text())
    monitor = next(d for d in docs if d["kind"] == "ServiceMonitor")
    service = next(d for d in docs
                   if d["kind"] == "Service" and d["metadata"]["name"] == "symlinkd")
    labels = service["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {
        p["name"] for p in service["spec"]["ports"]}


@pytest.mark.parametrize(("expr", "names"), [
    ('sum by (mount) (rate(foo_total{a="b", c=~"x|y"}[5m])) / on (job) bar offset 1h > 3',
     {"foo_total", "bar"}),
    ("histogram_quantile(0.9, sum by (le) (rate(h_bucket[$x])))", {"h_bucket"}),
    ('time() - max without (kind) (last{kind="full"}) > 2 * 1e3', {"last"}),
    ("a unless on (x) b or c and bool d", {"a", "b", "c", "d"}),
    ('count(up{job="by (x)"} == 0)', {"up"}),
])
def test_metric_name_extraction(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names
