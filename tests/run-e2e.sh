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
log=$(mktemp)
MCPFENCE_BIN=$(realpath "$bin") nice node --test --test-concurrency=2 --test-reporter=tap \
	tests/e2e/*.test.mjs 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
count() { sed -n "s/^# $1 \([0-9]*\)$/\1/p" "$log" | tail -1; }
pass=$(count pass) fail=$(count fail) skip=$(count skipped) cancelled=$(count cancelled)
pass=${pass:-0} fail=$((${fail:-0} + ${cancelled:-0})) skip=${skip:-0}
if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
	echo "e2e: node --test exited $rc without a failed test" >&2
	fail=1
fi
rm -f "$log"
record "$pass" "$fail" "$skip"
[ "$fail" -eq 0 ]
