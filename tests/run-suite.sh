#!/usr/bin/env bash
# Runs cmocka test binaries and records "tier passed failed skipped" in $RESULTS.
# Usage: tests/run-suite.sh TIER BIN...   (VALGRIND=1 runs each under valgrind)
set -u
tier=$1; shift
results=${RESULTS:-build/results.txt}
mkdir -p "$(dirname "$results")"
pass=0 fail=0 skip=0 status=0
for bin in "$@"; do
	log=$(mktemp)
	if [ "${VALGRIND:-0}" = 1 ]; then
		valgrind -q --trace-children=yes --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect \
			--errors-for-leak-kinds=definite,indirect "$bin" >"$log" 2>&1
	else
		"$bin" >"$log" 2>&1
	fi
	rc=$?
	cat "$log"
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "$tier: $bin exited $rc without a failed test (crash, sanitizer or valgrind finding)" >&2
		f=1
	fi
	[ "$rc" -ne 0 ] && status=1
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
	rm -f "$log"
done
echo "$tier $pass $fail $skip" >>"$results"
echo "$tier: $pass passed, $fail failed, $skip skipped"
exit $status
