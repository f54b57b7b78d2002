#!/usr/bin/env bash
# XDP replies on the wire: bin/xdpwire's XDP program on the client's veth end counts each reply
# from netbootd's program and turns it into the next reserved client's DISCOVER or REQUEST, sent
# back with XDP_TX (tests/xdpwire); seeded with INFLIGHT requests, the two programs ping-pong at
# kernel speed. Prints requests sent/s, the program's own counters
# and replies received/s, min/median/max over ROUNDS rounds, for:
#   direct:  client veth ↔ server veth, netbootd attached native; both ends' receive path runs in
#            the softirq of CLIENT_CPU, the one the seeds leave from: one core does everything;
#   split:   the same with threaded NAPI: the server end's receive path (netbootd's program) in a
#            kernel thread pinned to SERVER_CPU, the client end's to CLIENT_CPU;
#   bridge:  client veth ↔ Linux bridge ↔ server veth (frames cross the bridge as skbs, so the
#            server's native program runs on skb-backed buffers).
# Kea and dnsmasq answer from user space through sockets: they have no such path to compare.
#
# Each round also runs one more round of the same length with the kernel's BPF run-time
# statistics on (they add two clock reads per run, so it is not in the rates): the average ns per
# run of netbootd's program and of the client's, which share the core in direct and bridge.
# BASELINE=old/netbootd runs it too, in the same run, alternating round by round with the
# netbootd under test (each round attaches the binary afresh), and prints both.
#
#   scripts/bench-xdp.sh                        # ROUNDS=5 rounds of SECONDS_PER_ROUND=3 per request type and setup
#   SETUPS="direct bridge" scripts/bench-xdp.sh  # some setups only
#   BASELINE=/tmp/old/netbootd SETUPS=direct ROUNDS=3 scripts/bench-xdp.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${NETBOOTD_BIN:-$PWD/bin/netbootd}
BASELINE=${BASELINE:-}
XDPWIRE=${XDPWIRE:-$PWD/bin/xdpwire}
XDP_PASS=${XDP_PASS:-$PWD/bin/xdp-pass}
SETUPS=${SETUPS:-direct split bridge}
ROUNDS=${ROUNDS:-5} SECONDS_PER_ROUND=${SECONDS_PER_ROUND:-3} INFLIGHT=${INFLIGHT:-64}
# The injection, and with it both veth ends' receive paths (NAPI runs in the injecting CPU's
# softirq), run on this CPU; netbootd's process (not on the XDP path) on the other.
CLIENT_CPU=${CLIENT_CPU:-1} SERVER_CPU=${SERVER_CPU:-0}
CLIENTS=10000
[ "$(id -u)" = 0 ] || { echo "bench-xdp needs root (namespaces)" >&2; exit 1; }
for t in "$BIN" "$XDPWIRE" "$XDP_PASS" ${BASELINE:+"$BASELINE"}; do [ -x "$t" ] || { echo "missing $t: run make build xdp-pass xdpwire" >&2; exit 1; }; done

id=$$
S=nbx-s-$id C=nbx-c-$id B=nbx-b-$id
# Device names of their own: a threaded NAPI's kernel thread is found by its device's name.
SD=xs$id CD=xc$id
work=$(mktemp -d /tmp/nbxdp.XXXXXX)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill -9 "$server_pid" 2>/dev/null || true
  for ns in $S $C $B; do
    for p in $(ip netns pids $ns 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del $ns 2>/dev/null || true
  done
  rm -rf "$work"
  [ -n "${pins:-}" ] && rm -rf "$pins"
}
trap cleanup EXIT INT TERM

# Pins live on a bpffs outside /sys: ip netns exec gives each command its own /sys.
pins_root=/run/netbootd-bench-bpffs
mkdir -p $pins_root
[ "$(stat -f -c %T $pins_root)" = bpf_fs ] || mount -t bpf bpffs $pins_root
pins=$pins_root/x$$; mkdir -p "$pins"

# 10,000 reserved clients: 02:bb:00:00:hi:lo → 10.0.<200+i/250>.<1+i%250>, as in bench-dhcp.
clients=$work/clients.txt
awk -v n=$CLIENTS 'BEGIN { for (i = 0; i < n; i++) printf "02:bb:00:00:%02x:%02x 10.0.%d.%d\n", int(i/256), i%256, 200+int(i/250), 1+i%250 }' > "$clients"
cfg=$work/netbootd.yaml
{
  echo "interface: {mode: authoritative, server_ip: 10.0.0.1}"
  echo "subnets:"
  echo "  - cidr: 10.0.0.0/16"
  echo "    lease_time: 1h"
  echo "    options: {router: 10.0.0.1, dns: [10.0.0.1]}"
  echo "reservations:"
  awk '{ printf "  - {mac: \"%s\", ip: %s}\n", $1, $2 }' "$clients"
} > "$cfg"

# pin_napi DEV CPU: DEV's threaded NAPI kernel threads to CPU.
pin_napi() {
  local pids
  pids=$(ps -eo pid=,comm= | awk -v p="napi/$1-" 'index($2, p) == 1 {print $1}')
  [ -n "$pids" ] || { echo "no NAPI thread for $1" >&2; return 1; }
  for p in $pids; do taskset -pc "$2" "$p" >/dev/null; done
}

setup() { # $1 = direct|split|bridge, $2 = the netbootd binary
  for ns in $S $C $B; do ip netns del $ns 2>/dev/null || true; ip netns add $ns; ip -n $ns link set lo up; done
  if [ "$1" != bridge ]; then
    ip -n $S link add $SD type veth peer name $CD netns $C
  else
    ip -n $B link add br0 type bridge stp_state 0 forward_delay 0
    ip -n $S link add $SD type veth peer name bsp netns $B
    ip -n $C link add $CD type veth peer name bcp netns $B
    for d in bsp bcp; do ip -n $B link set $d master br0; ip -n $B link set $d up; done
    ip -n $B link set br0 up
    # Both bridge ports receive XDP_TX frames from their veth peer: veth takes them only with an
    # XDP program on the receiving end; XDP_PASS hands them to the bridge as skbs.
    for d in bsp bcp; do ip netns exec $B "$XDP_PASS" $d; done
  fi
  ip -n $S addr add 10.0.0.1/16 dev $SD
  ip -n $S link set $SD up; ip -n $C link set $CD up
  ip netns exec $S taskset -c "$SERVER_CPU" "$2" attach $SD --config "$cfg" --state-dir "$work/state-$1" \
    --xdp native --pin-dir "$pins" --http-listen 127.0.0.1:9181 > "$work/server.log" 2>&1 &
  server_pid=$!
  # Ready when the program answers a reserved client (the reservations reach its map after attach).
  for _ in $(seq 100); do
    ip netns exec $C "$XDPWIRE" -i $CD -clients "$clients" -type discover -t 100ms -rounds 1 -inflight 1 2>/dev/null |
      awk '/^summary/ {exit !($NF > 0)} END {if (NR == 0) exit 1}' && { ready "$1"; return; }
    kill -0 "$server_pid" 2>/dev/null || { echo "netbootd exited:"; cat "$work/server.log"; return 1; }
    sleep 0.2
  done
  echo "netbootd did not attach:"; tail -20 "$work/server.log"; return 1
}
# split: each end's receive path in its own kernel thread (threaded NAPI; veth has NAPI only
# while an XDP program is attached). The server end's is pinned here; the client end's kernel
# thread is made again whenever xdpwire attaches, which pins it to its -cpu.
ready() {
  [ "$1" = split ] || return 0
  ip netns exec $S sh -c "echo 1 > /sys/class/net/$SD/threaded" && pin_napi $SD "$SERVER_CPU" || return 1
  ip netns exec $C "$XDP_PASS" $CD && ip netns exec $C sh -c "echo 1 > /sys/class/net/$CD/threaded"
}
teardown() {
  kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; server_pid=
  ip netns exec $S "$BIN" detach --pin-dir "$pins" $SD >/dev/null 2>&1 || true
}
counter() { ip netns exec $S "$BIN" status --pin-dir "$pins" $SD | awk -v k="$1" '$1==k {print $2+0; f=1} END {if (!f) print 0}'; }

# spread: "min median max" of the numbers on stdin.
spread() { sort -g | awk '{v[NR]=$1} END {m = NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; printf "%.0f %.0f %.0f", v[1], m, v[NR]}'; }

bins=(new); [ -n "$BASELINE" ] && bins=(base new)
declare -A binary=([new]=$BIN [base]=$BASELINE)
declare -A sent rate cli srv prx ans at
for setup_kind in $SETUPS; do
  for r in $(seq "$ROUNDS"); do
    for b in "${bins[@]}"; do
      echo "== $setup_kind, round $r, $b (${binary[$b]}), load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
      setup $setup_kind "${binary[$b]}"
      for typ in discover request; do
        k=$setup_kind,$typ,$b
        rx0=$(counter received) o0=$(counter offer) a0=$(counter ack)
        out=$(ip netns exec $C "$XDPWIRE" -i $CD -clients "$clients" -type $typ -server-ip 10.0.0.1 -t "${SECONDS_PER_ROUND}s" -rounds 1 \
          -inflight "$INFLIGHT" -cpu "$CLIENT_CPU" -server-link "$pins/$SD/link")
        sed 's/^/    /' <<< "$out" >&2
        rx1=$(counter received) o1=$(counter offer) a1=$(counter ack)
        read -r _ _ _ _ _ _ _ rmed _ _ s _ replies <<< "$(grep '^summary' <<< "$out")"
        read -r _ _ cns _ sns _ <<< "$(grep '^cost' <<< "$out")"
        rate[$k]+="$rmed "; cli[$k]+="$cns "; srv[$k]+="$sns "
        sent[$k]=$(( ${sent[$k]:-0} + s )); at[$k]=$(( ${at[$k]:-0} + replies ))
        # The program's counters cover the measured round and the cost round.
        prx[$k]=$(( ${prx[$k]:-0} + rx1 - rx0 )); ans[$k]=$(( ${ans[$k]:-0} + (o1 - o0) + (a1 - a0) ))
      done
      ip netns exec $S "$BIN" status --pin-dir "$pins" $SD | grep -E '^ *pass_[a-z_]+ +[1-9]' | sed 's/^ */    program total: /' >&2 || true
      teardown
    done
  done
done

goal=1000000
echo
echo "XDP replies that reach the client, one core: $ROUNDS rounds of ${SECONDS_PER_ROUND}s for $CLIENTS reserved MACs (xdpwire ping-pong, CPU $CLIENT_CPU), $(nproc) cores, kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"
[ -n "$BASELINE" ] && echo "base = $BASELINE, new = $BIN, alternating round by round"
printf '%-7s %-9s %-4s %29s %9s %25s %25s %9s\n' setup request bin "replies/s min/med/max" "vs 1 M/s" "netbootd ns/run m/m/m" "client ns/run m/m/m" "lost"
for setup_kind in $SETUPS; do
  for typ in discover request; do
    for b in "${bins[@]}"; do
      k=$setup_kind,$typ,$b
      [ -n "${rate[$k]:-}" ] || continue
      read -r rmin rmed rmax <<< "$(tr ' ' '\n' <<< "${rate[$k]}" | grep . | spread)"
      read -r smin smed smax <<< "$(tr ' ' '\n' <<< "${srv[$k]}" | grep . | spread)"
      read -r cmin cmed cmax <<< "$(tr ' ' '\n' <<< "${cli[$k]}" | grep . | spread)"
      printf '%-7s %-9s %-4s %9s %9s %9s %9s %8s %8s %7s %8s %8s %7s %9s\n' $setup_kind $typ $b $rmin $rmed $rmax \
        "$(awk -v a="$rmed" -v g=$goal 'BEGIN{printf "%.2fx", a/g}')" $smin $smed $smax $cmin $cmed $cmax $(( ${sent[$k]} - ${at[$k]} ))
      echo "                  sent ${sent[$k]}, replies at the client ${at[$k]} (measured rounds); netbootd's program received ${prx[$k]}, answered ${ans[$k]} (with the cost rounds)"
    done
  done
done
echo "(native XDP on every veth end. direct and bridge: sender, server program and counter all run in CPU $CLIENT_CPU's softirq,"
echo " so the figure is one core's, the client's work included; split: threaded NAPI, netbootd's program alone on CPU $SERVER_CPU,"
echo " the client on CPU $CLIENT_CPU. In bridge the frames cross br0 as skbs, so netbootd's native program runs on skb-backed buffers."
echo " ns/run: each program's average time per run in an extra round with BPF run-time statistics on (BPF_ENABLE_STATS);"
echo " the rest of a round trip is the two veth transmissions and NAPI. lost: requests sent without a reply at the client."
echo " Requests and replies ping-pong with $INFLIGHT in flight: nothing queues, so sent = answered = received unless frames are lost."
echo " Generic mode is not measured: a generic-mode program on the server end never saw the client program's XDP_TX frames."
echo " Kea and dnsmasq answer from user space: no peer has this path.)"
