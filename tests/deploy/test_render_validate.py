"""Every overlay renders, every core object is valid Kubernetes 1.31 (strict: unknown fields
fail), every CRD object matches its schema from ../shared/schemas/crds."""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from tests.deploy.manifests import (
    CRD_SCHEMAS,
    DEPLOY,
    OVERLAYS,
    Doc,
    kubectl,
    load_files,
    name_of,
    render,
)

K8S_VERSION = "1.31.0"  # OpenShift 4.18

# apiVersion/kind -> schema file under ../shared/schemas/crds (datreeio/CRDs-catalog, MIT)
CRD_SCHEMA_FILES = {
    ("route.openshift.io/v1", "Route"): "openshift/v4.15-strict/route_route.openshift.io_v1.json",
    ("security.openshift.io/v1", "SecurityContextConstraints"):
        "openshift/v4.15-strict/securitycontextconstraints_security.openshift.io_v1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com/servicemonitor_v1.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "monitoring.coreos.com/podmonitor_v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com/prometheusrule_v1.json",
    ("argoproj.io/v1alpha1", "Application"): "argoproj.io/application_v1alpha1.json",
    ("cert-manager.io/v1", "Certificate"): "cert-manager.io/certificate_v1.json",
    ("metallb.io/v1beta1", "IPAddressPool"): "metallb.io/ipaddresspool_v1beta1.json",
    ("metallb.io/v1beta1", "L2Advertisement"): "metallb.io/l2advertisement_v1beta1.json",
}
ARGOCD_FILES = sorted((DEPLOY / "argocd").glob("*.yaml"))


def _is_crd(doc: Doc) -> bool:
    return (doc["apiVersion"], doc["kind"]) in CRD_SCHEMA_FILES


@functools.cache
def _crd_validator(key: tuple[str, str]) -> jsonschema.protocols.Validator:
    schema = json.loads((CRD_SCHEMAS / CRD_SCHEMA_FILES[key]).read_text())
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    return cls(schema)


def _k8s_errors(docs: list[Doc]) -> list[str]:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate",
        reason="kubernetes-validate missing: pip install kubernetes-validate")
    errors = []
    for doc in docs:
        if _is_crd(doc):
            continue
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{name_of(doc)}: no Kubernetes {K8S_VERSION} schema and no CRD schema "
                          f"for {doc['apiVersion']}")
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{name_of(doc)}: {exc.message} at {list(exc.path)}")
    return errors


def _crd_errors(docs: list[Doc]) -> list[str]:
    if not CRD_SCHEMAS.is_dir():
        pytest.skip(f"CRD schemas not found at {CRD_SCHEMAS} (the shared test data folder beside "
                    "the repository); core objects are still validated by the other tests")
    errors = []
    for doc in docs:
        if not _is_crd(doc):
            continue
        validator = _crd_validator((doc["apiVersion"], doc["kind"]))
        errors += [f"{name_of(doc)}: {e.message} at {list(e.absolute_path)}"
                   for e in validator.iter_errors(doc)]
    return errors


@pytest.mark.parametrize("overlay", ["base", "monitoring", *OVERLAYS])
def test_renders(overlay: str) -> None:
    docs = render(overlay)
    assert docs
    names = [name_of(d) for d in docs]
    assert len(names) == len(set(names)), "an object is rendered twice"
    namespaced = [d for d in docs if d["kind"] not in {"Namespace", "StorageClass"}]
    assert {d["metadata"].get("namespace") for d in namespaced} == {"media-stack"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_core_objects_valid_for_kubernetes_1_31_strict(overlay: str) -> None:
    assert _k8s_errors(render(overlay)) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_crd_objects_match_their_schemas(overlay: str) -> None:
    docs = render(overlay)
    assert any(_is_crd(d) for d in docs)
    assert _crd_errors(docs) == []


def test_argocd_applications_match_schema_and_point_at_overlays() -> None:
    apps = load_files(*ARGOCD_FILES)
    assert {a["spec"]["source"]["path"] for a in apps} == {f"deploy/{o}" for o in OVERLAYS}
    assert _crd_errors(apps) == []


def test_strict_validation_catches_a_misspelt_field() -> None:
    """The strict check is live: a field Kubernetes does not know fails it."""
    doc = next(d for d in render("overlays/kubernetes") if d["kind"] == "Deployment")
    doc["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    errors = _k8s_errors([doc])
    assert len(errors) == 1 and "resource" in errors[0]


def test_crd_schema_catches_a_wrong_route_termination() -> None:
    route = next(d for d in render("overlays/openshift") if d["kind"] == "Route")
    route["spec"]["tls"]["termination"] = "passthru"
    assert _crd_errors([route])


def test_every_crd_kind_we_ship_has_a_schema_file() -> None:
    if not CRD_SCHEMAS.is_dir():
        pytest.skip(f"CRD schemas not found at {CRD_SCHEMAS}")
    shipped = {(d["apiVersion"], d["kind"]) for o in OVERLAYS for d in render(o) if _is_crd(d)}
    for key in shipped | {(a["apiVersion"], a["kind"]) for a in load_files(*ARGOCD_FILES)}:
        path: Path = CRD_SCHEMAS / CRD_SCHEMA_FILES[key]
        assert path.is_file(), path


def test_nginx_tls_component_also_fits_the_kubernetes_overlay(tmp_path: Path) -> None:
    """deploy/README.md says any overlay may add components/nginx-tls: on Kubernetes (no Route
    to patch) it must still render and validate."""
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        # kustomize takes relative paths only
        "resources": [os.path.relpath(DEPLOY / "overlays" / "kubernetes", tmp_path)],
        "components": [os.path.relpath(DEPLOY / "components" / "nginx-tls", tmp_path)],
    }))
    done = subprocess.run([kubectl(), "kustomize", str(tmp_path)], capture_output=True,
                          text=True, env={**os.environ, "KUBECONFIG": os.devnull}, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    plex = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "plex")
    assert "nginx-tls" in {c["name"] for c in plex["spec"]["template"]["spec"]["containers"]}
    assert _k8s_errors(docs) == []
    assert _crd_errors(docs) == []
