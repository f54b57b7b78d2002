#!/usr/bin/env bash
# TFTP benchmark: atftp (the client that speaks RFC 7440 windowsize) against netbootd's TFTP
# server, atftpd, tftpd-hpa and dnsmasq, measured in the same run, in two setups:
#
#   direct  one veth pair per server, server pinned to SERVER_CPU and client to CLIENT_CPU;
#   bridge  every server and the client on one Linux bridge (as in a rack and `make demo`), unpinned.
#
# Each setup runs ROUNDS rounds; a round fetches every transfer kind from every server, servers
# alternating (and their order rotating) fetch by fetch, so load on the machine falls on all
# of them alike. Kinds: lock-step (no windowsize asked) at blksize 512 and 1468 (LS_MB MiB),
# and windowsize 4/16/64 at blksize 1468 (WIN_MB MiB). Each row prints MB/s min/median/max over
# the rounds and the server's CPU time per MiB served (before and after each fetch); then
# netbootd's ratio to
# each peer, by median MB/s and by CPU per MiB (above 1: netbootd is faster / cheaper). The CPU
# time is read from a cpuacct cgroup per server (so tftpd-hpa's child per transfer counts) or,
# without cgroup v1, from /proc/PID/stat (utime+stime of the server and its reaped children).
# After that, in the direct setup: a storm of STORM clients at once (0: skip) and, through
# tests/delayline, 1 MiB at 1% loss each way, median of LOSS_RUNS (0: skip).
# BASELINE=/path/to/an/older/netbootd adds it as server "baseline": before and after a change,
# measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${NETBOOTD_BIN:-$PWD/bin/netbootd}
DELAYLINE=${DELAYLINE:-$PWD/bin/delayline}
LS_MB=${LS_MB:-8}
WIN_MB=${WIN_MB:-32}
ROUNDS=${ROUNDS:-5}
SETUPS=${SETUPS:-"direct bridge"}
WINDOWS=${WINDOWS:-"4 16 64"}
STORM=${STORM:-100}
LOSS_RUNS=${LOSS_RUNS:-5}
SERVER_CPU=${SERVER_CPU:-1} CLIENT_CPU=${CLIENT_CPU:-0}
[ "$(id -u)" = 0 ] || { echo "bench-tftp needs root (namespaces)" >&2; exit 1; }
for t in atftp in.tftpd "$BIN"; do command -v "$t" >/dev/null || [ -x "$t" ] || { echo "missing $t: run make deps build" >&2; exit 1; }; done
HZ=$(getconf CLK_TCK)
CG=/sys/fs/cgroup/cpuacct/nbt-tftp-$$ # + -<server index>, if cgroup v1's cpuacct is mounted
[ -w /sys/fs/cgroup/cpuacct/cgroup.procs ] || CG=

C=nbt-c-$$ B=nbt-b-$$
work=$(mktemp -d /tmp/nbtftp.XXXXXX)
declare -A pid
dl_pid=
cleanup() {
  for k in "${!pid[@]}"; do kill -9 "${pid[$k]}" 2>/dev/null || true; done
  [ -n "$dl_pid" ] && kill "$dl_pid" 2>/dev/null || true
  for ns in $C $B "${sns[@]}"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  for i in "${!sns[@]}"; do
    for _ in $(seq 50); do [ -d "$CG-$i" ] || break; rmdir "$CG-$i" 2>/dev/null || sleep 0.1; done
  done
  rm -rf "$work"
}
sns=()
trap cleanup EXIT INT TERM

# atftpd conflicts with tftpd-hpa as a package: unpack it beside, never install it.
ATFTPD=$work/atftpd/usr/sbin/atftpd
(cd "$work" && apt-get download atftpd >/dev/null 2>&1 && dpkg -x atftpd_*.deb atftpd) || true
[ -x "$ATFTPD" ] || { echo "could not fetch atftpd (apt-get download atftpd)" >&2; ATFTPD=; }

servers=(netbootd)
BASELINE=${BASELINE:-}
[ -n "$BASELINE" ] && servers+=(baseline)
[ -n "$ATFTPD" ] && servers+=(atftpd)
servers+=(tftpd-hpa)
command -v dnsmasq >/dev/null && servers+=(dnsmasq)
[ -n "${SERVERS:-}" ] && read -r -a servers <<< "$SERVERS"

root=$work/root; mkdir -p "$root"
echo probe > "$root/probe"
head -c $((LS_MB << 20)) /dev/urandom > "$root/ls.img"
head -c $((WIN_MB << 20)) /dev/urandom > "$root/win.img"
head -c $((1 << 20)) /dev/urandom > "$root/1m.img"

# Topology: each server has its own namespace S<i> with d0 (a veth straight to the client's
# d<i>, 10.66.<i>.0/24) and b0 (a veth into the bridge namespace, 10.67.0.<10+i>/24); the
# client's b0 is on the same bridge as 10.67.0.2.
ip netns add $C; ip netns add $B
ip -n $C link set lo up; ip -n $B link set lo up
ip -n $B link add br0 type bridge stp_state 0 forward_delay 0; ip -n $B link set br0 up
ip -n $C link add b0 type veth peer name pc netns $B
ip -n $B link set pc master br0; ip -n $B link set pc up
ip -n $C addr add 10.67.0.2/24 dev b0; ip -n $C link set b0 up
for i in "${!servers[@]}"; do
  S=nbt-s$i-$$; sns+=("$S"); ip netns add "$S"; ip -n "$S" link set lo up
  [ -n "$CG" ] && { mkdir "$CG-$i" || CG=; }
  ip -n "$S" link add d0 type veth peer name "d$i" netns $C
  ip -n "$S" addr add "10.66.$i.1/24" dev d0; ip -n $C addr add "10.66.$i.2/24" dev "d$i"
  ip -n "$S" link set d0 up; ip -n $C link set "d$i" up
  ip -n "$S" link add b0 type veth peer name "p$i" netns $B
  ip -n $B link set "p$i" master br0; ip -n $B link set "p$i" up
  ip -n "$S" addr add "10.67.0.$((10 + i))/24" dev b0; ip -n "$S" link set b0 up
done

addr_of() { # $1 server index, $2 interface (d0, b0, or td0 of the delay line)
  case $2 in d0) echo "10.66.$1.1" ;; b0) echo "10.67.0.$((10 + $1))" ;; td0) echo "10.77.$1.1" ;; esac
}

start_server() { # $1 server index, $2 interface, $3 taskset prefix (may be empty)
  local i=$1 kind=${servers[$1]} S=nbt-s$1-$$ ip; ip=$(addr_of "$1" "$2")
  local -a pin=(); [ -n "$3" ] && pin=(taskset -c "$3")
  case $kind in
    netbootd | baseline)
      local bin=$BIN; [ "$kind" = baseline ] && bin=$BASELINE
      # The storm's clients share one address; in a rack each machine has its own, which is what
      # the per-client cap (default 16) is for.
      printf 'interface: {mode: proxy}\ntftp: {root: %s, max_window: 64, max_per_client: 256}\n' "$root" > "$work/netbootd.yaml"
      ip netns exec "$S" "${pin[@]}" "$bin" attach "$2" --config "$work/netbootd.yaml" --xdp off \
        --state-dir "$work/state$i" --http-listen "$ip:9181" > "$work/server$i.log" 2>&1 & ;;
    atftpd)
      ip netns exec "$S" "${pin[@]}" "$ATFTPD" --daemon --no-fork --user root --group root \
        --bind-address "$ip" --logfile /dev/null --maxthread 200 "$root" > "$work/server$i.log" 2>&1 & ;;
    tftpd-hpa)
      ip netns exec "$S" "${pin[@]}" in.tftpd -L -u root -s "$root" -a "$ip:69" > "$work/server$i.log" 2>&1 & ;;
    dnsmasq)
      ip netns exec "$S" "${pin[@]}" dnsmasq --no-daemon --port=0 --enable-tftp --tftp-root="$root" \
        --interface="$2" --bind-interfaces --pid-file= --tftp-max=500 > "$work/server$i.log" 2>&1 & ;;
  esac
  pid[$i]=$! # ip netns exec and taskset exec the server: this is its PID
  [ -n "$CG" ] && echo "${pid[$i]}" > "$CG-$i/cgroup.procs"
  for _ in $(seq 50); do
    ip netns exec $C timeout 2 atftp --get -r probe -l /dev/null "$ip" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "$kind did not serve:"; cat "$work/server$i.log"; return 1
}
stop_servers() {
  for k in "${!pid[@]}"; do kill "${pid[$k]}" 2>/dev/null || true; wait "${pid[$k]}" 2>/dev/null || true; unset "pid[$k]"; done
}

# cpu INDEX: nanoseconds of CPU server INDEX has used. tftpd-hpa forks a child per transfer:
# wait until it has exited so that all its time is counted.
cpu() {
  local p=${pid[$1]}
  for _ in $(seq 100); do [ -z "$(pgrep -P "$p")" ] && break; sleep 0.02; done
  if [ -n "$CG" ]; then cat "$CG-$1/cpuacct.usage"; else awk -v hz="$HZ" '{printf "%d\n", ($14 + $15 + $16 + $17) * 1e9 / hz}' "/proc/$p/stat"; fi
}

# fetch IP FILE BLKSIZE WINDOW PIN: prints seconds, or "fail". WINDOW 0 asks no windowsize.
fetch() {
  local opts=(--option "blksize $3") t0 t1 ok=
  local -a pin=(); [ -n "$5" ] && pin=(taskset -c "$5")
  [ "$4" -gt 0 ] && opts+=(--option "windowsize $4")
  t0=$(date +%s%N)
  ip netns exec $C "${pin[@]}" timeout 120 atftp --get -r "$2" -l "$work/out" "${opts[@]}" "$1" >/dev/null 2>&1 && ok=1
  t1=$(date +%s%N)
  if [ -n "$ok" ] && cmp -s "$work/out" "$root/$2"; then awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.4f\n", (b-a)/1e9}'; else echo fail; fi
}

# Servers that negotiate RFC 7440 windowsize; the others answer lock-step whatever is asked
# (their users get the lock-step rows), so they sit the windowed rows out.
windowed() { [ "$1" = netbootd ] || [ "$1" = baseline ] || [ "$1" = atftpd ]; }

kinds=("ls512:ls.img:512:0" "ls1468:ls.img:1468:0")
for w in $WINDOWS; do kinds+=("w$w:win.img:1468:$w"); done

# results: one line per fetch: setup kind server seconds MiB CPU-nanoseconds
res=$work/results
: > "$res"
for setup in $SETUPS; do
  if [ "$setup" = direct ]; then ifc=d0 spin=$SERVER_CPU cpin=$CLIENT_CPU; else ifc=b0 spin= cpin=; fi
  echo "== $setup: starting ${servers[*]}" >&2
  up=()
  for i in "${!servers[@]}"; do start_server "$i" "$ifc" "$spin" && up+=("$i"); done
  for r in $(seq "$ROUNDS"); do
    echo "== $setup: round $r of $ROUNDS" >&2
    for kd in "${kinds[@]}"; do
      IFS=: read -r kind file bs w <<< "$kd"
      mb=$LS_MB; [ "$w" -gt 0 ] && mb=$WIN_MB
      n=${#up[@]}
      for j in $(seq 0 $((n - 1))); do
        i=${up[$(((j + r) % n))]} srv=${servers[${up[$(((j + r) % n))]}]}
        [ "$w" -gt 0 ] && ! windowed "$srv" && continue
        c0=$(cpu "$i")
        s=$(fetch "$(addr_of "$i" $ifc)" "$file" "$bs" "$w" "$cpin")
        c1=$(cpu "$i")
        echo "$setup $kind $srv $s $mb $((c1 - c0))" >> "$res"
        echo "    $kind $srv: $s s, CPU $(((c1 - c0) / 1000000)) ms" >&2
      done
    done
  done
  stop_servers
done

storm() { # $1 server index
  local ip; ip=$(addr_of "$1" d0)
  local t0 t1 d=$work/storm pids=()
  rm -rf "$d"; mkdir -p "$d"
  t0=$(date +%s%N)
  for k in $(seq "$STORM"); do
    (ip netns exec $C timeout 60 atftp --get -r 1m.img -l "$d/$k" --option "blksize 1468" --option "windowsize 16" "$ip" >/dev/null 2>&1 &&
      cmp -s "$d/$k" "$root/1m.img" || touch "$d/$k.fail") &
    pids+=($!)
  done
  wait "${pids[@]}" || true
  t1=$(date +%s%N)
  awk -v a="$t0" -v b="$t1" -v f="$(find "$d" -name '*.fail' | wc -l)" 'BEGIN{printf "%.3f s  failures %d", (b-a)/1e9, f}'
}
declare -A extra
if [ "$STORM" -gt 0 ]; then
  for i in "${!servers[@]}"; do
    echo "== storm: ${servers[$i]}, $STORM clients x 1 MiB" >&2
    start_server "$i" d0 "$SERVER_CPU" || continue
    extra["storm,$i"]=$(storm "$i")
    stop_servers
  done
fi
# With the delay line (tests/delayline), the client reaches the server through two TUN devices
# that drop 1% of the packets each way: loss without netem.
if [ "$LOSS_RUNS" -gt 0 ] && [ -x "$DELAYLINE" ]; then
  for i in "${!servers[@]}"; do
    echo "== 1% loss: ${servers[$i]}" >&2
    "$DELAYLINE" -a "nbt-s$i-$$" -ia td0 -addr-a "10.77.$i.1/24" -b $C -ib "t$i" -addr-b "10.77.$i.2/24" \
      -delay 0s -loss 0.01 -t 10m > "$work/dl.log" 2>&1 &
    dl_pid=$!
    for _ in $(seq 100); do grep -q "delayline ready" "$work/dl.log" && break; sleep 0.1; done
    if start_server "$i" td0 "$SERVER_CPU"; then
      times=()
      for _ in $(seq "$LOSS_RUNS"); do times+=("$(fetch "10.77.$i.1" 1m.img 1468 16 "$CLIENT_CPU")"); done
      extra["loss,$i"]=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)] " s"}')
      echo "    runs: ${times[*]}" >&2
      stop_servers
    fi
    kill "$dl_pid"; wait "$dl_pid" 2>/dev/null || true; dl_pid=
  done
fi

echo
echo "TFTP, atftp client, $ROUNDS alternating rounds; lock-step (no windowsize) $LS_MB MiB, windowed (blksize 1468) $WIN_MB MiB; $(nproc) cores"
echo "direct: a veth per server, server on CPU $SERVER_CPU, client on CPU $CLIENT_CPU; bridge: one Linux bridge, unpinned"
echo "MB/s min/median/max; CPU: the server's CPU time per MiB served (all its threads and processes), median; ratios: netbootd's median MB/s over the peer's, the peer's CPU/MiB over netbootd's (above 1: netbootd ahead)"
awk -v peers="${servers[*]}" '
  function sortn(a, n,   i, j, t) { for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j+1] = a[j]; a[j+1] = t } }
  function med(a, n) { return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2 }
  {
    k = $1 SUBSEP $2 SUBSEP $3
    if (!(($1 SUBSEP $2) in seen)) { seen[$1 SUBSEP $2] = 1; rows[++nr] = $1 SUBSEP $2 }
    if ($4 == "fail") { fails[k]++; next }
    n[k]++; mbs[k, n[k]] = $5 * 1.048576 / $4; cpu[k, n[k]] = $6 / 1e6 / $5
  }
  END {
    np = split(peers, p, " ")
    printf "%-7s %-7s %-10s %24s %11s", "setup", "kind", "server", "MB/s min / med / max", "CPU ms/MiB"
    for (j = 2; j <= np; j++) printf " %18s", "vs " p[j]
    printf "\n"
    for (r = 1; r <= nr; r++) {
      split(rows[r], sk, SUBSEP)
      for (j = 1; j <= np; j++) {
        k = rows[r] SUBSEP p[j]
        if (!(k in n) && !(k in fails)) continue
        m = (k in n) ? n[k] : 0
        delete a; delete c
        for (i = 1; i <= m; i++) { a[i] = mbs[k, i]; c[i] = cpu[k, i] }
        sortn(a, m); sortn(c, m)
        if (m > 0) { md[j] = med(a, m); mc[j] = med(c, m) } else { md[j] = 0; mc[j] = 0 }
        line = sprintf("%-7s %-7s %-10s", sk[1], sk[2], p[j])
        if (m > 0) line = line sprintf(" %7.1f / %6.1f / %6.1f %11.1f", a[1], md[j], a[m], mc[j])
        else line = line sprintf(" %24s %11s", "fail", "-")
        if (fails[k]) line = line sprintf("  (%d failed)", fails[k])
        out[j] = line
      }
      for (j = 1; j <= np; j++) {
        k = rows[r] SUBSEP p[j]
        if (!(k in n) && !(k in fails)) continue
        printf "%s", out[j]
        if (j == 1 && p[1] == "netbootd") {
          for (q = 2; q <= np; q++) {
            kq = rows[r] SUBSEP p[q]
            if (md[1] > 0 && (kq in n) && md[q] > 0) printf "  %5.2fx cpu %5.2fx", md[1] / md[q], (mc[1] > 0 ? mc[q] / mc[1] : 0)
            else printf " %18s", "-"
          }
        }
        printf "\n"
      }
    }
  }' "$res"
echo "(tftpd-hpa and dnsmasq do not negotiate windowsize: they answer lock-step, so they sit the windowed rows out; their users get the lock-step rows.)"
[ -n "$CG" ] || echo "(CPU from /proc/PID/stat, in clock ticks of 1/$HZ s: a figure under a few ms per MiB is coarse.)"
if [ "$STORM" -gt 0 ]; then
  echo
  echo "Storm (direct): $STORM atftp clients at once, 1 MiB each (blksize 1468, windowsize 16 asked)"
  for i in "${!servers[@]}"; do printf '  %-10s %s\n' "${servers[$i]}" "${extra[storm,$i]:-n/a}"; done
fi
if [ "$LOSS_RUNS" -gt 0 ]; then
  echo
  if [ -x "$DELAYLINE" ]; then
    echo "1 MiB at 1% loss each way (tests/delayline, no added delay; blksize 1468, windowsize 16), median of $LOSS_RUNS"
    for i in "${!servers[@]}"; do printf '  %-10s %s\n' "${servers[$i]}" "${extra[loss,$i]:-n/a}"; done
  else
    echo "(no delay line built: no loss row; make bench-tftp builds it)"
  fi
fi
