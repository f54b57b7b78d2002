#!/usr/bin/env bash
# Builds the Kubernetes commands the tests need from the Go module proxy into a cache keyed by
# version, once: with every binary present and stamped with its version it does nothing.
#   scripts/kube-tools/build.sh        # -> /var/cache/netbootd-test/{kube-apiserver,helm,...}-VERSION
#   KUBE_APISERVER_CACHE=/some/dir scripts/kube-tools/build.sh
# kube-apiserver and helm: tests/kube and the chart's checks. kubelet, kube-controller-manager,
# kube-scheduler and kubectl: the real node of tests/realnode_test.go. Cost on 2 cores, once:
# 7-13 minutes and ~1 GB of module and build cache for the first two, 2-3 minutes more for the
# node's four (they share most packages: the same k8s.io versions). Every Kubernetes binary is
# version-stamped, or helm refuses the chart's kubeVersion and kubectl cannot parse the server's
# version; a cached binary without its stamp (an older build.sh) is built again.
set -euo pipefail
cd "$(dirname "$0")"
version() { awk -v m="$1" '$1==m {print $2} $1=="require" && $2==m {print $3}' go.mod; }
kube=$(version k8s.io/kubernetes) helm=$(version helm.sh/helm/v3)
dir=${KUBE_APISERVER_CACHE:-/var/cache/netbootd-test}
mkdir -p "$dir"
# One build at a time: a second run (CI starts one in the background, then make test asks
# again) waits for the first and then finds the binaries there.
exec 9>"$dir/kube-tools.lock"
flock 9
names=(kube-apiserver helm kubelet kube-controller-manager kube-scheduler kubectl)
declare -A pkg=(
  [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
  [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
  [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
  [kubelet]=k8s.io/kubernetes/cmd/kubelet
  [kubectl]=k8s.io/kubernetes/cmd/kubectl
  [helm]=helm.sh/helm/v3/cmd/helm
)
out() { if [ "$1" = helm ]; then echo "$dir/helm-$helm"; else echo "$dir/$1-$kube"; fi; }
# stamped: the cached binary exists and reports its version (its output read whole: with
# pipefail, grep -q closing the pipe early would fail the command).
stamped() {
  local bin got
  bin=$(out "$1")
  [ -x "$bin" ] || return 1
  case $1 in
    helm) got=$("$bin" version --short 2>/dev/null) && [[ $got == "$helm"* ]] ;;
    kubectl) got=$("$bin" version --client 2>/dev/null) && [[ $got == *"Client Version: $kube"* ]] ;;
    *) got=$("$bin" --version 2>/dev/null) && [ "$got" = "Kubernetes $kube" ] ;;
  esac
}
pkgs=()
for name in "${names[@]}"; do
  stamped "$name" || pkgs+=("${pkg[$name]}")
done
if [ ${#pkgs[@]} -gt 0 ]; then
  command -v go >/dev/null || PATH=$PATH:/usr/local/go/bin
  start=$(date +%s) tmp=$(mktemp -d "$dir/build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  minor=${kube#v1.}; minor=${minor%%.*}
  cv=k8s.io/component-base/version
  # One go build for all: the packages they share compile once. CGO off: static binaries
  # that do not depend on this machine's libc.
  CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm \
    -X $cv.gitVersion=$kube -X $cv.gitMajor=1 -X $cv.gitMinor=$minor -X $cv.gitTreeState=clean" \
    -o "$tmp/" "${pkgs[@]}"
  for name in "${names[@]}"; do
    if [ -x "$tmp/$name" ]; then mv "$tmp/$name" "$(out "$name")"; fi
  done
  echo "built ${pkgs[*]} in $(( $(date +%s) - start ))s" >&2
fi
for name in "${names[@]}"; do
  stamped "$name" || { echo "$(out "$name") does not report its version after the build" >&2; exit 1; }
  out "$name"
done
