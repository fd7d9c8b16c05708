#!/usr/bin/env bash
# End-to-end tests: real MCP servers and the real SDK client, through `mcpfence run` and
# `mcpfence attach`.
# Usage: tests/run-e2e.sh build/mcpfence    Appends "e2e passed failed skipped units" to
# $RESULTS, units being the passes (node --test runs) that ended with their counts; the row is
# written even when this script is interrupted. A pass that cannot run is a skip, or with
# CI=true a failure.
set -u
cd "$(dirname "$0")/.."
bin=${1:-build/mcpfence}
results=${RESULTS:-build/results.txt}
mkdir -p "$(dirname "$results")"
pass=0 fail=0 skip=0 units=0 recorded=0
record() {
	[ "$recorded" = 1 ] && return
	recorded=1
	echo "e2e $pass $fail $skip $units" >>"$results"
	echo "e2e: $pass passed, $fail failed, $skip skipped ($units passes)"
}
trap 'fail=$((fail + 1)); record; exit 1' INT TERM
trap 'record' EXIT
# cannot REASON: a pass that cannot run; on CI a failure
cannot() {
	if [ "${CI:-false}" = true ]; then
		echo "e2e: FAILED: $1"
		fail=$((fail + 1))
	else
		echo "e2e: SKIPPED: $1"
		skip=$((skip + 1))
	fi
}

if ! command -v node >/dev/null 2>&1; then
	cannot "node is not installed (scripts/setup.sh test installs it)"
	exit $((fail > 0))
fi
if [ ! -d tests/e2e/node_modules/@modelcontextprotocol/sdk ]; then
	cannot "tests/e2e/node_modules is missing (make setup-test runs npm ci)"
	exit $((fail > 0))
fi
# The main pass, then the hostile-input tests again with mcpfence under ASan+UBSan (when
# `make san` built it) and under valgrind: any sanitizer or valgrind report fails the tier.
run_pass() { # NAME REPORT_DIR BIN FILES...
	local name=$1 reports=$2 bin=$3 log rc p f s c n
	shift 3
	log=$(mktemp)
	echo "--- e2e: $name"
	MCPFENCE_BIN=$bin nice node --test --test-concurrency=2 --test-reporter=tap "$@" \
		>"$log" 2>&1
	rc=$?
	if [ "$name" = main ] || [ "$rc" -ne 0 ]; then cat "$log"; else grep -E '^# (pass|fail)' "$log"; fi
	count() { sed -n "s/^# $1 \([0-9]*\)$/\1/p" "$log" | tail -1; }
	n=$(count tests) p=$(count pass) f=$(count fail) s=$(count skipped) c=$(count cancelled)
	p=${p:-0} f=$((${f:-0} + ${c:-0})) s=${s:-0}
	if [ -z "$n" ]; then
		echo "e2e ($name): node --test ended (exit $rc) without its counts" >&2
		f=$((f + 1))
	elif [ "$n" -lt $# ]; then
		echo "e2e ($name): $n tests from $# files: a file ran none" >&2
		f=$((f + 1))
	else
		units=$((units + 1))
	fi
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "e2e ($name): node --test exited $rc without a failed test" >&2
		f=1
	fi
	if [ -n "$reports" ] && [ -n "$(find "$reports" -type f -size +0 2>/dev/null)" ]; then
		echo "e2e ($name): reports in $reports:" >&2
		find "$reports" -type f -size +0 -exec cat {} + | head -60 >&2
		f=$((f + 1))
	fi
	rm -f "$log"
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
}
real=$(realpath "$bin")
run_pass main "" "$real" tests/e2e/*.test.mjs
reports=$(mktemp -d)
if [ -x build-san/mcpfence ]; then
	mkdir -p "$reports/san"
	ASAN_OPTIONS=log_path=$reports/san/asan:detect_leaks=1 \
	UBSAN_OPTIONS=log_path=$reports/san/ubsan:print_stacktrace=1 MCPFENCE_WRAPPED=1 \
		run_pass "hostile input, mcpfence under ASan+UBSan" "$reports/san" \
		"$(realpath build-san/mcpfence)" tests/e2e/raw.test.mjs tests/e2e/proxy.test.mjs \
		tests/e2e/proxy_params.test.mjs tests/e2e/proxy_redirect.test.mjs
else
	cannot "the ASan+UBSan pass: build-san/mcpfence is not built (make san)"
fi
if command -v valgrind >/dev/null 2>&1; then
	mkdir -p "$reports/vg"
	VG_LOG_DIR=$reports/vg MCPFENCE_REAL=$real MCPFENCE_WRAPPED=1 \
		run_pass "hostile input, mcpfence under valgrind" "$reports/vg" \
		"$PWD/tests/e2e/valgrind-mcpfence.sh" tests/e2e/raw.test.mjs tests/e2e/proxy.test.mjs \
		tests/e2e/proxy_params.test.mjs
else
	cannot "the valgrind pass: valgrind is not installed"
fi
rm -rf "$reports"
record
[ "$fail" -eq 0 ]
