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
#   scripts/bench-xdp.sh                        # ROUNDS=5 rounds of SECONDS_PER_ROUND=3 per request type and setup
#   SETUPS="direct bridge" scripts/bench-xdp.sh  # some setups only
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${NETBOOTD_BIN:-$PWD/bin/netbootd}
XDPWIRE=${XDPWIRE:-$PWD/bin/xdpwire}
XDP_PASS=${XDP_PASS:-$PWD/bin/xdp-pass}
SETUPS=${SETUPS:-direct split bridge}
ROUNDS=${ROUNDS:-5} SECONDS_PER_ROUND=${SECONDS_PER_ROUND:-3} INFLIGHT=${INFLIGHT:-64}
# The injection, and with it both veth ends' receive paths (NAPI runs in the injecting CPU's
# softirq), run on this CPU; netbootd's process (not on the XDP path) on the other.
CLIENT_CPU=${CLIENT_CPU:-1} SERVER_CPU=${SERVER_CPU:-0}
CLIENTS=10000
[ "$(id -u)" = 0 ] || { echo "bench-xdp needs root (namespaces)" >&2; exit 1; }
for t in "$BIN" "$XDPWIRE" "$XDP_PASS"; do [ -x "$t" ] || { echo "missing $t: run make build xdp-pass xdpwire" >&2; exit 1; }; done

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

setup() { # $1 = direct|split|bridge
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
  ip netns exec $S taskset -c "$SERVER_CPU" "$BIN" attach $SD --config "$cfg" --state-dir "$work/state-$1" \
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

declare -A row
for setup_kind in $SETUPS; do
  echo "== $setup_kind" >&2
  setup $setup_kind
  for typ in discover request; do
    rx0=$(counter received) o0=$(counter offer) a0=$(counter ack)
    out=$(ip netns exec $C "$XDPWIRE" -i $CD -clients "$clients" -type $typ -server-ip 10.0.0.1 -t "${SECONDS_PER_ROUND}s" -rounds "$ROUNDS" -inflight "$INFLIGHT" -cpu "$CLIENT_CPU")
    sed 's/^/    /' <<< "$out" >&2
    rx1=$(counter received) o1=$(counter offer) a1=$(counter ack)
    answered=$(( (o1 - o0) + (a1 - a0) ))
    read -r _ _ smin smed smax _ rmin rmed rmax _ sent _ replies <<< "$(grep '^summary' <<< "$out")"
    echo "    netbootd's program: received $((rx1 - rx0)), answered $answered (offer $((o1 - o0)), ack $((a1 - a0)))" >&2
    ip netns exec $S "$BIN" status --pin-dir "$pins" $SD | grep -E '^ *pass_[a-z_]+ +[1-9]' | sed 's/^ */    program total: /' >&2 || true
    row[$setup_kind,$typ]="$smin $smed $smax $rmin $rmed $rmax $sent $((rx1 - rx0)) $answered $replies"
  done
  teardown
done

goal=1000000
echo
echo "XDP replies that reach the client, one core: $ROUNDS rounds of ${SECONDS_PER_ROUND}s for $CLIENTS reserved MACs (xdpwire ping-pong, CPU $CLIENT_CPU), $(nproc) cores, kernel $(uname -r)"
printf '%-7s %-9s %29s %29s %9s %33s\n' setup request "sent/s min/med/max" "replies/s min/med/max" "vs 1 M/s" "sent / program received / answered / at client"
for setup_kind in $SETUPS; do
  for typ in discover request; do
    [ -n "${row[$setup_kind,$typ]:-}" ] || continue
    read -r smin smed smax rmin rmed rmax sent prx ans replies <<< "${row[$setup_kind,$typ]}"
    printf '%-7s %-9s %9s %9s %9s %9s %9s %9s %9s %33s\n' $setup_kind $typ $smin $smed $smax $rmin $rmed $rmax \
      "$(awk -v a="$rmed" -v g=$goal 'BEGIN{printf "%.2fx", a/g}')" "$sent / $prx / $ans / $replies"
  done
done
echo "(native XDP on every veth end. direct and bridge: sender, server program and counter all run in CPU $CLIENT_CPU's softirq,"
echo " so the figure is one core's, the client's work included; split: threaded NAPI, netbootd's program alone on CPU $SERVER_CPU,"
echo " the client on CPU $CLIENT_CPU. In bridge the frames cross br0 as skbs, so netbootd's native program runs on skb-backed buffers."
echo " Requests and replies ping-pong with $INFLIGHT in flight: nothing queues, so sent = answered = received unless frames are lost."
echo " Generic mode is not measured: a generic-mode program on the server end never saw the client program's XDP_TX frames."
echo " Kea and dnsmasq answer from user space: no peer has this path.)"
