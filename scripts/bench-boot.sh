#!/usr/bin/env bash
# Boot benchmark: N VMs at once (half BIOS: SeaBIOS + QEMU's iPXE ROM; half UEFI: OVMF's own PXE,
# ipxe.efi over TFTP, then HTTP), each with a reserved MAC, boot the tests/qemu payload through
# netbootd (its DHCP with the XDP fast path in generic mode, TFTP, HTTP, IPv6 "no router" RA) and
# through dnsmasq (DHCP and TFTP, tuned: --no-ping, 175.176=1, PXE discovery control; busybox httpd
# for HTTP, the harness's RA), one after the other in one run, for N=4 and N=8.
#
# It prints, per server and N: time until every VM's payload said "done", failed boots, and the
# network share of each boot (first DHCP DISCOVER to the last byte of its initrd, from one tcpdump
# of the LAN bridge), with the ratio netbootd/dnsmasq; then netbootd's per-phase timeline medians.
#
#   scripts/bench-boot.sh                    # N=4 and N=8, both servers (~10 minutes)
#   N="2" scripts/bench-boot.sh              # a smoke run
#   SERVERS=netbootd N=4 scripts/bench-boot.sh
#   KEEP=/tmp/bootbench scripts/bench-boot.sh   # keep each run's pcap and server log there
#
# The work is TestBootBench in tests/bootbench (go test -tags integration, NETBOOTD_BENCH_BOOT=1);
# everything lives in namespaces it creates; this script removes them also when interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
BIN=${NETBOOTD_BIN:-$PWD/bin/netbootd}
N=${N:-4 8}
SERVERS=${SERVERS:-netbootd dnsmasq}
[ "$(id -u)" = 0 ] || { echo "bench-boot needs root (namespaces, QEMU taps, XDP)" >&2; exit 1; }
for t in qemu-system-x86_64 dnsmasq busybox tcpdump curl go "$BIN"; do
  command -v "$t" >/dev/null || [ -x "$t" ] || { echo "missing $t: run make deps build" >&2; exit 1; }
done

prefix=bb$$ # namespaces ${prefix}s-* (server) and ${prefix}l-* (LAN), pins /run/netbootd-bench-bpffs/${prefix}-*
work=$(mktemp -d /tmp/nbboot.XXXXXX)
cleanup() {
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${prefix}[sl]-" || true); do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf /run/netbootd-bench-bpffs/"${prefix}"-* 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

go test -c -tags integration -o "$work/bootbench.test" ./tests/bootbench/
mkdir -p "$work/tmp"
table=$work/table.txt
echo "bench-boot: N=\"$N\", servers \"$SERVERS\"; progress below, table at the end" >&2
t0=$(date +%s)
rc=0
TMPDIR=$work/tmp NETBOOTD_BIN=$BIN NETBOOTD_BENCH_BOOT=1 NETBOOTD_BENCH_BOOT_N="$N" NETBOOTD_BENCH_BOOT_SERVERS="$SERVERS" \
  NETBOOTD_BENCH_BOOT_TABLE=$table NETBOOTD_BENCH_BOOT_PREFIX=$prefix NETBOOTD_BENCH_BOOT_KEEP=${KEEP:-} \
  "$work/bootbench.test" -test.run '^TestBootBench$' -test.v -test.timeout 60m >&2 || rc=$?
echo >&2
if [ -s "$table" ]; then
  echo
  cat "$table"
else
  echo "bench-boot: no table (the benchmark failed before it finished; see above)" >&2
fi
cat <<EOF

Reproduce (as root): make bench-boot    # or: N="4 8" SERVERS="netbootd dnsmasq" KEEP=DIR scripts/bench-boot.sh
  which runs: go test -c -tags integration ./tests/bootbench/ && NETBOOTD_BIN=\$PWD/bin/netbootd NETBOOTD_BENCH_BOOT=1 \\
      NETBOOTD_BENCH_BOOT_N="4 8" ./bootbench.test -test.run '^TestBootBench\$' -test.v
  capture: tcpdump -i br0 -w FILE --immediate-mode -B 65536 -s 1024 -n in the LAN namespace; KEEP=DIR keeps the pcaps,
  and the analysis is tests/bootbench/pcap.go (Analyze). Took $(( $(date +%s) - t0 )) s.
EOF
exit $rc
