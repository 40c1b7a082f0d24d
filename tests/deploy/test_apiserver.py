"""Both overlays against a real kube-apiserver (OpenShift's fork, SCC admission, OpenShift's
default SCCs; ../shared/tools/apiserver): server-side dry-run apply of each overlay, then one Pod
from every workload's template, created *as its ServiceAccount*, and the SCC it is admitted
under (annotation openshift.io/scc). Only pods with rclone sidecars may land in `privileged`,
and there only the sidecars are privileged; Zurg and Overseerr land in non-privileged SCCs.

Nothing runs (no scheduler, no kubelet): objects are admitted and stored. Every call is bounded;
the server is always stopped. Skipped, with the reason, without ../shared/tools/apiserver or
etcd (CI installs etcd-server in .ci/deploy-tools.sh)."""

from __future__ import annotations

import copy
import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import DEPLOY, NAMESPACE, OVERLAYS, SHARED, Doc, by_kind, rendered

APISERVER = SHARED / "tools" / "apiserver"
SIDECARS = {"rclone-zurg", "rclone-torbox"}
# What OpenShift's namespace controller (cluster-policy-controller) writes on every namespace;
# restricted-v2 and nonroot-v2 take the UID range / SELinux level from there. No controller runs
# on this bare API server, so the test writes them as it would.
OPENSHIFT_NS_ANNOTATIONS = {
    "openshift.io/sa.scc.uid-range": "1000700000/10000",
    "openshift.io/sa.scc.supplemental-groups": "1000700000/10000",
    "openshift.io/sa.scc.mcs": "s0:c27,c4",
}
NON_PRIVILEGED_SCC = {"zurg": "nonroot-v2", "overseerr": "restricted-v2"}

pytestmark = [pytest.mark.apiserver, pytest.mark.slow]


def _why_not() -> str | None:
    if not APISERVER.is_dir():
        return f"{APISERVER} is absent"
    missing = [t for t in ("etcd", "kubectl", "openssl", "xz", "curl") if shutil.which(t) is None]
    if missing:
        return f"missing {', '.join(missing)} (CI installs etcd-server: .ci/deploy-tools.sh)"
    return None


def _exports(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, value = words[1].split("=", 1)
            found[key] = value
    return found


class Cluster:
    def __init__(self, kubeconfig: str) -> None:
        self.env = {**os.environ, "KUBECONFIG": kubeconfig}

    def kubectl(self, *args: str, stdin: str | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["kubectl", "--request-timeout=60s", *args], input=stdin,
                              stdin=None if stdin is not None else subprocess.DEVNULL,
                              env=self.env, capture_output=True, text=True, timeout=timeout,
                              check=False)

    def must(self, *args: str, stdin: str | None = None) -> str:
        done = self.kubectl(*args, stdin=stdin)
        assert done.returncode == 0, f"kubectl {' '.join(args)}:\n{done.stderr}"
        return done.stdout


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    reason = _why_not()
    if reason is not None:
        pytest.skip(f"REAL API SERVER TEST NOT RUN: {reason}")
    kas_dir = tmp_path_factory.mktemp("kas")
    started = subprocess.run(["bash", str(APISERVER / "start.sh"), str(kas_dir)],
                             stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=300, check=False)
    try:
        assert started.returncode == 0, f"start.sh failed:\n{started.stderr[-3000:]}"
        exports = _exports(started.stdout)
        yield Cluster(exports["KUBECONFIG"])
    finally:
        # stop.sh kills exactly the two PIDs start.sh recorded and removes the dir (it does
        # nothing for a start that already cleaned up after itself)
        subprocess.run(["bash", str(APISERVER / "stop.sh"), str(kas_dir)],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def namespace(cluster: Cluster) -> str:
    ns: Doc = by_kind(list(rendered("overlays/openshift")), "Namespace")[NAMESPACE]
    ns = {**ns, "metadata": {**ns["metadata"], "annotations": {
        **(ns["metadata"].get("annotations") or {}), **OPENSHIFT_NS_ANNOTATIONS}}}
    cluster.must("apply", "--server-side", "--field-manager=openshift-ns-controller", "-f", "-",
                 stdin=json.dumps(ns))
    return NAMESPACE


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_passes_server_side_dry_run(cluster: Cluster, namespace: str,
                                            overlay: str) -> None:
    out = cluster.must("apply", "--server-side", "--dry-run=server", "-k", str(DEPLOY / overlay))
    applied = [line for line in out.splitlines() if "(server dry run)" in line]
    assert len(applied) == len(rendered(overlay)), out


def _probe_pod(deployment: Doc) -> Doc:
    """A Pod from the Deployment's template (a copy: the render is cached and shared)."""
    template = copy.deepcopy(deployment["spec"]["template"])
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{deployment['metadata']['name']}-scc-probe",
                         "namespace": NAMESPACE,
                         "labels": template["metadata"].get("labels", {}),
                         "annotations": template["metadata"].get("annotations", {})},
            "spec": template["spec"]}


def _privileged(pod: dict[str, Any]) -> set[str]:
    spec = pod["spec"]
    return {c["name"] for c in [*spec.get("initContainers", []), *spec["containers"]]
            if (c.get("securityContext") or {}).get("privileged")}


def _let_service_accounts_create_pods(cluster: Cluster) -> None:
    """Test-only RBAC: in a cluster the ReplicaSet controller creates the pods and SCC admission
    weighs the pod's ServiceAccount; here the test creates them *as* that ServiceAccount, which
    needs the right to create pods (and nothing more: no SCC is granted here)."""
    sas = sorted(by_kind(list(rendered("overlays/openshift")), "ServiceAccount"))
    rbac = [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "scc-probe-create-pods", "namespace": NAMESPACE},
         "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "scc-probe-create-pods", "namespace": NAMESPACE},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                     "name": "scc-probe-create-pods"},
         "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}
                      for sa in sas]},
    ]
    cluster.must("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(rbac))


def test_each_workload_lands_in_its_scc_as_its_service_account(cluster: Cluster,
                                                               namespace: str) -> None:
    cluster.must("apply", "--server-side", "-k", str(DEPLOY / "overlays/openshift"))
    _let_service_accounts_create_pods(cluster)
    deployments = by_kind(list(rendered("overlays/openshift")), "Deployment")
    landed: dict[str, str] = {}
    wrong: list[str] = []
    for name, deployment in sorted(deployments.items()):
        pod = _probe_pod(deployment)
        sa = pod["spec"]["serviceAccountName"]
        done = cluster.kubectl("create", "-o", "json", "-f", "-",
                               f"--as=system:serviceaccount:{NAMESPACE}:{sa}",
                               stdin=yaml.safe_dump(pod))
        if done.returncode != 0:
            wrong.append(f"{name} (as {sa}) rejected: {done.stderr.strip()}")
            continue
        admitted = json.loads(done.stdout)
        landed[name] = admitted["metadata"]["annotations"].get("openshift.io/scc", "<none>")
        sidecars = {c["name"] for c in admitted["spec"]["containers"]} & SIDECARS
        # only the rclone sidecars privileged: never symlinkd's or an app's own container
        if _privileged(admitted) != sidecars:
            wrong.append(f"{name}: privileged containers {sorted(_privileged(admitted))}, "
                         f"expected only {sorted(sidecars)}")
    assert wrong == []
    expected = {name: NON_PRIVILEGED_SCC.get(name, "privileged") for name in deployments}
    # and privileged exactly where a pod runs rclone sidecars
    assert {n for n, scc in expected.items() if scc == "privileged"} == {
        n for n, d in deployments.items()
        if {c["name"] for c in d["spec"]["template"]["spec"]["containers"]} & SIDECARS}
    assert landed == expected


def test_zurg_is_refused_the_privileged_scc(cluster: Cluster, namespace: str) -> None:
    """The grant is the ServiceAccount's: a privileged container in Zurg's pod is rejected."""
    cluster.must("apply", "--server-side", "-k", str(DEPLOY / "overlays/openshift"))
    _let_service_accounts_create_pods(cluster)
    pod = _probe_pod(by_kind(list(rendered("overlays/openshift")), "Deployment")["zurg"])
    pod["metadata"]["name"] = "zurg-privileged-probe"
    pod["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    done = cluster.kubectl("create", "-o", "json", "-f", "-",
                           f"--as=system:serviceaccount:{NAMESPACE}:zurg",
                           stdin=yaml.safe_dump(pod))
    assert done.returncode != 0, done.stdout
    assert "unable to validate against any security context constraint" in done.stderr, (
        done.stderr)


def test_apiserver_folder_is_read_from_shared_not_copied() -> None:
    assert not (Path(__file__).resolve().parents[2] / "tools" / "apiserver").exists()
