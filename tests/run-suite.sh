#!/usr/bin/env bash
# Runs cmocka test binaries and records "tier passed failed skipped units" in $RESULTS, units
# being the binaries that ran to their summary line. A binary that crashes, exits non-zero
# without a failed test, or whose counts do not add up to the tests it says it ran, counts as a
# failure. The row is written even when this script is interrupted.
# Usage: tests/run-suite.sh TIER BIN...   (VALGRIND=1 runs each under valgrind)
set -u
tier=$1; shift
results=${RESULTS:-build/results.txt}
mkdir -p "$(dirname "$results")"
pass=0 fail=0 skip=0 units=0 status=0 recorded=0 nbins=$#
record() {
	[ "$recorded" = 1 ] && return
	recorded=1
	echo "$tier $pass $fail $skip $units" >>"$results"
	echo "$tier: $pass passed, $fail failed, $skip skipped ($units of $nbins binaries reported)"
}
trap 'fail=$((fail + 1)); record; exit 1' INT TERM
trap 'record' EXIT
if [ $# -eq 0 ]; then
	echo "$tier: no test binaries given" >&2
	fail=1
	exit 1
fi
for bin in "$@"; do
	log=$(mktemp)
	if [ "${VALGRIND:-0}" = 1 ]; then
		# mcpfence, as the tests run it, is traced too; the system's programs they start are not
		valgrind -q --trace-children=yes --trace-children-skip='/bin/*,/usr/bin/*,/usr/sbin/*' \
			--error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect \
			--errors-for-leak-kinds=definite,indirect "$bin" >"$log" 2>&1
	else
		"$bin" >"$log" 2>&1
	fi
	rc=$?
	cat "$log"
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	n=$(sed -n 's/^\[==========\] \([0-9]*\) test(s) run\./\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	if ! grep -q '^\[==========\] [0-9]* test(s) run\.' "$log"; then
		echo "$tier: $bin ended (exit $rc) before its summary: counted as a failure" >&2
		f=$((f + 1))
	elif [ $((p + f + s)) -ne "$n" ]; then
		echo "$tier: $bin ran $n tests but reports $p passed, $f failed, $s skipped: counted as a failure" >&2
		f=$((f + 1))
		units=$((units + 1))
	else
		units=$((units + 1))
		if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
			echo "$tier: $bin exited $rc without a failed test (crash, sanitizer or valgrind finding)" >&2
			f=1
		fi
	fi
	[ "$rc" -ne 0 ] && status=1
	[ "$f" -ne 0 ] && status=1
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
	rm -f "$log"
done
record
exit $status
