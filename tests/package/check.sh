#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The package tier: what a security team installs. make deb (dpkg-buildpackage, lintian with no
# error), what the package holds and depends on, the package unpacked into a scratch root
# (mcpfence check of every shipped policy, man mcpfence, the unit verified by systemd-analyze,
# tmpfiles, logrotate, bash completion), make install and uninstall into a DESTDIR (config
# kept), and the unit's CapabilityBoundingSet: attach --port and --pid on another user's server
# with exactly those capabilities (root; the pins are host-wide: hold /tmp/mcpfence-bpf.lock
# when other BPF tests may run, as make test's tiers never do side by side).
# Usage: tests/package/check.sh    (with $RESULTS: one row "package passed failed skipped 1")
set -u
cd "$(dirname "$0")/../.."
root=$PWD
out=$root/build/package
ci=${CI:-false}
passed=0 failed=0 skipped=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
notok() { echo "not ok - $*"; failed=$((failed + 1)); }
skip() {
	if [ "$ci" = true ]; then notok "$* (CI: a check that cannot run fails)"; else
		echo "skip - $*"; skipped=$((skipped + 1)); fi
}
check() { # DESCRIPTION CMD... : ok when CMD succeeds
	local what=$1
	shift
	if "$@"; then ok "$what"; else notok "$what"; fi
}
finish() {
	echo "package: $passed passed, $failed failed, $skipped skipped"
	[ -n "${RESULTS:-}" ] && echo "package $passed $failed $skipped 1" >>"$RESULTS"
	[ $failed -eq 0 ]
	exit
}
rm -rf "$out"
mkdir -p "$out"

# ---- make deb ---------------------------------------------------------------------------
missing=""
for t in dpkg-buildpackage dh lintian scdoc systemd-analyze systemd-tmpfiles man logrotate; do
	command -v "$t" >/dev/null 2>&1 || missing="$missing $t"
done
if [ -n "$missing" ]; then
	skip "the package tier: missing$missing (make setup-deb installs them)"
	finish
fi
if ! scripts/deb.sh "$out/deb" >"$out/deb.log" 2>&1; then
	cat "$out/deb.log"
	notok "make deb: dpkg-buildpackage and lintian (log above)"
	finish
fi
deb=$(ls "$out"/deb/mcpfence_*.deb)
ok "make deb builds $(basename "$deb"); lintian: no error"
echo "#   lintian: $(grep -c '^W:' "$out/deb/lintian.txt") warnings, $(grep -c '^I:' "$out/deb/lintian.txt") notes:"
grep '^[WI]:' "$out/deb/lintian.txt" | sed 's/^/#     /'

dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$out/contents"
for f in /usr/sbin/mcpfence /usr/share/man/man8/mcpfence.8.gz /usr/share/man/man5/mcpfence-policy.5.gz \
	/lib/systemd/system/mcpfence-attach.service /lib/systemd/system/mcpfence-daemon.service \
	/usr/lib/tmpfiles.d/mcpfence.conf /etc/mcpfence/policies/ \
	/etc/logrotate.d/mcpfence /usr/share/bash-completion/completions/mcpfence \
	/etc/mcpfence/policy.json /etc/mcpfence/attach.conf /usr/share/doc/mcpfence/copyright; do
	grep -qx "$f" "$out/contents" || echo "#   missing from the package: $f" >>"$out/missing"
done
for p in policies/*.json; do
	grep -qx "/usr/share/mcpfence/$p" "$out/contents" || echo "#   missing: /usr/share/mcpfence/$p" >>"$out/missing"
done
if [ -s "$out/missing" ]; then cat "$out/missing"; notok "the package holds the install layout"; else
	ok "the package holds the binary, both man pages, both units, tmpfiles, logrotate, completion, every policy"; fi

dpkg-deb --ctrlarea "$deb" "$out/ctrl" 2>/dev/null || dpkg-deb -e "$deb" "$out/ctrl"
want="/etc/logrotate.d/mcpfence
/etc/mcpfence/attach.conf
/etc/mcpfence/policy.json"
check "conffiles: /etc/mcpfence/{attach.conf,policy.json} and the logrotate file (kept on upgrade)" \
	test "$(sort "$out/ctrl/conffiles")" = "$want"

# every library the binary needs comes from a package named in Depends
depends=$(dpkg-deb -f "$deb" Depends)
echo "#   Depends: $depends"
mkdir -p "$out/x"
dpkg-deb -x "$deb" "$out/x"
bad=""
for lib in $(objdump -p "$out/x/usr/sbin/mcpfence" | awk '/NEEDED/ {print $2}'); do
	path=$(ldconfig -p | awk -v l="$lib" '$1 == l {print $NF; exit}')
	pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -1 | cut -d: -f1)
	[ -z "$pkg" ] && pkg=$(dpkg -S "$path" 2>/dev/null | head -1 | cut -d: -f1)
	case ", $depends" in *", $pkg "* | *", $pkg,"* | *", $pkg") ;; *) bad="$bad $lib($pkg)" ;; esac
done
check "Depends names the package of every library mcpfence links${bad:+ (not:$bad)}" test -z "$bad"

# ---- the package in a scratch root --------------------------------------------------------
sr=$out/root
mkdir -p "$sr/var/lib/dpkg/info" "$sr/var/lib/dpkg/updates"
touch "$sr/var/lib/dpkg/status"
# unpacked without its dependencies (the host's libraries serve) and without the configure
# step, whose postinst would run the host's systemctl and systemd-tmpfiles
if dpkg --root="$sr" --force-depends --unpack "$deb" >"$out/dpkg.log" 2>&1; then
	ok "dpkg --root unpacks it into a scratch root"
else
	cat "$out/dpkg.log"
	notok "dpkg --root unpacks it into a scratch root"
	finish
fi
bin=$sr/usr/sbin/mcpfence
check "the installed mcpfence runs (version: $("$bin" version 2>&1))" "$bin" version >/dev/null
# conffiles stay NAME.dpkg-new until dpkg's configure step (not run: see above) puts them in place
etc_policy=$sr/etc/mcpfence/policy.json.dpkg-new
bad=""
for p in "$sr"/usr/share/mcpfence/policies/*.json "$etc_policy"; do
	"$bin" check "$p" >"$out/check.log" 2>&1 || { bad="$bad ${p#"$sr"}"; cat "$out/check.log"; }
done
check "mcpfence check accepts every shipped policy and /etc/mcpfence/policy.json${bad:+ (not:$bad)}" \
	test -z "$bad"

for page in "8 mcpfence attach" "5 mcpfence-policy default"; do
	set -- $page
	MANPATH=$sr/usr/share/man MANWIDTH=100 man --warnings -E UTF-8 "$1" "$2" >"$out/man.txt" \
		2>"$out/man.err"
	rc=$?
	if [ $rc -eq 0 ] && [ ! -s "$out/man.err" ] && grep -q "$3" "$out/man.txt"; then
		ok "man $1 $2 from the scratch root: renders, no groff warning"
	else
		cat "$out/man.err"
		notok "man $1 $2 from the scratch root (exit $rc)"
	fi
done

# the packaged units, their binary path mapped into the scratch root (systemd-analyze checks
# that ExecStart exists and that its Documentation= pages open)
for u in mcpfence-attach mcpfence-daemon; do
	sed "s|/usr/sbin/mcpfence|$bin|" "$sr/lib/systemd/system/$u.service" >"$out/$u.service"
	if MANPATH=$sr/usr/share/man systemd-analyze verify "$out/$u.service" >"$out/verify.log" 2>&1 &&
		[ ! -s "$out/verify.log" ]; then
		ok "systemd-analyze verify $u.service: no complaint"
	else
		cat "$out/verify.log"
		notok "systemd-analyze verify $u.service"
	fi
	exposure=$(systemd-analyze security --offline=yes "$out/$u.service" 2>/dev/null |
		awk '/Overall exposure level/ {print $(NF-2), $(NF-1)}')
	echo "#   systemd-analyze security $u: exposure ${exposure:-not reported}"
done

systemd-tmpfiles --root="$sr" --create "$sr/usr/lib/tmpfiles.d/mcpfence.conf" >"$out/tmpfiles.log" 2>&1
check "tmpfiles.d makes /run/mcpfence and /var/log/mcpfence, 0700 root" \
	test "$(stat -c '%a %U' "$sr/run/mcpfence" "$sr/var/log/mcpfence" 2>/dev/null | sort -u)" = "700 root"

mkdir -p "$out/lr"
sed "s|/var/log/mcpfence|$out/lr|" "$sr/etc/logrotate.d/mcpfence.dpkg-new" >"$out/lr/conf"
echo '{"line":1}' >"$out/lr/audit.jsonl"
if logrotate -f -s "$out/lr/state" "$out/lr/conf" >"$out/lr/log" 2>&1 && [ -s "$out/lr/audit.jsonl.1" ] &&
	[ ! -e "$out/lr/audit.jsonl" ]; then
	ok "logrotate with the packaged file renames the audit log (mcpfence makes the next one)"
else
	cat "$out/lr/log"
	notok "logrotate with the packaged file"
fi

# bash completion of the installed binary: commands and each command's options
comp() { # WORDS... -> the completions of the last word
	PATH=$sr/usr/sbin:$PATH bash -c '
		source /usr/share/bash-completion/bash_completion
		source "$1"; shift
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
		_mcpfence mcpfence "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
		printf "%s\n" "${COMPREPLY[@]}"' _ "$sr/usr/share/bash-completion/completions/mcpfence" "$@" |
		sort | tr '\n' ' '
}
cmds=$(comp mcpfence "")
aopts=$(comp mcpfence attach --p)
echo "#   completion: 'mcpfence ': $cmds"
echo "#   completion: 'mcpfence attach --p': $aopts"
want_cmds=$("$bin" --help | awk '/^commands:/ { on = 1; next } on && NF { print $1 }' | sort | tr '\n' ' ')
bad=""
for c in $want_cmds; do case " $cmds " in *" $c "*) ;; *) bad="$bad $c" ;; esac; done
check "bash completion offers every command of mcpfence --help${bad:+ (not:$bad)}" \
	test -z "$bad" -a -n "$want_cmds"
want_aopts=$("$bin" attach --help | grep -o -- '--p[a-z-]*' | sort -u | tr '\n' ' ')
check "bash completion offers attach's options that begin --p: $want_aopts" \
	test "$aopts" = "$want_aopts" -a -n "$want_aopts"

# ---- make install / uninstall into a DESTDIR ---------------------------------------------
d=$out/destdir
if make --no-print-directory install DESTDIR="$d" PREFIX=/usr/local >"$out/install.log" 2>&1 &&
	[ -x "$d/usr/local/sbin/mcpfence" ] && [ -f "$d/usr/local/share/man/man8/mcpfence.8" ] &&
	grep -qx 'ExecStart=/usr/local/sbin/mcpfence attach --policy ${POLICY} $TARGETS $OPTIONS' \
		"$d/usr/local/lib/systemd/system/mcpfence-attach.service" &&
	[ -f "$d/etc/mcpfence/policy.json" ] && [ -f "$d/usr/local/share/mcpfence/policies/demo.json" ]; then
	ok "make install DESTDIR PREFIX=/usr/local: the layout, the unit naming /usr/local/sbin"
else
	cat "$out/install.log"
	notok "make install DESTDIR PREFIX=/usr/local"
fi
echo '{"version": "1", "default": "allow"}' >"$d/etc/mcpfence/policy.json"
make --no-print-directory install DESTDIR="$d" PREFIX=/usr/local >>"$out/install.log" 2>&1
check "make install again keeps an edited /etc/mcpfence/policy.json" \
	grep -q '"default": "allow"' "$d/etc/mcpfence/policy.json"
make --no-print-directory uninstall DESTDIR="$d" PREFIX=/usr/local >>"$out/install.log" 2>&1
left=$(cd "$d" && find . -type f | sort | tr '\n' ' ')
check "make uninstall leaves only the config in /etc (left: $left)" \
	test "$left" = "./etc/mcpfence/attach.conf ./etc/mcpfence/policy.json "

# ---- the unit's capabilities suffice for attach ------------------------------------------
if [ "$(id -u)" -ne 0 ]; then
	skip "attach with the unit's capabilities: needs root"
	finish
fi
unit=$sr/lib/systemd/system/mcpfence-attach.service
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$unit" | tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ /,/g')
echo "#   the unit's capabilities: $caps"
attach_with() { # CAPS LOG: attach --port and --pid on a server of uid 65534 blocked in a read
	local caps=$1 log=$2 srv ap
	python3 -c '
import os, socket, subprocess, sys, time
a, b = socket.socketpair()
p = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
    "python3", "-c", "import sys; sys.stdin.buffer.read(1)"], stdin=b, stdout=b)
print(p.pid, flush=True)
p.wait()' >"$out/srv.pid" &
	srv=$!
	for _ in $(seq 50); do [ -s "$out/srv.pid" ] && break; sleep 0.1; done
	sleep 0.5 # the server sits in its read
	# every writer of the log appends: one with its own offset would write over the others
	: >"$log"
	setpriv --inh-caps=-all --bounding-set=-all,"$caps" -- "$bin" attach \
		--policy "$root/policies/demo.json" --port 39997 --pid "$(cat "$out/srv.pid")" \
		--audit "$out/attach-audit.jsonl" >>"$log" 2>&1 &
	ap=$!
	for _ in $(seq 100); do grep -q "pins in" "$log" && break; kill -0 $ap 2>/dev/null || break; sleep 0.1; done
	"$bin" stats >>"$log" 2>&1
	kill -TERM $ap 2>/dev/null
	wait $ap
	echo "attach exit: $?" >>"$log"
	pkill -P $srv 2>/dev/null
	kill $srv 2>/dev/null
	wait $srv 2>/dev/null
}
# the pins are host-wide: run alone, or under `flock /tmp/mcpfence-bpf.lock` as the BPF tests
attach_with "$caps" "$out/attach-caps.log"
attach_with "$(echo "$caps" | sed 's/,+kill//')" "$out/attach-nokill.log"
if grep -q "watching TCP port 39997" "$out/attach-caps.log" &&
	grep -q "restarted (SIGSTOP, SIGCONT)" "$out/attach-caps.log" &&
	grep -q "in force" "$out/attach-caps.log" && grep -q "attach exit: 0" "$out/attach-caps.log"; then
	ok "attach --port and --pid (another user's server, blocked in a read) with only the unit's capabilities"
else
	sed 's/^/#   /' "$out/attach-caps.log"
	notok "attach with only the unit's capabilities"
fi
# the check can fail: without CAP_KILL the blocked reader cannot be restarted, and attach says so
check "without CAP_KILL attach warns that the blocked reader cannot be restarted" \
	grep -q "cannot be stopped to restart it" "$out/attach-nokill.log"

# ---- the daemon unit's capabilities suffice for the daemon ----------------------------------
# a client spawns a server that runs as uid 65534 (a copy of cat under a name the policy gives,
# outside the 0700 tree), on socketpairs; the daemon finds it at its start, enrolls it and the
# denied call comes back neutralized
dcaps=$(sed -n 's/^CapabilityBoundingSet=//p' "$sr/lib/systemd/system/mcpfence-daemon.service" |
	tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ /,/g')
echo "#   the daemon unit's capabilities: $dcaps"
pub=$(mktemp -d /tmp/mcpfence-pkg-XXXXXX)
chmod 755 "$pub"
cp /bin/cat "$pub/mcpf-caps-server"
mkdir -p "$out/pdir"
echo '{"version": "1", "default": "allow", "match": {"exe": "*/mcpf-caps-server"},
 "tools": {"get-env": {"action": "deny", "reason": "no"}}}' >"$out/pdir/10-caps.json"
log=$out/daemon-caps.log
: >"$log" # appended to by the daemon and the client: neither writes over the other
setpriv --inh-caps=-all --bounding-set=-all,"$dcaps" -- "$bin" daemon --policy-dir "$out/pdir" \
	--audit "$out/daemon-audit.jsonl" >>"$log" 2>&1 &
dp=$!
for _ in $(seq 600); do grep -q "daemon: finding" "$log" && break; kill -0 $dp 2>/dev/null || break; sleep 0.1; done
timeout 20 python3 -c '
import json, socket, subprocess, sys
a, b = socket.socketpair()
c, d = socket.socketpair()
p = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.argv[1]],
    stdin=b, stdout=d)
b.close()
d.close()
call = lambda i, n: (json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call",
    "params": {"name": n, "arguments": {}}}) + "\n").encode()
a.sendall(call(1, "get-env") + call(2, "echo"))
f = c.makefile("rb")
for _ in range(2):
    print("back:", json.loads(f.readline())["method"], flush=True)
a.shutdown(socket.SHUT_WR)
p.wait()' "$pub/mcpf-caps-server" >>"$log" 2>&1
kill -TERM $dp 2>/dev/null
wait $dp
echo "daemon exit: $?" >>"$log"
"$bin" detach >/dev/null # the daemon leaves its attachment enforcing
rm -rf "$pub"
if grep -q "enrolled: stdin: unix socketpair" "$log" && grep -qx "back: rpc.denied" "$log" &&
	grep -qx "back: tools/call" "$log" && grep -q "daemon exit: 0" "$log"; then
	ok "the daemon finds another user's server at its start and neutralizes its denied call, with only its unit's capabilities"
else
	sed 's/^/#   /' "$log"
	notok "the daemon with only its unit's capabilities"
fi
finish
