#!/usr/bin/env bash
# Every test tier, in order; each one runs even when an earlier one failed, and one summary
# line closes the run. Called by `make test` after the set-up step and the build.
#
# Each tier's runner appends "tier passed failed skipped units" to $RESULTS, units being what
# it ran to the end (test binaries, fuzz targets, node --test passes, binaries on each kernel).
# The summary checks every row against this script's own count of what each tier should run:
# a tier with no row (it died first) or with fewer units than expected is a failure. With
# CI=true (.ci/run), a skipped test is a failure too, except in the tiers of OPTIONAL_ON_CI,
# which the README ("What runs where") says why may skip on CI (none today).
set -u
cd "$(dirname "$0")/.."
export RESULTS=$PWD/build/results.txt
mkdir -p build
rm -f "$RESULTS"
ci=${CI:-false}
OPTIONAL_ON_CI=""
status=0
declare -A expect
order=()

nunit=$(ls tests/unit/test_*.c | wc -l)
nformat=$(ls user/*.[ch] bpf/*.[ch] tests/unit/*.[ch] tests/bpf/*.[ch] bench/*.[ch] tests/fuzz/*.c tests/diff/*.c tests/kernels/*.c | wc -l)
nbpf=$(ls tests/bpf/test_*.c | wc -l)
nfuzz=$(ls tests/fuzz/fuzz_*.c | wc -l)
ne2e=3 # the main pass, the hostile tests under ASan+UBSan, and under valgrind
nkernels=2 # 6.1 and 6.12, each running every BPF test binary
ndecoders=5 # go, node-sdk, express, sse, python: each must run and read the plain calls
nman=$(ls docs/man/*.scd | wc -l)

run() { # TIER EXPECTED_UNITS TITLE CMD...
	local tier=$1 want=$2 title=$3 rc
	shift 3
	order+=("$tier")
	expect[$tier]=$want
	echo
	echo "=== $title"
	"$@"
	rc=$?
	[ $rc -ne 0 ] && status=1
	if ! grep -q "^$tier " "$RESULTS" 2>/dev/null; then
		echo "$tier: the tier ended (exit $rc) without its results: counted as a failure"
		echo "$tier 0 1 0 0" >>"$RESULTS"
	fi
}
run format "$nformat" "format: every C file as clang-format writes it" make --no-print-directory format-check
run unit "$nunit" "unit tests" make --no-print-directory unit
run man "$nman" "man pages: rendered without warning, every command, option and policy key" \
	tests/man/check.sh build build/mcpfence
run package 1 "the Debian package, make install, the unit's capabilities" tests/package/check.sh
run san "$nunit" "unit tests under ASan+UBSan" make --no-print-directory san
run valgrind "$nunit" "unit tests under valgrind" make --no-print-directory valgrind
run fuzz "$nfuzz" "fuzzing: scanner against jansson, head parser against its reference (${FUZZ_SHORT:-45} s)" \
	tests/fuzz/run.sh "${FUZZ_SHORT:-45}"
run diff "$ndecoders" "differential: mcpfence's view against the servers' own parsers (Go, Node SDK, express, Python)" \
	make --no-print-directory diff
run bpf "$nbpf" "BPF tests on this kernel, $(uname -r) (root)" make --no-print-directory bpf-test
run kernels $((nkernels * nbpf)) "BPF tests and attach on Debian's 6.1 and 6.12 (QEMU)" \
	make --no-print-directory test-kernels
run e2e "$ne2e" "end-to-end tests (real MCP servers and SDK clients)" make --no-print-directory e2e
echo
echo "=== summary"
for tier in "${order[@]}"; do
	rows=$(grep -c "^$tier " "$RESULTS")
	read -r _ p f s u < <(grep "^$tier " "$RESULTS" | awk '{p+=$2; f+=$3; s+=$4; u+=$5} END {print "x", p, f, s, u}')
	note=""
	if [ "$rows" -ne 1 ]; then
		note="$rows result rows, not one"
		f=$((f + 1))
	elif [ "$u" -lt "${expect[$tier]}" ] && [ "$s" -eq 0 ]; then
		note="ran $u of ${expect[$tier]}"
		f=$((f + 1))
	elif [ "$u" -lt "${expect[$tier]}" ] && [ "$ci" = true ]; then
		note="ran $u of ${expect[$tier]}"
		f=$((f + 1))
	fi
	if [ "$ci" = true ] && [ "$s" -gt 0 ] && [[ " $OPTIONAL_ON_CI " != *" $tier "* ]]; then
		note="${note:+$note; }$s skipped on CI"
		f=$((f + 1))
	fi
	printf "  %-10s %4d passed %4d failed %4d skipped  %3d/%-3d units%s\n" "$tier" "$p" "$f" "$s" \
		"$u" "${expect[$tier]}" "${note:+  ($note)}"
	echo "$tier $p $f $s" >>"$RESULTS.checked"
done
awk '{p+=$2; f+=$3; s+=$4} END {printf "%d passed, %d failed, %d skipped\n", p, f, s}' "$RESULTS.checked"
if awk '$3 > 0 {bad=1} END {exit !bad}' "$RESULTS.checked"; then status=1; fi
rm -f "$RESULTS.checked"
exit $status
