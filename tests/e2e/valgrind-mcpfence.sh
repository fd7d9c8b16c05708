#!/bin/sh
# mcpfence under valgrind, for the e2e pass of tests/run-e2e.sh: reports go to $VG_LOG_DIR.
exec valgrind -q --leak-check=full --show-leak-kinds=definite,indirect \
	--errors-for-leak-kinds=definite,indirect --log-file="$VG_LOG_DIR/%p.log" "$MCPFENCE_REAL" "$@"
