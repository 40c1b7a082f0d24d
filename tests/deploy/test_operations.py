"""Issue 11: the stack survives its own sidecars. Each test is one finding, on the rendered
overlays; the init scripts run for real with /bin/sh on a temp folder."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.deploy.manifests import (
    DEPLOY,
    MEDIA_PVC,
    OVERLAYS,
    Doc,
    all_containers,
    by_kind,
    name_of,
    render,
    rendered,
    workloads,
)

SIDECARS = ("rclone-zurg", "rclone-torbox")
CACHE_MARGIN_GIB = 20       # sizeLimit over --vfs-cache-max-size, stated in media-mounts/pod.yaml
UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6,
         "G": 10**9, "T": 10**12, "": 1}


def _bytes(quantity: str) -> int:
    match = re.fullmatch(r"(\d+)([KMGT]i?|)", quantity)
    assert match, quantity
    return int(match[1]) * UNITS[match[2]]


@pytest.fixture(params=OVERLAYS)
def docs(request: pytest.FixtureRequest) -> list[Doc]:
    return render(request.param)


def _deployment_spec(overlay: str, name: str) -> Doc:
    spec: Doc = by_kind(list(rendered(overlay)), "Deployment")[name]["spec"]["template"]["spec"]
    return spec


# -- finding 1: one debrid mount blinking must not take Plex offline -----------------------------

def test_no_readiness_probe_looks_at_a_debrid_mount(docs: list[Doc]) -> None:
    """A pod is Ready only when every container is: a readiness probe that reads a mount takes
    Plex (or any app) off its Service during a debrid outage."""
    leaking = [f"{name_of(doc)}/{c['name']}" for doc, spec in workloads(docs)
               for c in spec["containers"]
               if re.search(r"/mnt/media|/proc/mounts", str(c.get("readinessProbe", "")))]
    assert leaking == []


def test_sidecar_post_start_never_fails_the_pod(docs: list[Doc]) -> None:
    for doc, spec in workloads(docs):
        for c in spec["containers"]:
            if c["name"] in SIDECARS:
                script = c["lifecycle"]["postStart"]["exec"]["command"][-1]
                assert re.search(r"seq \d+\)", script), "bounded wait"
                assert script.rstrip().endswith("exit 0"), f"{name_of(doc)}/{c['name']}"


# -- finding 2: a crashed rclone must not leave a dead mount ------------------------------------

def test_sidecar_clears_a_stale_mount_before_mounting(docs: list[Doc]) -> None:
    for _, spec in workloads(docs):
        for c in spec["containers"]:
            if c["name"] not in SIDECARS:
                continue
            mount_point = c["args"][2]
            script = c["command"][2]
            assert c["command"][:2] == ["/bin/sh", "-c"]
            assert script.index(f"fusermount3 -uz {mount_point}") < script.index("exec rclone")
            assert '"$@"' in script and c["args"][0] == "mount"
            liveness = c["livenessProbe"]["exec"]["command"][-1]
            assert f"stat -c %i {mount_point}" in liveness and "timeout " in liveness
            assert f"' {mount_point} fuse.rclone '" in liveness


# -- finding 3: cache limits must not evict the pod ---------------------------------------------

def test_cache_volume_has_a_margin_over_rclones_soft_limit(docs: list[Doc]) -> None:
    for doc, spec in workloads(docs):
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in spec["containers"]:
            if c["name"] not in SIDECARS:
                continue
            max_size = next(a.split("=", 1)[1] for a in c["args"]
                            if a.startswith("--vfs-cache-max-size="))
            cache = next(m["name"] for m in c["volumeMounts"] if m["mountPath"] == "/cache")
            limit = _bytes(volumes[cache]["emptyDir"]["sizeLimit"])
            assert limit - _bytes(max_size) >= CACHE_MARGIN_GIB * 2**30, name_of(doc)


def test_ephemeral_storage_on_every_container_and_pod_limit_covers_its_empty_dirs(
        docs: list[Doc]) -> None:
    for doc, spec in workloads(docs):
        for c in all_containers(spec):
            resources = c.get("resources") or {}
            for part in ("requests", "limits"):
                assert "ephemeral-storage" in resources.get(part, {}), (
                    f"{name_of(doc)}/{c['name']} {part}")
        # the kubelet evicts a pod whose usage (emptyDirs + writable layers + logs) passes the
        # sum of its containers' limits: that sum must cover every emptyDir's sizeLimit
        pod_limit = sum(_bytes(c["resources"]["limits"]["ephemeral-storage"])
                        for c in spec["containers"])
        empty_dirs = sum(_bytes(v["emptyDir"]["sizeLimit"]) for v in spec.get("volumes", [])
                         if "emptyDir" in v)
        assert pod_limit > empty_dirs, name_of(doc)


# -- finding 4: SABnzbd accepts Sonarr/Radarr by its Service name --------------------------------

def _init_script(overlay: str, deployment: str, container: str) -> str:
    spec = _deployment_spec(overlay, deployment)
    init = next(c for c in spec["initContainers"] if c["name"] == container)
    assert init["command"][:2] == ["/bin/sh", "-c"]
    script: str = init["command"][2]
    return script


def _run_script(script: str, config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", "-c", script.replace("/config", str(config))],
                          env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True,
                          timeout=30, check=False)


HOSTS = ["sabnzbd", "sabnzbd.media-stack", "sabnzbd.media-stack.svc",
         "sabnzbd.media-stack.svc.cluster.local"]


@pytest.mark.parametrize(("before", "kept"), [
    (None, []),                                                        # first start
    ("[misc]\nport = 8080\n[servers]\n", []),                          # no whitelist yet
    ("[misc]\nhost_whitelist = nas.lan, sabnzbd\nport = 8080\n", ["nas.lan"]),  # admin's own
])
def test_sabnzbd_whitelist_names_its_service(tmp_path: Path, before: str | None,
                                             kept: list[str]) -> None:
    script = _init_script("overlays/kubernetes", "sabnzbd", "sabnzbd-whitelist")
    ini = tmp_path / "sabnzbd.ini"
    if before is not None:
        ini.write_text(before)
    for _ in range(2):  # idempotent: every pod start runs it
        done = _run_script(script, tmp_path, {"POD_NAMESPACE": "media-stack"})
        assert done.returncode == 0, done.stderr
    lines = ini.read_text().splitlines()
    whitelist = [line for line in lines if line.startswith("host_whitelist")]
    assert len(whitelist) == 1
    hosts = [h.strip() for h in whitelist[0].split("=", 1)[1].split(",")]
    assert sorted(hosts) == sorted({*kept, *HOSTS})
    assert lines.index(whitelist[0]) > lines.index("[misc]")
    if before is not None and "[servers]" in before:
        assert lines.index(whitelist[0]) < lines.index("[servers]")  # inside [misc]


def test_sabnzbd_whitelist_runs_after_init_dirs_as_the_apps_user(docs: list[Doc]) -> None:
    spec = by_kind(docs, "Deployment")["sabnzbd"]["spec"]["template"]
    names = [c["name"] for c in spec["spec"]["initContainers"]]
    assert names == ["init-dirs", "sabnzbd-whitelist"]
    assert spec["metadata"]["annotations"]["media.symlinkd.io/config-owner"] == "1000:1000"


# -- Plex advertises its URL ---------------------------------------------------------------------

PREFS = "Library/Application Support/Plex Media Server/Preferences.xml"


@pytest.mark.parametrize("before", [
    None,
    '<?xml version="1.0" encoding="utf-8"?>\n<Preferences MachineIdentifier="m" />\n',
    '<Preferences customConnections="http://old:1" MachineIdentifier="m" />\n'])
def test_plex_prefs_sets_the_advertised_url(tmp_path: Path, before: str | None) -> None:
    docs = list(rendered("overlays/openshift"))
    spec = _deployment_spec("overlays/openshift", "plex")
    init = next(c for c in spec["initContainers"] if c["name"] == "plex-prefs")
    ref = init["env"][0]["valueFrom"]["configMapKeyRef"]
    url = by_kind(docs, "ConfigMap")[ref["name"]]["data"][ref["key"]]
    assert url.startswith("https://")
    prefs = tmp_path / PREFS
    if before is not None:
        prefs.parent.mkdir(parents=True)
        prefs.write_text(before)
    done = _run_script(_init_script("overlays/openshift", "plex", "plex-prefs"), tmp_path,
                       {"ADVERTISE_URL": url})
    assert done.returncode == 0, done.stderr
    if before is None:
        assert not prefs.exists()  # the image's first start writes it (and claims the server)
    else:
        text = prefs.read_text()
        assert text.count("customConnections=") == 1
        assert f'customConnections="{url}"' in text and 'MachineIdentifier="m"' in text


# -- finding 6: ArgoCD never deletes the library --------------------------------------------------

def test_namespace_and_every_pvc_survive_argocd(docs: list[Doc]) -> None:
    kept = [d for d in docs if d["kind"] in {"Namespace", "PersistentVolumeClaim"}]
    assert {d["metadata"]["name"] for d in kept} >= {"media-stack", MEDIA_PVC}
    for doc in kept:
        options = (doc["metadata"].get("annotations") or {}).get(
            "argocd.argoproj.io/sync-options", "")
        assert {"Prune=false", "Delete=false"} <= set(options.split(",")), name_of(doc)
    readme = (DEPLOY / "README.md").read_text()
    assert "Namespace" in readme and "Prune=false,Delete=false" in readme


# -- finding 7: kube-prometheus-stack sees the monitoring -----------------------------------------

def test_kubernetes_monitoring_carries_the_release_label() -> None:
    docs = render("overlays/kubernetes")
    for doc in docs:
        if doc["kind"] in {"ServiceMonitor", "PrometheusRule"}:
            assert doc["metadata"]["labels"].get("release"), name_of(doc)


# -- finding 8: Plex does not wait for its certificate ---------------------------------------------

def test_plex_tls_secret_is_optional_and_nginx_waits_without_failing_probes() -> None:
    spec = _deployment_spec("overlays/openshift", "plex")
    volume = next(v for v in spec["volumes"] if (v.get("secret") or {}).get("secretName")
                  == "plex-tls")
    assert volume["secret"]["optional"] is True
    nginx = next(c for c in spec["containers"] if c["name"] == "nginx-tls")
    assert "startupProbe" not in nginx
    for probe in ("readinessProbe", "livenessProbe"):
        script = nginx[probe]["exec"]["command"][-1]
        # no certificate yet: the probe passes (the pod stays Ready, Plex on 32400 serves)
        assert script.startswith("[ -s /etc/nginx/tls/tls.crt ] || exit 0;")


# -- finding 9: Zurg is not privileged ------------------------------------------------------------

def test_zurg_has_its_own_unprivileged_service_account() -> None:
    docs = render("overlays/openshift")
    spec = by_kind(docs, "Deployment")["zurg"]["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "zurg"
    grants = {(s["name"], d["roleRef"]["name"]) for d in docs if d["kind"] == "RoleBinding"
              for s in d["subjects"]}
    assert {role for sa, role in grants if sa == "zurg"} == {"system:openshift:scc:nonroot-v2"}


def test_readme_names_the_selinux_boolean_and_why_readiness_ignores_mounts() -> None:
    readme = (DEPLOY / "README.md").read_text()
    assert "virt_sandbox_use_fusefs" in readme
    assert "readiness" in readme.lower() and "release" in readme
