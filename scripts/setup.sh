#!/usr/bin/env bash
# One set-up step for a fresh Debian 12 machine: installs what the build, the tests and the
# demo need, only where it is missing, so that a second run costs nothing.
# Usage: scripts/setup.sh [build|test|deb]   (test also installs the e2e npm packages; deb,
# what make deb needs; test includes deb: the package tier builds it)
set -euo pipefail
what=${1:-build}
here=$(cd "$(dirname "$0")/.." && pwd)

pkgs=(clang llvm make gcc pkg-config libbpf-dev libelf-dev zlib1g-dev libjansson-dev
      libpcre2-dev libssl-dev libhiredis-dev libmicrohttpd-dev libcurl4-openssl-dev libcmocka-dev
      bpftool valgrind scdoc)
# deb: dpkg-buildpackage with debhelper, lintian; systemd-analyze (package systemd) and man-db
# for the checks of the unit and the man pages
deb_pkgs=(debhelper dpkg-dev lintian systemd man-db bash-completion logrotate)
[ "$what" = deb ] && pkgs+=("${deb_pkgs[@]}")
# test: libFuzzer's runtime; Go and Python for the differential tier's decoders; QEMU and cpio
# for the kernel matrix (tests/kernels/run.sh); clang-format for the format tier; redis-server
# (and its redis-cli) for the budgets a policy keeps in Redis; iproute2 for their second host
[ "$what" = test ] && pkgs+=(libclang-rt-14-dev golang-go python3 qemu-system-x86 cpio clang-format
	redis-server redis-tools iproute2 "${deb_pkgs[@]}")
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || pkgs+=(npm)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "setup: missing packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
		exit 1
	fi
	echo "setup: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

e2e="$here/tests/e2e"
if [ "$what" = test ] && [ -f "$e2e/package.json" ]; then
	stamp="$e2e/node_modules/.mcpfence-stamp"
	if [ ! -f "$stamp" ] || [ "$e2e/package-lock.json" -nt "$stamp" ]; then
		echo "setup: installing the e2e npm packages (tests/e2e/package-lock.json)"
		(cd "$e2e" && npm ci --no-audit --no-fund --loglevel=error)
		touch "$stamp"
	fi
fi
