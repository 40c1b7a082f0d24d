"""Wiring checks on rendered manifests: does every name that points at another object point at
something that is there? A Service selector with a typo, a probe on another app's port, a Route
to a port the Service lacks, a health path the app does not serve: each of these is valid YAML,
passes every schema and is accepted by a real API server, and each breaks the stack at run time.

``wiring_problems(docs)`` returns one line per broken reference, prefixed with the object's
``Kind/name`` (``[]`` when all is wired). Pure: it reads the documents, nothing else."""

from __future__ import annotations

from collections.abc import Iterable

from tests.deploy.manifests import Doc, all_containers, name_of, pod_labels, pod_spec
from tests.deploy.netpol import selector_matches

PROBES = ("startupProbe", "readinessProbe", "livenessProbe")

# Each app's real health endpoint, per probe (container name -> probe -> path). The apps not
# listed have no unauthenticated health endpoint (SABnzbd, rdt-client, Riven, Bazarr, Zurg
# behind basic auth): TCP probes there, and an httpGet probe on them is a mistake.
HEALTH_PATHS: dict[str, dict[str, str]] = {
    "sonarr": dict.fromkeys(PROBES, "/ping"),       # Sonarr v4: GET /ping -> {"status":"OK"}
    "radarr": dict.fromkeys(PROBES, "/ping"),
    "plex": dict.fromkeys(PROBES, "/identity"),     # PMS answers /identity without a token
    "overseerr": dict.fromkeys(PROBES, "/api/v1/status"),
    # symlinkd: /healthz = the process serves; /readyz = first pass done, state DB open
    "symlinkd": {"startupProbe": "/healthz", "livenessProbe": "/healthz",
                 "readinessProbe": "/readyz"},
}


def _workloads(docs: Iterable[Doc]) -> list[tuple[Doc, Doc]]:
    found = []
    for doc in docs:
        spec = pod_spec(doc)
        if spec is not None:
            found.append((doc, spec))
    return found


def _ns(doc: Doc) -> str:
    return str(doc["metadata"].get("namespace", ""))


def _container_ports(container: Doc) -> tuple[dict[str, int], set[int]]:
    named = {p["name"]: int(p["containerPort"]) for p in container.get("ports", [])
             if "name" in p}
    return named, {int(p["containerPort"]) for p in container.get("ports", [])}


def _selected(service: Doc, workloads: list[tuple[Doc, Doc]]) -> list[tuple[Doc, Doc]]:
    selector = service["spec"].get("selector") or {}
    if not selector:
        return []
    return [(w, s) for w, s in workloads if _ns(w) == _ns(service)
            and all(pod_labels(w).get(k) == v for k, v in selector.items())]


def _resolves(port: object, containers: list[Doc]) -> bool:
    """A Service targetPort: a named port or a port number of one of ``containers``."""
    for container in containers:
        named, numbers = _container_ports(container)
        if (isinstance(port, str) and not port.isdigit() and port in named) or (
                str(port).isdigit() and int(str(port)) in numbers):
            return True
    return False


def service_problems(docs: list[Doc]) -> list[str]:
    workloads = _workloads(docs)
    problems = []
    for service in (d for d in docs if d["kind"] == "Service"):
        name = name_of(service)
        selected = _selected(service, workloads)
        if len(selected) != 1:
            problems.append(f"{name}: selector {service['spec'].get('selector')} matches "
                            f"{len(selected)} workloads {[name_of(w) for w, _ in selected]}, "
                            "not exactly one")
            continue
        workload, spec = selected[0]
        for port in service["spec"].get("ports", []):
            target = port.get("targetPort", port["port"])
            if not _resolves(target, spec["containers"]):
                problems.append(f"{name}: port {port.get('name', port['port'])} targets "
                                f"{target!r}, which no container of {name_of(workload)} has")
    return problems


def probe_problems(docs: list[Doc]) -> list[str]:
    problems = []
    for workload, spec in _workloads(docs):
        for container in all_containers(spec):
            where = f"{name_of(workload)}/{container['name']}"
            named, numbers = _container_ports(container)
            table = HEALTH_PATHS.get(container["name"])
            for kind in PROBES:
                probe = container.get(kind)
                if not probe:
                    continue
                action = probe.get("httpGet") or probe.get("tcpSocket") or probe.get("grpc")
                if action is not None:
                    port = action["port"]
                    ok = port in named if isinstance(port, str) and not port.isdigit() \
                        else int(port) in numbers
                    if not ok:
                        problems.append(f"{where}: {kind} port {port!r} is not a port of this "
                                        f"container (it has {sorted(named) or sorted(numbers)})")
                http = probe.get("httpGet")
                if http is None:
                    continue
                wanted = (table or {}).get(kind)
                if wanted is None:
                    problems.append(f"{where}: {kind} GET {http.get('path')} but this app has "
                                    "no health endpoint in the table (use tcpSocket)")
                elif http.get("path") != wanted:
                    problems.append(f"{where}: {kind} GET {http.get('path')}, the app's health "
                                    f"endpoint is {wanted}")
    return problems


def _service_port_names(service: Doc) -> set[str]:
    return {p["name"] for p in service["spec"].get("ports", []) if "name" in p}


def route_and_ingress_problems(docs: list[Doc]) -> list[str]:
    services = {(_ns(d), d["metadata"]["name"]): d for d in docs if d["kind"] == "Service"}
    problems = []
    for route in (d for d in docs if d["kind"] == "Route"):
        to = route["spec"]["to"]
        service = services.get((_ns(route), to["name"]))
        if to.get("kind", "Service") != "Service" or service is None:
            problems.append(f"{name_of(route)}: routes to {to}, which is not rendered")
            continue
        target = (route["spec"].get("port") or {}).get("targetPort")
        numbers = {str(p.get("targetPort", p["port"])) for p in service["spec"]["ports"]}
        if target is not None and str(target) not in _service_port_names(service) | numbers:
            problems.append(f"{name_of(route)}: targetPort {target!r} is not a port of "
                            f"{name_of(service)} ({sorted(_service_port_names(service))})")
    for ingress in (d for d in docs if d["kind"] == "Ingress"):
        backends = [p["backend"] for r in ingress["spec"].get("rules", [])
                    for p in (r.get("http") or {}).get("paths", [])]
        if "defaultBackend" in ingress["spec"]:
            backends.append(ingress["spec"]["defaultBackend"])
        for backend in backends:
            ref = backend["service"]
            service = services.get((_ns(ingress), ref["name"]))
            if service is None:
                problems.append(f"{name_of(ingress)}: backend Service {ref['name']} not rendered")
                continue
            port = ref["port"]
            ok = (port["name"] in _service_port_names(service)) if "name" in port else (
                port["number"] in {p["port"] for p in service["spec"]["ports"]})
            if not ok:
                problems.append(f"{name_of(ingress)}: backend {ref['name']} port {port} is not "
                                f"a port of {name_of(service)}")
    return problems


def service_monitor_problems(docs: list[Doc]) -> list[str]:
    services = [d for d in docs if d["kind"] == "Service"]
    problems = []
    for monitor in (d for d in docs if d["kind"] == "ServiceMonitor"):
        spec = monitor["spec"]
        namespaces = (spec.get("namespaceSelector") or {}).get("matchNames") or [_ns(monitor)]
        selected = [s for s in services if _ns(s) in namespaces
                    and selector_matches(spec["selector"], s["metadata"].get("labels") or {})]
        if not selected:
            problems.append(f"{name_of(monitor)}: selector {spec['selector']} selects no Service")
        for endpoint in spec.get("endpoints", []):
            for service in selected:
                if endpoint.get("port") not in _service_port_names(service):
                    problems.append(f"{name_of(monitor)}: endpoint port {endpoint.get('port')!r}"
                                    f" is not a port name of {name_of(service)}")
    return problems


def network_policy_problems(docs: list[Doc]) -> list[str]:
    workloads = _workloads(docs)
    return [f"{name_of(p)}: podSelector {p['spec']['podSelector']} selects no pod"
            for p in docs if p["kind"] == "NetworkPolicy"
            if not any(_ns(w) == _ns(p) and selector_matches(p["spec"]["podSelector"],
                                                             pod_labels(w))
                       for w, _ in workloads)]


def _references(spec: Doc) -> Iterable[tuple[str, str]]:
    """(kind, name) of every ConfigMap/Secret a pod spec reads."""
    for volume in spec.get("volumes", []):
        if "configMap" in volume:
            yield "ConfigMap", volume["configMap"]["name"]
        if "secret" in volume:
            yield "Secret", volume["secret"]["secretName"]
        for source in (volume.get("projected") or {}).get("sources", []):
            if "configMap" in source:
                yield "ConfigMap", source["configMap"]["name"]
            if "secret" in source:
                yield "Secret", source["secret"]["name"]
    for container in all_containers(spec):
        for env in container.get("env", []):
            source = env.get("valueFrom") or {}
            if "configMapKeyRef" in source:
                yield "ConfigMap", source["configMapKeyRef"]["name"]
            if "secretKeyRef" in source:
                yield "Secret", source["secretKeyRef"]["name"]
        for env_from in container.get("envFrom", []):
            if "configMapRef" in env_from:
                yield "ConfigMap", env_from["configMapRef"]["name"]
            if "secretRef" in env_from:
                yield "Secret", env_from["secretRef"]["name"]


def reference_problems(docs: list[Doc], example_secrets: set[str]) -> list[str]:
    """Every ConfigMap/Secret a pod reads is rendered, listed in secrets.example.yaml, or
    written by a rendered cert-manager Certificate."""
    present = {(d["kind"], d["metadata"]["name"]) for d in docs}
    issued = {d["spec"]["secretName"] for d in docs if d["kind"] == "Certificate"}
    problems = []
    for workload, spec in _workloads(docs):
        for kind, name in sorted(set(_references(spec))):
            if (kind, name) in present or (kind == "Secret" and name in example_secrets | issued):
                continue
            where = "rendered" if kind == "ConfigMap" else "rendered, in secrets.example.yaml"
            problems.append(f"{name_of(workload)}: reads {kind} {name}, which is not {where} "
                            "or issued by a Certificate")
    return problems


def wiring_problems(docs: list[Doc], example_secrets: set[str]) -> list[str]:
    return [*service_problems(docs), *probe_problems(docs), *route_and_ingress_problems(docs),
            *service_monitor_problems(docs), *network_policy_problems(docs),
            *reference_problems(docs, example_secrets)]
