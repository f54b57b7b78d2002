#!/usr/bin/env bash
# Builds kube-apiserver (for tests/kube only) from the Go module proxy into a cache keyed by
# version, once: a second run with the binary present does nothing.
#   tools/kube-apiserver/build.sh            # -> /var/cache/netbootd-test/kube-apiserver-v1.34.2
#   KUBE_APISERVER_CACHE=/some/dir tools/kube-apiserver/build.sh
# Cost: ~7 minutes and ~800 MB of module cache on 2 cores; a ~110-150 MB binary.
set -euo pipefail
cd "$(dirname "$0")"
version=$(awk '$1=="require" && $2=="k8s.io/kubernetes" {print $3}' go.mod)
dir=${KUBE_APISERVER_CACHE:-/var/cache/netbootd-test}
out="$dir/kube-apiserver-$version"
if [ -x "$out" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$dir"
command -v go >/dev/null || PATH=$PATH:/usr/local/go/bin
start=$(date +%s)
# CGO off: a static binary that does not depend on this machine's libc.
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out.tmp" k8s.io/kubernetes/cmd/kube-apiserver
mv "$out.tmp" "$out"
echo "kube-apiserver $version built in $(( $(date +%s) - start ))s" >&2
echo "$out"
