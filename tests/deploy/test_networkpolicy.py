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

# (source, destination, port): the seed's data flows, plus symlinkd's
ALLOWED = [
    *[(app, "zurg", 9999) for app in MEDIA_PODS],           # rclone-zurg sidecars -> Zurg WebDAV
    ("sonarr", "rdt-client", 6500), ("radarr", "rdt-client", 6500),    # magnets (scenario A)
    ("sonarr", "sabnzbd", 8080), ("radarr", "sabnzbd", 8080),          # NZBs (scenario B)
    ("overseerr", "sonarr", 8989), ("overseerr", "radarr", 7878),      # requests
    ("bazarr", "sonarr", 8989), ("bazarr", "radarr", 7878),
    ("overseerr", "plex", 32400), ("bazarr", "plex", 32400),
    ("symlinkd", "plex", 32400), ("symlinkd", "sonarr", 8989), ("symlinkd", "radarr", 7878),
    ("sonarr", "symlinkd", 9090), ("radarr", "symlinkd", 9090),        # webhooks
    ("zurg", "symlinkd", 9090), ("rdt-client", "symlinkd", 9090), ("riven", "symlinkd", 9090),
    ("riven", "sonarr", 8989), ("rdt-client", "radarr", 7878),
    ("@ingress", "overseerr", 5055), ("@ingress", "sonarr", 8989), ("@ingress", "radarr", 7878),
    ("@prometheus", "symlinkd", 9090),
    ("@internet", "plex", 32400), ("@other-namespace", "plex", 32400),
]
DENIED = [
    ("overseerr", "zurg", 9999), ("overseerr", "rdt-client", 6500),
    ("overseerr", "symlinkd", 9090), ("overseerr", "sabnzbd", 8080),
    ("plex", "sabnzbd", 8080), ("plex", "rdt-client", 6500), ("plex", "symlinkd", 9090),
    ("plex", "sonarr", 8989),
    ("symlinkd", "sabnzbd", 8080), ("symlinkd", "rdt-client", 6500),
    ("@ingress", "symlinkd", 9090), ("@ingress", "zurg", 9999), ("@ingress", "plex", 5572),
    ("@prometheus", "zurg", 9999), ("@prometheus", "sonarr", 8989),
    ("@other-namespace", "sonarr", 8989), ("@other-namespace", "zurg", 9999),
    ("@internet", "overseerr", 5055), ("@internet", "symlinkd", 9090),
    ("sonarr", "overseerr", 5055), ("riven", "riven", 8080), ("symlinkd", "bazarr", 6767),
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


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize(("src", "dst", "port"), ALLOWED)
def test_data_flow_allowed(overlay: str, src: str, dst: str, port: int) -> None:
    assert _check(overlay, src, dst, port)


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize(("src", "dst", "port"), DENIED)
def test_other_traffic_denied(overlay: str, src: str, dst: str, port: int) -> None:
    assert not _check(overlay, src, dst, port)


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
