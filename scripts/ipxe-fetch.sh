#!/usr/bin/env bash
# Puts an iPXE that runs autoexec.ipxe from its TFTP server into a cache keyed by version, once,
# and prints the directory (ipxe.efi, snponly.efi, undionly.kpxe, ipxe.pxe):
#   scripts/ipxe-fetch.sh                 # -> /var/cache/netbootd-test/ipxe-<debian version>
#   IPXE_CACHE=/some/dir scripts/ipxe-fetch.sh
#   IPXE_REFRESH=1 scripts/ipxe-fetch.sh  # look up the archive's current version, not the cached one
# With USER_CLASS and OUT (make ipxe USER_CLASS=Tinkerbell IPXE_OUT=DIR), it also fills OUT with
# those binaries and an autoexec.ipxe that asks DHCP again with that user class and chains the
# boot file the answer names: point netbootd's tftp.root at OUT.
#
# Why: behind your own DHCP server, a rule such as `user-class == "Tinkerbell" -> /auto.ipxe`
# needs an iPXE that asks with that user class. Debian 12's ipxe (1.0.0+git-20190125) has no
# autoexec.ipxe (no such string in its ipxe.efi) and always says "iPXE". Debian 13's ipxe
# (1.21.1+git2025…) does: started over PXE, ipxe.efi fetches autoexec.ipxe from the TFTP server
# it came from and runs it, so `set user-class Tinkerbell` lives in a text file netbootd serves
# (tftp.root), no rebuilt or edited binary. Debian's source packages are not reachable from
# here (deb-src tarballs 404), so building iPXE with EMBED= is not an option for CI.
#
# The package is Debian 13's own `ipxe` (arch all, no dependencies), downloaded with apt from
# the Debian archive using a private apt state under the cache (the host's apt sources are
# not touched) and unpacked with dpkg-deb -x; nothing is installed.
set -euo pipefail
dir=${IPXE_CACHE:-/var/cache/netbootd-test}
suite=${IPXE_SUITE:-trixie}
mirror=${IPXE_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$dir"
exec 9>"$dir/ipxe.lock"
flock 9

apt_dir="$dir/apt-$suite"
mkdir -p "$apt_dir/sources" "$apt_dir/lists/partial" "$apt_dir/archives/partial"
cat >"$apt_dir/sources/$suite.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
touch "$apt_dir/status"
apt_opts=(-q -o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$apt_dir/sources"
  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::State::status=$apt_dir/status"
  -o "Dir::Cache::Archives=$apt_dir/archives" -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
  -o "APT::Sandbox::User=root" -o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false"
  -o "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false"
  -o "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false"
  -o "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false"
  -o "Acquire::Languages=none")

version() { apt-cache "${apt_opts[@]}" policy ipxe 2>/dev/null | awk '$1=="Candidate:" {print $2}'; }
# A version already unpacked is used as it is (reading the lists alone takes seconds); with
# IPXE_REFRESH=1 the archive's current version is looked up.
ver=
if [ -z "${IPXE_REFRESH:-}" ]; then
  cached=$(ls -d "$dir"/ipxe-*/ 2>/dev/null | sort -V | tail -n1)
  [ -n "$cached" ] && [ -s "$cached/VERSION" ] && [ -s "$cached/ipxe.efi" ] && ver=$(cat "$cached/VERSION")
fi
[ -n "$ver" ] || ver=$(version)
if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
  apt-get "${apt_opts[@]}" update >/dev/null
  ver=$(version)
fi
[ -n "$ver" ] && [ "$ver" != "(none)" ] || { echo "ipxe-fetch: no ipxe package in $suite" >&2; exit 1; }
out="$dir/ipxe-${ver//[^A-Za-z0-9.+_-]/_}"
if [ ! -s "$out/ipxe.efi" ]; then
  start=$(date +%s%N) tmp=$(mktemp -d "$dir/ipxe.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  if ! (cd "$tmp" && apt-get "${apt_opts[@]}" download "ipxe=$ver" >/dev/null 2>&1); then
    # The lists are older than the archive (the version moved on): refresh them once.
    apt-get "${apt_opts[@]}" update >/dev/null
    ver=$(version) out="$dir/ipxe-${ver//[^A-Za-z0-9.+_-]/_}"
    (cd "$tmp" && apt-get "${apt_opts[@]}" download "ipxe=$ver" >/dev/null)
  fi
  dpkg-deb -x "$tmp"/ipxe_*.deb "$tmp/x"
  mkdir -p "$tmp/out"
  # ipxe.efi is a symlink to ipxe-amd64.efi in the package: copy the file itself.
  for f in ipxe.efi snponly.efi undionly.kpxe ipxe.pxe; do
    cp -L "$tmp/x/usr/lib/ipxe/$f" "$tmp/out/$f"
  done
  grep -q autoexec.ipxe "$tmp/out/ipxe.efi" || { echo "ipxe-fetch: ipxe $ver has no autoexec.ipxe support" >&2; exit 1; }
  echo "$ver" >"$tmp/out/VERSION"
  rm -rf "$out" && mv "$tmp/out" "$out"
  echo "ipxe-fetch: ipxe $ver from $suite into $out in $(( ($(date +%s%N) - start) / 1000000 )) ms" >&2
fi
if [ -n "${OUT:-}" ]; then
  [ -n "${USER_CLASS:-}" ] || { echo "ipxe-fetch: OUT needs USER_CLASS" >&2; exit 1; }
  [[ "$USER_CLASS" =~ ^[A-Za-z0-9._:-]+$ ]] || { echo "ipxe-fetch: USER_CLASS may hold only letters, digits and ._:-" >&2; exit 1; }
  mkdir -p "$OUT"
  cp "$out"/ipxe.efi "$out"/snponly.efi "$out"/undionly.kpxe "$out"/ipxe.pxe "$OUT/"
  # iPXE runs this before its own DHCP: the user class must be set before the request that
  # the external server classifies.
  printf '#!ipxe\nset user-class %s\ndhcp\nchain ${filename}\n' "$USER_CLASS" >"$OUT/autoexec.ipxe.tmp"
  mv "$OUT/autoexec.ipxe.tmp" "$OUT/autoexec.ipxe"
  echo "ipxe-fetch: $OUT: iPXE $ver with autoexec.ipxe for user class $USER_CLASS" >&2
fi
echo "$out"
