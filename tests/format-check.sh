#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The format tier: every C file as clang-format (.clang-format: the kernel's style, 100 columns)
# would write it. One test; records "format passed failed skipped files" in $RESULTS.
# Usage: tests/format-check.sh FILE...   (make format-check; make format rewrites them)
set -u
cd "$(dirname "$0")/.."
results=${RESULTS:-build/results.txt}
mkdir -p "$(dirname "$results")"
if ! command -v clang-format >/dev/null 2>&1; then
	echo "format: SKIPPED: clang-format is not installed (scripts/setup.sh test installs it)"
	echo "format 0 0 1 0" >>"$results"
	exit 0
fi
bad=$(clang-format --dry-run "$@" 2>&1 | grep -c 'warning:')
if [ "$bad" -gt 0 ]; then
	clang-format --dry-run "$@" 2>&1 | grep 'warning:' | sed 's/:[0-9]*:[0-9]*: warning.*//' | sort | uniq -c
	echo "format: FAILED: clang-format would change $bad places (make format rewrites them)"
	echo "format 0 1 0 $#" >>"$results"
	exit 1
fi
echo "format: $# files as clang-format writes them"
echo "format 1 0 0 $#" >>"$results"
