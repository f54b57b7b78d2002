#!/usr/bin/env bash
# The demo: a small lab rack in network namespaces. netbootd is attached to the server's end of a
# veth; clients hang off a bridge and ask for addresses with real DHCP clients. It prints what each
# client got and the server's counters, then tears everything down.
#
#   server ns: sv0 10.10.0.1/24 ──veth── lan ns: bridge br0 ──veth── client namespaces (eth0)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${NETBOOTD_BIN:-$PWD/bin/netbootd}
CONFIG=${CONFIG:-$PWD/scripts/lab/netbootd.yaml}
[ "$(id -u)" = 0 ] || { echo "the demo builds namespaces: run it as root" >&2; exit 1; }
[ -x "$BIN" ] || { echo "no $BIN: run make build" >&2; exit 1; }
XDP_PASS=${XDP_PASS:-$PWD/bin/xdp-pass}
QEMU_VM=${QEMU_VM:-$PWD/bin/qemu-vm}

id=$$ SRV=nbdemo-srv-$$ LAN=nbdemo-lan-$$
work=$(mktemp -d /tmp/nbdemo.XXXXXX)
clients=()
pid=
# The fast path is pinned on a bpffs outside /sys: ip netns exec gives each command its own /sys.
pins_root=/run/netbootd-demo-bpffs pins=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  [ -n "$pins" ] && ip netns exec "$SRV" "$BIN" detach --pin-dir "$pins" sv0 >/dev/null 2>&1 || true
  [ -n "$pins" ] && rm -rf "$pins"
  for ns in "${clients[@]}" $LAN $SRV; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "building the rack: server namespace, LAN bridge, 4 client machines"
ip netns add $SRV; ip netns add $LAN
ip -n $LAN link add br0 type bridge stp_state 0 forward_delay 0; ip -n $LAN link set br0 up
ip -n $SRV link add sv0 type veth peer name svp netns $LAN
ip -n $SRV addr add 10.10.0.1/24 dev sv0
ip -n $SRV link set sv0 up; ip -n $SRV link set lo up
ip -n $LAN link set svp master br0; ip -n $LAN link set svp up
ip netns exec $SRV ethtool -K sv0 tx off >/dev/null
add_client() { # name mac
  local ns=nbdemo-$1-$id
  ip netns add "$ns"; clients+=("$ns")
  ip -n "$ns" link add eth0 type veth peer name "p$1" netns $LAN
  ip -n "$ns" link set eth0 address "$2"; ip -n "$ns" link set eth0 up; ip -n "$ns" link set lo up
  ip -n $LAN link set "p$1" master br0; ip -n $LAN link set "p$1" up
  ip netns exec "$ns" ethtool -K eth0 tx off >/dev/null
}
add_client node01 52:54:00:00:00:01
add_client node02 52:54:00:00:00:02
add_client node03 52:54:00:00:00:03
add_client guest  52:54:00:00:99:99
# XDP_TX on a veth reaches the peer only if the peer runs an XDP program too: a pass-through one.
ip netns exec $LAN "$XDP_PASS" svp
mkdir -p $pins_root
[ "$(stat -f -c %T $pins_root)" = bpf_fs ] || mount -t bpf bpffs $pins_root
pins=$pins_root/demo$$; mkdir -p "$pins"

say "building the VM payload (a Debian kernel and a busybox initramfs; cached after the first time)"
mkdir -p "$work/assets"
read -r kernel initrd < <("$QEMU_VM" payload)
cp "$kernel" "$work/assets/vmlinuz"; cp "$initrd" "$work/assets/initrd.gz"
echo "  $(du -h "$work/assets/vmlinuz" | cut -f1) kernel, $(du -h "$work/assets/initrd.gz" | cut -f1) initrd"
sed "s|^  assets: \"\"|  assets: $work/assets|" "$CONFIG" > "$work/netbootd.yaml"

say "starting: netbootd attach sv0 --config ${CONFIG#$PWD/} (with http.assets filled in)"
ip netns exec $SRV "$BIN" attach sv0 --config "$work/netbootd.yaml" --state-dir "$work/state" \
  --http-listen 10.10.0.1:8080 --pin-dir "$pins" > "$work/netbootd.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  ip netns exec $SRV curl -sf http://10.10.0.1:8080/readyz >/dev/null 2>&1 && break
  kill -0 $pid 2>/dev/null || { cat "$work/netbootd.log"; exit 1; }
  sleep 0.1
done
sed 's/^/  | /' "$work/netbootd.log"

script=$work/udhcpc.sh
cat > "$script" <<'EOS'
#!/bin/sh
[ "$1" = bound ] || exit 0
echo "  got $ip/$mask router=$router dns=$dns hostname=$hostname domain=$domain lease=${lease}s from $serverid"
[ -n "$boot_file" ] && echo "  boot: next-server $siaddr file $boot_file"
exit 0
EOS
chmod +x "$script"

say "node01 (reserved) runs busybox udhcpc: answered by XDP, in the kernel"
ip netns exec nbdemo-node01-$id busybox udhcpc -i eth0 -f -q -n -t 4 -T 1 -s "$script" 2>/dev/null
say "node02 (reserved) runs ISC dhclient: answered by XDP"
ip netns exec nbdemo-node02-$id timeout 30 dhclient -4 -1 -sf /bin/true -lf "$work/dh.leases" -pf "$work/dh.pid" eth0
echo "  got $(grep -m1 fixed-address "$work/dh.leases" | awk '{print $2}' | tr -d ';') (from dhclient's lease file)"
kill "$(cat "$work/dh.pid")" 2>/dev/null || true
say "guest (unknown MAC) runs busybox udhcpc: a pool address from the Go control plane"
ip netns exec nbdemo-guest-$id busybox udhcpc -i eth0 -f -q -n -t 4 -T 1 -s "$script" 2>/dev/null

say "node03 (reserved) boots as UEFI x64 firmware would (vendor class PXEClient, arch 7): the control plane picks its boot file"
ip netns exec nbdemo-node03-$id busybox udhcpc -i eth0 -f -q -n -t 4 -T 1 -s "$script" \
  -V PXEClient:Arch:00007:UNDI:003016 -x 0x5d:0007 2>/dev/null
say "node03 fetches that file over TFTP with RFC 7440 windows (atftp, windowsize 16, blksize 1468)"
ip -n nbdemo-node03-$id addr add 10.10.0.13/24 dev eth0
t0=$(date +%s%N)
ip netns exec nbdemo-node03-$id atftp --get -r snponly.efi -l "$work/snponly.efi" --option "windowsize 16" --option "blksize 1468" 10.10.0.1 2>/dev/null | sed 's/^/  /'
echo "  got $(stat -c %s "$work/snponly.efi") bytes in $(( ($(date +%s%N) - t0) / 1000000 )) ms, $(cmp -s "$work/snponly.efi" /usr/lib/ipxe/snponly.efi && echo identical to || echo DIFFERENT from) /usr/lib/ipxe/snponly.efi"
say "guest again, as iPXE (user class iPXE): it is sent to its script, not to iPXE again"
ip netns exec nbdemo-guest-$id busybox udhcpc -i eth0 -f -q -n -t 4 -T 1 -s "$script" \
  -V PXEClient:Arch:00000:UNDI:002001 -x 0x4d:69505845 2>/dev/null
say "why each machine got its boot file (the server's log)"
grep 'boot file chosen' "$work/netbootd.log" | sed 's/^/  | /'

say "leases in the store (netbootd leases: asks the management listener, 127.0.0.1:9180)"
ip netns exec $SRV "$BIN" leases | sed 's/^/  /'
say "the XDP fast path (netbootd status sv0, read from its pins)"
ip netns exec $SRV "$BIN" status --pin-dir "$pins" sv0 | sed 's/^/  /'
say "server counters (GET /metrics on the management listener; the boot address answers 404)"
ip netns exec $SRV curl -sf http://127.0.0.1:9180/metrics | grep -E '^netbootd_(dhcp|lease|xdp|tftp|http|boot)_' | grep -v '_bucket' | sed 's/^/  /'
say "two VMs power on: bios01 (SeaBIOS, QEMU's iPXE ROM) and uefi01 (OVMF, its own PXE client)"
echo "  bios01: iPXE asks the control plane, chains to its script, fetches kernel and initrd over HTTP"
echo "  uefi01: firmware PXE answered by XDP, ipxe.efi over TFTP (windowsize), then the same as bios01"
echo "  both:   the booted kernel's udhcpc is answered by XDP; it calls netbootd's booted URL and powers off"
vms=()
boot_vm() { # name firmware mac
  local dir=$work/vm-$1 tap=tap-$1
  mkdir -p "$dir"
  ip -n $LAN tuntap add dev "$tap" mode tap; ip -n $LAN link set "$tap" master br0; ip -n $LAN link set "$tap" up
  mapfile -t args < <("$QEMU_VM" args "$2" "$1" "$3" "$tap" "$dir")
  ip netns exec $LAN qemu-system-x86_64 "${args[@]}" >"$dir/qemu.log" 2>&1 &
  vms+=("$1")
}
t0=$(date +%s)
boot_vm bios01 bios 52:54:00:00:10:01
boot_vm uefi01 uefi 52:54:00:00:10:02
for vm in "${vms[@]}"; do
  for _ in $(seq 300); do grep -q "NETBOOTD-PAYLOAD done" "$work/vm-$vm/$vm.serial.log" 2>/dev/null && break; sleep 1; done
  if grep -q "NETBOOTD-PAYLOAD done" "$work/vm-$vm/$vm.serial.log"; then
    echo "  $vm booted after $(( $(date +%s) - t0 )) s (under TCG emulation; the network part is well under a second):"
  else
    echo "  $vm did NOT boot in 300 s; its serial console ends with:"; tail -5 "$work/vm-$vm/$vm.serial.log"
  fi
  grep -a "NETBOOTD-PAYLOAD" "$work/vm-$vm/$vm.serial.log" | sed 's/^/    | /'
done
say "how far each machine got (netbootd machines)"
ip netns exec $SRV "$BIN" machines | sed 's/^/  /'
for mac in 52:54:00:00:10:01 52:54:00:00:10:02; do
  say "the timeline of $mac (netbootd machines $mac)"
  ip netns exec $SRV "$BIN" machines $mac | sed 's/^/  /'
done

say "kill -9 the daemon: the pinned program keeps answering node01"
kill -9 $pid; wait $pid 2>/dev/null || true; pid=
ip netns exec nbdemo-node01-$id busybox udhcpc -i eth0 -f -q -n -t 4 -T 1 -s "$script" 2>/dev/null
ip netns exec $SRV "$BIN" status --pin-dir "$pins" sv0 | grep -E ' (offer|ack) ' | sed 's/^/  /'
say "netbootd detach sv0, and tearing the rack down"
ip netns exec $SRV "$BIN" detach --pin-dir "$pins" sv0 | sed 's/^/  /'
