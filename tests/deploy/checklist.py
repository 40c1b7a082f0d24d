"""The seed's Deployment Checklist (hybrid-media-stack.md) as code, plus the fixes issue 6 asks
for in the same pods. No schema knows these rules: `mountPropagation` has no enum, so a typo
passes kubectl, kubernetes-validate and checkov alike."""

from __future__ import annotations

from tests.deploy.manifests import Doc, all_containers, media_volume_names, name_of, pod_spec

SIDECARS = {"rclone-zurg": ("zurg", "rclone-zurg-config", "5572"),
            "rclone-torbox": ("torbox", "rclone-config", "5573")}
INIT = "init-dirs"
PREFERRED_NODES = {"wow-ocp-node2", "wow-ocp-node3"}
MEDIA_PATH = "/mnt/media"


def _media_mounts(container: Doc, volumes: set[str]) -> list[Doc]:
    return [m for m in container.get("volumeMounts", [])
            if m["name"] in volumes and m["mountPath"] == MEDIA_PATH]


def _resources_problems(container: Doc) -> list[str]:
    res = container.get("resources") or {}
    missing = [f"{part}.{what}" for part in ("requests", "limits") for what in ("cpu", "memory")
               if what not in (res.get(part) or {})]
    return [f"{container['name']}: resources missing {', '.join(missing)}"] if missing else []


def _probe_problems(container: Doc) -> list[str]:
    missing = [p for p in ("livenessProbe", "readinessProbe") if p not in container]
    return [f"{container['name']}: no {' / '.join(missing)}"] if missing else []


def checklist_problems(doc: Doc) -> list[str]:
    """Every way the pod of ``doc`` breaks the Deployment Checklist; [] when it passes."""
    spec = pod_spec(doc)
    assert spec is not None, f"{name_of(doc)} has no pod"
    volumes = media_volume_names(spec)
    problems: list[str] = []
    if not volumes:
        return ["does not mount PVC media-library-pvc"]
    containers = {c["name"]: c for c in spec.get("containers", [])}
    inits = {c["name"]: c for c in spec.get("initContainers", [])}

    init = inits.get(INIT)
    if init is None:
        problems.append("no init-dirs initContainer")
    else:
        script = " ".join([*init.get("command", []), *init.get("args", [])])
        for mount_point in ("/mnt/media/zurg", "/mnt/media/torbox"):
            if mount_point not in script:
                problems.append(f"init-dirs does not create {mount_point}")
        if not _media_mounts(init, volumes):
            problems.append("init-dirs does not mount the media PVC at /mnt/media")

    for name, (remote, secret, rc_port) in SIDECARS.items():
        sidecar = containers.get(name)
        if sidecar is None:
            problems.append(f"no {name} sidecar")
            continue
        if (sidecar.get("securityContext") or {}).get("privileged") is not True:
            problems.append(f"{name}: not privileged")
        mounts = _media_mounts(sidecar, volumes)
        if not mounts:
            problems.append(f"{name}: does not mount the media PVC at /mnt/media")
        for m in mounts:
            if m.get("mountPropagation") != "Bidirectional":
                problems.append(f"{name}: mountPropagation {m.get('mountPropagation')!r}, "
                                "want 'Bidirectional'")
        args = [str(a) for a in [*sidecar.get("command", []), *sidecar.get("args", [])]]
        if f"{remote}:" not in args or f"/mnt/media/{remote}" not in args:
            problems.append(f"{name}: does not mount {remote}: at /mnt/media/{remote}")
        if "--rc-no-auth" in args:
            problems.append(f"{name}: --rc-no-auth")
        rc_addrs = [a.split("=", 1)[1] for a in args if a.startswith("--rc-addr=")]
        if "--rc" in args and rc_addrs != [f"127.0.0.1:{rc_port}"]:
            problems.append(f"{name}: rclone rc must listen on 127.0.0.1:{rc_port} only, "
                            f"has {rc_addrs or 'the default'}")
        secret_volumes = {v["name"] for v in spec.get("volumes", [])
                          if (v.get("secret") or {}).get("secretName") == secret}
        config_mounts = [m for m in sidecar.get("volumeMounts", [])
                         if m["name"] in secret_volumes]
        if not config_mounts:
            problems.append(f"{name}: Secret {secret} not mounted")
        else:
            wanted = f"--config={config_mounts[0]['mountPath'].rstrip('/')}/rclone.conf"
            if wanted not in args:
                problems.append(f"{name}: rclone does not read its config from Secret {secret}")

    apps = [c for n, c in containers.items() if n not in SIDECARS]
    receiving = [c for c in apps if _media_mounts(c, volumes)]
    if not receiving:
        problems.append("no app container mounts the media PVC at /mnt/media")
    for app in apps:
        if (app.get("securityContext") or {}).get("privileged"):
            problems.append(f"{app['name']}: app container is privileged")
        for m in _media_mounts(app, volumes):
            if m.get("mountPropagation") != "HostToContainer":
                problems.append(f"{app['name']}: mountPropagation {m.get('mountPropagation')!r}, "
                                "want 'HostToContainer'")
        for m in app.get("volumeMounts", []):
            if m.get("mountPropagation") == "Bidirectional":
                problems.append(f"{app['name']}: Bidirectional on {m['mountPath']} (sidecars only)")

    if spec.get("nodeSelector"):
        problems.append(f"hard nodeSelector {spec['nodeSelector']}")
    node_affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
    if node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution"):
        problems.append("required node affinity (must be preferred only)")
    preferred = {
        value
        for term in node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution", [])
        for expr in term.get("preference", {}).get("matchExpressions", [])
        if expr.get("key") == "kubernetes.io/hostname" and expr.get("operator") == "In"
        for value in expr.get("values", [])
    }
    if not preferred >= PREFERRED_NODES:
        problems.append(f"no preferred node affinity for {sorted(PREFERRED_NODES)}")

    for container in all_containers(spec):
        problems += _resources_problems(container)
    for container in spec.get("containers", []):
        problems += _probe_problems(container)
    return problems


def scc_problems(docs: list[Doc]) -> list[str]:
    """OpenShift: every ServiceAccount whose pods run privileged rclone sidecars is bound to the
    privileged SCC through ClusterRole system:openshift:scc:privileged; no other one is."""
    bound: set[str] = set()
    for doc in docs:
        if doc["kind"] not in {"RoleBinding", "ClusterRoleBinding"}:
            continue
        if doc["roleRef"] != {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                              "name": "system:openshift:scc:privileged"}:
            continue
        bound |= {s["name"] for s in doc.get("subjects", []) if s["kind"] == "ServiceAccount"}
    needing: dict[str, list[str]] = {}
    for doc in docs:
        spec = pod_spec(doc)
        if spec is None:
            continue
        privileged = any((c.get("securityContext") or {}).get("privileged")
                         for c in all_containers(spec))
        if privileged:
            sa = spec.get("serviceAccountName", "default")
            needing.setdefault(sa, []).append(doc["metadata"]["name"])
    problems = [f"ServiceAccount {sa} runs privileged sidecars ({', '.join(users)}) without the "
                "privileged SCC" for sa, users in sorted(needing.items()) if sa not in bound]
    problems += [f"ServiceAccount {sa} has the privileged SCC but runs nothing privileged"
                 for sa in sorted(bound - set(needing))]
    return problems
