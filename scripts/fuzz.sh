#!/usr/bin/env bash
# Runs every Go fuzz target for FUZZTIME each (default 30s). New crashers land in the package's
# testdata/fuzz/<Target>/ and make the next `go test` fail until fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
FUZZTIME=${FUZZTIME:-30s}
targets=(
  "./control/dhcpd FuzzHandle"
  "./control/config FuzzParse"
  "./tftp FuzzParsePacket"
  "./control/syslog FuzzParse"
)
for t in "${targets[@]}"; do
  read -r pkg name <<< "$t"
  echo "== $name ($pkg) for $FUZZTIME"
  go test -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" "$pkg"
done
# The XDP program through BPF_PROG_TEST_RUN: needs root.
if [ "$(id -u)" = 0 ]; then
  echo "== FuzzXDP (./bpf, BPF_PROG_TEST_RUN) for $FUZZTIME"
  go test -tags integration -run '^$' -fuzz '^FuzzXDP$' -fuzztime "$FUZZTIME" ./bpf
else
  echo "== FuzzXDP skipped: the XDP program runs only as root" >&2
fi
