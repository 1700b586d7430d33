#!/usr/bin/env bash
# Installs the Debian packages the real test node (test/k8s/real-node.ts) and the local image
# builds (infra/images/build.sh) use, only when a command is missing, so a warm machine does nothing:
#   containerd, ctr            containerd (the node's container runtime; 1.6 in bookworm)
#   runc                       runc (crun refuses this machine's cgroup v1 hierarchy)
#   /usr/lib/cni/bridge ...    containernetworking-plugins (bridge, host-local, loopback, portmap)
#   iptables                   iptables (kube-proxy's iptables mode, the harness's guard rules)
#   socat                      socat (pods reach the API server, which listens on 127.0.0.1 only)
#   buildah                    buildah (builds the images from Containerfiles and the Dockerfile)
#   mmdebstrap                 mmdebstrap (the Debian bookworm root file system of the base images)
#   gcc + libc.a               gcc, libc6-dev (the static pause binary, from Kubernetes' pause.c)
set -euo pipefail
declare -A pkg_for=(
  [containerd]=containerd [ctr]=containerd [runc]=runc [iptables]=iptables
  [socat]=socat [buildah]=buildah [mmdebstrap]=mmdebstrap [gcc]=gcc
)
missing=()
for cmd in "${!pkg_for[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg_for[$cmd]}")
done
[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] && [ -x /usr/lib/cni/loopback ] \
  || missing+=(containernetworking-plugins)
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || [ -f /usr/lib/aarch64-linux-gnu/libc.a ] || missing+=(libc6-dev)
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "node system-packages: installing ${missing[*]}" >&2
sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo_cmd apt-get update -qq -o DPkg::Lock::Timeout=300
$sudo_cmd apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing[@]}" >/dev/null
# Debian may start containerd for the whole machine; the node starts its own on its own socket.
$sudo_cmd systemctl disable --now containerd >/dev/null 2>&1 || true
