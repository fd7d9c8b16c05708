#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The differential tier (make diff): tests/diff/run.py with Debian's python3, or a skip that says
# why (a failure with CI=true). Appends "diff PASSED FAILED SKIPPED DECODERS" to $RESULTS.
set -u
cd "$(dirname "$0")/../.."
if [ ! -x /usr/bin/python3 ]; then
	echo "diff: SKIPPED: /usr/bin/python3 is missing (scripts/setup.sh test installs python3)"
	if [ "${CI:-}" = true ]; then
		[ -n "${RESULTS:-}" ] && echo "diff 0 1 0 0" >>"$RESULTS"
		exit 1
	fi
	[ -n "${RESULTS:-}" ] && echo "diff 0 0 1 0" >>"$RESULTS"
	exit 0
fi
exec /usr/bin/python3 tests/diff/run.py "$@"
