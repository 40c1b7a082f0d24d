#!/usr/bin/env bash
# Builds the symlinkd image with podman on a locally made Debian base (no registry reachable)
# and runs it: --version, config check of the deploy ConfigMap's config, demo, plus checks that
# the final stage runs as the fixed non-root UID with no compiler or pip cache in it.
# Needs .ci/deploy-tools.sh first (podman buildah mmdebstrap fuse-overlayfs runc).
# Storage lives in $SYMLINKD_IMAGE_WORK (default /var/tmp/symlinkd-image); the base is reused
# when present (delete the folder to rebuild it).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${SYMLINKD_IMAGE_WORK:-/var/tmp/symlinkd-image}"
BASE_IMAGE="localhost/pybase:3.11"
IMAGE="localhost/symlinkd:ci"
EXPECTED_UID=10001
log() { printf 'image: %s\n' "$*" >&2; }
fail() { printf 'image: FAIL: %s\n' "$*" >&2; exit 1; }

for tool in podman mmdebstrap; do
    command -v "$tool" >/dev/null || fail "$tool missing: run .ci/deploy-tools.sh first"
done
mkdir -p "$WORK"

# root lacks CAP_SYS_RESOURCE here: podman's default nofile limit (1048576) makes setrlimit fail,
# so stay at the hard limit we have. crun fails with "cgroups in hybrid mode not supported": runc.
cat > "$WORK/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_CONF="$WORK/containers.conf"
pm() { podman --root "$WORK/storage" --runroot "$WORK/run" "$@"; }

started=$SECONDS
if ! pm image exists "$BASE_IMAGE"; then
    mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
    mirror="${mirror:-http://deb.debian.org/debian}"
    log "base $BASE_IMAGE from $mirror (mmdebstrap, ~30 s)"
    # python3 -m venv /usr/local gives /usr/local/bin/python and pip like the official python
    # image, and keeps pip away from Debian's externally-managed system Python (PEP 668).
    mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates \
        --customize-hook='chroot "$1" python3 -m venv /usr/local' \
        bookworm - "$mirror" | pm import --quiet - "$BASE_IMAGE" >/dev/null
fi

# Containers reach PyPI through an intercepting proxy whose CA is only in the host bundle: lend
# the build the host bundle and a pip.conf pointing at it (build-time mounts, not in the image).
cat > "$WORK/pip.conf" <<CONF
[global]
cert = /etc/ssl/certs/ca-certificates.crt
disable-pip-version-check = true
CONF
log "build $IMAGE"
pm build --quiet --pull=never --build-arg BASE="$BASE_IMAGE" \
    -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
    -v "$WORK/pip.conf:/etc/pip.conf:ro" \
    -t "$IMAGE" -f "$ROOT/Dockerfile" "$ROOT" >/dev/null

run() { pm run --rm --pull=never --read-only --tmpfs /tmp "$@"; }

log "symlinkd --version"
version_out="$(run "$IMAGE" --version)"
echo "$version_out"
expected_version="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$ROOT/symlinkd/__init__.py")"
grep -q -- "$expected_version" <<<"$version_out" || fail "--version does not print $expected_version"

log "runs as the fixed non-root UID, no compiler, no pip or apt cache, pip removed"
uid="$(run --entrypoint /usr/bin/id "$IMAGE" -u)"
[ "$uid" = "$EXPECTED_UID" ] || fail "runs as uid $uid, want $EXPECTED_UID"
run --entrypoint /bin/sh "$IMAGE" -c '
    for c in gcc cc g++ make; do command -v "$c" && exit 1; done
    [ ! -e /root/.cache/pip ] && [ ! -e /opt/symlinkd/bin/pip ]
    [ -z "$(ls /var/lib/apt/lists/ | grep -v -e "^lock$" -e "^partial$")" ]
    ! ls /var/cache/apt/*.bin >/dev/null 2>&1
' || fail "final stage has a compiler, pip, or a pip/apt cache"

log "config check of the deploy ConfigMap's config (deploy/base/symlinkd/symlinkd.yaml)"
secrets="$WORK/secrets"
mkdir -p "$secrets"
# Placeholder values for the keys of Secret symlinkd-secrets (deploy/secrets.example.yaml);
# the config reads them as files from the same paths as in the pod.
for key in plex-token sonarr-api-key radarr-api-key webhook-token; do
    printf 'ci-placeholder-%s\n' "$key" > "$secrets/$key"
done
chmod 0644 "$secrets"/*
run -v "$ROOT/deploy/base/symlinkd/symlinkd.yaml:/etc/symlinkd/symlinkd.yaml:ro" \
    -v "$secrets:/secrets:ro" \
    "$IMAGE" config check --config /etc/symlinkd/symlinkd.yaml

log "symlinkd demo"
set +e
run "$IMAGE" demo
demo_rc=$?
set -e
# demo scans a farm with broken links on purpose: 1 = problems found; 0/1 are both a working demo.
[ "$demo_rc" -le 1 ] || fail "symlinkd demo exited $demo_rc"

log "symlinkd run stops cleanly on SIGTERM (tini forwards it; podman stop would SIGKILL after 20 s)"
daemon="$WORK/daemon"
rm -rf "$daemon"
mkdir -p "$daemon"/{farm,state,zurg/__all__,torbox/torrents}
cat > "$daemon/symlinkd.yaml" <<CONF
farm: /data/farm
state_dir: /data/state
mounts:
  - {name: zurg, path: /data/zurg, anchor: __all__, require_mountpoint: false}
  - {name: torbox, path: /data/torbox, anchor: torrents, require_mountpoint: false}
policy: {quarantine_dir: /data/state/quarantine}
daemon: {listen: "127.0.0.1:9090", watch: "off", scan_interval_minutes: 30}
CONF
chown -R "$EXPECTED_UID:$EXPECTED_UID" "$daemon"
name="symlinkd-sigterm-$$"
pm rm -f "$name" >/dev/null 2>&1 || true
pm run -d --name "$name" --pull=never --read-only --tmpfs /tmp -v "$daemon:/data" \
    "$IMAGE" run --config /data/symlinkd.yaml >/dev/null
healthy=""
for _ in $(seq 60); do
    if pm exec "$name" python -c \
        "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9090/healthz', timeout=2)" \
        >/dev/null 2>&1; then healthy=1; break; fi
    sleep 0.5
done
if [ -z "$healthy" ]; then pm logs "$name" >&2 || true; pm rm -f "$name" >/dev/null; fail "daemon never answered /healthz"; fi
stop_started=$SECONDS
pm stop --time 20 "$name" >/dev/null
stop_took=$((SECONDS - stop_started))
code="$(pm inspect "$name" --format '{{.State.ExitCode}}')"
pm rm -f "$name" >/dev/null
[ "$stop_took" -lt 15 ] || fail "SIGTERM ignored: stop took ${stop_took}s"
[ "$code" = 0 ] || fail "symlinkd run exited $code on SIGTERM, want 0"
log "stopped in ${stop_took}s with exit code 0"

# Earlier builds' layers would pile up in $WORK run after run.
pm image prune -f >/dev/null
log "image size: $(pm image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}')"
log "OK in $((SECONDS - started)) s"
