#!/usr/bin/env bash
# Installs, idempotently, what building, testing, the demo and the benchmarks need on Debian.
# Safe to run again: it installs only what is missing.
set -euo pipefail

pkgs=(
  build-essential make git ca-certificates curl
  iproute2 iputils-ping ethtool tcpdump procps kmod ndisc6   # ndisc6: rdisc6, a real IPv6 host soliciting routers
  busybox-static isc-dhcp-client isc-dhcp-relay   # busybox-static replaces busybox; the VM payload needs it static
  kea-dhcp4-server kea-admin   # kea-admin ships perfdhcp
  dnsmasq-base                 # dnsmasq binary only (no service): tests run it in namespaces
  isc-dhcp-server              # ISC dhcpd for tests/byoserver_test.go (behind your own DHCP server); its service stays off
  dhcpcd-base                  # dhcpcd: a client identifier from a DUID (RFC 4361); no service
  clang llvm libbpf-dev        # only for `make generate`; bpf2go output is committed
  atftp tftp-hpa tftpd-hpa ipxe
  nginx                        # make bench-storm: the HTTP peer beside dnsmasq; its service stays off
  nftables                     # nft: the port-forward (DNAT) router of tests/byo_test.go; its service stays off
  qemu-system-x86 ovmf ipxe-qemu cpio xz-utils   # tests/qemu: VMs that boot over the network
  qemu-system-arm qemu-efi-aarch64   # make test: an arm64 AAVMF VM under TCG (tests/arm64_test.go)
  pxelinux syslinux-common     # tests/pxelinux: Debian's lpxelinux.0, ldlinux.c32 and menu.c32
  grub-efi-amd64-signed grub-efi-amd64-bin  # tests/grub: the signed GRUB network image and its http.mod (no maintainer scripts)
  prometheus                   # prometheus and promtool: tests/prometheus_test.go, deploy/monitoring
  etcd-server                  # etcd for tests/kube and tests/realnode_test.go (with scripts/kube-tools/build.sh); its service is not needed
  systemd util-linux dpkg      # tests/deb_test.go: systemd-analyze verify, unshare/nsenter, dpkg-deb
  containerd runc              # tests/node_image_test.go: ctr images import of make image's archive (its own containerd)
  containernetworking-plugins  # tests/realnode_test.go: the CNI config a real node needs to be Ready (kubelet, containerd's CRI)
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # No package may start its service on the host (isc-dhcp-server, prometheus, etcd): the tests
  # run their own daemons in namespaces, and nothing may listen on the host's interfaces. A
  # policy-rc.d answering 101 stops invoke-rc.d (sysvinit and systemd alike) during the install;
  # one that was already there (container images ship one) is left as it is.
  own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d && own_policy=1
  fi
  trap '[ -z "$own_policy" ] || rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The tests run their own Prometheus, etcd, dhcpd and containerd; ones we just installed must not run as
  # services on the host (ones that were already here are left as they are).
  # (policy-rc.d keeps them from starting now; disabling keeps them from starting at boot.)
  for pkg_svc in prometheus:prometheus etcd-server:etcd isc-dhcp-server:isc-dhcp-server containerd:containerd; do
    pkg=${pkg_svc%%:*} svc=${pkg_svc#*:}
    if [[ " ${missing[*]} " == *" $pkg "* ]] && [ -d /run/systemd/system ]; then
      systemctl disable --now "$svc" >/dev/null 2>&1 || true
    fi
  done
fi

if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
  echo "deps: Go is at /usr/local/go/bin; add it to PATH" >&2
fi
command -v go >/dev/null || [ -x /usr/local/go/bin/go ] || { echo "deps: Go toolchain not found (need Go >= 1.24)" >&2; exit 1; }

# bpffs for pinning the XDP program and maps.
if ! mount | grep -q ' /sys/fs/bpf type bpf'; then
  mount -t bpf bpf /sys/fs/bpf 2>/dev/null || echo "deps: could not mount bpffs on /sys/fs/bpf" >&2
fi
echo "deps: ok"
