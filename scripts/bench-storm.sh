#!/usr/bin/env bash
# Rack boot storm, server side: N simulated UEFI machines (tests/stormbench), each with its own
# MAC, power on within RAMP and do in order what real firmware does: PXE DHCP (options 93/94/97/60,
# the 4/8/16/32 s resend timeouts), TFTP of ipxe.efi (half lock-step blksize 1432, half EDK2's
# size probe then blksize 1468 windowsize 4), iPXE's DHCP (user class iPXE), then HTTP: the
# script(s), a KERNEL_MB kernel and an INITRD_MB initrd. Against netbootd (DHCP, TFTP, HTTP) and
# against dnsmasq (DHCP + TFTP) with nginx (HTTP), one after the other in one run.
#
# Prints per server: machines done, failed, time to the last machine done, DHCP and TFTP resends,
# the server's CPU (utime+stime of every process in its namespace during the storm, and by
# process) and the simulator's own CPU; each step's duration over the machines (min, median, 99th
# percentile, max, and the machine done last); the TFTP step by style, with the lock-step block
# wait split into the turn (ACK out, server, block back) and the simulator's own lateness (its
# TFTP runs in a child process, apart from its HTTP); then the ratios netbootd / dnsmasq+nginx; then the
# HTTP load alone and the run's HTTP-alone time (the bytes the machines download over HTTP at the
# best rate HTTP alone reached in the run) with each server's time as a multiple of it, and the
# rate the goal (half dnsmasq+nginx's time) would take. The
# simulator runs on the same cores: its CPU is time the server did not get, so it is printed
# (it checks every byte with CRC-32C, cheap, rather than SHA-256).
#
#   scripts/bench-storm.sh                         # N=200, 10 MB kernel, 50 MB initrd
#   N=1000 KERNEL_MB=10 INITRD_MB=50 scripts/bench-storm.sh
#   N=20 SERVERS=netbootd scripts/bench-storm.sh   # a smoke run
#   KEEP=/tmp/storm scripts/bench-storm.sh         # keep every machine's steps (JSON) and server logs
#   BASELINE=/tmp/old-netbootd ROUNDS=3 scripts/bench-storm.sh
#       # an older netbootd binary as a third server, "baseline"; every server ROUNDS times in
#       # turn (baseline, netbootd, dnsmasq, baseline, ...): ratios are of the medians
#   NETBOOTD_ENV="GOMAXPROCS=8" BASELINE=bin/netbootd scripts/bench-storm.sh
#       # netbootd (not the baseline) started with this environment: one binary, two settings
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${NETBOOTD_BIN:-$PWD/bin/netbootd}
STORM=${STORMBENCH_BIN:-$PWD/bin/stormbench}
N=${N:-200}
KERNEL_MB=${KERNEL_MB:-10}
INITRD_MB=${INITRD_MB:-50}
RAMP=${RAMP:-1s}
STOP_AFTER=${STOP_AFTER:-}      # tftp: machines stop after TFTP (no iPXE, no HTTP), to time TFTP alone
LOAD_CLIENTS=${LOAD_CLIENTS:-64} # HTTP asset load alone: clients, each from its own address (0: none)
LOAD_RANGES=${LOAD_RANGES:-8}    # ... then this many 1 MiB Range requests each, at random offsets
BASELINE=${BASELINE:-}
ROUNDS=${ROUNDS:-1}
# Servers: netbootd, dnsmasq (dnsmasq + nginx), baseline (netbootd's $BASELINE binary), hybrid
# (netbootd for DHCP and TFTP, nginx for HTTP: what netbootd's DHCP and TFTP do beside another HTTP server).
SERVERS=${SERVERS:-${BASELINE:+baseline }netbootd dnsmasq}
IPXE_EFI=${IPXE_EFI:-/usr/lib/ipxe/ipxe.efi}
[ "$(id -u)" = 0 ] || { echo "bench-storm needs root (namespaces)" >&2; exit 1; }
for t in dnsmasq nginx ethtool "$BIN" "$STORM" ${BASELINE:+"$BASELINE"}; do
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
sums=(-tftp-file "$work/tftp/ipxe.efi" -kernel-file "$www/vmlinuz" -initrd-file "$www/initrd.img")
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
# hybrid: netbootd for DHCP and TFTP, nginx for HTTP (netbootd's own HTTP on :8080, unused): the
# iPXE URL netbootd gives out (base_url) is nginx's, which serves the same script at that path.
sed "s|^http: {|http: {base_url: \"http://$SRV\", |" "$work/netbootd.yaml" > "$work/hybrid.yaml"
mkdir -p "$www/ipxe"; cp "$www/boot.ipxe" "$www/ipxe/boot.ipxe"
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
# server_cpu prints the CPU seconds (user+system) of every process in the server namespace, in
# total then by process name: "2.95 netbootd=2.95".
server_cpu() {
  local p
  for p in $(ip netns pids $S); do
    [ -r /proc/$p/stat ] && echo "$(cat /proc/$p/comm) $(sed 's/^.*) //' /proc/$p/stat | awk '{print $12 + $13}')"
  done | awk -v h=$tck '{t += $2; by[$1] += $2} END{printf "%.2f", t / h; for (c in by) printf " %s=%.2f", c, by[c] / h}'
}
# cpu_delta prints after - before for the total and each process name of two server_cpu lines.
cpu_delta() {
  awk -v a="$1" -v b="$2" 'BEGIN{n = split(a, x, " "); m = split(b, y, " ")
    for (i = 2; i <= n; i++) { split(x[i], kv, "="); before[kv[1]] = kv[2] }
    printf "server_cpu_s=%.2f by_process=", y[1] - x[1]; sep = ""
    for (i = 2; i <= m; i++) { split(y[i], kv, "="); printf "%s%s:%.2f", sep, kv[1], kv[2] - before[kv[1]]; sep = "," }}'
}

# tcp_segs prints the server namespace's TCP segments sent and resent so far: "OUT RETRANS".
tcp_segs() {
  ip netns exec $S nstat -az TcpOutSegs TcpRetransSegs | awk '$1 == "TcpOutSegs" {o = $2} $1 == "TcpRetransSegs" {r = $2} END{print o + 0, r + 0}'
}

run() { # $1: netbootd, baseline (netbootd's $BASELINE binary) or dnsmasq
  ip netns add $S; ip netns add $C
  ip -n $S link set lo up; ip -n $C link set lo up
  ip -n $S link add sv0 type veth peer name cl0 netns $C
  ip -n $S addr add $SRV/16 dev sv0
  ip -n $S link set sv0 up; ip -n $C link set cl0 up
  # Raw sockets read these veths: checksums must be complete on the wire.
  ip netns exec $S ethtool -K sv0 tx off >/dev/null; ip netns exec $C ethtool -K cl0 tx off >/dev/null
  rm -rf "$work/state" "$work/dnsmasq.leases"
  local bin=$BIN env=()
  if [ "$1" = baseline ]; then bin=$BASELINE; else read -ra env <<<"${NETBOOTD_ENV:-}"; fi
  case $1 in
    netbootd | baseline)
      ip netns exec $S env "${env[@]}" "$bin" attach sv0 --config "$work/netbootd.yaml" --state-dir "$work/state" \
        --http-listen $SRV:80 --xdp off > "$work/out/$1.log" 2>&1 &
      ;;
    dnsmasq)
      ip netns exec $S dnsmasq "${dnsmasq_args[@]}" > "$work/out/dnsmasq.log" 2>&1 &
      ip netns exec $S nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/out/nginx-error.log" &
      ;;
    hybrid)
      ip netns exec $S "$BIN" attach sv0 --config "$work/hybrid.yaml" --state-dir "$work/state" \
        --http-listen $SRV:8080 --xdp off > "$work/out/$1.log" 2>&1 &
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
  local cpu0 cpu1 segs0 segs1
  cpu0=$(server_cpu) segs0=$(tcp_segs)
  local out=$work/out/$1-$2
  ip netns exec $C "$STORM" -i cl0 -n "$N" -ramp "$RAMP" "${sums[@]}" ${STOP_AFTER:+-stop-after "$STOP_AFTER"} -json "$out.json" | tee "$out.txt" >&2
  cpu1=$(server_cpu) segs1=$(tcp_segs)
  echo "$1 $(head -1 "$out.txt") $(awk -v a="$segs0" -v b="$segs1" 'BEGIN{split(a, x, " "); split(b, y, " ")
    printf "tcp_out_segs=%d tcp_retrans_segs=%d", y[1] - x[1], y[2] - x[2]}') $(cpu_delta "$cpu0" "$cpu1")" >> "$work/results"
  sed -n "s/^phase /$1 /p" "$out.txt" >> "$work/phases"
  # The HTTP asset load alone: the initrd, whole then by ranges, from LOAD_CLIENTS addresses.
  if [ "$LOAD_CLIENTS" -gt 0 ] && [ "$1" != hybrid ]; then load "$1" "$out"; fi
  for p in $(ip netns pids $S); do kill -9 "$p" 2>/dev/null || true; done
  { wait; } 2>/dev/null || true # reap the servers without bash's "Killed" notices
  ip netns del $S; ip netns del $C
}

load() { # $1: the server, $2: where its outputs go
  local cpu0 cpu1 out=$2 url=http://$SRV/initrd.img
  if [ "$1" != dnsmasq ]; then url=http://$SRV/assets/initrd.img; fi
  for i in $(seq "$LOAD_CLIENTS"); do echo "addr add 10.10.$((200 + i / 250)).$((1 + i % 250))/16 dev cl0"; done | ip -n $C -batch -
  cpu0=$(server_cpu)
  ip netns exec $C "$STORM" -load-url "$url" -load-clients "$LOAD_CLIENTS" -load-from 10.10.200.2 -load-ranges "$LOAD_RANGES" \
    -load-file "$www/initrd.img" | tee "$out-load.txt" >&2
  cpu1=$(server_cpu)
  echo "$1 $(head -1 "$out-load.txt") $(cpu_delta "$cpu0" "$cpu1")" >> "$work/load"
}

t0=$(date +%s)
for round in $(seq "$ROUNDS"); do
  for s in $SERVERS; do
    echo "bench-storm: $s (round $round of $ROUNDS), N=$N, kernel $KERNEL_MB MiB, initrd $INITRD_MB MiB, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    echo "$s $(cut -d' ' -f1 /proc/loadavg)" >> "$work/loadavg"
    run "$s" "$round"
  done
done

field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }
label() { case $1 in dnsmasq) echo "${2:-dnsmasq+nginx}" ;; hybrid) echo "netbootd+nginx" ;; *) echo "$1" ;; esac; }
# median prints the median of the given numbers (the lower middle one of an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END{print v[int((NR + 1) / 2)]}'; }
# values prints field $2 of every line of file $3 for server $1.
values() { while read -r name rest; do if [ "$name" = "$1" ]; then field " $rest" "$2"; fi; done < "$3"; }
# ratio prints "label: a/b x" from the medians of field $3 for servers $1 and $2 in file $4.
ratio() {
  local a b
  a=$(median $(values "$1" "$3" "$4")); b=$(median $(values "$2" "$3" "$4"))
  awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2fx", (b > 0 ? a / b : 0)}'
}
has() { grep -q "^$1 " "$2"; }
echo
echo "Rack boot storm, server side: $N simulated UEFI machines powered on within $RAMP; each: PXE DHCP, TFTP ipxe.efi"
echo "(half lock-step blksize 1432, half size probe + blksize 1468 windowsize 4), iPXE DHCP, HTTP script(s), kernel"
echo "$KERNEL_MB MiB, initrd $INITRD_MB MiB (size and CRC-32C checked). Simulator and servers share $(nproc) cores;"
echo "client CPU is the simulator's own, load the 1-minute load average when the run started."
printf '\n%-16s %6s %7s %14s %13s %13s %15s %15s %6s %12s %12s  %s\n' server done failed "last done (s)" "DHCP resends" "TFTP resends" \
  "server CPU (s)" "client CPU (s)" load "TCP segs" "TCP resent" "server CPU by process (s)"
exec 3< "$work/loadavg"
while read -r name rest; do
  read -r _ la <&3
  printf '%-16s %6s %7s %14s %13s %13s %15s %15s %6s %12s %12s  %s\n' "$(label "$name")" "$(field " $rest" done)" "$(field " $rest" failed)" \
    "$(field " $rest" last_done_s)" "$(field " $rest" dhcp_retries)" "$(field " $rest" tftp_retries)" "$(field " $rest" server_cpu_s)" \
    "$(field " $rest" client_cpu_s)" "$la" "$(field " $rest" tcp_out_segs)" "$(field " $rest" tcp_retrans_segs)" "$(field " $rest" by_process)"
done < "$work/results"
exec 3<&-
echo
echo "Each step's duration over the machines (seconds): min, median, 99th percentile, max, and the machine done last"
echo "(http_* from request to last byte; whole_boot from power-on to the initrd's last byte)."
printf '\n%-16s %-13s %8s %8s %8s %8s %8s\n' server step min p50 p99 max last
while read -r name rest; do
  printf '%-16s %-13s %8s %8s %8s %8s %8s\n' "$(label "$name")" "$(field " $rest" name)" "$(field " $rest" min_s)" \
    "$(field " $rest" p50_s)" "$(field " $rest" p99_s)" "$(field " $rest" max_s)" "$(field " $rest" last_machine_s)"
done < "$work/phases"
echo
echo "TFTP step alone: median seconds by style; DATA blocks a client received twice (resends it did not need);"
echo "lock-step blocks' wait at the client (its ACK to the next block), median and 99th percentile, split at the"
echo "block's arrival in the client's socket (kernel timestamp) into the turn (ACK out, server, block back) and the"
echo "simulator's own lateness in reading it (real firmware, alone on its machine, has none)."
printf '\n%-16s %14s %14s %11s %14s %14s %14s %14s %14s %14s\n' server "lock-step (s)" "windowed (s)" "dup DATA" "wait p50 (ms)" "wait p99 (ms)" \
  "turn p50 (ms)" "turn p99 (ms)" "late p50 (ms)" "late p99 (ms)"
while read -r name rest; do
  printf '%-16s %14s %14s %11s %14s %14s %14s %14s %14s %14s\n' "$(label "$name")" "$(field " $rest" tftp_lockstep_med_s)" "$(field " $rest" tftp_window_med_s)" \
    "$(field " $rest" tftp_dup_data)" "$(field " $rest" tftp_lockstep_wait_p50_ms)" "$(field " $rest" tftp_lockstep_wait_p99_ms)" \
    "$(field " $rest" tftp_lockstep_turn_p50_ms)" "$(field " $rest" tftp_lockstep_turn_p99_ms)" \
    "$(field " $rest" tftp_lockstep_late_p50_ms)" "$(field " $rest" tftp_lockstep_late_p99_ms)"
done < "$work/results"
echo
[ "$ROUNDS" -gt 1 ] && echo "ratios of the medians over $ROUNDS rounds:"
if has netbootd "$work/results" && has dnsmasq "$work/results"; then
  echo "ratio netbootd / dnsmasq+nginx: time to the last machine $(ratio netbootd dnsmasq last_done_s "$work/results") (goal <= 0.50)," \
    "server CPU $(ratio netbootd dnsmasq server_cpu_s "$work/results")"
fi
if has hybrid "$work/results" && has dnsmasq "$work/results"; then
  echo "ratio netbootd+nginx / dnsmasq+nginx: time to the last machine $(ratio hybrid dnsmasq last_done_s "$work/results")," \
    "server CPU $(ratio hybrid dnsmasq server_cpu_s "$work/results")"
fi
if has netbootd "$work/results" && has baseline "$work/results"; then
  echo "ratio netbootd / baseline ($BASELINE): time to the last machine $(ratio netbootd baseline last_done_s "$work/results")," \
    "server CPU $(ratio netbootd baseline server_cpu_s "$work/results")"
fi
for f in "$work"/out/*.txt; do grep "error:" "$f" | sed "s|^ *|  $(basename "$f" .txt) |" || true; done
if [ -s "$work/load" ]; then
  echo
  echo "HTTP assets alone: $LOAD_CLIENTS clients (each its own address) fetch the $INITRD_MB MiB initrd whole (size and CRC-32C"
  echo "checked), then $LOAD_RANGES Range requests of 1 MiB each at random offsets (bytes checked); netbootd /assets/ against nginx."
  printf '\n%-16s %9s %7s %10s %10s %15s %15s %15s  %s\n' server requests failed "seconds" "MiB/s" "server CPU (s)" "CPU s per GiB" \
    "client CPU (s)" "server CPU by process (s)"
  while read -r name rest; do
    b=$(field " $rest" bytes); c=$(field " $rest" server_cpu_s)
    printf '%-16s %9s %7s %10s %10s %15s %15s %15s  %s\n' "$(label "$name" nginx)" "$(field " $rest" requests)" "$(field " $rest" failed)" \
      "$(field " $rest" seconds)" "$(field " $rest" mib_per_s)" "$c" "$(awk -v c="$c" -v b="$b" 'BEGIN{printf "%.2f", (b>0 ? c / (b / 1073741824) : 0)}')" \
      "$(field " $rest" client_cpu_s)" "$(field " $rest" by_process)"
  done < "$work/load"
  # CPU per byte, for the ratio: every run moves the same bytes unless one failed.
  awk '{print}' "$work/load" | while read -r name rest; do
    echo "$name cpu_per_gib=$(awk -v c="$(field " $rest" server_cpu_s)" -v b="$(field " $rest" bytes)" 'BEGIN{print (b>0 ? c / (b / 1073741824) : 0)}')"
  done > "$work/load-cpu"
  echo
  if has netbootd "$work/load" && has dnsmasq "$work/load"; then
    echo "ratio netbootd / nginx: throughput $(ratio netbootd dnsmasq mib_per_s "$work/load"), server CPU per byte $(ratio netbootd dnsmasq cpu_per_gib "$work/load-cpu")"
  fi
  if has netbootd "$work/load" && has baseline "$work/load"; then
    echo "ratio netbootd / baseline: throughput $(ratio netbootd baseline mib_per_s "$work/load"), server CPU per byte $(ratio netbootd baseline cpu_per_gib "$work/load-cpu")"
  fi
  # The HTTP-alone time: what the machines download over HTTP at the best rate HTTP alone reached
  # in this run (any server, any round). Not a hard floor: that load mixes whole files with
  # slower 1 MiB Range requests, so a storm, which fetches whole files, can beat it. Beside it,
  # the rate the issue's goal (half dnsmasq+nginx's time) would take. STOP_AFTER ends the
  # machines before HTTP, so there is none then.
  if [ -z "$STOP_AFTER" ]; then
    total=$(( N * (KERNEL_MB * 1048576 + INITRD_MB * 1048576 + $(stat -c %s "$www/boot.ipxe")) ))
    best=$(while read -r name rest; do echo "$(field " $rest" mib_per_s) $name"; done < "$work/load" | sort -g | tail -1)
    alone=$(awk -v t="$total" -v b="${best%% *}" 'BEGIN{printf "%.2f", (b > 0 ? t / 1048576 / b : 0)}')
    echo
    echo "HTTP-alone time: $N machines x (kernel + initrd + script) = $(awk -v t="$total" 'BEGIN{printf "%.0f", t / 1048576}') MiB" \
      "at the best HTTP-alone rate of this run (${best%% *} MiB/s, $(label "${best#* }" nginx)) = $alone s"
    for s in $SERVERS; do
      has "$s" "$work/results" || continue
      last=$(median $(values "$s" last_done_s "$work/results"))
      echo "  $(label "$s"): time to the last machine $last s = $(awk -v a="$last" -v f="$alone" 'BEGIN{printf "%.2fx", (f > 0 ? a / f : 0)}') that," \
        "$(awk -v t="$total" -v a="$last" 'BEGIN{printf "%.0f", (a > 0 ? t / 1048576 / a : 0)}') MiB/s over the whole storm"
    done
    if has dnsmasq "$work/results"; then
      half=$(awk -v a="$(median $(values dnsmasq last_done_s "$work/results"))" 'BEGIN{printf "%.2f", a / 2}')
      echo "  the goal (half dnsmasq+nginx's time, $half s) takes $(awk -v t="$total" -v h="$half" 'BEGIN{printf "%.0f", t / 1048576 / h}') MiB/s over the whole storm," \
        "$(awk -v t="$total" -v h="$half" -v b="${best%% *}" 'BEGIN{printf "%.2fx", t / 1048576 / h / b}') the best HTTP-alone rate"
    fi
  fi
fi
echo
echo "Reproduce (as root): make bench-storm    # or: N=$N KERNEL_MB=$KERNEL_MB INITRD_MB=$INITRD_MB ROUNDS=$ROUNDS SERVERS=\"$SERVERS\"${BASELINE:+ BASELINE=$BASELINE} scripts/bench-storm.sh; took $(( $(date +%s) - t0 )) s"
