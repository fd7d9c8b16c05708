#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The kernel matrix: mcpfence on the kernels security teams run, Debian's own builds of them.
# For each series (6.1: Debian 12; 6.12: the LTS of bookworm-backports and Debian 13), the newest
# linux-image package is fetched with apt-get download (a private source list and state, under
# the cache; the system's apt configuration is not touched), kept in the cache, and booted in
# QEMU (KVM when /dev/kvm runs a guest, TCG otherwise; 2 vCPUs) with an initramfs that holds
# mcpfence, its shared libraries, the C BPF tests (build/tests/bpf/*, test_attach among them:
# attach, denied and allowed calls over TCP, stats, detach) and tests/kernels/init.c as PID 1.
# The running kernel is covered by the BPF tier of the host (make bpf-test).
#
# Usage: tests/kernels/run.sh [SERIES...]     (make test-kernels; default: 6.1 6.12)
# Environment: MCPFENCE_KERNEL_CACHE (default ~/.cache/mcpfence/kernels), KERNELS_ACCEL=kvm|tcg
# (default: try KVM, fall back to TCG), KERNELS_PARALLEL=0 (TCG's VMs one after another, not at
# once), KERNELS_ONLY="test_stdio ..." (those test binaries only), KERNELS_ENV="K=V ..." (set in
# the guest before the tests: STDIO_TEST=test_pipe_refuse* runs those tests of test_stdio), CI=true (a kernel that cannot be fetched or booted is a
# failure, not a skip). With $RESULTS set, one line "kernels passed failed skipped units" is
# appended there (tests/run-all.sh); units: the test binaries run, on every kernel.
set -u
cd "$(dirname "$0")/../.."
series=("$@")
[ ${#series[@]} -eq 0 ] && series=(6.1 6.12)
cache=${MCPFENCE_KERNEL_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/mcpfence/kernels}
out=build/kernels
ci=${CI:-false}
passed=0 failed=0 skipped=0 units=0 recorded=0
record() {
	[ "$recorded" = 1 ] && return 0
	recorded=1
	[ -n "${RESULTS:-}" ] && echo "kernels $passed $failed $skipped $units" >>"$RESULTS"
	echo "kernels: $passed passed, $failed failed, $skipped skipped"
}
trap 'failed=$((failed + 1)); record; exit 1' INT TERM
trap 'record' EXIT
# cannot REASON: the matrix cannot run here. On CI that is a failure; elsewhere a skip.
cannot() {
	if [ "$ci" = true ]; then
		echo "kernels: FAILED: $1"
		failed=$((failed + 1))
		exit 1
	fi
	echo "kernels: SKIPPED: $1"
	skipped=$((skipped + 1))
	exit 0
}

for tool in qemu-system-x86_64 cpio dpkg-deb apt-get apt-cache gzip; do
	command -v "$tool" >/dev/null 2>&1 ||
		cannot "$tool is not installed (scripts/setup.sh test installs qemu-system-x86 and cpio)"
done
[ "$(uname -m)" = x86_64 ] || cannot "the matrix boots x86_64 kernels; this is $(uname -m)"
# the binaries of the sources (build/tests/bpf holds their dependency files too)
tests=()
for src in tests/bpf/test_*.c; do
	t=${src#tests/bpf/}
	t=${t%.c}
	[ -n "${KERNELS_ONLY:-}" ] && [[ " $KERNELS_ONLY " != *" $t "* ]] && continue
	tests+=("build/tests/bpf/$t")
done
[ ${#tests[@]} -gt 0 ] || cannot "KERNELS_ONLY=$KERNELS_ONLY names no test of tests/bpf"
[ -x build/mcpfence ] && [ -x "${tests[0]}" ] || cannot "build first (make all and the BPF tests)"
mkdir -p "$cache/apt/lists/partial" "$cache/apt/archives/partial" "$out"

# ---- fetch ------------------------------------------------------------------------------
apt_opts=(-o "Dir::Etc::sourcelist=$cache/apt/sources.list" -o Dir::Etc::sourceparts=-
	-o "Dir::State::Lists=$cache/apt/lists" -o "Dir::Cache::archives=$cache/apt/archives"
	-o Dir::State::status=/var/lib/dpkg/status -o APT::Sandbox::User=root
	-o Debug::NoLocking=1 -o Acquire::Retries=3)
keys=/usr/share/keyrings/debian-archive-keyring.gpg
cat >"$cache/apt/sources.list" <<EOF
deb [signed-by=$keys] http://deb.debian.org/debian bookworm main
deb [signed-by=$keys] http://deb.debian.org/debian bookworm-updates main
deb [signed-by=$keys] http://deb.debian.org/debian-security bookworm-security main
deb [signed-by=$keys] http://deb.debian.org/debian bookworm-backports main
EOF
t0=$(date +%s)
if apt-get "${apt_opts[@]}" -qq update >"$out/apt-update.log" 2>&1; then
	online=1
else
	online=0
	echo "kernels: apt-get update failed (see $out/apt-update.log); trying the cache"
fi

# vmlinuz SERIES: the path of the newest cached kernel image of the series, fetched if needed.
fetch() {
	local s=$1 ver pkg deb img
	if [ $online = 1 ]; then
		ver=$(apt-cache "${apt_opts[@]}" madison linux-image-amd64 2>/dev/null |
			awk -v s="$s" '{v=$3} index(v, s ".") == 1 {print v}' | sort -V | tail -1)
		pkg=$(apt-cache "${apt_opts[@]}" depends "linux-image-amd64=$ver" 2>/dev/null |
			awk '/Depends: linux-image-/ {print $2; exit}')
		if [ -n "$ver" ] && [ -n "$pkg" ]; then
			deb=$(ls "$cache"/"${pkg}"_*.deb 2>/dev/null | sort -V | tail -1)
			if [ -z "$deb" ]; then
				(cd "$cache" && apt-get "${apt_opts[@]}" -qq download "$pkg") \
					>"$out/download-$s.log" 2>&1 ||
					echo "kernels: apt-get download $pkg failed (see $out/download-$s.log)" >&2
				deb=$(ls "$cache"/"${pkg}"_*.deb 2>/dev/null | sort -V | tail -1)
			fi
		fi
	fi
	# offline: the newest cached one of the series ("6.1." is not a prefix of "6.12.")
	[ -z "${deb:-}" ] && deb=$(ls "$cache"/linux-image-"$s".*-amd64_*.deb 2>/dev/null | sort -V | tail -1)
	[ -z "${deb:-}" ] && return 1
	img="$cache/$(basename "$deb" .deb).vmlinuz"
	if [ ! -s "$img" ]; then
		dpkg-deb --fsys-tarfile "$deb" | tar -xO --wildcards './boot/vmlinuz-*' >"$img.tmp" &&
			mv "$img.tmp" "$img" || { rm -f "$img.tmp"; return 1; }
	fi
	# unix_diag, a module there (a real system loads it when sock_diag asks): attach --pid
	# finds the client's end of a socketpair with it; init loads it
	if [ ! -d "$img.modules" ]; then
		mkdir -p "$img.modules.tmp" &&
			dpkg-deb --fsys-tarfile "$deb" |
			tar -x -C "$img.modules.tmp" --wildcards './lib/modules/*/kernel/net/unix/unix_diag.ko*' 2>/dev/null
		mv "$img.modules.tmp" "$img.modules"
	fi
	echo "$img"
}

images=()
for s in "${series[@]}"; do
	img=$(fetch "$s") || cannot "no Debian kernel of the $s series could be fetched (network?) nor found in $cache"
	images+=("$img")
done
echo "kernels: fetched in $(($(date +%s) - t0)) s: ${images[*]##*/}"

# ---- initramfs ----------------------------------------------------------------------------
root=$out/root
rm -rf "$root"
mkdir -p "$root"/{bin,dev,proc,sys,tmp,run,root} "$root/mcpfence/build/tests/bpf"
cc -static -O2 -Wall -Werror -o "$root/init" tests/kernels/init.c || cannot "cannot build the static init (libc6-dev)"
cp build/mcpfence "$root/mcpfence/build/"
cp "${tests[@]}" "$root/mcpfence/build/tests/bpf/"
for kv in ${KERNELS_ENV:-}; do echo "$kv"; done >"$root/mcpfence/env"
mkdir -p "$root/mcpfence/tests/data"
cp -r tests/data/messages "$root/mcpfence/tests/data/"
# the fuzzer's corpus, when it ran: test_scan replays it through each kernel
[ -d build/fuzz/corpus ] && mkdir -p "$root/mcpfence/build/fuzz" && cp -r build/fuzz/corpus "$root/mcpfence/build/fuzz/"
for b in build/mcpfence "${tests[@]}"; do ldd "$b"; done |
	awk '/=> \// {print $3} /^\t\/[^ ]*ld-linux/ {print $1}' | sort -u |
	while read -r lib; do
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
# each kernel's unix_diag module, as /lib/modules/RELEASE/unix_diag.ko[.xz|.zst]
for img in "${images[@]}"; do
	for m in "$img".modules/lib/modules/*/kernel/net/unix/unix_diag.ko*; do
		[ -f "$m" ] || continue
		rel=${m#"$img".modules/lib/modules/}
		rel=${rel%%/*}
		mkdir -p "$root/lib/modules/$rel"
		cp "$m" "$root/lib/modules/$rel/"
	done
done
# /lib64 -> usr: the dynamic loader's path as binaries name it
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out/initramfs.gz" ||
	cannot "cannot pack the initramfs"

# ---- boot -------------------------------------------------------------------------------
accel=${KERNELS_ACCEL:-}
# boot IMAGE LOG ACCEL: run the VM to its end (or TIMEOUT); 0 when it reached @@ DONE.
boot() {
	local img=$1 log=$2 acc=$3 cpu limit pid t
	if [ "$acc" = kvm ]; then cpu=host; limit=900; else cpu=max; limit=${KERNELS_TCG_TIMEOUT:-2400}; fi
	rm -f "$log"
	timeout "$limit" qemu-system-x86_64 -accel "$acc" -cpu "$cpu" -smp 2 -m 2048 \
		-nodefaults -display none -no-reboot -serial "file:$log" \
		-kernel "$img" -initrd "$out/initramfs.gz" \
		-append "console=ttyS0 quiet panic=-1 oops=panic" >"$log.qemu" 2>&1 &
	pid=$!
	if [ "$acc" = kvm ] && [ -z "$accel" ]; then
		# the first KVM boot proves KVM runs a guest here: its init speaks within 20 s (a
		# KVM that runs only guests built for it, as a PVM host's, leaves it silent)
		for t in $(seq 20); do
			grep -q '^@@ KERNEL' "$log" 2>/dev/null && break
			kill -0 "$pid" 2>/dev/null || break
			sleep 1
		done
		if ! grep -q '^@@ KERNEL' "$log" 2>/dev/null; then
			kill "$pid" 2>/dev/null
			wait "$pid" 2>/dev/null
			return 2
		fi
		accel=kvm
	fi
	wait "$pid"
	grep -q '^@@ DONE' "$log"
}

kvm_ok() { [ -r /dev/kvm ] && [ -w /dev/kvm ]; }
# run_vm I ACC: boot image I; "rc accel seconds" in its log's .rc
run_vm() {
	local img=${images[$1]} log t0 rc
	log=$out/$(basename "${images[$1]}" .vmlinuz).log
	t0=$(date +%s)
	boot "$img" "$log" "$2"
	rc=$?
	echo "$rc $2 $(($(date +%s) - t0))" >"$log.rc"
}
total=$(($(date +%s)))
# Under TCG the VMs run at once (KERNELS_PARALLEL=0: one after another): most of a VM's time is
# one vCPU in the verifier, so two VMs on two cores take little more than one. KVM boots in turn.
bg=()
trap 'for p in "${bg[@]}"; do pkill -TERM -P "$p"; done 2>/dev/null; failed=$((failed + 1)); record; exit 1' INT TERM
for i in "${!images[@]}"; do
	log=$out/$(basename "${images[$i]}" .vmlinuz).log
	rm -f "$log.rc"
	acc=${accel:-}
	[ -z "$acc" ] && { kvm_ok && acc=kvm || acc=tcg; }
	if [ "$acc" = kvm ]; then
		run_vm "$i" kvm
		read -r rc _ _ <"$log.rc"
		[ "$rc" != 2 ] && continue
		echo "kernels: KVM does not run this guest here (its init silent for 20 s): TCG"
		accel=tcg
	fi
	if [ "${KERNELS_PARALLEL:-1}" = 1 ]; then
		run_vm "$i" tcg &
		bg+=($!)
	else
		run_vm "$i" tcg
	fi
done
[ ${#bg[@]} != 0 ] && wait "${bg[@]}"
summary=()
problems=() # repeated after the summary: a CI log's tail should say what failed
for i in "${!images[@]}"; do
	img=${images[$i]}
	name=$(basename "$img" .vmlinuz)
	log=$out/$name.log
	read -r rc acc secs <"$log.rc" 2>/dev/null || { rc=1 acc=? secs=0; }
	tr -d '\r' <"$log" >"$log.txt" 2>/dev/null
	kernel=$(sed -n 's/^@@ KERNEL Linux version \([^ ]*\).*/\1/p' "$log.txt")
	echo
	echo "=== $name: kernel ${kernel:-?}, $acc, ${secs} s"
	sed -n '/^@@ BEGIN features/,/^@@ END features/p' "$log.txt" | sed '1d;$d;/^$/d' | sed 's/^/  /'
	kp=0 kf=0 ks=0
	for t in "${tests[@]}"; do
		t=${t##*/}
		units=$((units + 1))
		block=$(sed -n "/^@@ BEGIN $t\$/,/^@@ END $t rc=/p" "$log.txt")
		rcl=$(printf '%s\n' "$block" | sed -n "s/^@@ END $t rc=\([^ ]*\).*/\1/p")
		tsec=$(printf '%s\n' "$block" | sed -n "s/^@@ END $t rc=.* s=\(.*\)/\1/p")
		p=$(printf '%s\n' "$block" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
		f=$(printf '%s\n' "$block" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
		s=$(printf '%s\n' "$block" | sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' | tail -1)
		n=$(printf '%s\n' "$block" | sed -n 's/^\[==========\] \([0-9]*\) test(s) run\./\1/p' | tail -1)
		p=${p:-0} f=${f:-0} s=${s:-0}
		if [ -z "$rcl" ] || [ -z "$n" ] || [ $((p + f + s)) -ne "$n" ] || { [ "$rcl" != 0 ] && [ "$f" = 0 ]; }; then
			echo "  $t: did not finish (rc=${rcl:-none}, ${n:-no} summary): the log's end:"
			printf '%s\n' "$block" | tail -25 | sed 's/^/    /'
			f=$((f + 1))
			problems+=("${kernel:-$name} $t: did not finish (rc=${rcl:-none}, ${n:-no} summary)")
			while IFS= read -r l; do problems+=("  $l"); done < <(printf '%s\n' "$block" |
				grep -E '^(\[ RUN      \]|\[       OK \]|\[  FAILED  \]|took )' | tail -4)
		elif [ "$f" != 0 ]; then
			printf '%s\n' "$block" | grep -E '^(ERROR|\[  ERROR|\[   LINE|\[  FAILED  \] test)' | head -20 | sed 's/^/    /'
			while IFS= read -r l; do problems+=("${kernel:-$name} $t: $l"); done < <(printf '%s\n' "$block" |
				grep -E '^\[  FAILED  \] test' | head -10)
		fi
		[ "$s" != 0 ] && printf '%s\n' "$block" | grep -E '^(skipped:|\[  SKIPPED \] test)' | sort -u | head -10 | sed 's/^/    /'
		printf '  %-14s %4d passed %4d failed %4d skipped  %s s\n' "$t" "$p" "$f" "$s" "${tsec:-?}"
		kp=$((kp + p)) kf=$((kf + f)) ks=$((ks + s))
	done
	if ! grep -q '^@@ DONE' "$log.txt"; then
		echo "  the VM did not finish (see $log.txt, $log.qemu)"
		kf=$((kf + 1))
		problems+=("${kernel:-$name}: the VM did not finish; its log's end:")
		while IFS= read -r l; do problems+=("  $l"); done < <(tail -5 "$log.txt")
	fi
	passed=$((passed + kp)) failed=$((failed + kf)) skipped=$((skipped + ks))
	verdict=PASS
	[ $kf != 0 ] && verdict=FAIL
	summary+=("$(printf '%-34s %-5s %4d passed %4d failed %4d skipped  %s, %d s' "${kernel:-$name}" "$verdict" $kp $kf $ks "$acc" "$secs")")
done
echo
echo "=== kernel matrix ($(($(date +%s) - total)) s; the running kernel, $(uname -r), is the BPF tier's)"
printf '  %s\n' "${summary[@]}"
[ ${#problems[@]} != 0 ] && printf '  %s\n' "what failed:" "${problems[@]}"
record
[ $failed = 0 ]
