"""The seed's Deployment Checklist for every pod that mounts the media PVC, in every overlay."""

from __future__ import annotations

import copy

import pytest

from tests.deploy.checklist import checklist_problems, scc_problems
from tests.deploy.manifests import (
    OVERLAYS,
    Doc,
    all_containers,
    by_kind,
    mounts_media,
    pod_spec,
    render,
    workloads,
)

# The seed's media apps: every one runs the sidecar pattern, and so does symlinkd.
MEDIA_APPS = {"plex", "sonarr", "radarr", "bazarr", "sabnzbd", "riven", "rdt-client", "symlinkd"}


def media_pods(overlay: str) -> list[Doc]:
    return [doc for doc, spec in workloads(render(overlay)) if mounts_media(spec)]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_media_app_mounts_the_library(overlay: str) -> None:
    assert {d["metadata"]["name"] for d in media_pods(overlay)} == MEDIA_APPS


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_mounting_the_media_pvc_passes_the_checklist(overlay: str) -> None:
    failures = {d["metadata"]["name"]: checklist_problems(d) for d in media_pods(overlay)}
    assert {name: p for name, p in failures.items() if p} == {}


def _plex(overlay: str = "overlays/openshift") -> Doc:
    return by_kind(render(overlay), "Deployment")["plex"]


def _container(doc: Doc, name: str) -> Doc:
    spec = pod_spec(doc)
    assert spec is not None
    return next(c for c in [*spec.get("initContainers", []), *spec["containers"]]
                if c["name"] == name)


def _media_mount(container: Doc) -> Doc:
    return next(m for m in container["volumeMounts"] if m["mountPath"] == "/mnt/media")


# Each mutation is a mistake the seed warns about; the checker must name it.
def _typo_sidecar(doc: Doc) -> None:
    _media_mount(_container(doc, "rclone-zurg"))["mountPropagation"] = "Bidirectionl"


def _main_bidirectional(doc: Doc) -> None:
    _media_mount(_container(doc, "plex"))["mountPropagation"] = "Bidirectional"


def _main_no_propagation(doc: Doc) -> None:
    del _media_mount(_container(doc, "plex"))["mountPropagation"]


def _main_privileged(doc: Doc) -> None:
    _container(doc, "plex").setdefault("securityContext", {})["privileged"] = True


def _sidecar_unprivileged(doc: Doc) -> None:
    _container(doc, "rclone-torbox")["securityContext"]["privileged"] = False


def _node_selector(doc: Doc) -> None:
    doc["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "wow-ocp-node4"}


def _required_affinity(doc: Doc) -> None:
    affinity = doc["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    terms = affinity.pop("preferredDuringSchedulingIgnoredDuringExecution")
    affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
        "nodeSelectorTerms": [t["preference"] for t in terms]}


def _no_init_dirs(doc: Doc) -> None:
    doc["spec"]["template"]["spec"]["initContainers"] = []


def _no_sidecar_limits(doc: Doc) -> None:
    del _container(doc, "rclone-zurg")["resources"]["limits"]


def _rc_on_all_interfaces(doc: Doc) -> None:
    args = _container(doc, "rclone-torbox")["args"]
    args[args.index("--rc-addr=127.0.0.1:5573")] = "--rc-addr=:5573"
    args.append("--rc-no-auth")


def _no_sidecar_probe(doc: Doc) -> None:
    del _container(doc, "rclone-zurg")["livenessProbe"]


def _sidecar_missing(doc: Doc) -> None:
    spec = doc["spec"]["template"]["spec"]
    spec["containers"] = [c for c in spec["containers"] if c["name"] != "rclone-torbox"]


def _wrong_secret(doc: Doc) -> None:
    for volume in doc["spec"]["template"]["spec"]["volumes"]:
        if volume["name"] == "rclone-zurg-config":
            volume["secret"]["secretName"] = "rclone-config"


@pytest.mark.parametrize(("mutate", "expected"), [
    (_typo_sidecar, "rclone-zurg: mountPropagation 'Bidirectionl', want 'Bidirectional'"),
    (_main_bidirectional, "plex: mountPropagation 'Bidirectional', want 'HostToContainer'"),
    (_main_no_propagation, "plex: mountPropagation None, want 'HostToContainer'"),
    (_main_privileged, "plex: app container is privileged"),
    (_sidecar_unprivileged, "rclone-torbox: not privileged"),
    (_node_selector, "hard nodeSelector"),
    (_required_affinity, "required node affinity"),
    (_no_init_dirs, "no init-dirs initContainer"),
    (_no_sidecar_limits, "rclone-zurg: resources missing limits.cpu, limits.memory"),
    (_rc_on_all_interfaces, "rclone-torbox: --rc-no-auth"),
    (_no_sidecar_probe, "rclone-zurg: no livenessProbe"),
    (_sidecar_missing, "no rclone-torbox sidecar"),
    (_wrong_secret, "rclone-zurg: Secret rclone-zurg-config not mounted"),
])
def test_checker_catches_a_broken_pod(mutate, expected: str) -> None:  # type: ignore[no-untyped-def]
    doc = _plex()
    assert checklist_problems(doc) == []
    broken = copy.deepcopy(doc)
    mutate(broken)
    problems = checklist_problems(broken)
    assert any(p.startswith(expected) for p in problems), problems


def test_rc_bound_to_all_interfaces_is_named_too() -> None:
    doc = _plex()
    _rc_on_all_interfaces(doc)
    assert "rclone-torbox: rclone rc must listen on 127.0.0.1:5573 only, has [':5573']" in (
        checklist_problems(doc))


def test_openshift_grants_privileged_scc_exactly_to_sidecar_service_accounts() -> None:
    docs = render("overlays/openshift")
    assert scc_problems(docs) == []
    # Without the binding every zone that runs rclone sidecars is named.
    unbound = [d for d in docs if d["kind"] != "RoleBinding"]
    assert scc_problems(unbound) == [
        f"ServiceAccount {sa} runs privileged sidecars ({apps}) without the privileged SCC"
        for sa, apps in [("cloud-gateway", "rdt-client, riven"),
                         ("managers", "bazarr, radarr, sabnzbd, sonarr"),
                         ("plex", "plex"), ("symlinkd", "symlinkd")]
    ]


def test_kubernetes_overlay_has_no_openshift_objects() -> None:
    docs = render("overlays/kubernetes")
    kinds = {(d["apiVersion"], d["kind"]) for d in docs}
    assert not [k for k in kinds if "openshift.io" in k[0]]
    assert not [d for d in docs if d["kind"] in {"RoleBinding", "ClusterRoleBinding"}]


def test_openshift_pods_without_scc_grant_leave_uids_to_restricted_v2() -> None:
    """restricted-v2 rejects a fixed runAsUser/runAsGroup/fsGroup outside the namespace range."""
    docs = render("overlays/openshift")
    granted = {s["name"] for d in docs if d["kind"] == "RoleBinding" for s in d["subjects"]}
    fixed = []
    for doc, spec in workloads(docs):
        if spec.get("serviceAccountName") in granted:
            continue
        contexts = [spec.get("securityContext") or {}] + [
            c.get("securityContext") or {} for c in all_containers(spec)]
        fixed += [f"{doc['metadata']['name']}: {key}" for ctx in contexts
                  for key in ("runAsUser", "runAsGroup", "fsGroup") if key in ctx]
    assert fixed == []
    assert "overseerr" in {d["metadata"]["name"] for d, s in workloads(docs)
                           if s.get("serviceAccountName") not in granted}
