#!/usr/bin/env bash
# Prints the version, commit and commit date `make build`, `make image` and `make deb` stamp, one
# owner for all three (KEY=value lines, for make):
#   VERSION=0.1.0                      on the commit tagged v0.1.0
#   VERSION=0.1.0-3-g1d38ebd[-dirty]   3 commits after it (git describe --tags)
#   VERSION=0.1.0-dev.g1d38ebd[-dirty] no release tag yet: the VERSION file's release, in development
#   VERSION=0.1.0                      outside git (a source archive): the VERSION file
# DATE is the commit's date, not the build's, so the same commit builds the same bytes;
# SOURCE_DATE_EPOCH, when set, wins (the reproducible-builds convention).
set -euo pipefail
cd "$(dirname "$0")/.."
release=$(tr -d ' \n' < VERSION)
if git rev-parse --git-dir >/dev/null 2>&1; then
  commit=$(git rev-parse HEAD)
  epoch=$(git log -1 --format=%ct)
  if d=$(git describe --tags --dirty --match 'v[0-9]*' 2>/dev/null); then
    version=${d#v}
  else
    version="$release-dev.g$(git describe --always --dirty --abbrev=7)"
  fi
else
  commit=unknown epoch='' version=$release
fi
epoch=${SOURCE_DATE_EPOCH:-$epoch}
date=unknown
[ -n "$epoch" ] && date=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
echo "VERSION=$version"
echo "COMMIT=$commit"
echo "DATE=$date"
echo "SOURCE_DATE_EPOCH=${epoch:-0}"
