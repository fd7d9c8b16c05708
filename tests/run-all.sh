#!/usr/bin/env bash
# Every test tier, in order; each one runs even when an earlier one failed, and one summary
# line closes the run. Called by `make test` after the set-up step and the build.
set -u
cd "$(dirname "$0")/.."
export RESULTS=$PWD/build/results.txt
rm -f "$RESULTS"
status=0
run() { echo; echo "=== $1"; shift; "$@" || status=1; }
run "unit tests" make --no-print-directory unit
run "unit tests under ASan+UBSan" make --no-print-directory san
run "unit tests under valgrind" make --no-print-directory valgrind
run "fuzzing: scanner against jansson, head parser against its reference (${FUZZ_SHORT:-45} s)" tests/fuzz/run.sh "${FUZZ_SHORT:-45}"
run "differential: mcpfence's view against the servers' own parsers (Go, Node SDK, express, Python)" make --no-print-directory diff
run "BPF tests (root)" make --no-print-directory bpf-test
run "end-to-end tests (real MCP servers and SDK clients)" make --no-print-directory e2e
echo
echo "=== summary"
awk '{printf "  %-10s %4d passed %4d failed %4d skipped\n", $1, $2, $3, $4; p+=$2; f+=$3; s+=$4}
     END {printf "%d passed, %d failed, %d skipped\n", p, f, s}' "$RESULTS"
if awk '$3 > 0 {bad=1} END {exit !bad}' "$RESULTS"; then status=1; fi
exit $status
