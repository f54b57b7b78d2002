#!/usr/bin/env bash
# TFTP benchmark: atftp (the client that speaks RFC 7440 windowsize) against netbootd's TFTP
# server, atftpd, tftpd-hpa and dnsmasq, one after the other on the same link in one run.
#
#   1. one client fetching a SIZE_MB file (default 32 MiB) for blksize 512/1468 x windowsize 1/16/64,
#      at RTT 0 (veth) and, when the delay line is built, 1 ms and 5 ms;
#   2. a storm: STORM clients (default 100) at once, each fetching 1 MiB;
#   3. with the delay line: 1 MiB at 1% loss each way, median of LOSS_RUNS runs.
# Figures are MB/s (or seconds) and the ratio to the best other server in the same row.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${NETBOOTD_BIN:-$PWD/bin/netbootd}
DELAYLINE=${DELAYLINE:-$PWD/bin/delayline}
SIZE_MB=${SIZE_MB:-32}
RTT_SIZE_MB=${RTT_SIZE_MB:-2} # with delay: lock-step 32 MiB at 5 ms RTT would take 6 minutes a run
STORM=${STORM:-100}
LOSS_RUNS=${LOSS_RUNS:-5}
SERVER_CPU=${SERVER_CPU:-1} CLIENT_CPU=${CLIENT_CPU:-0}
[ "$(id -u)" = 0 ] || { echo "bench-tftp needs root (namespaces)" >&2; exit 1; }
for t in atftp in.tftpd dnsmasq "$BIN"; do command -v "$t" >/dev/null || [ -x "$t" ] || { echo "missing $t: run make deps build" >&2; exit 1; }; done

id=$$ S=nbt-s-$$ C=nbt-c-$$
work=$(mktemp -d /tmp/nbtftp.XXXXXX)
server_pid= dl_pid=
cleanup() {
  [ -n "$server_pid" ] && kill -9 "$server_pid" 2>/dev/null || true
  [ -n "$dl_pid" ] && kill "$dl_pid" 2>/dev/null || true
  for ns in $S $C; do
    for p in $(ip netns pids $ns 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del $ns 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# atftpd conflicts with tftpd-hpa as a package: unpack it beside, never install it.
ATFTPD=$work/atftpd/usr/sbin/atftpd
(cd "$work" && apt-get download atftpd >/dev/null 2>&1 && dpkg -x atftpd_*.deb atftpd) || true
[ -x "$ATFTPD" ] || { echo "could not fetch atftpd (apt-get download atftpd)" >&2; ATFTPD=; }

root=$work/root; mkdir -p "$root"
head -c $((SIZE_MB << 20)) /dev/urandom > "$root/big.img"
head -c $((1 << 20)) /dev/urandom > "$root/1m.img"
head -c $((RTT_SIZE_MB << 20)) /dev/urandom > "$root/rtt.img"

ip netns add $S; ip netns add $C
for ns in $S $C; do ip -n $ns link set lo up; done
ip -n $S link add ts0 type veth peer name tc0 netns $C
ip -n $S addr add 10.66.0.1/24 dev ts0; ip -n $C addr add 10.66.0.2/24 dev tc0
ip -n $S link set ts0 up; ip -n $C link set tc0 up
SRV_IP=10.66.0.1 SRV_IF=ts0

servers=(netbootd atftpd tftpd-hpa dnsmasq)
[ -n "$ATFTPD" ] || servers=(netbootd tftpd-hpa dnsmasq)
[ -n "${SERVERS:-}" ] && read -r -a servers <<< "$SERVERS"

start_server() { # $1 kind
  case $1 in
    netbootd)
      # The storm's clients share one address; in a rack each machine has its own, which is what
      # the per-client cap (default 16) is for.
      printf 'interface: {mode: proxy}\ntftp: {root: %s, max_window: 64, max_per_client: 256}\n' "$root" > "$work/netbootd.yaml"
      ip netns exec $S taskset -c $SERVER_CPU "$BIN" attach $SRV_IF --config "$work/netbootd.yaml" --xdp off \
        --state-dir "$work/state" --http-listen $SRV_IP:9181 > "$work/server.log" 2>&1 & ;;
    atftpd)
      ip netns exec $S taskset -c $SERVER_CPU "$ATFTPD" --daemon --no-fork --user root --group root \
        --bind-address $SRV_IP --logfile /dev/null --maxthread 200 "$root" > "$work/server.log" 2>&1 & ;;
    tftpd-hpa)
      ip netns exec $S taskset -c $SERVER_CPU in.tftpd -L -u root -s "$root" -a $SRV_IP:69 > "$work/server.log" 2>&1 & ;;
    dnsmasq)
      ip netns exec $S taskset -c $SERVER_CPU dnsmasq --no-daemon --port=0 --enable-tftp --tftp-root="$root" \
        --interface=$SRV_IF --bind-interfaces --pid-file= --tftp-max=500 > "$work/server.log" 2>&1 & ;;
  esac
  server_pid=$!
  for _ in $(seq 50); do
    ip netns exec $C atftp --get -r 1m.img -l /dev/null $SRV_IP >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "$1 did not serve:"; cat "$work/server.log"; return 1
}
stop_server() { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; server_pid=; }

# fetch FILE BLKSIZE WINDOW: prints seconds, or "fail".
fetch() {
  local opts=(--option "blksize $2") t0 t1
  [ "$3" -gt 1 ] && opts+=(--option "windowsize $3")
  t0=$(date +%s%N)
  if ip netns exec $C taskset -c $CLIENT_CPU timeout 120 atftp --get -r "$1" -l "$work/out" "${opts[@]}" $SRV_IP >/dev/null 2>&1 &&
    cmp -s "$work/out" "$root/$1"; then
    t1=$(date +%s%N); awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.4f\n", (b-a)/1e9}'
  else
    echo fail
  fi
}

# Servers that negotiate RFC 7440 windowsize; the others answer lock-step whatever is asked, so
# their windowsize 16 and 64 rows repeat the windowsize 1 run instead of spending minutes on it.
windowed() { [ "$1" = netbootd ] || [ "$1" = atftpd ]; }

declare -A res
run_single() { # $1 = rtt label, $2 = file
  for srv in "${servers[@]}"; do
    echo "== $1: $srv" >&2
    start_server "$srv" || continue
    for bs in 512 1468; do
      for w in 1 16 64; do
        if [ $w -gt 1 ] && ! windowed "$srv"; then
          res["$1,$bs,$w,$srv"]=${res["$1,$bs,1,$srv"]}; continue
        fi
        s=$(fetch "$2" $bs $w)
        res["$1,$bs,$w,$srv"]=$s
        echo "    blksize $bs windowsize $w: $s s" >&2
      done
    done
    stop_server
  done
}

storm() {
  for srv in "${servers[@]}"; do
    echo "== storm: $srv, $STORM clients x 1 MiB" >&2
    start_server "$srv" || continue
    local t0 t1 fails=0 d=$work/storm
    rm -rf "$d"; mkdir -p "$d"
    t0=$(date +%s%N)
    local pids=()
    for i in $(seq "$STORM"); do
      (ip netns exec $C timeout 60 atftp --get -r 1m.img -l "$d/$i" --option "blksize 1468" --option "windowsize 16" $SRV_IP >/dev/null 2>&1 &&
        cmp -s "$d/$i" "$root/1m.img" || touch "$d/$i.fail") &
      pids+=($!)
    done
    wait "${pids[@]}" || true
    t1=$(date +%s%N)
    fails=$(find "$d" -name '*.fail' | wc -l)
    res["storm,$srv"]=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')
    res["stormfail,$srv"]=$fails
    stop_server
  done
}

# With the delay line (tests/delayline), the client reaches the server through two TUN devices
# that hold each packet DELAY and drop LOSS of them: RTT and loss without netem.
via_delayline() { # $1 one-way delay, $2 loss
  [ -n "$dl_pid" ] && { kill "$dl_pid"; wait "$dl_pid" 2>/dev/null || true; dl_pid=; }
  ip netns exec $S true
  "$DELAYLINE" -a $S -ia td0 -addr-a 10.77.0.1/24 -b $C -ib td1 -addr-b 10.77.0.2/24 -delay "$1" -loss "$2" -t 10m > "$work/dl.log" 2>&1 &
  dl_pid=$!
  for _ in $(seq 50); do grep -q "delayline ready" "$work/dl.log" && break; sleep 0.1; done
  SRV_IP=10.77.0.1 SRV_IF=td0
}

run_single rtt0 big.img
storm
have_dl=
if [ -x "$DELAYLINE" ]; then
  have_dl=1
  via_delayline 500us 0; run_single rtt1ms rtt.img
  via_delayline 2500us 0; run_single rtt5ms rtt.img
  via_delayline 0s 0.01
  for srv in "${servers[@]}"; do
    echo "== 1% loss: $srv" >&2
    start_server "$srv" || continue
    times=()
    for _ in $(seq "$LOSS_RUNS"); do times+=("$(fetch 1m.img 1468 16)"); done
    res["loss,$srv"]=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
    echo "    runs: ${times[*]}" >&2
    stop_server
  done
fi

mbps() { awk -v s="$1" -v mb="$2" 'BEGIN{ if (s=="fail" || s=="") print "fail"; else printf "%.2f", mb*1.048576/s }'; }
echo
echo "TFTP, atftp client, MB/s ($SIZE_MB MiB at RTT 0, $RTT_SIZE_MB MiB with delay; ratio: netbootd to the best other server in the row); $(nproc) cores, server on CPU $SERVER_CPU, client on CPU $CLIENT_CPU"
labels=(rtt0); [ -n "$have_dl" ] && labels+=(rtt1ms rtt5ms)
printf '%-7s %-7s %-6s' rtt blksize window; for srv in "${servers[@]}"; do printf ' %10s' "$srv"; done; printf ' %8s\n' ratio
for l in "${labels[@]}"; do
  for bs in 512 1468; do
    for w in 1 16 64; do
      printf '%-7s %-7s %-6s' "$l" $bs $w
      best=0 nb=0
      for srv in "${servers[@]}"; do
        mb=$SIZE_MB; [ "$l" = rtt0 ] || mb=$RTT_SIZE_MB
        v=$(mbps "${res[$l,$bs,$w,$srv]:-fail}" "$mb"); printf ' %10s' "$v"
        [ "$v" = fail ] && continue
        if [ "$srv" = netbootd ]; then nb=$v; elif awk -v a="$v" -v b="$best" 'BEGIN{exit !(a>b)}'; then best=$v; fi
      done
      awk -v a="$nb" -v b="$best" 'BEGIN{ if (b>0) printf " %7.2fx\n", a/b; else print "      n/a" }'
    done
  done
done
echo "(tftpd-hpa and dnsmasq do not negotiate windowsize: their rows for 16 and 64 repeat the lock-step run, which is what their users get.)"
if [ -n "$have_dl" ]; then
  for l in rtt1ms rtt5ms; do
    awk -v w="${res[$l,1468,16,netbootd]:-0}" -v s="${res[$l,1468,1,netbootd]:-0}" -v l="$l" \
      'BEGIN{ if (w>0 && s>0) printf "netbootd at %s, blksize 1468: windowsize 16 is %.1fx lock-step\n", l, s/w }'
  done
fi
echo
echo "Storm: $STORM atftp clients at once, 1 MiB each (blksize 1468, windowsize 16 asked), RTT 0"
for srv in "${servers[@]}"; do printf '  %-10s %8s s  failures %s\n' "$srv" "${res[storm,$srv]:-n/a}" "${res[stormfail,$srv]:-n/a}"; done
if [ -n "$have_dl" ]; then
  echo
  echo "1 MiB at 1% loss each way (delay line, no added delay), median of $LOSS_RUNS, seconds"
  for srv in "${servers[@]}"; do printf '  %-10s %8s\n' "$srv" "${res[loss,$srv]:-n/a}"; done
  echo "(RTT and loss made by tests/delayline: two TUN devices and a user-space queue; the kernel has no netem.)"
else
  echo "(no delay line built: only RTT 0; make bench-tftp builds it)"
fi
