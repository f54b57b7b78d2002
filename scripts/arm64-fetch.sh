#!/usr/bin/env bash
# Puts what an arm64 UEFI machine needs to network-boot through netbootd into a cache keyed by
# the packages' versions, once, and prints the directory:
#   scripts/arm64-fetch.sh                   # -> /var/cache/netbootd-test/arm64-<versions>
#   ARM64_CACHE=/some/dir scripts/arm64-fetch.sh
#   ARM64_REFRESH=1 scripts/arm64-fetch.sh   # look up the archive's current versions
# With ARM64_OUT=DIR (make arm64 ARM64_OUT=/srv/tftp) it also copies the boot files into DIR,
# laid out as netbootd's tftp.root serves them.
#
# The directory holds:
#   grubnetaa64.efi           Debian's signed GRUB network image for arm64 (grub-efi-arm64-signed)
#   grub/arm64-efi/http.mod   GRUB's http module of the same GRUB (grub-efi-arm64-bin): the
#                             network image has tftp built in, not http, and loads http.mod
#                             from $prefix/arm64-efi/ on first use
#   grubhttpaa64.efi          a GRUB network image for UEFI HTTP boot (arch 19), unsigned: the
#                             same GRUB's modules with http built in, made by the host's
#                             grub-mkimage (grub-common). Loaded over HTTP, GRUB's prefix is
#                             (http,SERVER)/grub, which the signed image cannot read: it has no
#                             http and would fetch http.mod over http
#   kernel/                   the arm64 kernel package, unpacked: boot/vmlinuz-* and the modules
#                             a virtio NIC needs (the rest is dropped); tests/qemu builds the
#                             payload initramfs from it
#   busybox                   a static arm64 busybox (busybox-static), the payload's userland
#   copyright.grub            GRUB's license (GPL-3+, from grub-common) and the signed package's,
#                             for whoever ships the two GRUB files
#   VERSIONS                  the packages and versions it came from
#
# The host's dpkg architectures and apt sources are not touched (no dpkg --add-architecture):
# apt runs with a private state under the cache, a sources list of its own and
# APT::Architecture=arm64, downloads the .debs and dpkg-deb -x unpacks them; nothing is installed.
set -euo pipefail
dir=${ARM64_CACHE:-/var/cache/netbootd-test}
suite=${ARM64_SUITE:-bookworm}
mirror=${ARM64_MIRROR:-http://deb.debian.org/debian}
security=${ARM64_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
mkdir -p "$dir"
exec 9>"$dir/arm64.lock"
flock 9

apt_dir="$dir/apt-$suite-arm64"
mkdir -p "$apt_dir/sources" "$apt_dir/lists/partial" "$apt_dir/archives/partial"
cat >"$apt_dir/sources/$suite.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
touch "$apt_dir/status"
apt_opts=(-q -o "APT::Architecture=arm64" -o "APT::Architectures::=arm64"
  -o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$apt_dir/sources"
  -o "Dir::Etc::Preferences=/dev/null" -o "Dir::Etc::PreferencesParts=/dev/null"
  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::State::status=$apt_dir/status"
  -o "Dir::Cache::Archives=$apt_dir/archives" -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
  -o "APT::Sandbox::User=root" -o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false"
  -o "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false"
  -o "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false"
  -o "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false"
  -o "Acquire::Languages=none")

candidate() { apt-cache "${apt_opts[@]}" policy "$1" 2>/dev/null | awk '$1=="Candidate:" {print $2}'; }
# The kernel linux-image-arm64 points at (linux-image-6.1.0-NN-arm64).
kernel_pkg() {
  apt-cache "${apt_opts[@]}" depends linux-image-arm64 2>/dev/null |
    awk '$1=="Depends:" && $2 ~ /^linux-image-/ {print $2; exit}'
}
resolve() {
  kpkg=$(kernel_pkg) || true
  versions=""
  [ -n "$kpkg" ] || return 1
  for p in grub-efi-arm64-signed grub-efi-arm64-bin grub-common "$kpkg" busybox-static; do
    v=$(candidate "$p")
    [ -n "$v" ] && [ "$v" != "(none)" ] || return 1
    versions+="$p=$v"$'\n'
  done
}

# complete: the directory has everything this script puts there (VERSIONS is written last).
complete() { [ -s "$1/grubnetaa64.efi" ] && [ -s "$1/grubhttpaa64.efi" ] && [ -s "$1/copyright.grub" ] && [ -s "$1/VERSIONS" ]; }

# A directory already filled is used as it is (reading the lists alone takes seconds); with
# ARM64_REFRESH=1 the archive's current versions are looked up.
out=
if [ -z "${ARM64_REFRESH:-}" ]; then
  cached=$(ls -d "$dir"/arm64-*/ 2>/dev/null | sort -V | tail -n1) || true
  if [ -n "$cached" ] && complete "$cached"; then out=${cached%/}; fi
fi
if [ -z "$out" ] && ! resolve; then
  apt-get "${apt_opts[@]}" update >/dev/null
  resolve || { echo "arm64-fetch: grub-efi-arm64-signed, grub-efi-arm64-bin, grub-common, linux-image-arm64 or busybox-static not found in $suite (arm64)" >&2; exit 1; }
fi
if [ -z "$out" ]; then
kver=$(awk -F= -v p="$kpkg" '$1==p {print $2}' <<<"$versions")
gver=$(awk -F= '$1=="grub-efi-arm64-bin" {print $2}' <<<"$versions")
out="$dir/arm64-${kpkg}_${kver//[^A-Za-z0-9.+_-]/_}-grub_${gver//[^A-Za-z0-9.+_-]/_}"
fi

if ! complete "$out"; then
  command -v grub-mkimage >/dev/null || { echo "arm64-fetch: grub-mkimage not found (Debian's grub-common; run scripts/deps.sh)" >&2; exit 1; }
  start=$(date +%s%N) tmp=$(mktemp -d "$dir/arm64.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  download() {
    (cd "$tmp" && apt-get "${apt_opts[@]}" download $(tr '\n' ' ' <<<"$versions") >/dev/null)
  }
  if ! download 2>/dev/null; then
    # The lists are older than the archive (a version moved on): refresh them once.
    apt-get "${apt_opts[@]}" update >/dev/null
    resolve
    download
  fi
  for p in grub-efi-arm64-signed grub-efi-arm64-bin grub-common "$kpkg" busybox-static; do
    deb=$(ls "$tmp"/"${p}"_*_arm64.deb)
    dpkg-deb -x "$deb" "$tmp/x-$p"
  done
  mkdir -p "$tmp/out/grub/arm64-efi" "$tmp/out/kernel"
  cp "$tmp/x-grub-efi-arm64-signed/usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed" "$tmp/out/grubnetaa64.efi"
  cp "$tmp/x-grub-efi-arm64-bin/usr/lib/grub/arm64-efi/http.mod" "$tmp/out/grub/arm64-efi/http.mod"
  # The signed image's modules (Debian's build-efi-images, as its .modname sections list them)
  # plus http; prefix /grub on the boot device, as the signed image's, and no embedded config:
  # normal reads $prefix/grub.cfg.
  grub-mkimage -O arm64-efi -d "$tmp/x-grub-efi-arm64-bin/usr/lib/grub/arm64-efi" -p /grub \
    -o "$tmp/out/grubhttpaa64.efi" http tftp efinet net linux normal configfile echo test \
    boot chain gzio xzio zstd lzopio fdt efifwsetup reboot halt sleep ls cat search regexp \
    true minicmd loadenv part_gpt part_msdos fat ext2 serial terminal terminfo
  # GRUB's own license (grub-common's, which grub-efi-arm64-bin's doc links to), then the signed
  # package's.
  cat "$tmp/x-grub-common/usr/share/doc/grub-common/copyright" \
    "$tmp/x-grub-efi-arm64-signed/usr/share/doc/grub-efi-arm64-signed/copyright" >"$tmp/out/copyright.grub"
  cp "$tmp/x-busybox-static/bin/busybox" "$tmp/out/busybox"
  # The kernel and what a virtio NIC can need; the package's other modules (hundreds of MB) go.
  k="$tmp/x-$kpkg"
  mkdir -p "$tmp/out/kernel/boot"
  cp "$k"/boot/vmlinuz-* "$tmp/out/kernel/boot/"
  for m in "$k"/lib/modules/*; do
    v=$(basename "$m")
    mkdir -p "$tmp/out/kernel/lib/modules/$v/kernel/drivers"
    cp "$m"/modules.builtin "$tmp/out/kernel/lib/modules/$v/"
    for sub in drivers/virtio drivers/net/virtio_net.ko drivers/net/net_failover.ko net/core; do
      for f in "$m/kernel/$sub" "$m/kernel/$sub".*; do
        [ -e "$f" ] || continue
        mkdir -p "$tmp/out/kernel/lib/modules/$v/kernel/$(dirname "$sub")"
        cp -r "$f" "$tmp/out/kernel/lib/modules/$v/kernel/$(dirname "$sub")/"
      done
    done
  done
  versions+="grub-mkimage (host)=$(grub-mkimage --version | awk '{print $NF}')"$'\n'
  printf '%s' "$versions" >"$tmp/out/VERSIONS"
  rm -rf "$out" && mv "$tmp/out" "$out"
  # Older versions and what killed runs left behind (a day old: nobody is still using them).
  find "$dir" -mindepth 1 -maxdepth 1 -type d \( -name 'arm64-*' -o -name 'arm64.*' \) ! -path "$out" ! -path "$tmp" -mtime +0 -exec rm -rf {} +
  echo "arm64-fetch: $(tr '\n' ' ' <"$out/VERSIONS")into $out in $(( ($(date +%s%N) - start) / 1000000 )) ms" >&2
fi
if [ -n "${ARM64_OUT:-}" ]; then
  mkdir -p "$ARM64_OUT/grub/arm64-efi"
  cp "$out/grubnetaa64.efi" "$out/grubhttpaa64.efi" "$ARM64_OUT/"
  cp "$out/grub/arm64-efi/http.mod" "$ARM64_OUT/grub/arm64-efi/"
  echo "arm64-fetch: $ARM64_OUT: grubnetaa64.efi, grubhttpaa64.efi and grub/arm64-efi/http.mod" >&2
fi
echo "$out"
