"""Every overlay is wired (tests/deploy/wiring.py finds nothing), and each of the five wiring
mistakes of issue 11 finding 10, planted one at a time into the rendered documents, is reported.
Those five passed every other deploy test and a real API server."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import yaml

from tests.deploy.manifests import DEPLOY, OVERLAYS, Doc, by_kind, render
from tests.deploy.wiring import HEALTH_PATHS, wiring_problems


def _example_secrets() -> set[str]:
    return {d["metadata"]["name"] for d in
            yaml.safe_load_all((DEPLOY / "secrets.example.yaml").read_text()) if d}


def _container(docs: list[Doc], deployment: str, name: str) -> Doc:
    spec = by_kind(docs, "Deployment")[deployment]["spec"]["template"]["spec"]
    found: Doc = next(c for c in spec["containers"] if c["name"] == name)
    return found


def _selector_typo(docs: list[Doc]) -> str:
    by_kind(docs, "Service")["sonarr"]["spec"]["selector"]["app.kubernetes.io/name"] = "sonar"
    return "Service/sonarr"


def _probe_on_other_apps_port(docs: list[Doc]) -> str:
    _container(docs, "sonarr", "sonarr")["readinessProbe"]["httpGet"]["port"] = 7878  # Radarr's
    return "Deployment/sonarr/sonarr"


def _route_target_port_missing(docs: list[Doc]) -> str:
    by_kind(docs, "Route")["overseerr"]["spec"]["port"]["targetPort"] = "web"
    return "Route/overseerr"


def _ingress_backend_port_missing(docs: list[Doc]) -> str:
    ingress = next(iter(by_kind(docs, "Ingress").values()))
    ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"] = {"name": "web"}
    return f"Ingress/{ingress['metadata']['name']}"


def _wrong_health_path(docs: list[Doc]) -> str:
    _container(docs, "sonarr", "sonarr")["livenessProbe"]["httpGet"]["path"] = "/health"
    return "Deployment/sonarr/sonarr"


def _service_target_port_of_another_app(docs: list[Doc]) -> str:
    by_kind(docs, "Service")["sonarr"]["spec"]["ports"][0]["targetPort"] = 7878  # Radarr's
    return "Service/sonarr"


Mistake = Callable[[list[Doc]], str]
PLANTED: list[tuple[str, Mistake]] = [
    ("overlays/openshift", _selector_typo), ("overlays/kubernetes", _selector_typo),
    ("overlays/openshift", _probe_on_other_apps_port),
    ("overlays/kubernetes", _probe_on_other_apps_port),
    ("overlays/openshift", _route_target_port_missing),
    ("overlays/kubernetes", _ingress_backend_port_missing),
    ("overlays/openshift", _wrong_health_path), ("overlays/kubernetes", _wrong_health_path),
    ("overlays/openshift", _service_target_port_of_another_app),
    ("overlays/kubernetes", _service_target_port_of_another_app),
]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_is_wired(overlay: str) -> None:
    assert wiring_problems(render(overlay), _example_secrets()) == []


@pytest.mark.parametrize(("overlay", "plant"), PLANTED,
                         ids=[f"{o.split('/')[1]}-{p.__name__.strip('_')}" for o, p in PLANTED])
def test_planted_wiring_mistake_is_reported(overlay: str, plant: Mistake) -> None:
    docs = render(overlay)
    culprit = plant(docs)
    problems = wiring_problems(docs, _example_secrets())
    assert [p for p in problems if p.startswith(culprit + ":")], problems


def test_an_unrendered_config_map_and_an_unlisted_secret_are_reported() -> None:
    docs = render("overlays/kubernetes")
    spec = by_kind(docs, "Deployment")["symlinkd"]["spec"]["template"]["spec"]
    spec["volumes"].append({"name": "x", "configMap": {"name": "nowhere"}})
    spec["volumes"].append({"name": "y", "secret": {"secretName": "unlisted"}})
    problems = wiring_problems(docs, _example_secrets())
    assert len([p for p in problems if p.startswith("Deployment/symlinkd:")]) == 2, problems


def test_a_service_monitor_and_a_network_policy_selecting_nothing_are_reported() -> None:
    docs = render("overlays/kubernetes")
    monitor = next(iter(by_kind(docs, "ServiceMonitor").values()))
    monitor["spec"]["endpoints"][0]["port"] = "metrics"
    policy = by_kind(docs, "NetworkPolicy")["symlinkd-webhooks"]
    policy["spec"]["podSelector"] = {"matchLabels": {"app.kubernetes.io/name": "symlink"}}
    problems = wiring_problems(docs, _example_secrets())
    assert [p for p in problems if p.startswith("ServiceMonitor/symlinkd:")], problems
    assert [p for p in problems if p.startswith("NetworkPolicy/symlinkd-webhooks:")], problems


def test_health_table_names_containers_that_exist() -> None:
    names = {c["name"] for d in by_kind(render("overlays/openshift"), "Deployment").values()
             for c in d["spec"]["template"]["spec"]["containers"]}
    assert set(HEALTH_PATHS) <= names
