"""The stack the seed describes is all there, with the seed's mistakes fixed."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.deploy.manifests import (
    DEPLOY,
    OVERLAYS,
    Doc,
    all_containers,
    by_kind,
    name_of,
    pod_labels,
    render,
    workloads,
)

ZONES = {
    "cloud-gateway": {"zurg", "rdt-client", "riven"},
    "managers": {"sonarr", "radarr", "sabnzbd", "bazarr"},
    "player": {"plex"},
    "discovery": {"overseerr"},
    "maintenance": {"symlinkd"},
}
SERVICE_ACCOUNTS = {"cloud-gateway": "cloud-gateway", "managers": "managers", "player": "plex",
                    "discovery": "discovery", "maintenance": "symlinkd"}
# The seed's ports (its "Port:" lines and the Services of "Networking & Exposure").
SERVICE_PORTS = {"zurg": {9999, 8080}, "rdt-client": {6500}, "riven": {8080}, "sonarr": {8989},
                 "radarr": {7878}, "sabnzbd": {8080}, "bazarr": {6767}, "plex": {32400},
                 "overseerr": {5055}, "symlinkd": {9090}}
PINNED = re.compile(r"^[a-z0-9.-]+(:\d+)?/[a-z0-9._/-]+:[A-Za-z0-9._-]+(@sha256:[0-9a-f]{64})?$")


@pytest.fixture(params=OVERLAYS)
def docs(request: pytest.FixtureRequest) -> list[Doc]:
    return render(request.param)


def test_every_component_of_the_four_zones_and_symlinkd(docs: list[Doc]) -> None:
    deployments = by_kind(docs, "Deployment")
    assert set(deployments) == set().union(*ZONES.values())
    for zone, apps in ZONES.items():
        for app in apps:
            spec = deployments[app]["spec"]["template"]["spec"]
            assert pod_labels(deployments[app])["media.symlinkd.io/zone"] == zone, app
            # Zurg has its own ServiceAccount: it holds the Real-Debrid token and needs no SCC
            wanted = "zurg" if app == "zurg" else SERVICE_ACCOUNTS[zone]
            assert spec["serviceAccountName"] == wanted, app
    assert set(by_kind(docs, "ServiceAccount")) == {*SERVICE_ACCOUNTS.values(), "zurg"}


def test_services_as_in_the_seed(docs: list[Doc]) -> None:
    services = by_kind(docs, "Service")
    assert {n: {p["port"] for p in s["spec"]["ports"]} for n, s in services.items()
            } == SERVICE_PORTS | ({"plex": {32400, 443}} if "Route" in {d["kind"] for d in docs}
                                  else {})
    assert services["plex"]["spec"]["type"] == "LoadBalancer"
    assert {s["spec"].get("type", "ClusterIP") for n, s in services.items() if n != "plex"} == {
        "ClusterIP"}


def test_media_library_pvc_and_storage_class(docs: list[Doc]) -> None:
    pvc = by_kind(docs, "PersistentVolumeClaim")["media-library-pvc"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["spec"]["storageClassName"] == "truenas-nfs-main"
    sc = by_kind(docs, "StorageClass")["truenas-nfs-main"]
    assert sc["reclaimPolicy"] == "Retain"
    assert "democratic-csi" in sc["provisioner"]


def test_images_pinned_never_latest(docs: list[Doc]) -> None:
    images = {c["image"] for _, spec in workloads(docs) for c in all_containers(spec)}
    assert images
    assert [i for i in images if not PINNED.match(i) or i.endswith(":latest")] == []


def test_probes_on_every_container(docs: list[Doc]) -> None:
    missing = [f"{name_of(doc)}/{c['name']}: {probe}"
               for doc, spec in workloads(docs) for c in spec["containers"]
               for probe in ("livenessProbe", "readinessProbe") if probe not in c]
    assert missing == []


def test_resources_on_every_container(docs: list[Doc]) -> None:
    missing = [f"{name_of(doc)}/{c['name']}"
               for doc, spec in workloads(docs) for c in all_containers(spec)
               if {"cpu", "memory"} - set((c.get("resources") or {}).get("limits", {}))
               or {"cpu", "memory"} - set((c.get("resources") or {}).get("requests", {}))]
    assert missing == []


def test_only_rclone_sidecars_are_privileged(docs: list[Doc]) -> None:
    privileged = {c["name"] for _, spec in workloads(docs) for c in all_containers(spec)
                  if (c.get("securityContext") or {}).get("privileged")}
    assert privileged == {"rclone-zurg", "rclone-torbox"}


def test_no_service_exposes_rclone_remote_control(docs: list[Doc]) -> None:
    ports = {p.get("targetPort") for s in by_kind(docs, "Service").values()
             for p in s["spec"]["ports"]}
    assert not ports & {5572, 5573, "5572", "5573"}


def test_symlinkd_deployment(docs: list[Doc]) -> None:
    deployment = by_kind(docs, "Deployment")["symlinkd"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    spec = deployment["spec"]["template"]["spec"]
    main = next(c for c in spec["containers"] if c["name"] == "symlinkd")
    security = main["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] >= 10000
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert main["ports"] == [{"name": "http", "containerPort": 9090}]
    assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"rclone-zurg", "rclone-torbox"} <= {c["name"] for c in spec["containers"]}
    # config from the ConfigMap kustomize generated, at the path SYMLINKD_CONFIG names
    env = {e["name"]: e.get("value") for e in main["env"]}
    mounts = {m["name"]: m for m in main["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    config_volume = next(n for n, v in volumes.items() if "configMap" in v)
    assert volumes[config_volume]["configMap"]["name"].startswith("symlinkd-config-")
    assert env["SYMLINKD_CONFIG"] == f"{mounts[config_volume]['mountPath']}/symlinkd.yaml"
    configmap = by_kind(docs, "ConfigMap")[volumes[config_volume]["configMap"]["name"]]
    # the very file CI runs `symlinkd config check` on (test_symlinkd_config, .ci/image.sh)
    assert configmap["data"]["symlinkd.yaml"] == (
        DEPLOY / "base" / "symlinkd" / "symlinkd.yaml").read_text()
    config = yaml.safe_load(configmap["data"]["symlinkd.yaml"])
    # state on the PVC (config/symlinkd), inside the /mnt/media mount
    assert config["state_dir"] == "/mnt/media/config/symlinkd"
    assert config["policy"]["quarantine_dir"].startswith(config["state_dir"] + "/")
    # the webhook token is a file of the Secret volume
    secret_volume = next(n for n, v in volumes.items()
                         if (v.get("secret") or {}).get("secretName") == "symlinkd-secrets")
    secrets_dir = mounts[secret_volume]["mountPath"]
    assert config["daemon"]["webhook_token_file"].startswith(secrets_dir + "/")
    assert config["daemon"]["listen"].endswith(":9090")
    # each mount's rc_url is its own sidecar's loopback remote control
    rc_addrs = {c["name"].removeprefix("rclone-"): a.split("=", 1)[1]
                for c in spec["containers"] for a in c.get("args", [])
                if a.startswith("--rc-addr=")}
    assert {m["name"]: m["rc_url"] for m in config["mounts"]} == {
        name: f"http://{addr}" for name, addr in rc_addrs.items()}


def test_secret_example_covers_every_secret_referenced(docs: list[Doc]) -> None:
    referenced: set[tuple[str, str | None]] = set()
    for _, spec in workloads(docs):
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                referenced.add((volume["secret"]["secretName"], None))
        for c in all_containers(spec):
            for e in c.get("env", []):
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    referenced.add((ref["name"], ref["key"]))
    example = {d["metadata"]["name"]: d for d in
               yaml.safe_load_all((DEPLOY / "secrets.example.yaml").read_text()) if d}
    # cert-manager writes plex-tls itself
    missing = [(n, k) for n, k in referenced if n != "plex-tls" and (
        n not in example or (k is not None and k not in example[n].get("stringData", {})))]
    assert missing == []
    # and the example is never applied
    for overlay in ["base", "monitoring", *OVERLAYS]:
        kustomization = yaml.safe_load((DEPLOY / overlay / "kustomization.yaml").read_text())
        assert not [r for r in kustomization["resources"] if "secrets.example" in r]
    assert not [d for d in docs if d["kind"] == "Secret"]
