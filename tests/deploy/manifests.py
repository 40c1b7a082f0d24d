"""Rendering and walking the kustomize tree under deploy/ (no cluster needed)."""

from __future__ import annotations

import copy
import functools
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SHARED = REPO.parent / "shared"
CRD_SCHEMAS = SHARED / "schemas" / "crds"
OVERLAYS = ("overlays/openshift", "overlays/kubernetes")
MEDIA_PVC = "media-library-pvc"
NAMESPACE = "media-stack"

Doc = dict[str, Any]

POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.skip("kubectl missing (it renders kustomize): run .ci/deploy-tools.sh")
    return found


@functools.cache
def _render(path: str) -> tuple[Doc, ...]:
    # kubectl kustomize never talks to a cluster; an empty KUBECONFIG keeps it from reading the
    # user's (or failing on a missing one).
    env = {**os.environ, "KUBECONFIG": os.devnull}
    done = subprocess.run([kubectl(), "kustomize", str(DEPLOY / path)], capture_output=True,
                          text=True, env=env, timeout=120, check=False)
    if done.returncode != 0:
        raise AssertionError(f"kubectl kustomize {path} failed:\n{done.stderr}")
    return tuple(d for d in yaml.safe_load_all(done.stdout) if d)


def rendered(path: str) -> tuple[Doc, ...]:
    """The cached render itself: read only (use ``render`` to get a copy to change)."""
    return _render(path)


def render(path: str) -> list[Doc]:
    """The objects `kubectl kustomize deploy/<path>` prints (a fresh deep copy per call, so a
    test may mutate what it gets)."""
    return copy.deepcopy(list(_render(path)))


def load_files(*paths: Path) -> list[Doc]:
    return [d for p in paths for d in yaml.safe_load_all(p.read_text()) if d]


def pod_spec(doc: Doc) -> Doc | None:
    kind = doc.get("kind")
    spec: Doc | None = None
    if kind == "Pod":
        spec = doc["spec"]
    elif kind in POD_TEMPLATE_KINDS:
        spec = doc["spec"]["template"]["spec"]
    elif kind == "CronJob":
        spec = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return spec


def pod_labels(doc: Doc) -> dict[str, str]:
    if doc["kind"] == "Pod":
        return dict(doc["metadata"].get("labels") or {})
    return dict(doc["spec"]["template"]["metadata"].get("labels") or {})


def workloads(docs: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    for doc in docs:
        spec = pod_spec(doc)
        if spec is not None:
            yield doc, spec


def all_containers(spec: Doc) -> list[Doc]:
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def media_volume_names(spec: Doc) -> set[str]:
    return {
        v["name"] for v in spec.get("volumes", [])
        if (v.get("persistentVolumeClaim") or {}).get("claimName") == MEDIA_PVC
    }


def mounts_media(spec: Doc) -> bool:
    return bool(media_volume_names(spec))


def by_kind(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def name_of(doc: Doc) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"
