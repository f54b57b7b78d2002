#!/usr/bin/env bash
# Puts Debian's signed Secure Boot loaders into a cache keyed by their versions, once, and prints
# the directory: shimx64.efi (shim, signed by Microsoft's UEFI CA) and grubx64.efi (GRUB's network
# image, signed by Debian, under the name shim loads it by):
#   scripts/secureboot-fetch.sh                  # -> /var/cache/netbootd-test/secureboot-<versions>
#   SECUREBOOT_CACHE=/some/dir scripts/secureboot-fetch.sh
#   OUT=/srv/tftp scripts/secureboot-fetch.sh    # also copies both files into OUT (tftp.root)
#
# Where they come from: the Debian archive of this machine's apt sources, packages
#   shim-signed            /usr/lib/shim/shimx64.efi.signed
#   grub-efi-amd64-signed  /usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed
# downloaded with `apt-get download` (apt checks them against the archive's signed lists) and
# unpacked with dpkg-deb -x; nothing is installed (shim-signed's maintainer scripts would touch
# the host's boot loader).
set -euo pipefail
dir=${SECUREBOOT_CACHE:-/var/cache/netbootd-test}
mkdir -p "$dir"
exec 9>"$dir/secureboot.lock"
flock 9

candidate() { apt-cache policy "$1" 2>/dev/null | awk '$1=="Candidate:" {print $2}'; }
shim=$(candidate shim-signed) grub=$(candidate grub-efi-amd64-signed)
if [ -z "$shim" ] || [ "$shim" = "(none)" ] || [ -z "$grub" ] || [ "$grub" = "(none)" ]; then
  apt-get update -qq
  shim=$(candidate shim-signed) grub=$(candidate grub-efi-amd64-signed)
fi
for v in "$shim" "$grub"; do
  [ -n "$v" ] && [ "$v" != "(none)" ] || { echo "secureboot-fetch: shim-signed or grub-efi-amd64-signed not in apt's lists" >&2; exit 1; }
done
out="$dir/secureboot-shim_${shim//[^A-Za-z0-9.+_-]/_}-grub_${grub//[^A-Za-z0-9.+_-]/_}"
if [ ! -s "$out/grubx64.efi" ]; then
  start=$(date +%s%N) tmp=$(mktemp -d "$dir/secureboot.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  chmod 0755 "$tmp" # apt's _apt user downloads into it
  if ! (cd "$tmp" && apt-get download -qq "shim-signed=$shim" "grub-efi-amd64-signed=$grub" >/dev/null 2>&1); then
    # The lists are older than the archive: refresh them once.
    apt-get update -qq
    shim=$(candidate shim-signed) grub=$(candidate grub-efi-amd64-signed)
    out="$dir/secureboot-shim_${shim//[^A-Za-z0-9.+_-]/_}-grub_${grub//[^A-Za-z0-9.+_-]/_}"
    (cd "$tmp" && apt-get download -qq "shim-signed=$shim" "grub-efi-amd64-signed=$grub" >/dev/null)
  fi
  for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/x"; done
  mkdir -p "$tmp/out"
  cp "$tmp/x/usr/lib/shim/shimx64.efi.signed" "$tmp/out/shimx64.efi"
  cp "$tmp/x/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed" "$tmp/out/grubx64.efi"
  printf 'shim-signed %s\ngrub-efi-amd64-signed %s\n' "$shim" "$grub" >"$tmp/out/VERSIONS"
  rm -rf "$out" && mv "$tmp/out" "$out"
  echo "secureboot-fetch: shim-signed $shim, grub-efi-amd64-signed $grub into $out in $(( ($(date +%s%N) - start) / 1000000 )) ms" >&2
fi
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  cp "$out/shimx64.efi" "$out/grubx64.efi" "$OUT/"
  echo "secureboot-fetch: $OUT: shimx64.efi and grubx64.efi" >&2
fi
echo "$out"
