#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Coverage-guided fuzzing (libFuzzer, clang -fsanitize=fuzzer) of the two parsers the kernel plane
# trusts: the MCP scanner against jansson (fuzz_scan, two thirds of the time) and the HTTP request
# head parser against a byte-at-a-time reference (fuzz_head, one third).
# Usage: tests/fuzz/run.sh SECONDS     (make fuzz: FUZZ_SECONDS, default 600)
# Seeds: tests/data/messages/*.json and tests/fuzz/heads/*; the corpora grow in
# build/fuzz/{corpus,head-corpus} (kept between runs); a finding is saved as build/fuzz/crash-*
# and the run fails. With $RESULTS set, one line "fuzz passed failed skipped units" (a test and
# a unit per target that ran) is appended there (tests/run-all.sh), even when interrupted.
# Without libFuzzer's runtime the targets are skipped, or with CI=true fail.
set -u
cd "$(dirname "$0")/../.."
secs=${1:-60}
out=build/fuzz
passed=0 failed=0 skipped=0 recorded=0
record() {
	[ "$recorded" = 1 ] && return 0
	recorded=1
	[ -n "${RESULTS:-}" ] && echo "fuzz $passed $failed $skipped $((passed + failed))" >>"$RESULTS"
	return 0
}
trap 'failed=$((failed + 1)); record; exit 1' INT TERM
trap 'record' EXIT
mkdir -p "$out/corpus" "$out/head-corpus"
rt="$(clang -print-resource-dir 2>/dev/null)/lib/linux/libclang_rt.fuzzer-$(uname -m).a"
if [ ! -f "$rt" ]; then
	why="clang's libFuzzer runtime is missing ($rt; scripts/setup.sh test installs libclang-rt-14-dev)"
	if [ "${CI:-false}" = true ]; then
		echo "fuzz: FAILED: $why"
		failed=2
		exit 1
	fi
	echo "fuzz: SKIPPED: $why"
	skipped=2
	exit 0
fi

# build NAME DEPS...: build/fuzz/NAME from tests/fuzz/NAME.c when older than what it reads
build() {
	local name=$1 bin=$out/$1
	shift
	if [ ! -x "$bin" ] || [ -n "$(find "$@" "tests/fuzz/$name.c" -newer "$bin")" ]; then
		echo "  CC       $bin"
		clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
			-Wall -Wextra -Werror -Wno-unused-parameter -Ibpf -Itests/bpf -Itests/unit \
			"tests/fuzz/$name.c" $(pkg-config --cflags --libs jansson) -o "$bin" || return 1
	fi
}

# run NAME SECONDS CORPUS SEEDS EXTRA...: one fuzzing run, its result recorded
run() {
	local name=$1 t=$2 corpus=$3 seeds=$4 rc
	shift 4
	echo "fuzz $name: $t s, corpus $corpus"
	nice "$out/$name" -max_total_time="$t" -timeout=10 -rss_limit_mb=1024 \
		-artifact_prefix="$out/" -print_final_stats=1 "$@" "$corpus" "$seeds" \
		2>"$out/$name.log"
	rc=$?
	grep -E "^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added)" "$out/$name.log"
	if [ $rc -ne 0 ]; then
		grep -B2 -A30 -E "disagrees|ERROR|SUMMARY" "$out/$name.log" | head -60
		echo "fuzz $name: FAILED (rc $rc), finding in $out/crash-* (log $out/$name.log)"
		return 1
	fi
	echo "fuzz $name: passed"
}

# each target: one test passed or failed; one line for the tier at the end
tally() { if [ "$1" = 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi; }
if build fuzz_scan bpf/mcp_scan.bpf.h bpf/mcpfence.h tests/bpf/scan_ref.h; then
	rm -rf "$out/seeds"; mkdir -p "$out/seeds"
	cp tests/data/messages/*.json "$out/seeds"/ 2>/dev/null
	run fuzz_scan $((secs * 2 / 3)) "$out/corpus" "$out/seeds" -max_len=70000 \
		-dict=tests/fuzz/json.dict
	tally $?
else
	tally 1
fi
if build fuzz_head bpf/http_head.bpf.h bpf/mcp_scan.bpf.h bpf/mcpfence.h tests/unit/head_ref.h; then
	run fuzz_head $((secs - secs * 2 / 3)) "$out/head-corpus" tests/fuzz/heads -max_len=9000
	tally $?
else
	tally 1
fi
record
[ $failed = 0 ]
