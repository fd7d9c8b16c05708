#!/usr/bin/env bash
# End-to-end tests: real MCP servers and the real SDK client, through `mcpfence run`.
# Usage: tests/run-e2e.sh build/mcpfence    Appends "e2e passed failed skipped" to $RESULTS.
set -u
cd "$(dirname "$0")/.."
bin=${1:-build/mcpfence}
results=${RESULTS:-build/results.txt}
mkdir -p "$(dirname "$results")"
record() { echo "e2e $1 $2 $3" >>"$results"; echo "e2e: $1 passed, $2 failed, $3 skipped"; }

if ! command -v node >/dev/null 2>&1; then
	echo "e2e: SKIPPED: node is not installed (scripts/setup.sh test installs it)"
	record 0 0 1
	exit 0
fi
if [ ! -d tests/e2e/node_modules/@modelcontextprotocol/sdk ]; then
	echo "e2e: SKIPPED: tests/e2e/node_modules is missing (make setup-test runs npm ci)"
	record 0 0 1
	exit 0
fi
# The main pass, then the hostile-input tests again with mcpfence under ASan+UBSan (when
# `make san` built it) and under valgrind: any sanitizer or valgrind report fails the tier.
pass=0 fail=0 skip=0
run_pass() { # NAME REPORT_DIR BIN FILES...
	local name=$1 reports=$2 bin=$3 log rc p f s c
	shift 3
	log=$(mktemp)
	echo "--- e2e: $name"
	MCPFENCE_BIN=$bin nice node --test --test-concurrency=2 --test-reporter=tap "$@" \
		>"$log" 2>&1
	rc=$?
	if [ "$name" = main ] || [ "$rc" -ne 0 ]; then cat "$log"; else grep -E '^# (pass|fail)' "$log"; fi
	count() { sed -n "s/^# $1 \([0-9]*\)$/\1/p" "$log" | tail -1; }
	p=$(count pass) f=$(count fail) s=$(count skipped) c=$(count cancelled)
	p=${p:-0} f=$((${f:-0} + ${c:-0})) s=${s:-0}
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
		"$(realpath build-san/mcpfence)" tests/e2e/raw.test.mjs
else
	echo "--- e2e: SKIPPED the ASan+UBSan pass: build-san/mcpfence is not built (make san)"
	skip=$((skip + 1))
fi
if command -v valgrind >/dev/null 2>&1; then
	mkdir -p "$reports/vg"
	VG_LOG_DIR=$reports/vg MCPFENCE_REAL=$real MCPFENCE_WRAPPED=1 \
		run_pass "hostile input, mcpfence under valgrind" "$reports/vg" \
		"$PWD/tests/e2e/valgrind-mcpfence.sh" tests/e2e/raw.test.mjs
else
	echo "--- e2e: SKIPPED the valgrind pass: valgrind is not installed"
	skip=$((skip + 1))
fi
rm -rf "$reports"
record "$pass" "$fail" "$skip"
[ "$fail" -eq 0 ]
