#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The man pages against the binary and the code they describe. docs/man/*.scd are built with
# scdoc into BUILD_DIR/man/ and rendered by man(1) without a groff warning; every command that
# `mcpfence --help` lists has its section in mcpfence.8, which defines every option the
# command's --help prints and no other; every environment variable user/*.c reads (getenv),
# the paths the code writes and the pinned maps are in mcpfence.8; every key the policy parser
# accepts (the keys[] lists of user/policy*.c: parse_top's are the top-level keys), operator
# and scope is a term of mcpfence-policy.5. One line per check, "ok - ..." or "not ok - ...",
# then "man: N passed, N failed, N skipped"; exits 1 on a failure. Without scdoc or man it
# skips (exit 77), and fails under CI=true. With $RESULTS set, it appends "man passed failed
# skipped pages" to that file, as the other tiers' runners do.
# Usage: tests/man/check.sh BUILD_DIR MCPFENCE_BINARY
set -u
if [ $# -ne 2 ]; then
	echo "usage: $0 BUILD_DIR MCPFENCE_BINARY" >&2
	exit 2
fi
build=$1 bin=$2
src=$(cd "$(dirname "$0")/../.." && pwd)
out=$build/man
pass=0 fail=0 skip=0 pages=0

record() {
	echo "man: $pass passed, $fail failed, $skip skipped"
	[ -n "${RESULTS:-}" ] && echo "man $pass $fail $skip $pages" >>"$RESULTS"
}
ok() { echo "ok - $*"; pass=$((pass + 1)); }
nok() { echo "not ok - $*"; fail=$((fail + 1)); }
check() { # DESCRIPTION CMD...: ok when CMD succeeds
	local what=$1
	shift
	if "$@"; then ok "$what"; else nok "$what"; fi
}

missing=""
for t in scdoc man; do
	command -v "$t" >/dev/null 2>&1 || missing="$missing $t"
done
if [ -n "$missing" ]; then
	if [ "${CI:-false}" = true ]; then
		nok "man pages: missing:$missing (apt-get install scdoc man-db)"
		record
		exit 1
	fi
	echo "man: SKIPPED: missing:$missing (apt-get install scdoc man-db)"
	skip=1
	record
	exit 77
fi
if [ ! -x "$bin" ]; then
	nok "$bin is not an executable (build it first: make)"
	record
	exit 1
fi
mkdir -p "$out"
export LC_ALL=C.UTF-8 MANPAGER=cat PAGER=cat
unset MANOPT

# the rendered text, one line per line: wide, unhyphenated, no overstrikes
render() { MANROFFOPT=-rHY=0 MANWIDTH=200 man -l -E UTF-8 "$1" 2>/dev/null | sed 's/.\x08//g'; }

# ---- build and render -----------------------------------------------------------------------
# first, that man --warnings reports groff's warnings at all: a page with an unknown macro
printf '.TH BROKEN 7\n.SH NAME\nbroken \\- a page with an unknown macro\n.NOSUCHMACRO\n' \
	>"$out/broken.7"
warn=$(man --warnings -l -E UTF-8 "$out/broken.7" 2>&1 >/dev/null)
check "man --warnings reports groff warnings (a page with an unknown macro warns)" \
	test -n "$warn"
rm -f "$out/broken.7"

for page in mcpfence.8 mcpfence-policy.5; do
	if ! scdoc <"$src/docs/man/$page.scd" >"$out/$page" 2>"$out/$page.err"; then
		nok "$page: scdoc: $(head -c 300 "$out/$page.err")"
		rm -f "$out/$page"
		continue
	fi
	rm -f "$out/$page.err"
	ok "$page: built by scdoc into $out/$page"
	pages=$((pages + 1))
	warn=$(man --warnings -l -E UTF-8 "$out/$page" 2>&1 >/dev/null)
	if [ -z "$warn" ]; then
		ok "$page: man --warnings says nothing"
	else
		nok "$page: man --warnings: $(echo "$warn" | head -5 | tr '\n' ' ')"
	fi
done
if [ "$pages" -ne 2 ]; then
	record
	exit 1
fi
page8=$(render "$out/mcpfence.8")
page5=$(render "$out/mcpfence-policy.5")

# the text of one section (a heading at column 0) of a rendered page
section() { awk -v want="$2" '/^[^ ]/ { on = ($0 == want); next } on' <<<"$1"; }
# the text of the subsections "mcpfence CMD ..." of mcpfence.8's COMMANDS
command_text() {
	awk -v want="$1" '/^[^ ]/ { on = 0; next }
		/^   [^ ]/ { on = ($1 == "mcpfence" && $2 == want) } on' <<<"$page8"
}
# the options of a --help text: "-x" and "--long" of its lines "  -x, --long ARG  what"
help_options() {
	awk '/^  -/ { s = substr($0, 3); i = index(s, "  "); if (i) s = substr(s, 1, i - 1)
		n = split(s, t, /[ ,]+/); for (j = 1; j <= n; j++) if (t[j] ~ /^-/) print t[j] }'
}
# the options a rendered text defines: term lines ("       -x, --long ARG") above a description
term_options() {
	awk 'prev ~ /^       -/ && $0 ~ /^           [^ ]/ { n = split(prev, t, /[ ,]+/)
		for (j = 1; j <= n; j++) if (t[j] ~ /^-/) print t[j] } { prev = $0 }'
}
# is word W in the text (not as a part of a longer option or name)?
has_word() { grep -qE -- "(^|[^[:alnum:]_-])$1([^[:alnum:]_-]|$)" <<<"$2"; }
# is W a term of the text: a line that is W alone, or W in a list "a, W, b"?
has_term() {
	awk -v w="$1" '{ sub(/^ +/, ""); n = split($0, t, /, /); for (i = 1; i <= n; i++)
		if (t[i] == w) found = 1 } END { exit !found }' <<<"$2"
}

# ---- mcpfence.8: commands and options ---------------------------------------------------------
top=$("$bin" --help)
commands=$(awk '/^[^ ]/ { on = ($0 == "commands:"); next } on && NF { print $1 }' <<<"$top")
check "mcpfence --help lists commands" test -n "$commands"
defined=$(section "$page8" OPTIONS | term_options)
for opt in $(help_options <<<"$(awk '/^[^ ]/ { on = ($0 == "options:"); next } on' <<<"$top")"); do
	check "mcpfence.8: mcpfence $opt is defined in OPTIONS" grep -qxF -- "$opt" <<<"$defined"
done
for cmd in $commands; do
	text=$(command_text "$cmd")
	if [ -z "$text" ]; then
		nok "mcpfence.8: mcpfence $cmd has a section in COMMANDS"
		continue
	fi
	ok "mcpfence.8: mcpfence $cmd has a section in COMMANDS"
	if ! help=$("$bin" "$cmd" --help 2>&1) || [ -z "$(help_options <<<"$help")" ]; then
		nok "mcpfence $cmd --help exits 0 and lists its options: $(head -c 200 <<<"$help")"
		continue
	fi
	opts=$(help_options <<<"$help")
	defined=$(term_options <<<"$text")
	for opt in $opts; do
		check "mcpfence.8: $cmd $opt is defined in its section" grep -qxF -- "$opt" <<<"$defined"
	done
	for opt in $defined; do
		check "mcpfence.8: $cmd $opt, defined in its section, is in mcpfence $cmd --help" \
			grep -qxF -- "$opt" <<<"$opts"
	done
done

# ---- mcpfence.8: environment, files ----------------------------------------------------------
env_text=$(section "$page8" ENVIRONMENT)
vars=$(grep -ohE 'getenv\("[A-Za-z_][A-Za-z0-9_]*"\)' "$src"/user/*.c |
	sed 's/getenv("\(.*\)")/\1/' | sort -u)
check "the environment variables are found (getenv in user/*.c)" test -n "$vars"
while read -r var; do
	check "mcpfence.8: ENVIRONMENT has $var (user/*.c reads it)" has_term "$var" "$env_text"
done <<<"$vars"
files_text=$(section "$page8" FILES)
# the paths the code writes: the literals of the default locations (format specifiers cut
# out), and the defines of the pin directory, the saved sysctl and the control socket's name
defaults='audit__default_path|limits__default_table_path'
paths=$( (awk "/^(int|const char \\*)[a-z_ ]*($defaults)\\(/,/^}/" "$src/user/audit.c" \
	"$src/user/limits.c" | grep -o '"[^"]*/[^"]*"' | tr -d '"' | sed 's/%[-.0-9]*[a-z]/\n/g'
	sed -n 's/^#define \(MCPF_PIN_DIR\|TFO_SAVED\|APPROVAL_SOCK_PREFIX\) "\([^"]*\)".*/\2/p' \
		"$src/bpf/mcpfence.h" "$src/user/kernel_load.c" "$src/user/approval.h") |
	grep -E '..../|/....' | sort -u)
check "the code's paths are found (user/audit.c, user/limits.c, defines)" \
	test "$(wc -l <<<"$paths")" -ge 6
while IFS= read -r p; do
	check "mcpfence.8: FILES has $p" grep -qF -- "$p" <<<"$files_text"
done <<<"$paths"
maps=$(awk '/pinned_maps\[\] = \{/,/\};/' "$src/user/kernel_load.c" | grep -o '"[a-z_]*"' |
	tr -d '"')
check "the pinned maps are found (user/kernel_load.c pinned_maps)" test -n "$maps"
for m in $maps; do
	check "mcpfence.8: FILES names the pinned map $m" has_word "$m" "$files_text"
done

# ---- mcpfence-policy.5: every key the parser accepts ------------------------------------------
# "where<TAB>name" for each string of the keys[] lists of the parser (the top-level ones are
# parse_top's), of op_names and of scope_names
keys=$(awk '
	/^[a-z].*[a-z_]+\(/ { fn = $0; sub(/\(.*/, "", fn); sub(/.*[ *]/, "", fn) }
	/(keys|op_names|scope_names)\[\] = \{/ { on = 1; list = $0; sub(/\[\].*/, "", list)
		sub(/.* /, "", list); where = (list == "keys") ? FILENAME ": " fn : FILENAME ": " list }
	on { s = $0; while (match(s, /"[^"]*"/)) {
		print where "\t" substr(s, RSTART + 1, RLENGTH - 2); s = substr(s, RSTART + RLENGTH) } }
	on && /\};/ { on = 0 }' "$src"/user/policy.c "$src"/user/policy_conds.c \
	"$src"/user/policy_approval.c | sed "s|$src/||" |
	awk -F'\t' '!seen[($1 ~ /parse_top$/) FS $2]++')
ntop=$(grep -c "^user/policy.c: parse_top"$'\t' <<<"$keys")
check "the top-level keys are found (user/policy.c parse_top keys[]: $ntop)" test "$ntop" -ge 5
while IFS=$'\t' read -r where key; do
	kind=key
	[[ $where == *op_names ]] && kind=operator
	[[ $where == *scope_names ]] && kind=scope
	if [[ $where == *parse_top ]]; then
		check "mcpfence-policy.5: TOP-LEVEL KEYS has $key ($where)" \
			has_term "$key" "$(section "$page5" "TOP-LEVEL KEYS")"
	else
		check "mcpfence-policy.5: $kind $key is a term ($where)" has_term "$key" "$page5"
	fi
done <<<"$keys"
# the one-key objects "kernel" and "audit" (parse_switch): their key and both values
while read -r key off on; do
	for w in "$key" "$off" "$on"; do
		check "mcpfence-policy.5: $w (user/policy.c parse_switch)" has_word "$w" "$page5"
	done
done < <(grep -o 'parse_switch(c, "[^"]*", v, "[a-z_]*", "[a-z_]*", "[a-z_]*"' \
	"$src/user/policy.c" | awk -F'"' '{ print $4, $6, $8 }')

record
[ "$fail" -eq 0 ]
