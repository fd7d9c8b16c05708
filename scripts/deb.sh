#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make deb: the Debian package, built by dpkg-buildpackage (debhelper, debian/) from a copy of
# the tree (what git tracks and what it would track, as it is now on disk), so that the build
# and its clean step never touch build/ of the working tree; then lintian.
# Usage: scripts/deb.sh OUTDIR      -> OUTDIR/mcpfence_VERSION_ARCH.deb, OUTDIR/lintian.txt
set -euo pipefail
out=${1:?usage: scripts/deb.sh OUTDIR}
here=$(cd "$(dirname "$0")/.." && pwd)
missing=()
for t in dpkg-buildpackage dh lintian scdoc; do
	command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "deb: missing: ${missing[*]}; 'make setup-deb' as root installs them" >&2
	exit 1
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
src="$out/mcpfence"
rm -rf "$src" "$out"/mcpfence_* "$out"/mcpfence-dbgsym_*
mkdir -p "$src"
cd "$here"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
		tar --null -T - -cf - | tar -xf - -C "$src"
else
	tar --exclude=./build --exclude=./build-san --exclude=node_modules -cf - . | tar -xf - -C "$src"
fi
cd "$src"
dpkg-checkbuilddeps || { echo "deb: build dependencies missing: 'make setup-deb' installs them" >&2; exit 1; }
echo "deb: dpkg-buildpackage in $src (log: $out/build.log)"
if ! dpkg-buildpackage -b -us -uc >"$out/build.log" 2>&1; then
	tail -30 "$out/build.log" >&2
	echo "deb: dpkg-buildpackage failed (log: $out/build.log)" >&2
	exit 1
fi
deb=$(ls "$out"/mcpfence_*.deb)
changes=$(ls "$out"/mcpfence_*.changes)
# errors fail the build; warnings and the rest are printed and kept in lintian.txt
rc=0
lintian --fail-on error --display-info "$changes" >"$out/lintian.txt" 2>&1 || rc=$?
cat "$out/lintian.txt"
if [ $rc -ne 0 ]; then
	echo "deb: lintian found errors (above)" >&2
	exit 1
fi
echo "deb: $deb"
