"""Each zone accepts only the traffic the seed's data flows need (evaluated on the rendered
NetworkPolicies of each overlay with tests/deploy/netpol.py)."""

from __future__ import annotations

import pytest

from tests.deploy.manifests import NAMESPACE, OVERLAYS, Doc, by_kind, pod_labels, render, rendered
from tests.deploy.netpol import Peer, allowed, selector_matches

INGRESS_NS = {"overlays/openshift": {"policy-group.network.openshift.io/ingress": ""},
              "overlays/kubernetes": {"kubernetes.io/metadata.name": "ingress-nginx"}}
PROMETHEUS_NS = {
    "overlays/openshift": {"kubernetes.io/metadata.name": "openshift-user-workload-monitoring"},
    "overlays/kubernetes": {"kubernetes.io/metadata.name": "monitoring"}}
MEDIA_PODS = ["plex", "sonarr", "radarr", "bazarr", "sabnzbd", "riven", "rdt-client", "symlinkd"]
OUTSIDE = ["@ingress", "@prometheus", "@other-namespace", "@internet"]
ANYONE = "*"

# The data flows of the seed's three scenarios (hybrid-media-stack.md) and of symlinkd, as
# (source, destination, port, why). Every one must be admitted, and nothing else
# (test_nothing_else_is_admitted walks every source x destination x declared port).
FLOWS: list[tuple[str, str, int, str]] = [
    *[(app, "zurg", 9999, "rclone-zurg sidecar mounts Zurg's WebDAV") for app in MEDIA_PODS],
    ("overseerr", "sonarr", 8989, "A/C: request a series"),
    ("overseerr", "radarr", 7878, "B: request a movie"),
    ("sonarr", "rdt-client", 6500, "A: magnet"), ("radarr", "rdt-client", 6500, "A: magnet"),
    ("sonarr", "sabnzbd", 8080, "B: NZB"), ("radarr", "sabnzbd", 8080, "B: NZB"),
    ("riven", "overseerr", 5055, "C: Riven reads Overseerr's requests"),
    ("overseerr", "riven", 8080, "C: Overseerr notifies Riven"),
    ("bazarr", "sonarr", 8989, "subtitles for series"),
    ("bazarr", "radarr", 7878, "subtitles for movies"),
    ("symlinkd", "sonarr", 8989, "rescan after a repair"),
    ("symlinkd", "radarr", 7878, "rescan after a repair"),
    ("sonarr", "symlinkd", 9090, "webhook"), ("radarr", "symlinkd", 9090, "webhook"),
    ("zurg", "symlinkd", 9090, "on_library_update webhook"),
    ("@prometheus", "symlinkd", 9090, "scrape /metrics"),
    ("@ingress", "overseerr", 5055, "Route/Ingress"), ("@ingress", "sonarr", 8989, "admin UI"),
    ("@ingress", "radarr", 7878, "admin UI"),
    (ANYONE, "plex", 32400, "A-C: clients play (and Overseerr/Bazarr/symlinkd/Riven call Plex)"),
    (ANYONE, "plex", 8443, "clients over TLS (nginx-tls, where the overlay has it)"),
]


def _named_ports(deployment: Doc) -> dict[str, int]:
    return {p["name"]: p["containerPort"]
            for c in deployment["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", []) if "name" in p}


def _check(overlay: str, src: str, dst: str, port: int) -> bool:
    docs = list(rendered(overlay))
    deployments = by_kind(docs, "Deployment")
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    ns_labels = {**by_kind(docs, "Namespace")[NAMESPACE]["metadata"].get("labels", {}),
                 "kubernetes.io/metadata.name": NAMESPACE}
    peers = {
        "@ingress": Peer("router", INGRESS_NS[overlay]),
        "@prometheus": Peer("prom", PROMETHEUS_NS[overlay]),
        "@other-namespace": Peer("elsewhere", {"kubernetes.io/metadata.name": "elsewhere"}),
        "@internet": Peer("", {}, in_cluster=False),
    }
    peer = peers.get(src) or Peer(NAMESPACE, ns_labels, pod_labels(deployments[src]))
    target = deployments[dst]
    return allowed(policies, NAMESPACE, pod_labels(target), _named_ports(target), port, peer)


def _sources() -> list[str]:
    return [*sorted(by_kind(list(rendered(OVERLAYS[0])), "Deployment")), *OUTSIDE]


def _declared(overlay: str) -> list[tuple[str, int]]:
    """(destination, port) for every container port every Deployment declares."""
    deployments = by_kind(list(rendered(overlay)), "Deployment")
    return sorted({(name, port) for name, d in deployments.items()
                   for port in _named_ports(d).values()})


def _expected(overlay: str) -> set[tuple[str, str, int]]:
    declared = set(_declared(overlay))
    return {(src, dst, port) for flow_src, dst, port, _ in FLOWS if (dst, port) in declared
            for src in (_sources() if flow_src == ANYONE else [flow_src])}


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize(("src", "dst", "port", "why"), FLOWS,
                         ids=[f"{s}->{d}:{p}" for s, d, p, _ in FLOWS])
def test_seed_data_flow_admitted(overlay: str, src: str, dst: str, port: int, why: str) -> None:
    if (dst, port) not in _declared(overlay):
        pytest.skip(f"{overlay} has no {dst}:{port}")  # 8443: nginx-tls is openshift's only
    for source in _sources() if src == ANYONE else [src]:
        assert _check(overlay, source, dst, port), f"{source} -> {dst}:{port} ({why})"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_nothing_else_is_admitted(overlay: str) -> None:
    admitted = {(src, dst, port) for src in _sources() for dst, port in _declared(overlay)
                if _check(overlay, src, dst, port)}
    assert sorted(admitted - _expected(overlay)) == []
    assert sorted(_expected(overlay) - admitted) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_behind_a_default_deny(overlay: str) -> None:
    docs = render(overlay)
    deny = [p for p in docs if p["kind"] == "NetworkPolicy" and p["spec"]["podSelector"] == {}
            and not p["spec"].get("ingress")]
    assert deny
    for deployment in by_kind(docs, "Deployment").values():
        assert selector_matches(deny[0]["spec"]["podSelector"], pod_labels(deployment))


def test_evaluator_allows_everything_without_policies() -> None:
    assert allowed([], NAMESPACE, {"a": "b"}, {}, 80, Peer("x", {}))
