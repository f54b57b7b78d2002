#!/usr/bin/env bash
# Rack boot storm, server side: N simulated UEFI machines (tests/stormbench), each with its own
# MAC, power on within RAMP and do in order what real firmware does: PXE DHCP (options 93/94/97/60,
# the 4/8/16/32 s resend timeouts), TFTP of ipxe.efi (half lock-step blksize 1432, half EDK2's
# size probe then blksize 1468 windowsize 4), iPXE's DHCP (user class iPXE), then HTTP: the
# script(s), a KERNEL_MB kernel and an INITRD_MB initrd. Against netbootd (DHCP, TFTP, HTTP) and
# against dnsmasq (DHCP + TFTP) with nginx (HTTP), one after the other in one run.
#
# Prints per server: machines done, failed, time to the last machine done, DHCP and TFTP resends,
# and the server's CPU (utime+stime of every process in its namespace during the storm); then
# the ratios netbootd / dnsmasq+nginx. The simulator runs on the same cores: on a small machine
# the client's own work (hashing every byte) is part of the time.
#
#   scripts/bench-storm.sh                         # N=200, 10 MB kernel, 50 MB initrd
#   N=1000 KERNEL_MB=10 INITRD_MB=50 scripts/bench-storm.sh
#   N=20 SERVERS=netbootd scripts/bench-storm.sh   # a smoke run
#   KEEP=/tmp/storm scripts/bench-storm.sh         # keep every machine's steps (JSON) and server logs
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${NETBOOTD_BIN:-$PWD/bin/netbootd}
STORM=${STORMBENCH_BIN:-$PWD/bin/stormbench}
N=${N:-200}
KERNEL_MB=${KERNEL_MB:-10}
INITRD_MB=${INITRD_MB:-50}
RAMP=${RAMP:-1s}
LOAD_CLIENTS=${LOAD_CLIENTS:-64} # HTTP asset load alone: clients, each from its own address
LOAD_RANGES=${LOAD_RANGES:-8}    # ... then this many 1 MiB Range requests each, at random offsets
SERVERS=${SERVERS:-netbootd dnsmasq}
IPXE_EFI=${IPXE_EFI:-/usr/lib/ipxe/ipxe.efi}
[ "$(id -u)" = 0 ] || { echo "bench-storm needs root (namespaces)" >&2; exit 1; }
for t in dnsmasq nginx ethtool "$BIN" "$STORM"; do
  command -v "$t" >/dev/null || [ -x "$t" ] || { echo "missing $t: run make deps build stormbench" >&2; exit 1; }
done
# Every machine costs two entries in the kernel's ARP table (the server's for it, its own for the
# server), and that table's limit is one for all namespaces (gc_thresh3, settable only on the host):
# beyond it packets are dropped, which would pass for server failures.
neigh_max=$(sysctl -n net.ipv4.neigh.default.gc_thresh3)
if (( 2 * N + 256 > neigh_max )); then
  echo "N=$N needs about $((2 * N + 256)) ARP entries; the kernel allows $neigh_max (net.ipv4.neigh.default.gc_thresh3," >&2
  echo "one limit for every namespace on this host): raise it first, e.g. sysctl -w net.ipv4.neigh.default.gc_thresh3=$((4 * N))" >&2
  exit 1
fi
[ -r "$IPXE_EFI" ] || { echo "missing $IPXE_EFI (Debian's ipxe package: make deps)" >&2; exit 1; }

S=nbst-s-$$ C=nbst-c-$$
work=$(mktemp -d /tmp/nbstorm.XXXXXX)
cleanup() {
  for ns in $S $C; do
    for p in $(ip netns pids $ns 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del $ns 2>/dev/null || true
  done
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp -r "$work"/out/. "$KEEP"/ 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SRV=10.10.0.1
www=$work/www; mkdir -p "$www" "$work/tftp" "$work/out"
head -c $((KERNEL_MB << 20)) /dev/urandom > "$www/vmlinuz"
head -c $((INITRD_MB << 20)) /dev/urandom > "$www/initrd.img"
cp -L "$IPXE_EFI" "$work/tftp/ipxe.efi"
sums=(-tftp-sha256 "$(sha256sum < "$work/tftp/ipxe.efi" | cut -d' ' -f1)"
  -kernel-sha256 "$(sha256sum < "$www/vmlinuz" | cut -d' ' -f1)"
  -initrd-sha256 "$(sha256sum < "$www/initrd.img" | cut -d' ' -f1)")
# dnsmasq's iPXE script, served by nginx: what netbootd's profile renders, in one request.
cat > "$www/boot.ipxe" <<SCRIPT
#!ipxe
kernel http://$SRV/vmlinuz initrd=initrd.img console=ttyS0
initrd http://$SRV/initrd.img
boot
SCRIPT

# Each server's pool and limits sized for N machines, the rest as its documentation advises.
cat > "$work/netbootd.yaml" <<YAML
interface: {mode: authoritative}
http: {assets: $www, max_downloads: 4096}
tftp: {root: $work/tftp, max_transfers: 4096, max_unconfirmed: 4096}
subnets:
  - cidr: 10.10.0.0/16
    pools: ["10.10.1.0-10.10.16.255"]
    options: {router: $SRV}
profiles:
  - {name: storm, kernel: vmlinuz, initrds: [initrd.img], args: "console=ttyS0"}
groups:
  - {name: all, profile: storm}
YAML
dnsmasq_args=(--no-daemon --conf-file=/dev/null --port=0 --interface=sv0 --bind-interfaces --user=root
  --log-facility=/dev/null --quiet-dhcp --quiet-tftp --pid-file= --dhcp-leasefile="$work/dnsmasq.leases"
  --no-ping --dhcp-authoritative --dhcp-lease-max=4096 --dhcp-range=10.10.1.0,10.10.16.255,255.255.0.0,1h
  --dhcp-option=option:router,$SRV
  --enable-tftp --tftp-root="$work/tftp" --tftp-max=4096
  --dhcp-userclass=set:ipxe,iPXE --dhcp-match=set:ipxe,175
  --dhcp-boot=tag:ipxe,http://$SRV/boot.ipxe --dhcp-boot=tag:!ipxe,ipxe.efi,,$SRV
  --dhcp-option-force=tag:ipxe,175,b0:01:01 --dhcp-option=tag:!ipxe,vendor:PXEClient,6,8)
mkdir -p "$work/nginx"
cat > "$work/nginx/nginx.conf" <<NGINX
user root root;
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/out/nginx-error.log;
daemon off;
events { worker_connections 8192; }
http {
  sendfile on; tcp_nopush on; tcp_nodelay on; keepalive_timeout 65; access_log off;
  default_type application/octet-stream;
  client_body_temp_path $work/nginx/body; proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi; uwsgi_temp_path $work/nginx/uwsgi; scgi_temp_path $work/nginx/scgi;
  server { listen $SRV:80 backlog=4096; root $www; }
}
NGINX

tck=$(getconf CLK_TCK)
# server_cpu prints the CPU seconds (user+system) of every process in the server namespace.
server_cpu() {
  local t=0 p
  for p in $(ip netns pids $S); do
    [ -r /proc/$p/stat ] && t=$((t + $(sed 's/^.*) //' /proc/$p/stat | awk '{print $12 + $13}')))
  done
  awk -v t=$t -v h=$tck 'BEGIN{printf "%.2f", t / h}'
}

run() { # $1: netbootd or dnsmasq
  ip netns add $S; ip netns add $C
  ip -n $S link set lo up; ip -n $C link set lo up
  ip -n $S link add sv0 type veth peer name cl0 netns $C
  ip -n $S addr add $SRV/16 dev sv0
  ip -n $S link set sv0 up; ip -n $C link set cl0 up
  # Raw sockets read these veths: checksums must be complete on the wire.
  ip netns exec $S ethtool -K sv0 tx off >/dev/null; ip netns exec $C ethtool -K cl0 tx off >/dev/null
  rm -rf "$work/state" "$work/dnsmasq.leases"
  case $1 in
    netbootd)
      ip netns exec $S "$BIN" attach sv0 --config "$work/netbootd.yaml" --state-dir "$work/state" \
        --http-listen $SRV:80 --xdp off > "$work/out/netbootd.log" 2>&1 &
      ;;
    dnsmasq)
      ip netns exec $S dnsmasq "${dnsmasq_args[@]}" > "$work/out/dnsmasq.log" 2>&1 &
      ip netns exec $S nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/out/nginx-error.log" &
      ;;
  esac
  local up=
  for _ in $(seq 100); do
    if ip netns exec $S curl -fsS -o /dev/null "http://$SRV/boot.ipxe" 2>/dev/null ||
       ip netns exec $S curl -fsS -o /dev/null "http://$SRV/ipxe/boot.ipxe" 2>/dev/null; then
      ss=$(ip netns exec $S ss -uln); if grep -q ":69 " <<<"$ss" && grep -q ":67 " <<<"$ss"; then up=1; break; fi
    fi
    sleep 0.2
  done
  [ -n "$up" ] || { echo "$1 did not come up:"; cat "$work"/out/*.log; return 1; }
  local cpu0 cpu1
  cpu0=$(server_cpu)
  ip netns exec $C "$STORM" -i cl0 -n "$N" -ramp "$RAMP" "${sums[@]}" -json "$work/out/$1.json" | tee "$work/out/$1.txt" >&2
  cpu1=$(server_cpu)
  echo "$1 $(head -1 "$work/out/$1.txt") server_cpu_s=$(awk -v a=$cpu0 -v b=$cpu1 'BEGIN{printf "%.2f", b - a}')" >> "$work/results"
  # The HTTP asset load alone: the initrd, whole then by ranges, from LOAD_CLIENTS addresses.
  local url=http://$SRV/initrd.img
  [ "$1" = netbootd ] && url=http://$SRV/assets/initrd.img
  for i in $(seq "$LOAD_CLIENTS"); do echo "addr add 10.10.$((200 + i / 250)).$((1 + i % 250))/16 dev cl0"; done | ip -n $C -batch -
  cpu0=$(server_cpu)
  ip netns exec $C "$STORM" -load-url "$url" -load-clients "$LOAD_CLIENTS" -load-from 10.10.200.2 -load-ranges "$LOAD_RANGES" \
    -load-file "$www/initrd.img" -initrd-sha256 "${sums[5]}" | tee "$work/out/$1-load.txt" >&2
  cpu1=$(server_cpu)
  echo "$1 $(head -1 "$work/out/$1-load.txt") server_cpu_s=$(awk -v a=$cpu0 -v b=$cpu1 'BEGIN{printf "%.2f", b - a}')" >> "$work/load"
  for p in $(ip netns pids $S); do kill -9 "$p" 2>/dev/null || true; done
  { wait; } 2>/dev/null || true # reap the servers without bash's "Killed" notices
  ip netns del $S; ip netns del $C
}

t0=$(date +%s)
for s in $SERVERS; do
  echo "bench-storm: $s, N=$N, kernel $KERNEL_MB MiB, initrd $INITRD_MB MiB" >&2
  run "$s"
done

field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }
echo
echo "Rack boot storm, server side: $N simulated UEFI machines powered on within $RAMP; each: PXE DHCP, TFTP ipxe.efi"
echo "(half lock-step blksize 1432, half size probe + blksize 1468 windowsize 4), iPXE DHCP, HTTP script(s), kernel"
echo "$KERNEL_MB MiB, initrd $INITRD_MB MiB (SHA-256 checked). Simulator and servers share $(nproc) cores."
printf '\n%-16s %6s %7s %14s %13s %13s %15s\n' server done failed "last done (s)" "DHCP resends" "TFTP resends" "server CPU (s)"
declare -A last cpu
while read -r name rest; do
  label=$name; [ "$name" = dnsmasq ] && label=dnsmasq+nginx
  printf '%-16s %6s %7s %14s %13s %13s %15s\n' "$label" "$(field " $rest" done)" "$(field " $rest" failed)" \
    "$(field " $rest" last_done_s)" "$(field " $rest" dhcp_retries)" "$(field " $rest" tftp_retries)" "$(field " $rest" server_cpu_s)"
  last[$name]=$(field " $rest" last_done_s); cpu[$name]=$(field " $rest" server_cpu_s)
done < "$work/results"
echo
echo "TFTP step alone: median seconds by style; DATA blocks a client received twice (resends it did not need);"
echo "lock-step blocks' wait at the client (its ACK to the next block), median and 99th percentile."
printf '\n%-16s %14s %14s %11s %14s %14s\n' server "lock-step (s)" "windowed (s)" "dup DATA" "wait p50 (ms)" "wait p99 (ms)"
while read -r name rest; do
  label=$name; [ "$name" = dnsmasq ] && label=dnsmasq+nginx
  printf '%-16s %14s %14s %11s %14s %14s\n' "$label" "$(field " $rest" tftp_lockstep_med_s)" "$(field " $rest" tftp_window_med_s)" \
    "$(field " $rest" tftp_dup_data)" "$(field " $rest" tftp_lockstep_wait_p50_ms)" "$(field " $rest" tftp_lockstep_wait_p99_ms)"
done < "$work/results"
if [ -n "${last[netbootd]:-}" ] && [ -n "${last[dnsmasq]:-}" ]; then
  awk -v a="${last[netbootd]}" -v b="${last[dnsmasq]}" -v c="${cpu[netbootd]}" -v d="${cpu[dnsmasq]}" 'BEGIN{
    printf "\nratio netbootd / dnsmasq+nginx: time to the last machine %.2fx (goal <= 0.50), server CPU %.2fx\n", (b>0?a/b:0), (d>0?c/d:0)}'
fi
for f in "$work"/out/*.txt; do grep "error:" "$f" | sed "s|^ *|  $(basename "$f" .txt) |" || true; done
if [ -s "$work/load" ]; then
  echo
  echo "HTTP assets alone: $LOAD_CLIENTS clients (each its own address) fetch the $INITRD_MB MiB initrd whole (SHA-256 checked),"
  echo "then $LOAD_RANGES Range requests of 1 MiB each at random offsets (bytes checked); netbootd /assets/ against nginx."
  printf '\n%-16s %9s %7s %12s %10s %15s %17s\n' server requests failed "seconds" "MiB/s" "server CPU (s)" "CPU s per GiB"
  declare -A rate lcpu
  while read -r name rest; do
    label=$name; [ "$name" = dnsmasq ] && label=nginx
    b=$(field " $rest" bytes); c=$(field " $rest" server_cpu_s)
    printf '%-16s %9s %7s %12s %10s %15s %17s\n' "$label" "$(field " $rest" requests)" "$(field " $rest" failed)" \
      "$(field " $rest" seconds)" "$(field " $rest" mib_per_s)" "$c" "$(awk -v c="$c" -v b="$b" 'BEGIN{printf "%.2f", (b>0 ? c / (b / 1073741824) : 0)}')"
    rate[$name]=$(field " $rest" mib_per_s); lcpu[$name]=$(awk -v c="$c" -v b="$b" 'BEGIN{print (b>0 ? c / b : 0)}')
  done < "$work/load"
  if [ -n "${rate[netbootd]:-}" ] && [ -n "${rate[dnsmasq]:-}" ]; then
    awk -v a="${rate[netbootd]}" -v b="${rate[dnsmasq]}" -v c="${lcpu[netbootd]}" -v d="${lcpu[dnsmasq]}" 'BEGIN{
      printf "\nratio netbootd / nginx: throughput %.2fx, server CPU per byte %.2fx\n", (b>0?a/b:0), (d>0?c/d:0)}'
  fi
fi
echo
echo "Reproduce (as root): make bench-storm    # or: N=$N KERNEL_MB=$KERNEL_MB INITRD_MB=$INITRD_MB SERVERS=\"$SERVERS\" scripts/bench-storm.sh; took $(( $(date +%s) - t0 )) s"
