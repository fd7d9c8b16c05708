#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Coverage-guided fuzzing of the MCP scanner against jansson (libFuzzer, clang -fsanitize=fuzzer).
# Usage: tests/fuzz/run.sh SECONDS     (make fuzz: FUZZ_SECONDS, default 600)
# Seeds: tests/data/messages/*.json; the corpus grows in build/fuzz/corpus (kept between runs);
# a finding is saved as build/fuzz/crash-* and the run fails. With $RESULTS set, one line
# "fuzz passed failed skipped" is appended there (tests/run-all.sh).
set -u
cd "$(dirname "$0")/../.."
secs=${1:-60}
out=build/fuzz
bin=$out/fuzz_scan
record() { [ -n "${RESULTS:-}" ] && echo "fuzz $1 $2 $3" >>"$RESULTS"; return 0; }
mkdir -p "$out/corpus"
rt="$(clang -print-resource-dir 2>/dev/null)/lib/linux/libclang_rt.fuzzer-$(uname -m).a"
if [ ! -f "$rt" ]; then
	echo "fuzz: SKIPPED: clang's libFuzzer runtime is missing ($rt; scripts/setup.sh test installs libclang-rt-14-dev)"
	record 0 0 1
	exit 0
fi
if [ ! -x "$bin" ] || [ -n "$(find bpf/mcp_scan.bpf.h bpf/mcpfence.h tests/bpf/scan_ref.h tests/fuzz/fuzz_scan.c -newer "$bin")" ]; then
	echo "  CC       $bin"
	clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-Wall -Wextra -Werror -Wno-unused-parameter -Ibpf -Itests/bpf tests/fuzz/fuzz_scan.c \
		$(pkg-config --cflags --libs jansson) -o "$bin" || { record 0 1 0; exit 1; }
fi
seeds=$out/seeds
rm -rf "$seeds"; mkdir -p "$seeds"
cp tests/data/messages/*.json "$seeds"/ 2>/dev/null
echo "fuzz: $secs s, corpus $out/corpus seeded from tests/data/messages"
nice "$bin" -max_total_time="$secs" -max_len=70000 -timeout=10 -rss_limit_mb=1024 \
	-dict=tests/fuzz/json.dict -artifact_prefix="$out/" -print_final_stats=1 \
	"$out/corpus" "$seeds" 2>"$out/fuzz.log"
rc=$?
grep -E "^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added)" "$out/fuzz.log"
if [ $rc -ne 0 ]; then
	grep -B2 -A30 -E "disagrees|ERROR|SUMMARY" "$out/fuzz.log" | head -60
	echo "fuzz: FAILED (rc $rc), finding in $out/crash-* (log $out/fuzz.log)"
	record 0 1 0
	exit 1
fi
echo "fuzz: passed"
record 1 0 0
