#!/usr/bin/env bash
# stress-test: run the unit tests N times with the CPU starved, and report failures per test.
#
# A loaded CI machine stretches every timer in a test: a fixed 50 ms timeout or a sleep that
# "is always enough" becomes a coin toss. Busy loops beside the tests do not reproduce that
# reliably; a CPU quota on the test process itself does. This builds each package's test binary
# with the race detector and runs it in a cgroup whose quota is CPU_PCT percent of one core.
#
#   RUNS=5 CPU_PCT=25 make stress-test                     # every package
#   RUNS=15 CPU_PCT=10 PKGS=./tftp/ RUN=Lossy make stress-test
#
# Needs root (a cgroup v1 cpu controller at /sys/fs/cgroup/cpu, or cgroup v2 with cpu.max).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

RUNS=${RUNS:-5}
CPU_PCT=${CPU_PCT:-25}
PKGS=${PKGS:-./...}
RUN=${RUN:-}
TIMEOUT=${TIMEOUT:-60m}

[ "$(id -u)" = 0 ] || { echo "stress-test needs root to create a cgroup: sudo make stress-test" >&2; exit 1; }

work=$(mktemp -d /tmp/netbootd-stress.XXXXXX)
name="netbootd-stress-$$"
period=100000
quota=$((period * CPU_PCT / 100))
if [ -d /sys/fs/cgroup/cpu ] && [ -e /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
	cg=/sys/fs/cgroup/cpu/$name
	mkdir "$cg"
	echo "$period" > "$cg/cpu.cfs_period_us"
	echo "$quota" > "$cg/cpu.cfs_quota_us"
elif [ -e /sys/fs/cgroup/cgroup.controllers ] && grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control; then
	cg=/sys/fs/cgroup/$name
	mkdir "$cg"
	echo "$quota $period" > "$cg/cpu.max"
else
	echo "stress-test: no cgroup cpu controller found (need /sys/fs/cgroup/cpu or cgroup v2 cpu)" >&2
	exit 1
fi
cleanup() {
	# Move anything left back to the root group, then remove ours.
	if [ -e "$cg/cgroup.procs" ]; then
		while read -r p; do echo "$p" > "$(dirname "$cg")/cgroup.procs" 2>/dev/null || true; done < "$cg/cgroup.procs"
	fi
	rmdir "$cg" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

echo "stress-test: $RUNS run(s) of $PKGS at $CPU_PCT% of one core (cgroup $cg)${RUN:+, -run $RUN}"
mapfile -t pkgs < <(go list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}} {{.Dir}}{{end}}' $PKGS)
# Build outside the cgroup: compiling is not what is being tested.
for entry in "${pkgs[@]}"; do
	read -r path dir <<< "$entry"
	bin="$work/$(echo "$path" | tr / _).test"
	go test -race -c -o "$bin" "$path"
done

declare -A fails
total_fail=0
for ((i = 1; i <= RUNS; i++)); do
	for entry in "${pkgs[@]}"; do
		read -r path dir <<< "$entry"
		bin="$work/$(echo "$path" | tr / _).test"
		log="$work/run.log"
		args=(-test.count=1 -test.v -test.timeout "$TIMEOUT")
		[ -n "$RUN" ] && args+=(-test.run "$RUN")
		start=$(date +%s)
		# The shell joins the cgroup, then becomes the test binary: every thread of it is starved.
		if (cd "$dir" && sh -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' sh "$cg" "$bin" "${args[@]}") > "$log" 2>&1; then
			status=ok
		else
			status=FAIL
			total_fail=$((total_fail + 1))
			while read -r t; do
				fails["$path $t"]=$((${fails["$path $t"]:-0} + 1))
			done < <(grep -aoE -- '--- FAIL: [^ ]+' "$log" | awk '{print $3}')
			if ! grep -aq -- '--- FAIL: ' "$log"; then
				fails["$path (no test named: panic, timeout or build)"]=$((${fails["$path (no test named: panic, timeout or build)"]:-0} + 1))
			fi
			cp "$log" "/tmp/netbootd-stress-fail-$(echo "$path" | tr / _)-$i.log"
		fi
		printf 'run %d/%d %-6s %4ss %s\n' "$i" "$RUNS" "$status" "$(($(date +%s) - start))" "$path"
	done
done

echo
# The kernel's own count shows the quota bit: periods in which the tests wanted more CPU than it.
throttled=$(awk '$1 == "nr_throttled" {print $2}' "$cg/cpu.stat" 2>/dev/null || echo "?")
echo "stress-test: $RUNS run(s) at $CPU_PCT% of one core ($throttled throttled periods): $total_fail failed package run(s)"
if [ "$total_fail" -gt 0 ]; then
	echo "failures per test (logs in /tmp/netbootd-stress-fail-*.log):"
	for k in "${!fails[@]}"; do printf '  %3d  %s\n' "${fails[$k]}" "$k"; done | sort -rn
	exit 1
fi
