#!/usr/bin/env bash
# Builds kube-apiserver and helm (for tests/kube and the chart's checks only) from the Go module
# proxy into a cache keyed by version, once: with both binaries present it does nothing.
#   scripts/kube-tools/build.sh        # -> /var/cache/netbootd-test/{kube-apiserver-v1.34.2,helm-v3.19.4}
#   KUBE_APISERVER_CACHE=/some/dir scripts/kube-tools/build.sh
# Cost: 7-13 minutes and ~1 GB of module and build cache on 2 cores, once; helm shares most of
# kube-apiserver's packages (the same k8s.io versions), so it adds about 2 minutes.
set -euo pipefail
cd "$(dirname "$0")"
version() { awk -v m="$1" '$1==m {print $2} $1=="require" && $2==m {print $3}' go.mod; }
kube=$(version k8s.io/kubernetes) helm=$(version helm.sh/helm/v3)
dir=${KUBE_APISERVER_CACHE:-/var/cache/netbootd-test}
apiserver_out="$dir/kube-apiserver-$kube" helm_out="$dir/helm-$helm"
mkdir -p "$dir"
# One build at a time: a second run (CI starts one in the background, then make test asks
# again) waits for the first and then finds the binaries there.
exec 9>"$dir/kube-tools.lock"
flock 9
pkgs=()
[ -x "$apiserver_out" ] || pkgs+=(k8s.io/kubernetes/cmd/kube-apiserver)
[ -x "$helm_out" ] || pkgs+=(helm.sh/helm/v3/cmd/helm)
if [ ${#pkgs[@]} -gt 0 ]; then
  command -v go >/dev/null || PATH=$PATH:/usr/local/go/bin
  start=$(date +%s) tmp=$(mktemp -d "$dir/build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  # One go build for both: the packages they share compile once. CGO off: static binaries
  # that do not depend on this machine's libc.
  CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm" -o "$tmp/" "${pkgs[@]}"
  [ -x "$tmp/kube-apiserver" ] && mv "$tmp/kube-apiserver" "$apiserver_out"
  [ -x "$tmp/helm" ] && mv "$tmp/helm" "$helm_out"
  echo "built ${pkgs[*]} in $(( $(date +%s) - start ))s" >&2
fi
echo "$apiserver_out"
echo "$helm_out"
