// SPDX-License-Identifier: Apache-2.0
// Kernel plane on stdio: `mcpfence attach --pid N` on an MCP server that is already running,
// neither it nor its client changed or restarted. Two transports, as real clients make them:
//
// - AF_UNIX socketpairs: Node's child_process with 'pipe' stdio (libuv) gives the server a
//   socketpair as fd 0 and another as fd 1. The SDK clients (v1 @modelcontextprotocol/sdk,
//   v2 @modelcontextprotocol/client) spawn servers so; enforced with sk_skb, calls denied in
//   flight, the session healthy after.
// - pipes: Python's subprocess.Popen(stdin=PIPE, stdout=PIPE) (Go and Rust clients alike);
//   fixtures/pipe_client.py is such a client. Syscall tracepoints see the writes: with
//   --pipe-action audit calls are counted and audited only; with --pipe-action kill a denied
//   call kills the server before it acts.
//
// The first tests run unattached (what each client gives its server, what the servers answer);
// the rest need root and the kernel plane. Root only for those; one test file at a time
// attaches (kernelLock). What attach is expected to print and write is in EXPECT below.
//
//   node --test tests/e2e/kernel_stdio.test.mjs          (MCPFENCE_BIN=... for another build;
//   KSTDIO_DEBUG=1 prints each attach's output)
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, readFileSync, readdirSync, readlinkSync,
	writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { basename, join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { MCPFENCE, EVERYTHING, FILESYSTEM, connect as connectV1, kernelLock, clearStale, tmp,
	readAudit, until, sleep, attachRun, kernelStats } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const PIPE_CLIENT = join(here, 'fixtures/pipe_client.py');
const V2_SERVER = join(here, 'fixtures/v2_server.mjs');
const NM = join(here, 'node_modules/@modelcontextprotocol');
const PINS = '/sys/fs/bpf/mcpfence';
const CANARY = 'mcpfence-canary-' + randomBytes(6).toString('hex');
const CALL_MS = 15000; // a call's timeout: a call that is dropped fails the test, it does not hang it

const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
// A message or answer in an assertion's text: the start of it (get-env's answer is a whole
// environment).
const brief = (x, n = 400) => (typeof x === 'string' ? x : JSON.stringify(x) ?? String(x)).slice(0, n);

// ════════════════════════════════════════════════════════════════════════════════════════════
// WHAT `attach --pid` IS EXPECTED TO PRINT AND WRITE. Written before the feature landed, from
// the spec it follows; where the final README words a thing otherwise, change it here, and
// only here: every assertion on wording goes through this object.
// ════════════════════════════════════════════════════════════════════════════════════════════
const EXPECT = {
	// On start, for each --pid, a line describing its fd 0 and fd 1:
	//   pid 123 (node): stdin: unix socketpair ...; stdout: unix socketpair ...
	pidLine: (pid, kind) => new RegExp(
		`^pid ${pid} \\([^)\\n]*\\): stdin: ${escapeRe(kind)}\\b.*; stdout: ${escapeRe(kind)}\\b.*$`, 'm'),
	SOCKETPAIR: 'unix socketpair',
	PIPE: 'pipe',
	// Then it enforces once it prints its "watching" line, which ends as --port's does
	// ("watching TCP port N in cgroup C; pins in /sys/fs/bpf/mcpfence").
	ready: /^watching .*; pins in \/sys\/fs\/bpf\/mcpfence$/m,
	// The plane of every audit line of this mode.
	plane: 'stdio-kernel',
	// A call denied on a socketpair: a JSON-RPC error for its id (the server's own -32601 for
	// the neutralized method, its message rewritten), the message naming the policy's reason.
	deniedCode: -32601,
	denied: (reason) => new RegExp(`denied by policy: ${escapeRe(reason)}`),
	// The reason of a call over its rate limit (kernel_events.c: rule_pointer).
	limitReason: 'rate limit reached',
	// The audit line names the process that wrote the call (the SDK client runs in this test
	// process; the Python client is its own process).
	clientIsWriter: true,
	// A killed `attach` leaves its programs enforcing until `mcpfence detach`, as on TCP.
	enforcesAfterKill: true,
	// --pipe-action audit: the audit line of a call the policy denies, which went through.
	auditOnly: (a) => a.decision === 'deny' && /not stopped/.test(a.reason ?? ''),
	// --pipe-action kill: the audit line of the denied call whose server was killed.
	killed: (a) => a.decision === 'deny' && /killed/.test(a.reason ?? ''),
	// The exit of a server killed for a denied call, as subprocess reports it (-SIGKILL).
	killedReturncode: -9,
	// `attach --pid` on a process that does not exist: exit 1 and this on stderr.
	noSuchPid: /no such process/i,
};
// ════════════════════════════════════════════════════════════════════════════════════════════

// Why nothing here can run: the unattached tests need the npm packages and python3.
function whyNotBase() {
	for (const p of [EVERYTHING, FILESYSTEM, join(NM, 'sdk/package.json'),
		join(NM, 'client/package.json'), join(NM, 'server/package.json')])
		if (!existsSync(p)) return `${p} missing (make setup-test runs npm ci in tests/e2e)`;
	const py = spawnSync('python3', ['-c', 'import sys; sys.exit(sys.version_info < (3, 7))']);
	if (py.error || py.status !== 0) return 'python3 (3.7 or later) is not installed (scripts/setup.sh test installs it)';
	return null;
}
// Why the attached tests cannot run.
function whyNotKernel() {
	if (process.getuid() !== 0) return 'needs root (BPF programs, pidfd_getfd on the server)';
	if (!existsSync(MCPFENCE)) return `${MCPFENCE} is not built (make)`;
	return whyNotBase();
}
const baseSkip = whyNotBase();
// other test files attach too: one at a time (taken before looking for an attachment in place)
const unlock = process.getuid() === 0 && !whyNotKernel() ? await kernelLock() : () => {};
const kernelSkip = whyNotKernel() ?? (unlock ? null : 'another test file kept the kernel plane for 20 minutes');
const skipBase = { skip: baseSkip || false, timeout: 120000 };
const skipKernel = { skip: kernelSkip || false, timeout: 180000 };

const POLICY = {
	version: '1',
	default: 'allow',
	tools: {
		'get-env': { action: 'deny', reason: 'environment is private' },
		'get-sum': { limits: [{ counter: 'sums', window: 'day', max: 3 }] },
		write_file: { action: 'deny', reason: 'read-only' },
	},
};

let dir;
const children = new Set(); // every process this file started: killed in after()
const serverPids = new Set(); // servers that clients started: killed in after()
const attaches = new Set();

before(() => {
	if (baseSkip) return;
	dir = tmp('mcpfence-kstdio-');
	writeFileSync(join(dir, 'policy.json'), JSON.stringify(POLICY, null, 2));
	if (!kernelSkip) clearStale();
});

after(async () => {
	for (const a of attaches) await stopAttach(a);
	for (const c of children)
		if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
	for (const pid of serverPids) {
		try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
	}
	if (!kernelSkip && existsSync(PINS)) spawnSync(MCPFENCE, ['detach']);
	if (dir) rmSync(dir, { recursive: true, force: true });
	unlock?.();
});

// ─── attach ────────────────────────────────────────────────────────────────────────────────

let nAudit = 0;
// `mcpfence attach --policy P --pid N...`, once it prints that it enforces. Each attach writes
// an audit file of its own (a.audit).
async function startAttach(pids, { pipeAction = null, policy = join(dir, 'policy.json'),
	policyDir = null, extra = [] } = {}) {
	const audit = join(dir, `audit-${++nAudit}.jsonl`);
	const args = policyDir ? ['--policy-dir', policyDir] : ['--policy', policy];
	for (const p of pids) args.push('--pid', String(p));
	if (pipeAction) args.push('--pipe-action', pipeAction);
	args.push('--audit', audit, ...extra);
	const a = await attachRun(args, { ready: EXPECT.ready });
	a.audit = audit;
	children.add(a.child);
	attaches.add(a);
	return a;
}

// `mcpfence daemon --policy-dir DIR` once it finds servers (its audit file: d.audit).
async function startDaemon(policyDir, extra = []) {
	const audit = join(dir, `audit-${++nAudit}.jsonl`);
	const d = await attachRun(['--policy-dir', policyDir, '--audit', audit, ...extra],
		{ cmd: 'daemon', ready: /^daemon: finding .*; pins in \/sys\/fs\/bpf\/mcpfence$/m });
	d.audit = audit;
	children.add(d.child);
	attaches.add(d);
	return d;
}

// Stop attach (SIGTERM, or the signal given), then `mcpfence detach`: nothing left attached.
// After SIGKILL the caller detaches, when it has checked what is left.
async function stopAttach(a, signal = 'SIGTERM') {
	if (process.env.KSTDIO_DEBUG) console.error(`--- ${a.args.join(' ')}\n${a.out}`);
	await a.stop(signal);
	attaches.delete(a);
}

// A test that fails half way leaves no attachment to the next one.
afterEach(async () => {
	for (const a of [...attaches]) await stopAttach(a);
});

function detach() {
	const r = spawnSync(MCPFENCE, ['detach'], { encoding: 'utf8' });
	assert.equal(r.status, 0, `mcpfence detach: ${r.stdout}${r.stderr}`);
	assert.ok(!existsSync(PINS), `${PINS} left after detach`);
}

const stats = () => kernelStats();

// `mcpfence status --json` once the row of the server pid has made calls calls (attach writes
// its rows at most once a second): that row, and the whole document.
async function statusRow(pid, calls) {
	let doc, row;
	await until(() => {
		const r = spawnSync(MCPFENCE, ['status', '--json'], { encoding: 'utf8' });
		if (r.status !== 0) return false;
		doc = JSON.parse(r.stdout);
		row = doc.sessions.find((x) => x.server_pid === pid);
		return row?.calls === calls;
	}, 5000, `mcpfence status: ${calls} calls of pid ${pid} (have ${JSON.stringify(row ?? doc)})`);
	return { row, doc };
}

// The audit lines of an attach, once there are n of them; then no more come for 300 ms.
async function auditLines(a, n) {
	await until(() => readAudit(a.audit).length >= n, 5000,
		`${n} audit lines in ${a.audit} (have ${readAudit(a.audit).length})`);
	await sleep(300);
	return readAudit(a.audit);
}

// Not across a day boundary (UTC midnight): a budget of window "day" would start again.
async function notAtMidnight() {
	const left = 86400 - (Date.now() / 1000) % 86400;
	if (left < 60) await sleep(left * 1000 + 500);
}

// ─── clients ───────────────────────────────────────────────────────────────────────────────

const require = createRequire(join(here, 'package.json'));
const imp = (m) => import(pathToFileURL(require.resolve(m)).href);

// A session of an SDK client that spawned its server: v1 or v2, and the calls as each makes
// them (with a timeout, so a call that is dropped fails instead of hanging). Both spawn with
// stdio ['pipe', 'pipe', stderr] (cross-spawn): socketpairs. The v2 client in mode 'auto' or
// {pin} first spawns a disposable sibling of the server for its server/discover probe, reaps
// it, then spawns the session's own: transport.pid, after connect, is the one to attach; in the
// 2026-07-28 era that process is sent no initialize nor discover, its first message is a call.
async function sdkSession(v, { server = [EVERYTHING], mode = null } = {}) {
	const env = { ...process.env, MCPFENCE_CANARY: CANARY };
	let s;
	if (v === 1) {
		const c = await connectV1({ server, env });
		s = { v, client: c.client, transport: c.transport, close: c.close,
			call: (name, args = {}) => c.client.callTool({ name, arguments: args }, undefined,
				{ timeout: CALL_MS }) };
	} else {
		const { Client } = await imp('@modelcontextprotocol/client');
		const { StdioClientTransport } = await imp('@modelcontextprotocol/client/stdio');
		const transport = new StdioClientTransport({ command: process.execPath, args: server,
			env, stderr: 'pipe' });
		const client = new Client({ name: 'mcpfence-e2e-v2', version: '1.0.0' },
			mode ? { versionNegotiation: { mode } } : {});
		await client.connect(transport);
		s = { v, client, transport, close: () => client.close(),
			call: (name, args = {}) => client.callTool({ name, arguments: args },
				{ timeout: CALL_MS }) };
	}
	s.pid = s.transport.pid;
	assert.ok(s.pid > 0, 'the transport names its server pid');
	serverPids.add(s.pid);
	return s;
}

// The Python client over pipes (fixtures/pipe_client.py), its server started with argv.
// cmd(obj) sends one command and resolves with its answer line (commands run in order).
async function pipeSession(server, { env = {} } = {}) {
	const child = spawn('python3', [PIPE_CLIENT, '--', process.execPath, ...server], {
		stdio: ['pipe', 'pipe', 'pipe'],
		env: { ...process.env, MCPFENCE_CANARY: CANARY, ...env },
	});
	children.add(child);
	const lines = [], waiters = [];
	let buf = '', stderr = '';
	child.stdout.setEncoding('utf8');
	child.stdout.on('data', (d) => {
		buf += d;
		let i;
		while ((i = buf.indexOf('\n')) >= 0) {
			const l = JSON.parse(buf.slice(0, i));
			buf = buf.slice(i + 1);
			if (waiters.length) waiters.shift()(l);
			else lines.push(l);
		}
	});
	child.stderr.on('data', (d) => { stderr += d; });
	const next = (ms = CALL_MS + 5000, what = 'a line') => {
		if (lines.length) return Promise.resolve(lines.shift());
		return new Promise((res, rej) => {
			const w = (l) => { clearTimeout(t); res(l); };
			const t = setTimeout(() => {
				waiters.splice(waiters.indexOf(w), 1);
				rej(new Error(`pipe_client.py: no answer to ${what} in ${ms} ms; stderr:\n${stderr}`));
			}, ms);
			waiters.push(w);
		});
	};
	const spawned = await next(15000, 'its start');
	assert.equal(spawned.event, 'spawned', JSON.stringify(spawned));
	serverPids.add(spawned.pid);
	const p = {
		child, pid: spawned.pid, spawned, stderr: () => stderr,
		cmd(obj) {
			child.stdin.write(JSON.stringify(obj) + '\n');
			return next(1000 * (obj.timeout ?? CALL_MS / 1000) + 5000, JSON.stringify(obj).slice(0, 200));
		},
		async init() {
			const r = await p.cmd({ op: 'initialize' });
			assert.ok(r.response?.result, `initialize: ${brief(r)}`);
			return r;
		},
		call: (name, args = {}, id, extra = {}) =>
			p.cmd({ op: 'call', name, arguments: args, ...(id === undefined ? {} : { id }), ...extra }),
		async close() {
			if (child.exitCode !== null) return;
			child.stdin.end();
			await Promise.race([new Promise((r) => child.on('exit', r)), sleep(10000)]);
			if (child.exitCode === null) child.kill('SIGKILL');
		},
	};
	return p;
}

// A client of our own on socketpairs, as the SDK's spawn makes them, writing bytes as given:
// each write() resolves once Node handed it to the kernel, so writes are separate sends.
function rawSocketpairSession(server = [EVERYTHING]) {
	const child = spawn(process.execPath, server, { stdio: ['pipe', 'pipe', 'pipe'],
		env: { ...process.env, MCPFENCE_CANARY: CANARY } });
	children.add(child);
	serverPids.add(child.pid);
	const msgs = [];
	let buf = '', rawOut = '';
	child.stdout.setEncoding('utf8');
	child.stdout.on('data', (d) => {
		rawOut += d;
		buf += d;
		let i;
		while ((i = buf.indexOf('\n')) >= 0) {
			const l = buf.slice(0, i);
			buf = buf.slice(i + 1);
			try { msgs.push(JSON.parse(l)); } catch { msgs.push({ unparsed: l }); }
		}
	});
	child.stderr.on('data', () => {});
	const r = {
		child, pid: child.pid, msgs, rawOut: () => rawOut,
		write: (data) => new Promise((res, rej) =>
			child.stdin.write(data, (e) => (e ? rej(e) : res()))),
		async writeEach(chunks, pauseMs = 2) {
			for (const c of chunks) {
				await r.write(c);
				if (pauseMs) await sleep(pauseMs);
			}
		},
		byId: (id, ms = CALL_MS) => until(() => msgs.find((m) => m.id === id && (m.result || m.error)),
			ms, `the answer to id ${id}`),
		async init() {
			await r.write(line({ jsonrpc: '2.0', id: 'init', method: 'initialize', params: {
				protocolVersion: '2025-06-18', capabilities: {},
				clientInfo: { name: 'raw', version: '1' } } }));
			await r.byId('init');
			await r.write(line({ jsonrpc: '2.0', method: 'notifications/initialized' }));
		},
		close() { child.stdin.end(); },
	};
	return r;
}

const callMsg = (id, name, args = {}) =>
	JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });
const line = (o) => (typeof o === 'string' ? o : JSON.stringify(o)) + '\n';
const bytes = (s) => [...Buffer.from(s)].map((b) => Buffer.from([b]));

// A rejected call whose error is the denial: EXPECT.deniedCode, the message naming the reason.
async function assertDenied(p, reason, what) {
	await assert.rejects(p, (e) => {
		assert.match(e.message, EXPECT.denied(reason), `${what}: ${brief(e.message)}`);
		if (EXPECT.deniedCode !== null) assert.equal(e.code, EXPECT.deniedCode, `${what}: ${brief(e.message)}`);
		return true;
	}, `${what}: not denied`);
}

// The answer (a message) to a denied call, written by a raw client.
// A denied call whose line was made unreadable: no answer for its id, or a denial; never a result.
function assertNoAnswerOrDenied(r, n, what) {
	const m = r.msgs.find((x) => x.id === n);
	if (m) assertDeniedMsg(m, 'environment is private', what);
}

function assertDeniedMsg(m, reason, what) {
	assert.ok(m.error, `${what}: not an error: ${brief(m)}`);
	assert.match(m.error.message, EXPECT.denied(reason), `${what}: ${brief(m)}`);
	if (EXPECT.deniedCode !== null) assert.equal(m.error.code, EXPECT.deniedCode, what);
}

// ─── what each client gives its server ─────────────────────────────────────────────────────

// fd N of pid: {link, type: 'socket'|'pipe'|..., ino}
function fdOf(pid, fd) {
	const link = readlinkSync(`/proc/${pid}/fd/${fd}`);
	const m = /^(\w+):\[(\d+)\]$/.exec(link);
	return { link, type: m?.[1] ?? 'file', ino: m?.[2] ?? null };
}
// The AF_UNIX socket of inode ino: {type: 1 stream, state: 3 connected, path}, from /proc/net/unix.
function unixSock(ino) {
	for (const r of readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
		const f = r.trim().split(/\s+/);
		if (f[6] === ino) return { type: parseInt(f[4], 16), state: parseInt(f[5], 16), path: f[7] ?? null };
	}
	return null;
}
// The peer inode of an AF_UNIX socket (sock_diag, through ss), or null without ss.
function unixPeer(ino) {
	const r = spawnSync('ss', ['-xan'], { encoding: 'utf8' });
	if (r.error || r.status !== 0) return null;
	for (const l of r.stdout.split('\n')) {
		const f = l.trim().split(/\s+/);
		if (f[5] === ino) return f[7];
	}
	return undefined;
}
// The fds of pid that are `${type}:[ino]`.
function holds(pid, type, ino) {
	return readdirSync(`/proc/${pid}/fd`).filter((fd) => {
		try { return readlinkSync(`/proc/${pid}/fd/${fd}`) === `${type}:[${ino}]`; } catch { return false; }
	});
}

// The server's fd 0 and 1 are connected AF_UNIX stream sockets, each its own socketpair (no
// path), whose other end this process (the client) holds.
function assertSocketpairs(pid, what) {
	const seen = [];
	for (const fd of [0, 1]) {
		const f = fdOf(pid, fd);
		assert.equal(f.type, 'socket', `${what}: fd ${fd} is ${f.link}`);
		const u = unixSock(f.ino);
		assert.ok(u, `${what}: fd ${fd} (${f.link}) is not an AF_UNIX socket`);
		assert.equal(u.type, 1, `${what}: fd ${fd} is not SOCK_STREAM`);
		assert.equal(u.state, 3, `${what}: fd ${fd} is not connected`);
		assert.equal(u.path, null, `${what}: fd ${fd} has a path: not a socketpair`);
		const peer = unixPeer(f.ino);
		if (peer !== null) {
			assert.ok(peer, `${what}: fd ${fd}: no peer`);
			assert.ok(holds(process.pid, 'socket', peer).length > 0,
				`${what}: fd ${fd}'s peer socket:[${peer}] is not the client's`);
		}
		seen.push(`fd ${fd} ${f.link} (AF_UNIX stream, connected, peer socket:[${peer ?? '?'}] in the client)`);
	}
	assert.notEqual(fdOf(pid, 0).ino, fdOf(pid, 1).ino, `${what}: fd 0 and 1 are one socket`);
	return seen.join('; ');
}

test('stdio fds: SDK v1 and v2 clients give the server socketpairs, the Python client pipes', skipBase, async () => {
	for (const [v, opts, what] of [[1, {}, 'SDK v1 StdioClientTransport'],
		[2, {}, 'SDK v2 StdioClientTransport (2025 handshake)'],
		[2, { server: [V2_SERVER], mode: { pin: '2026-07-28' } }, 'SDK v2, pinned 2026-07-28, v2 server']]) {
		const s = await sdkSession(v, opts);
		try {
			const r = await s.call('echo', { message: 'fds' });
			assert.equal(r.content[0].text, 'Echo: fds');
			console.log(`# ${what}: server pid ${s.pid}: ${assertSocketpairs(s.pid, what)}`);
		} finally {
			await s.close();
		}
	}
	const p = await pipeSession([EVERYTHING]);
	try {
		await p.init();
		for (const fd of [0, 1]) {
			const f = fdOf(p.pid, fd);
			assert.equal(f.type, 'pipe', `pipe_client.py: server fd ${fd} is ${f.link}`);
			assert.ok(holds(p.child.pid, 'pipe', f.ino).length > 0,
				`pipe_client.py: the other end of ${f.link} is not the client's`);
		}
		assert.match(p.spawned.stdin, /^pipe:\[\d+\]$/);
		assert.match(p.spawned.stdout, /^pipe:\[\d+\]$/);
		console.log(`# pipe_client.py: server pid ${p.pid}: fd 0 ${p.spawned.stdin}, fd 1 ${p.spawned.stdout} (the client holds the other ends)`);
	} finally {
		await p.close();
	}
});

// ─── unattached: what the servers answer ───────────────────────────────────────────────────

test('unattached: the Python client over pipes, server-everything answers every call', skipBase, async () => {
	const p = await pipeSession([EVERYTHING]);
	try {
		const init = await p.init();
		assert.equal(init.response.result.protocolVersion, '2025-06-18');
		const list = await p.cmd({ op: 'list' });
		const names = list.response.result.tools.map((t) => t.name);
		for (const n of ['echo', 'get-env', 'get-sum']) assert.ok(names.includes(n), names.join());
		let r = await p.call('echo', { message: 'over pipes' });
		assert.equal(r.response.result.content[0].text, 'Echo: over pipes');
		r = await p.call('get-env', {}, 'env');
		assert.equal(r.id, 'env');
		assert.ok(JSON.stringify(r.response).includes(CANARY), 'get-env shows the canary');
		r = await p.call('get-sum', { a: 2, b: 40 });
		assert.equal(r.response.result.content[0].text, 'The sum of 2 and 40 is 42.');

		// raw writes, as the hostile cases send them
		r = await p.cmd({ op: 'raw', data: line(callMsg(50, 'echo', { message: 'bytewise' })),
			split: 1, expect: [50] });
		assert.equal(r.writes, line(callMsg(50, 'echo', { message: 'bytewise' })).length);
		assert.equal(r.responses[0].response.result.content[0].text, 'Echo: bytewise');
		r = await p.cmd({ op: 'raw', data: line(callMsg(51, 'echo', { message: 'a' })) +
			line(callMsg(52, 'get-env')), expect: [51, 52] });
		assert.equal(r.writes, 1);
		assert.equal(r.responses.length, 2, brief(r));
		assert.ok(JSON.stringify(r.responses[1]).includes(CANARY));
		// a bare CR between two messages: the Node SDK splits lines on \n only, so it reads
		// one line that is not JSON and answers neither (a Python server would read two)
		r = await p.cmd({ op: 'raw', data: callMsg(53, 'echo', { message: 'c' }) + '\r' +
			line(callMsg(54, 'echo', { message: 'd' })), expect: [53, 54], timeout: 2 });
		assert.deepEqual(r.missing, [53, 54], brief(r));
		r = await p.call('echo', { message: 'after' });
		assert.equal(r.response.result.content[0].text, 'Echo: after');
		const c = await p.cmd({ op: 'close' });
		assert.equal(c.returncode, 0);
	} finally {
		await p.close();
	}
});

test('unattached: the v2 client, 2025 handshake with server-everything, 2026-07-28 with a v2 server', skipBase, async () => {
	const s = await sdkSession(2);
	try {
		assert.equal(s.client.getProtocolEra(), 'legacy');
		const tools = (await s.client.listTools()).tools.map((t) => t.name);
		assert.ok(tools.includes('echo') && tools.includes('get-env'), tools.join());
		assert.equal((await s.call('echo', { message: 'v2' })).content[0].text, 'Echo: v2');
		assert.ok(JSON.stringify(await s.call('get-env')).includes(CANARY));
		assert.equal((await s.call('get-sum', { a: 1, b: 2 })).content[0].text, 'The sum of 1 and 2 is 3.');
	} finally {
		await s.close();
	}
	const m = await sdkSession(2, { server: [V2_SERVER], mode: { pin: '2026-07-28' } });
	try {
		assert.equal(m.client.getProtocolEra(), 'modern');
		assert.equal(m.client.getNegotiatedProtocolVersion(), '2026-07-28');
		assert.equal((await m.call('echo', { message: 'modern' })).content[0].text, 'Echo: modern');
		assert.ok(JSON.stringify(await m.call('get-env')).includes(CANARY));
		assert.equal((await m.call('get-sum', { a: 1, b: 2 })).content[0].text, 'The sum of 1 and 2 is 3.');
	} finally {
		await m.close();
	}
});

// ─── attached: socketpairs ─────────────────────────────────────────────────────────────────

// The SDK v1 client and server-everything, attached after the session served calls: allowed
// calls answer exactly as unattached, a denial names its reason and the session goes on, a
// limit of 3 lets 3 through, stats and audit count the calls made since attach, one line each;
// after detach the session runs unenforced.
test('socketpair (SDK v1): allowed unchanged, denials with reason, limits, stats, audit, detach', skipKernel, async () => {
	await notAtMidnight();
	const s = await sdkSession(1);
	try {
		const base = {
			echo: await s.call('echo', { message: 'hello kernel' }),
			sum: await s.call('get-sum', { a: 2, b: 40 }),
			env: await s.call('get-env'),
		};
		assert.ok(JSON.stringify(base.env).includes(CANARY), 'get-env shows the canary unattached');

		const a = await startAttach([s.pid]);
		assert.match(a.out, EXPECT.pidLine(s.pid, EXPECT.SOCKETPAIR), a.out);
		assert.deepEqual(await s.call('echo', { message: 'hello kernel' }), base.echo);
		await assertDenied(s.call('get-env'), 'environment is private', 'get-env');
		// the next call on the same session works
		assert.deepEqual(await s.call('echo', { message: 'hello kernel' }), base.echo);
		// 3 a day: exactly 3 through, the 4th and 5th denied
		for (let i = 0; i < 3; i++) assert.deepEqual(await s.call('get-sum', { a: 2, b: 40 }), base.sum);
		for (let i = 4; i <= 5; i++)
			await assertDenied(s.call('get-sum', { a: 2, b: 40 }), EXPECT.limitReason, `get-sum #${i}`);

		// 8 calls since attach; the 3 before it are not counted
		const st = stats();
		assert.equal(st.get('echo', 'allow'), 2, st.s);
		assert.equal(st.get('get-env', 'rule'), 1, st.s);
		assert.equal(st.get('get-sum', 'allow'), 3, st.s);
		assert.equal(st.get('get-sum', 'limit'), 2, st.s);
		assert.equal(st.total(), 8, st.s);
		assert.ok(st.j.calls.every((c) => c.policy === 'policy'), st.s);
		// status: the session, its client, the calls and denials since attach
		const { row, doc } = await statusRow(s.pid, 8);
		assert.equal(doc.attachment, 'live');
		assert.equal(doc.sessions.length, 1, JSON.stringify(doc));
		assert.equal(row.plane, EXPECT.plane);
		assert.equal(row.conn, `socketpair:${s.pid}`);
		assert.equal(row.client_pid, process.pid, JSON.stringify(row));
		assert.equal(row.denied, 3, JSON.stringify(row));

		const lines = await auditLines(a, 8);
		assert.equal(lines.length, 8, JSON.stringify(lines));
		assert.ok(lines.every((l) => l.plane === EXPECT.plane), JSON.stringify(lines));
		assert.equal(new Set(lines.map((l) => JSON.stringify(l.id))).size, 8, 'one line per call');
		if (EXPECT.clientIsWriter)
			assert.ok(lines.every((l) => l.client?.pid === process.pid), JSON.stringify(lines));
		const env = lines.filter((l) => l.tool === 'get-env');
		assert.equal(env.length, 1);
		assert.equal(env[0].decision, 'deny');
		assert.equal(env[0].kind, 'rule');
		assert.equal(env[0].rule, '/tools/get-env/action');
		assert.equal(env[0].reason, 'environment is private');
		const sums = lines.filter((l) => l.tool === 'get-sum');
		assert.deepEqual(sums.map((l) => l.decision), ['allow', 'allow', 'allow', 'deny', 'deny']);
		assert.ok(sums.slice(3).every((l) => l.kind === 'limit' && l.rule === '/tools/get-sum/limits/0'));
		assert.ok(lines.filter((l) => l.tool === 'echo').every((l) => l.decision === 'allow'));

		await stopAttach(a);
		assert.ok(!existsSync(PINS), 'nothing left attached');
		// detached: the same session, unenforced
		assert.deepEqual(await s.call('echo', { message: 'hello kernel' }), base.echo);
		assert.ok(JSON.stringify(await s.call('get-env')).includes(CANARY), 'get-env runs after detach');
		assert.deepEqual(await s.call('get-sum', { a: 2, b: 40 }), base.sum);
		const gone = spawnSync(MCPFENCE, ['stats'], { encoding: 'utf8' });
		assert.equal(gone.status, 1);
		assert.match(gone.stderr, /nothing attached/);
		const none = spawnSync(MCPFENCE, ['status'], { encoding: 'utf8' });
		assert.equal(none.status, 1);
		assert.match(none.stderr, /nothing attached/);
	} finally {
		await s.close();
	}
});

test('socketpair: attach killed (SIGKILL), then detach: the session runs unenforced', skipKernel, async () => {
	const s = await sdkSession(1);
	try {
		const base = await s.call('echo', { message: 'k' });
		const a = await startAttach([s.pid]);
		await assertDenied(s.call('get-env'), 'environment is private', 'get-env, attached');
		await statusRow(s.pid, 1);
		await stopAttach(a, 'SIGKILL');
		if (EXPECT.enforcesAfterKill) {
			assert.ok(existsSync(PINS), 'the attachment stays pinned after SIGKILL');
			await assertDenied(s.call('get-env'), 'environment is private', 'get-env, attach killed');
			// status: stale, with the rows the killed attach wrote last
			const st = spawnSync(MCPFENCE, ['status', '--json'], { encoding: 'utf8' });
			assert.equal(st.status, 0, st.stderr);
			const doc = JSON.parse(st.stdout);
			assert.equal(doc.attachment, 'stale');
			assert.equal(doc.sessions.find((x) => x.server_pid === s.pid)?.calls, 1, st.stdout);
			assert.match(spawnSync(MCPFENCE, ['status'], { encoding: 'utf8' }).stdout,
				/^attachment: stale, attach pid \d+, .*\n {2}\(attach is gone/);
		}
		assert.deepEqual(await s.call('echo', { message: 'k' }), base);
		detach();
		assert.equal(spawnSync(MCPFENCE, ['status'], { encoding: 'utf8' }).status, 1,
			'status after detach: nothing attached');
		assert.deepEqual(await s.call('echo', { message: 'k' }), base);
		assert.ok(JSON.stringify(await s.call('get-env')).includes(CANARY), 'get-env runs after detach');
	} finally {
		await s.close();
	}
	// and a new attach finds nothing in its way
	const s2 = await sdkSession(1);
	try {
		const a = await startAttach([s2.pid]);
		await assertDenied(s2.call('get-env'), 'environment is private', 'get-env, attached again');
		await stopAttach(a);
	} finally {
		await s2.close();
	}
});

// A client closes its server while attached: that session ends (the attach log says so, its
// status row says "ended", its entries leave stdio_streams), the other session is enforced as
// before.
test('socketpair: a session that ends is removed; the others stay enforced', skipKernel, async () => {
	const gone = await sdkSession(1), kept = await sdkSession(1);
	let closed = false;
	try {
		const base = await kept.call('echo', { message: 'kept' });
		const a = await startAttach([gone.pid, kept.pid]);
		// every value holds a scan buffer: bpftool's JSON is megabytes long
		const streams = () => JSON.parse(spawnSync('bpftool', ['-j', 'map', 'dump', 'pinned',
			`${PINS}/stdio_streams`], { encoding: 'utf8', maxBuffer: 1 << 28 }).stdout).length;
		assert.equal(streams(), 4, 'a request and an answer stream per session');
		await assertDenied(gone.call('get-env'), 'environment is private', 'get-env, to be closed');
		await gone.close();
		closed = true;
		await until(() => /pid \d+ \([^)]*\): its stdin is read by no one any more: session ended/
			.test(a.out), 5000, `the end of pid ${gone.pid} in the attach log`);
		assert.match(a.out, new RegExp(`pid ${gone.pid} \\(`));
		assert.equal(streams(), 2, 'the ended session\'s streams removed');
		const { row } = await statusRow(gone.pid, 1);
		assert.equal(row.ended, true, JSON.stringify(row));
		assert.deepEqual(await kept.call('echo', { message: 'kept' }), base);
		await assertDenied(kept.call('get-env'), 'environment is private', 'get-env, the other session');
		const k = (await statusRow(kept.pid, 2)).row;
		assert.equal(k.ended, false, JSON.stringify(k));
		await stopAttach(a);
	} finally {
		if (!closed) await gone.close();
		await kept.close();
	}
});

// Two servers in one attach: server-everything under the v2 client's 2025 handshake, and a v2
// server under a client pinned to 2026-07-28 (no initialize; every request carries _meta).
test('socketpair (SDK v2): both eras, two --pid in one attach', skipKernel, async () => {
	await notAtMidnight();
	const legacy = await sdkSession(2);
	const modern = await sdkSession(2, { server: [V2_SERVER], mode: { pin: '2026-07-28' } });
	try {
		assert.equal(modern.client.getProtocolEra(), 'modern');
		const base = {
			legacyEcho: await legacy.call('echo', { message: 'v2' }),
			modernEcho: await modern.call('echo', { message: 'v2' }),
			modernSum: await modern.call('get-sum', { a: 1, b: 2 }),
		};
		const a = await startAttach([legacy.pid, modern.pid]);
		assert.match(a.out, EXPECT.pidLine(legacy.pid, EXPECT.SOCKETPAIR), a.out);
		assert.match(a.out, EXPECT.pidLine(modern.pid, EXPECT.SOCKETPAIR), a.out);
		for (const [s, echo, what] of [[legacy, base.legacyEcho, 'legacy'], [modern, base.modernEcho, 'modern']]) {
			assert.deepEqual(await s.call('echo', { message: 'v2' }), echo, what);
			await assertDenied(s.call('get-env'), 'environment is private', `${what}: get-env`);
			assert.deepEqual(await s.call('echo', { message: 'v2' }), echo, `${what}: after the denial`);
		}
		for (let i = 0; i < 3; i++) assert.deepEqual(await modern.call('get-sum', { a: 1, b: 2 }), base.modernSum);
		for (let i = 4; i <= 5; i++)
			await assertDenied(modern.call('get-sum', { a: 1, b: 2 }), EXPECT.limitReason, `modern get-sum #${i}`);

		const st = stats();
		assert.equal(st.get('echo', 'allow'), 4, st.s);
		assert.equal(st.get('get-env', 'rule'), 2, st.s);
		assert.equal(st.get('get-sum', 'allow'), 3, st.s);
		assert.equal(st.get('get-sum', 'limit'), 2, st.s);
		assert.equal(st.total(), 11, st.s);
		// a row per server
		const l = (await statusRow(legacy.pid, 3)).row, m = (await statusRow(modern.pid, 8)).row;
		assert.deepEqual([l.denied, m.denied], [1, 3], JSON.stringify([l, m]));
		const lines = await auditLines(a, 11);
		assert.equal(lines.length, 11, JSON.stringify(lines));
		assert.ok(lines.every((l) => l.plane === EXPECT.plane), JSON.stringify(lines));
		assert.equal(lines.filter((l) => l.tool === 'get-env' && l.decision === 'deny').length, 2);
		await stopAttach(a);
		assert.ok(JSON.stringify(await legacy.call('get-env')).includes(CANARY), 'legacy: get-env after detach');
		assert.ok(JSON.stringify(await modern.call('get-env')).includes(CANARY), 'modern: get-env after detach');
	} finally {
		await legacy.close();
		await modern.close();
	}
});

// A directory of policies: each server gets the first file whose "match" fits it (here its
// command line), else default.json; a change to a file is in force without a signal, for the
// sessions it fits alone.
test('socketpair: --policy-dir gives each server its own policy, and follows changes', skipKernel, async () => {
	await notAtMidnight();
	const pdir = join(dir, 'policies');
	mkdirSync(pdir, { recursive: true });
	const v2Policy = (reason) => ({ version: '1', default: 'allow',
		match: { argv: '* */v2_server.mjs' },
		tools: { echo: { action: 'deny', reason } } });
	writeFileSync(join(pdir, 'default.json'), JSON.stringify(POLICY));
	writeFileSync(join(pdir, '10-v2.json'), JSON.stringify(v2Policy('no echo for v2')));
	const everything = await sdkSession(1);
	const modern = await sdkSession(2, { server: [V2_SERVER], mode: { pin: '2026-07-28' } });
	const piped = await pipeSession([V2_SERVER]); // the v2 server again, on pipes
	try {
		const base = {
			echo: await everything.call('echo', { message: 'dir' }),
			modernSum: await modern.call('get-sum', { a: 1, b: 2 }),
		};
		await piped.init();
		const a = await startAttach([everything.pid, modern.pid, piped.pid], { policyDir: pdir });
		const said = (pid, file) => new RegExp(`pid ${pid} \\([^)]*\\): policy ${escapeRe(join(pdir, file))}$`, 'm');
		assert.match(a.out, said(everything.pid, 'default.json'), a.out);
		assert.match(a.out, said(modern.pid, '10-v2.json'), a.out);
		assert.match(a.out, said(piped.pid, '10-v2.json'), a.out);

		// each its own: get-env denied for server-everything alone, echo for the v2 server alone
		assert.deepEqual(await everything.call('echo', { message: 'dir' }), base.echo);
		await assertDenied(everything.call('get-env'), 'environment is private', 'everything: get-env');
		await assertDenied(modern.call('echo', { message: 'dir' }), 'no echo for v2', 'v2: echo');
		assert.ok(JSON.stringify(await modern.call('get-env')).includes(CANARY), 'v2: get-env allowed');
		// the limit of default.json is not the v2 server's: 4 sums go through there
		for (let i = 0; i < 4; i++) assert.deepEqual(await modern.call('get-sum', { a: 1, b: 2 }), base.modernSum);

		const { row: e } = await statusRow(everything.pid, 2), { row: m } = await statusRow(modern.pid, 6);
		assert.equal(e.policy, join(pdir, 'default.json'), JSON.stringify(e));
		assert.equal(m.policy, join(pdir, '10-v2.json'), JSON.stringify(m));
		// on pipes (--pipe-action audit): its own policy's verdicts, audited, not stopped
		await piped.call('echo', { message: 'dir' });
		await piped.call('get-env');
		const lines = await auditLines(a, 10);
		assert.equal(lines.length, 10, JSON.stringify(lines));
		const pl = lines.filter((l) => l.server === `pid:${piped.pid}`).map((l) => [l.tool, l.decision]);
		assert.deepEqual(pl, [['echo', 'deny'], ['get-env', 'allow']], JSON.stringify(lines));
		for (const l of lines)
			assert.equal(l.policy, join(pdir, l.server === `pid:${everything.pid}` ? 'default.json' :
				'10-v2.json'), JSON.stringify(l));
		const st = stats();
		const inForce = st.j.policies.filter((p) => p.in_force).map((p) => p.name).sort();
		assert.deepEqual(inForce, ['10-v2', 'default'], st.s);

		// a change of one file: in force for its sessions, with no signal; the other untouched
		writeFileSync(join(pdir, '10-v2.json'), JSON.stringify(v2Policy('echo closed again')));
		await until(() => (a.out.match(/10-v2\.json in force \(generation 1, slot/g) ?? []).length === 1,
			5000, 'the changed file in force');
		await assertDenied(modern.call('echo', { message: 'dir' }), 'echo closed again', 'v2: echo after the change');
		assert.deepEqual(await everything.call('echo', { message: 'dir' }), base.echo, 'everything: echo after the change');
		// a file that is not a valid policy: refused, the policies in force stay
		writeFileSync(join(pdir, '10-v2.json'), '{"version": "1", "default": "maybe"');
		await until(() => /the policies in force stay/.test(a.out), 5000, 'the bad file refused');
		await assertDenied(modern.call('echo', { message: 'dir' }), 'echo closed again', 'v2: echo after a bad file');
		await stopAttach(a);
	} finally {
		await everything.close();
		await modern.close();
		await piped.close();
	}
});

test('attach --policy-dir: a server no policy fits, with no default.json: refused', skipKernel, async () => {
	const pdir = join(dir, 'policies-nodefault');
	mkdirSync(pdir, { recursive: true });
	writeFileSync(join(pdir, '10-other.json'), JSON.stringify({ version: '1', default: 'deny',
		match: { exe: '/nonexistent/*' } }));
	const s = await sdkSession(1);
	try {
		const r = spawnSync(MCPFENCE, ['attach', '--policy-dir', pdir, '--pid', String(s.pid)],
			{ encoding: 'utf8', timeout: 60000 });
		assert.equal(r.status, 1, `exit ${r.status}: ${r.stdout}${r.stderr}`);
		assert.match(r.stderr, new RegExp(`pid ${s.pid} \\(.*\\): no policy of ${escapeRe(pdir)} fits it, and there is no default\\.json`));
		assert.ok(!existsSync(PINS), 'nothing left attached');
		for (const bad of [['--policy', join(dir, 'policy.json'), '--policy-dir', pdir], []]) {
			const u = spawnSync(MCPFENCE, ['attach', ...bad, '--pid', String(s.pid)], { encoding: 'utf8' });
			assert.equal(u.status, 2, `attach ${bad.join(' ')}: exit ${u.status}: ${u.stderr}`);
		}
	} finally {
		await s.close();
	}
});

// `mcpfence enroll --pid N`: servers put under an attach that runs, with no restart of anything;
// the index of a session that ended is taken again, and its map entries go when it ends.
test('enroll: servers added to a running attach; ended sessions\' entries go and make room', skipKernel, async () => {
	const FIXTURE = join(here, 'fixtures/server.mjs');
	const enroll = (...pids) => spawnSync(MCPFENCE, ['enroll', ...pids.flatMap((p) => ['--pid', String(p)])],
		{ encoding: 'utf8', timeout: 60000 });
	const count = (map) => JSON.parse(spawnSync('bpftool', ['-j', 'map', 'dump', 'pinned', `${PINS}/${map}`],
		{ encoding: 'utf8', maxBuffer: 1 << 28 }).stdout).length;
	// a budget of each session: one call of "once"; an index taken again starts with its own
	const policy = join(dir, 'policy-enroll.json');
	writeFileSync(policy, JSON.stringify({ ...POLICY, tools: { ...POLICY.tools,
		once: { limits: [{ window: 'day', max: 1, scope: 'session' }] } } }));
	await notAtMidnight();
	const a = await startAttach([], { policy, extra: ['--enroll'] });
	const sdk = await sdkSession(1), pipe = await pipeSession([EVERYTHING]);
	try {
		assert.deepEqual([count('stdio_streams'), count('stdio_guards')], [0, 0]);
		let r = enroll(sdk.pid, pipe.pid);
		assert.equal(r.status, 0, r.stdout + r.stderr);
		assert.match(r.stdout, new RegExp(`^pid ${sdk.pid} \\([^)]*\\): stdin: unix socketpair.*; policy ${escapeRe(policy)}$`, 'm'));
		assert.match(r.stdout, new RegExp(`^pid ${pipe.pid} \\([^)]*\\): stdin: pipe.*; policy `, 'm'));
		await assertDenied(sdk.call('get-env'), 'environment is private', 'sdk: get-env, enrolled');
		assert.ok((await sdk.call('echo', { message: 'e' })).content, 'sdk: echo, enrolled');
		await pipe.init();
		const pr = await pipe.call('get-env');
		assert.ok(pr.response, brief(pr));
		await until(() => readAudit(a.audit).some((l) => l.server === `pid:${pipe.pid}` &&
			EXPECT.auditOnly(l)), 5000, 'the pipe server\'s get-env audited as denied, not stopped');
		r = enroll(sdk.pid);
		assert.equal(r.status, 1, r.stdout + r.stderr);
		assert.match(r.stderr, /enforced on already/);
		const gone = spawnSync('true');
		r = enroll(gone.pid);
		assert.equal(r.status, 1, r.stdout + r.stderr);
		assert.match(r.stderr, EXPECT.noSuchPid);
		assert.equal(enroll().status, 2);

		// more short sessions than there are indexes (64): each enrolled, its denied call
		// neutralized (the fixture answers a method it does not know with {seen: method}),
		// its one call of "once" let through and the second refused, closed; an index is free
		// again once its session is seen to end (within a second), its session budget gone
		const budgets = count('tcp_budgets');
		const N = 70;
		for (let i = 0; i < N; i++) {
			const s = rawSocketpairSession([FIXTURE, 'mcp']);
			try {
				await until(() => s.rawOut().includes('not JSON-RPC'), 10000, `session ${i}: its server up`);
				let e;
				for (const end = Date.now() + 10000; Date.now() < end; await sleep(100)) {
					e = enroll(s.pid);
					if (e.status === 0 || !/none has ended/.test(e.stderr)) break;
				}
				assert.equal(e.status, 0, `session ${i}: ${e.stdout}${e.stderr}`);
				await s.write(line(callMsg(1, 'get-env')) + line(callMsg(2, 'echo', { i })) +
					line(callMsg(3, 'once')) + line(callMsg(4, 'once')));
				const [d, ok, o1, o2] = [await s.byId(1), await s.byId(2), await s.byId(3), await s.byId(4)];
				assert.ok(!JSON.stringify(d).includes('called get-env'), `session ${i}: get-env ran: ${brief(d)}`);
				assert.match(JSON.stringify(ok), new RegExp(`called echo \\{\\\\"i\\\\":${i}\\}`), `session ${i}`);
				assert.match(JSON.stringify(o1), /called once/, `session ${i}: its one "once"`);
				assert.ok(!JSON.stringify(o2).includes('called once'), `session ${i}: a second "once" ran: ${brief(o2)}`);
			} finally {
				s.close();
			}
		}
		await sdk.close();
		await pipe.close();
		await until(() => (a.out.match(/session ended, its entries removed/g) ?? []).length === N + 2,
			15000, `${N + 2} sessions ended in the attach log`);
		assert.deepEqual([count('stdio_streams'), count('stdio_guards'), count('tcp_budgets')],
			[0, 0, budgets], 'every entry gone, the sessions\' budgets too');
		const st = stats();
		assert.equal(st.get('get-env', 'rule'), N + 2, st.s);
		assert.equal(st.get('echo', 'allow'), N + 1, st.s);
		assert.deepEqual([st.get('once', 'allow'), st.get('once', 'limit')], [N, N], st.s);
		await stopAttach(a);
	} finally {
		await sdk.close();
		await pipe.close();
	}
});

// `mcpfence daemon --policy-dir DIR`: the stdio servers a file's "match" names, found by the
// daemon itself: at their start (stopped before their first instruction, enrolled, continued;
// what their client wrote meanwhile is judged too) and those that ran before it. No wrapper, no
// `enroll`: the clients spawn their servers as they always do.
test('daemon: finds the servers its policies name, at their start and before it', skipKernel, async () => {
	await notAtMidnight();
	const pdir = join(dir, 'policies-daemon');
	mkdirSync(pdir, { recursive: true });
	writeFileSync(join(pdir, '10-everything.json'), JSON.stringify({ ...POLICY,
		match: { exe: '*/node', argv: '* */server-everything/dist/index.js' } }));
	writeFileSync(join(pdir, '20-v2.json'), JSON.stringify({ version: '1', default: 'allow',
		match: { exe: '*/node', argv: '* */v2_server.mjs' },
		tools: { echo: { action: 'deny', reason: 'no echo for v2' } } }));
	// default.json decides for what `enroll` names; it does not make a program a server
	writeFileSync(join(pdir, 'default.json'), JSON.stringify({ version: '1', default: 'deny' }));
	const sessions = [];
	const open = async (s) => { sessions.push(s); return s; };
	const enrolled = (pid) => new RegExp(`pid ${pid} \\(node\\): enrolled: `, 'm');
	try {
		const early = await open(await pipeSession([EVERYTHING])); // begun before the daemon
		await early.init();
		const d = await startDaemon(pdir);
		assert.match(d.out, enrolled(early.pid), d.out);
		assert.match(d.out, /looks at programs named node started with a pipe or socketpair/, d.out);

		// the SDK v1 client spawns server-everything directly, under the daemon
		const v1 = await open(await sdkSession(1));
		// (its initialize came before the enrolment, and was sent again, or after it: both are
		// judged; the 1,000-session test counts how often the first happens)
		await until(() => enrolled(v1.pid).test(d.out), 5000, `pid ${v1.pid} enrolled`);
		assert.equal(JSON.stringify(await v1.call('echo', { message: 'd' })),
			JSON.stringify({ content: [{ type: 'text', text: 'Echo: d' }] }));
		await assertDenied(v1.call('get-env'), 'environment is private', 'v1: get-env');
		const sums = [];
		for (let i = 0; i < 4; i++)
			sums.push(await v1.call('get-sum', { a: 2, b: 3 }).then((r) => JSON.stringify(r), (e) => `error: ${e.message}`));
		assert.equal(sums.filter((r) => r.includes('5')).length, 3, sums.join('\n'));
		assert.match(sums[3], new RegExp(escapeRe(EXPECT.limitReason)), sums.join('\n'));

		// the v2 client, 2026-07-28 (no initialize), its own policy
		const v2 = await open(await sdkSession(2, { server: [V2_SERVER], mode: { pin: '2026-07-28' } }));
		await until(() => enrolled(v2.pid).test(d.out), 5000, `pid ${v2.pid} enrolled`);
		await assertDenied(v2.call('echo', { message: 'd' }), 'no echo for v2', 'v2: echo');
		assert.ok(JSON.stringify(await v2.call('get-env')).includes(CANARY), 'v2: get-env allowed');

		// the Python client over pipes (--pipe-action audit): audited, not stopped
		const piped = await open(await pipeSession([EVERYTHING]));
		await piped.init();
		assert.match(d.out, enrolled(piped.pid), d.out);
		assert.ok((await piped.call('echo', { message: 'p' })).response?.result, 'pipes: echo');
		await piped.call('get-env');
		await early.call('get-env');

		// a file added while it runs: the running server it names is enrolled, no restart
		const fsDir = join(dir, 'daemon-fs');
		mkdirSync(fsDir, { recursive: true });
		const late = await open(await pipeSession([FILESYSTEM, fsDir]));
		await late.init();
		assert.doesNotMatch(d.out, enrolled(late.pid), 'server-filesystem: no file names it yet');
		writeFileSync(join(pdir, '30-fs.json'), JSON.stringify({ version: '1', default: 'allow',
			match: { exe: '*/node', argv: '* */server-filesystem/dist/index.js *' },
			tools: { list_directory: { action: 'deny', reason: 'no listing' } } }));
		await until(() => enrolled(late.pid).test(d.out), 5000, 'server-filesystem enrolled after the new file');
		await late.call('list_directory', { path: fsDir });

		// a program no file names, JSON on its pipes: not enrolled, its bytes untouched
		const cat = spawn(process.execPath, ['-e', 'process.stdin.pipe(process.stdout)'],
			{ stdio: ['pipe', 'pipe', 'ignore'] });
		children.add(cat);
		const msg = line(callMsg(7, 'get-env'));
		let echoed = '';
		cat.stdout.on('data', (b) => { echoed += b; });
		cat.stdin.write(msg);
		await until(() => echoed === msg, 5000, `the JSON echoed unchanged (have ${JSON.stringify(echoed)})`);
		assert.doesNotMatch(d.out, new RegExp(`pid ${cat.pid} `), d.out);
		cat.kill();

		const lines = await auditLines(d, 12);
		const of = (s) => lines.filter((l) => l.server === `pid:${s.pid}`).map((l) => [l.tool, l.decision]);
		assert.deepEqual(of(v1), [['echo', 'allow'], ['get-env', 'deny'], ['get-sum', 'allow'],
			['get-sum', 'allow'], ['get-sum', 'allow'], ['get-sum', 'deny']], JSON.stringify(lines));
		assert.deepEqual(of(v2), [['echo', 'deny'], ['get-env', 'allow']], JSON.stringify(lines));
		assert.deepEqual(of(piped), [['echo', 'allow'], ['get-env', 'deny']], JSON.stringify(lines));
		assert.deepEqual(of(early), [['get-env', 'deny']], JSON.stringify(lines));
		assert.deepEqual(of(late), [['list_directory', 'deny']], JSON.stringify(lines));
		for (const l of lines) {
			assert.equal(l.plane, EXPECT.plane);
			assert.equal(l.policy, join(pdir, l.server === `pid:${v2.pid}` ? '20-v2.json' :
				l.server === `pid:${late.pid}` ? '30-fs.json' : '10-everything.json'), JSON.stringify(l));
		}
		const { doc } = await statusRow(v1.pid, 6);
		for (const s of [early, v1, v2, piped])
			assert.ok(doc.sessions.some((r) => r.server_pid === s.pid && !r.ended), `status: pid ${s.pid}: ${JSON.stringify(doc)}`);

		// stopped, it stops no program any more: a node with pipes runs as it would without it
		await stopAttach(d);
		const r = spawnSync(process.execPath, ['-e', 'process.stdout.write("ran")'],
			{ stdio: ['pipe', 'pipe', 'pipe'], encoding: 'utf8', timeout: 10000 });
		assert.equal(r.stdout, 'ran', JSON.stringify(r));
	} finally {
		for (const s of sessions) await s.close();
	}
});

// A stdio server that writes its answer to initialize in two writes, 50 ms apart, and answers
// every tools/call with the tool's name.
const SPLIT_SERVER = `
const rl = require('readline').createInterface({ input: process.stdin });
rl.on('line', (l) => {
	const m = JSON.parse(l);
	if (m.id === undefined) return;
	if (m.method === 'initialize') {
		const a = JSON.stringify({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: m.params.protocolVersion,
			capabilities: { tools: {} }, serverInfo: { name: 'split-server', version: '1' } } });
		process.stdout.write(a.slice(0, 40));
		setTimeout(() => process.stdout.write(a.slice(40) + '\\n'), 50);
		return;
	}
	// a method it does not know (a neutralized call's) is an error, as the SDK servers answer
	const a = m.method === 'tools/call' ? { result: { content: [{ type: 'text', text: m.params.name }] } }
		: m.method === 'tools/list' ? { result: { tools: [] } }
		: { error: { code: -32601, message: 'Method not found' } };
	process.stdout.write(JSON.stringify({ jsonrpc: '2.0', id: m.id, ...a }) + '\\n');
});`;

// "server_name": a file that names its server by the serverInfo of its first answer. The server
// is enrolled at its exec under the file that fits it without a name (or default.json); its
// clients stop at their first read after its first answer until the daemon has read the name and
// moved the session, so no call after that answer is decided by the file before.
test('daemon: "server_name" picks the policy from the first answer', skipKernel, async () => {
	await notAtMidnight();
	const pdir = join(dir, 'policies-named');
	mkdirSync(pdir, { recursive: true });
	const put = (f, o) => writeFileSync(join(pdir, f), JSON.stringify({ version: '1', ...o }));
	put('10-everything.json', { default: 'allow',
		match: { exe: '*/node', server_name: 'mcp-servers/everything' },
		tools: { 'get-env': { action: 'deny', reason: 'named: env private' } } });
	put('15-v2.json', { default: 'allow', match: { exe: '*/node', server_name: 'mcpfence-v2-*' },
		tools: { echo: { action: 'deny', reason: 'named v2: no echo' } } });
	put('12-split.json', { default: 'allow', match: { exe: '*/node', server_name: 'split-server' },
		tools: { secret: { action: 'deny', reason: 'split: no secret' } } });
	put('20-node.json', { default: 'allow', match: { exe: '*/node', argv: '* */server-everything/dist/index.js' },
		tools: { echo: { action: 'deny', reason: 'not named yet' } } });
	put('default.json', { default: 'deny', tools: { 'get-env': {} } });
	const sessions = [];
	try {
		let d = await startDaemon(pdir, ['--verbose']);
		// five in a row: the first call, sent as soon as initialize is answered, is the named file's
		const v1s = [];
		for (let i = 0; i < 5; i++) {
			const s = await sdkSession(1);
			sessions.push(s);
			v1s.push(s);
			assert.equal(JSON.stringify(await s.call('echo', { message: `n${i}` })),
				JSON.stringify({ content: [{ type: 'text', text: `Echo: n${i}` }] }), d.out);
			await assertDenied(s.call('get-env'), 'named: env private', `v1 #${i}: get-env`);
			assert.match(d.out, new RegExp(`pid ${s.pid} \\([^)]*\\): .*10-everything\\.json may fit it by the name of its first answer: until then, .*20-node\\.json decides`), d.out);
			await until(() => new RegExp(`pid ${s.pid} \\([^)]*\\): its first answer names it "mcp-servers/everything": policy .*10-everything\\.json`).test(d.out),
				5000, `pid ${s.pid} named`);
		}
		// a server that writes its initialize answer in two writes, 50 ms apart: the line is
		// put together from both; until then default.json decides (it allows get-env alone)
		const split = await sdkSession(1, { server: ['-e', SPLIT_SERVER] });
		sessions.push(split);
		assert.equal(JSON.stringify(await split.call('echo', { message: 's' })),
			JSON.stringify({ content: [{ type: 'text', text: 'echo' }] }));
		await assertDenied(split.call('secret'), 'split: no secret', 'split: secret');
		await until(() => new RegExp(`pid ${split.pid} \\([^)]*\\): its first answer names it "split-server": policy .*12-split\\.json`).test(d.out),
			5000, 'the split server named');

		// a wrapper that starts the server as its child on the same stdio (as npx does): the
		// child's first answer names the wrapper's session
		const wrapped = await sdkSession(1, { server: ['-e', `require('child_process').spawn(process.execPath, [${JSON.stringify(EVERYTHING)}], { stdio: 'inherit' }).on('exit', (c) => process.exit(c ?? 1))`] });
		sessions.push(wrapped);
		assert.equal(JSON.stringify(await wrapped.call('echo', { message: 'w' })),
			JSON.stringify({ content: [{ type: 'text', text: 'Echo: w' }] }), d.out);
		await assertDenied(wrapped.call('get-env'), 'named: env private', 'wrapped: get-env');
		await until(() => new RegExp(`pid ${wrapped.pid} \\([^)]*\\): its first answer names it "mcp-servers/everything": policy .*10-everything\\.json`).test(d.out),
			5000, 'the wrapper named by its child');
		assert.match(d.out, new RegExp(`: a child of pid ${wrapped.pid}, which waits for its name: its writes are read as its`), d.out);

		// the v2 server in the 2026-07-28 era (the v2 client probes with server/discover on a
		// server of its own, then sends its calls with no handshake): until its first result,
		// default.json decides; a denial is an error, which names nothing
		const v2 = await sdkSession(2, { server: [V2_SERVER], mode: { pin: '2026-07-28' } });
		sessions.push(v2);
		await assertDenied(v2.call('echo', { message: 'x' }), 'not allowed by the policy', 'v2: echo before its name');
		assert.ok(JSON.stringify(await v2.call('get-env')).includes(CANARY), 'v2: get-env, default.json');
		// (its log, read by this process, which is the client, may come after the answer)
		await until(() => new RegExp(`pid ${v2.pid} \\([^)]*\\): its first answer names it "mcpfence-v2-server": policy .*15-v2\\.json`).test(d.out),
			5000, 'the v2 server named');
		await assertDenied(v2.call('echo', { message: 'x' }), 'named v2: no echo', 'v2: echo');
		assert.ok(JSON.stringify(await v2.call('get-env')).includes(CANARY), 'v2: get-env, named');

		const lines = await auditLines(d, 18);
		const of = (s) => lines.filter((l) => l.server === `pid:${s.pid}`)
			.map((l) => [l.tool, l.decision, basename(l.policy)]);
		for (const s of v1s)
			assert.deepEqual(of(s), [['echo', 'allow', '10-everything.json'],
				['get-env', 'deny', '10-everything.json']], JSON.stringify(lines));
		assert.deepEqual(of(wrapped), [['echo', 'allow', '10-everything.json'], ['get-env', 'deny', '10-everything.json']],
			JSON.stringify(lines));
		assert.deepEqual(of(split), [['echo', 'allow', '12-split.json'], ['secret', 'deny', '12-split.json']],
			JSON.stringify(lines));
		assert.deepEqual(of(v2), [['echo', 'deny', 'default.json'], ['get-env', 'allow', 'default.json'],
			['echo', 'deny', '15-v2.json'], ['get-env', 'allow', '15-v2.json']], JSON.stringify(lines));
		const { doc } = await statusRow(v1s[4].pid, 2);
		const row = doc.sessions.find((r) => r.server_pid === v1s[4].pid && !r.ended);
		assert.equal(basename(row?.policy ?? ''), '10-everything.json', JSON.stringify(doc));
		assert.equal(row?.server_name, 'mcp-servers/everything', JSON.stringify(doc));

		// the name outlives the daemon: the next one takes the sessions back under their
		// named files (by their status rows), not the files that fit them without a name
		d.child.kill('SIGTERM');
		await d.exited;
		attaches.delete(d);
		d = await startDaemon(pdir, ['--verbose']);
		for (const s of [v1s[4], wrapped, v2])
			assert.match(d.out, new RegExp(`pid ${s.pid} \\(node\\): session \\d+ taken back: `), d.out);
		assert.equal(JSON.stringify(await v1s[4].call('echo', { message: 'r' })),
			JSON.stringify({ content: [{ type: 'text', text: 'Echo: r' }] }), d.out);
		await assertDenied(v1s[4].call('get-env'), 'named: env private', 'after the restart: get-env');
		await assertDenied(wrapped.call('get-env'), 'named: env private', 'after the restart: wrapped');
		await assertDenied(v2.call('echo', { message: 'r' }), 'named v2: no echo', 'after the restart: v2');
		await stopAttach(d);
		for (const s of sessions.splice(0)) await s.close();

		// no file fits it without a name, and no default.json: enrolled once its name fits one
		rmSync(join(pdir, '20-node.json'));
		rmSync(join(pdir, 'default.json'));
		d = await startDaemon(pdir, ['--verbose']);
		const late = await sdkSession(1);
		sessions.push(late);
		assert.equal(JSON.stringify(await late.call('echo', { message: 'l' })),
			JSON.stringify({ content: [{ type: 'text', text: 'Echo: l' }] }));
		await assertDenied(late.call('get-env'), 'named: env private', 'enrolled at its name: get-env');
		assert.match(d.out, new RegExp(`pid ${late.pid} \\([^)]*\\): .*10-everything\\.json may fit it by the name of its first answer: not enrolled until then`), d.out);
		await until(() => new RegExp(`pid ${late.pid}: its first answer names it "mcp-servers/everything": enrolled under .*10-everything\\.json`).test(d.out),
			5000, 'enrolled at its name');
		const { row: lateRow } = await statusRow(late.pid, 2);
		assert.equal(lateRow.server_name, 'mcp-servers/everything', JSON.stringify(lateRow));

		// a daemon killed while a client waits, stopped, for it to read a first answer: the
		// next daemon continues it; and so does detach
		const stateOf = (pid) => {
			try {
				const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
				return st[st.lastIndexOf(')') + 2];
			} catch { return '?'; }
		};
		for (const after of ['the next daemon', 'detach']) {
			const py = await pipeSession([EVERYTHING]); // the Python client, on pipes
			sessions.push(py);
			await until(() => new RegExp(`pid ${py.pid}: watched for the name`).test(d.out), 5000,
				`pid ${py.pid} watched`);
			d.child.kill('SIGSTOP'); // it reads no answer now
			const init = py.init();
			await until(() => stateOf(py.child.pid) === 'T', 5000,
				`the client (pid ${py.child.pid}) stopped at the server's first answer`);
			d.child.kill('SIGKILL');
			await d.exited;
			attaches.delete(d);
			await sleep(300);
			assert.equal(stateOf(py.child.pid), 'T', 'the client stays stopped while no daemon runs');
			if (after === 'detach') {
				const r = spawnSync(MCPFENCE, ['detach'], { encoding: 'utf8' });
				assert.equal(r.status, 0, r.stderr);
				assert.match(r.stdout, /^continued 1 process a killed daemon had left stopped$/m, r.stdout);
			} else {
				d = await startDaemon(pdir, ['--verbose']);
				assert.match(d.out, /1 client stopped at a server's first answer by a daemon that was killed: continued/, d.out);
			}
			await init; // answered: the client ran on
			assert.ok((await py.call('echo', { message: 'c' })).response?.result, `${after}: echo`);
		}
	} finally {
		for (const s of sessions) await s.close();
	}
});

// 1,000 short sessions in a row under the daemon, more than there are session indexes (64), as
// fast as a client can start them: a program its policy names (a copy of cat, which writes back
// what it reads) is found at each start, its denied call neutralized before it reads it, and when
// all have ended every map entry is gone and the daemon's memory is where it was.
test('daemon: 1,000 short sessions in a row; map entries and memory back after', skipKernel, async () => {
	const pdir = join(dir, 'policies-daemon-many');
	mkdirSync(pdir, { recursive: true });
	const server = join(dir, 'mcpf-echo-server');
	copyFileSync('/bin/cat', server);
	chmodSync(server, 0o755);
	writeFileSync(join(pdir, '10-echo.json'), JSON.stringify({ ...POLICY,
		match: { exe: '*/mcpf-echo-server' } }));
	const count = (map) => JSON.parse(spawnSync('bpftool', ['-j', 'map', 'dump', 'pinned', `${PINS}/${map}`],
		{ encoding: 'utf8', maxBuffer: 1 << 28 }).stdout).length;
	const rss = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
	const d = await startDaemon(pdir, ['--quiet']);
	const session = async (i) => {
		const c = spawn(server, [], { stdio: ['pipe', 'pipe', 'ignore'] });
		let out = '';
		c.stdout.setEncoding('utf8');
		c.stdout.on('data', (b) => { out += b; });
		const exited = new Promise((r) => c.on('exit', r));
		c.stdin.write(line(callMsg(1, 'get-env')) + line(callMsg(2, 'echo', { i })));
		await until(() => out.split('\n').length > 2, 10000, `session ${i}: both lines back (have ${JSON.stringify(out)})`);
		const [denied, allowed] = out.split('\n').map((l) => JSON.parse(l || '{}'));
		assert.notEqual(denied.method, 'tools/call', `session ${i}: get-env reached the server: ${out}`);
		assert.equal(allowed.method, 'tools/call', `session ${i}: ${out}`);
		assert.deepEqual(allowed.params.arguments, { i }, `session ${i}: ${out}`);
		c.stdin.end();
		await exited;
	};
	const N = 1000, WARM = 100;
	let base;
	try {
		const t0 = Date.now();
		for (let i = 0; i < N; i++) {
			await session(i);
			if (i === WARM - 1) {
				await until(() => count('stdio_streams') === 0, 5000, 'the warm-up sessions ended');
				base = rss(d.child.pid);
			}
		}
		const ms = Date.now() - t0;
		await until(() => (d.out.match(/session ended, its entries removed/g) ?? []).length === N,
			15000, `${N} sessions ended in the daemon's log`);
		assert.deepEqual([count('stdio_streams'), count('stdio_guards')], [0, 0], 'every entry gone');
		const after = rss(d.child.pid);
		console.log(`# ${N} sessions in ${ms} ms; daemon RSS ${base} KiB after ${WARM}, ${after} KiB after ${N}`);
		assert.ok(after <= base + 512, `the daemon grew from ${base} to ${after} KiB over ${N - WARM} sessions`);
		const st = stats();
		assert.equal(st.get('get-env', 'rule'), N, st.s);
		assert.equal(st.get('echo', 'allow'), N, st.s);
		// calls written before the server ran, which the daemon sent again, are the client's
		const resent = (d.out.match(/sent again, to be judged/g) ?? []).length;
		console.log(`# ${resent} of ${N} sessions had their calls sent again by the daemon`);
		assert.ok(resent > 0, 'no session had bytes waiting at its enrolment');
		const al = readAudit(d.audit);
		assert.equal(al.length, 2 * N);
		assert.deepEqual([...new Set(al.map((l) => l.client?.pid))], [process.pid],
			JSON.stringify(al.find((l) => l.client?.pid !== process.pid)));
		assert.doesNotMatch(d.out, /not enforced on|could not be stopped|ring of exec events was full/, d.out.slice(-2000));
	} finally {
		await stopAttach(d);
	}
});

// The daemon's outcomes with servers and clients as they come: a server that forks a child which
// reads its stdin, two client processes writing to one server, a client killed mid-session.
// The servers are copies of sh and cat under names a policy gives (cat writes back what it
// reads: a neutralized call comes back with its method rewritten).
// The daemon's exit, SIGTERM or SIGKILL, leaves its attachment enforcing; a daemon that comes
// back takes it back: its sessions (at their index, under their policy), counters and budgets.
// Calls made while it is down, and while the next one starts, are enforced; their audit lines
// come from the next one, which reads what the programs wrote meanwhile.
// The pid of a server-everything stopped (state T), or 0.
function stoppedServer() {
	for (const p of readdirSync('/proc')) {
		if (!/^\d+$/.test(p)) continue;
		try {
			const st = readFileSync(`/proc/${p}/stat`, 'utf8');
			if (st[st.lastIndexOf(')') + 2] === 'T' &&
				readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('server-everything')) return +p;
		} catch { /* gone meanwhile */ }
	}
	return 0;
}

test('daemon: its exit leaves enforcement; the next daemon takes the sessions back', skipKernel, async () => {
	await notAtMidnight();
	const pdir = join(dir, 'policies-daemon-restart');
	mkdirSync(pdir, { recursive: true });
	writeFileSync(join(pdir, '10-everything.json'), JSON.stringify({ ...POLICY,
		match: { exe: '*/node', argv: '* */server-everything/dist/index.js' } }));
	const sessions = [];
	const open = async (s) => { sessions.push(s); return s; };
	const enrolled = (pid) => new RegExp(`pid ${pid} \\(node\\): enrolled: `, 'm');
	const takenBack = (pid) => new RegExp(`pid ${pid} \\(node\\): session \\d+ taken back: `, 'm');
	const leave = async (d, signal) => {
		d.child.kill(signal);
		const { code, sig } = await d.exited;
		attaches.delete(d);
		assert.equal(signal === 'SIGKILL' ? sig : code, signal === 'SIGKILL' ? 'SIGKILL' : 0, d.out);
		assert.ok(existsSync(PINS), `${PINS} gone after ${signal}`);
		const st = JSON.parse(spawnSync(MCPFENCE, ['status', '--json'], { encoding: 'utf8' }).stdout);
		assert.equal(st.attachment, 'stale', JSON.stringify(st));
	};
	const sum = (s) => s.call('get-sum', { a: 2, b: 3 }).then((r) => JSON.stringify(r), (e) => `error: ${e.message}`);
	try {
		const d1 = await startDaemon(pdir);
		const v1 = await open(await sdkSession(1));
		await until(() => enrolled(v1.pid).test(d1.out), 5000, `pid ${v1.pid} enrolled`);
		await assertDenied(v1.call('get-env'), 'environment is private', 'daemon running');
		assert.match(await sum(v1), /5/);
		assert.match(await sum(v1), /5/);
		// and the Python client over pipes (--pipe-action audit: counted and audited)
		const piped = await open(await pipeSession([EVERYTHING]));
		await piped.init();
		await until(() => enrolled(piped.pid).test(d1.out), 5000, `pid ${piped.pid} enrolled`);
		const counted = stats().total();

		await leave(d1, 'SIGTERM');
		assert.match(d1.out, /leaving the attachment in \/sys\/fs\/bpf\/mcpfence enforcing/, d1.out);
		// down: denied, limited (its budget is not refilled), allowed as before
		await assertDenied(v1.call('get-env'), 'environment is private', 'daemon down');
		assert.equal(JSON.stringify(await v1.call('echo', { message: 'down' })),
			JSON.stringify({ content: [{ type: 'text', text: 'Echo: down' }] }));
		assert.match(await sum(v1), /5/, 'the third sum');
		assert.match(await sum(v1), new RegExp(escapeRe(EXPECT.limitReason)), 'the fourth sum');
		assert.ok((await piped.call('get-env')).response, 'pipes, daemon down: get-env answered');
		// a server started while no daemon runs: found by the next one
		const late = await open(await sdkSession(1));

		// calls go on while the next daemon starts, one each 20 ms: every one denied
		const during = [];
		let going = true;
		const loop = (async () => {
			while (going) {
				during.push(await v1.call('get-env').then((r) => `allowed: ${JSON.stringify(r)}`, (e) => e.message));
				await sleep(20);
			}
		})();
		await until(() => during.length >= 3, 10000, 'calls before the restart');
		const d2 = await startDaemon(pdir);
		await until(() => during.length >= 3 + 3, 10000, 'calls after the restart');
		going = false;
		await loop;
		for (const r of during) assert.match(r, EXPECT.denied('environment is private'), during.join('\n'));
		assert.match(d2.out, takenBack(v1.pid), d2.out);
		assert.match(d2.out, takenBack(piped.pid), d2.out);
		assert.match(d2.out, /took back the attachment a daemon left in \/sys\/fs\/bpf\/mcpfence: 2 sessions /, d2.out);
		assert.match(d2.out, enrolled(late.pid), d2.out);
		await assertDenied(late.call('get-env'), 'environment is private', 'the server started while down');
		// the budget the session spent stays spent; its counters go on
		assert.match(await sum(v1), new RegExp(escapeRe(EXPECT.limitReason)), 'a sum after the restart');
		await assertDenied(v1.call('get-env'), 'environment is private', 'after the restart');
		const calls = 1 + 1 + 2 + 1 + during.length + 1 + 1 + 1; // down (v1, piped), during, after
		await until(() => stats().total() === counted + calls, 5000,
			`stats: ${counted} + ${calls} (have ${stats().total()})`);
		// the next daemon audits the calls made while none ran (read from the programs' ring)
		const lines = await auditLines(d2, 4 + during.length);
		const v1Lines = lines.filter((l) => l.server === `pid:${v1.pid}`).map((l) => `${l.tool} ${l.decision}`);
		assert.deepEqual(v1Lines.slice(0, 4), ['get-env deny', 'echo allow', 'get-sum allow', 'get-sum deny'], v1Lines.join('\n'));
		const pipeLines = lines.filter((l) => l.server === `pid:${piped.pid}`);
		assert.deepEqual(pipeLines.map((l) => `${l.tool} ${l.decision}`), ['get-env deny'], JSON.stringify(pipeLines));
		assert.match(pipeLines[0].reason, /not stopped: --pipe-action audit/, JSON.stringify(pipeLines));
		// its status row goes on from the one the daemon before wrote: 3 calls, then the rest
		const { row } = await statusRow(v1.pid, 3 + calls - 2);
		assert.equal(row.ended, false, JSON.stringify(row));

		// SIGKILL: the same
		await leave(d2, 'SIGKILL');
		await assertDenied(v1.call('get-env'), 'environment is private', 'after SIGKILL');
		const d3 = await startDaemon(pdir);
		assert.match(d3.out, takenBack(v1.pid), d3.out);
		assert.match(d3.out, takenBack(late.pid), d3.out);
		assert.match(d3.out, takenBack(piped.pid), d3.out);
		await assertDenied(v1.call('get-env'), 'environment is private', 'taken back after SIGKILL');
		assert.equal(JSON.stringify(await late.call('echo', { message: 'k' })),
			JSON.stringify({ content: [{ type: 'text', text: 'Echo: k' }] }));

		// a program stopped at its start that the daemon had not read when it was killed (it
		// is frozen here, so that it cannot): the next daemon reads it from the ring the first
		// left, enrolls it and continues it
		d3.child.kill('SIGSTOP');
		const pending = sdkSession(1); // its server stops at its exec; the client waits
		let frozen = 0;
		await until(() => (frozen = stoppedServer()), 10000, 'a server-everything stopped at its start');
		d3.child.kill('SIGKILL');
		await d3.exited;
		attaches.delete(d3);
		const d4 = await startDaemon(pdir);
		assert.match(d4.out, new RegExp(`pid ${frozen}: stopped at its start by a daemon that was killed before it read it: taken now`), d4.out);
		assert.match(d4.out, enrolled(frozen), d4.out);
		const waited = await open(await pending);
		assert.equal(waited.pid, frozen);
		await assertDenied(waited.call('get-env'), 'environment is private', 'the server a killed daemon had stopped');

		// detach removes it: the session runs on, unenforced
		await stopAttach(d4);
		assert.ok(!existsSync(PINS), `${PINS} left after detach`);
		assert.ok(JSON.stringify(await v1.call('get-env')).includes(CANARY), 'after detach: get-env runs');
	} finally {
		for (const s of sessions) await s.close();
	}
});

test('daemon: a server that forks, two clients of one server, a client that dies', skipKernel, async () => {
	const pdir = join(dir, 'policies-daemon-outcomes');
	mkdirSync(pdir, { recursive: true });
	const forking = join(dir, 'mcpf-fork-server'), echo = join(dir, 'mcpf-echo2-server');
	const forkChild = join(dir, 'mcpf-fork-child');
	copyFileSync('/bin/sh', forking);
	copyFileSync('/bin/cat', echo);
	copyFileSync('/bin/cat', forkChild);
	chmodSync(forking, 0o755);
	chmodSync(echo, 0o755);
	chmodSync(forkChild, 0o755);
	writeFileSync(join(pdir, '10-fork.json'), JSON.stringify({ ...POLICY, match: { exe: '*/mcpf-fork-server' } }));
	// the child a file names too (as one file names npx's node and the node it starts): it is
	// enforced on through its parent's session, which its enrolment must not undo
	writeFileSync(join(pdir, '15-fork-child.json'), JSON.stringify({ ...POLICY, match: { exe: '*/mcpf-fork-child' } }));
	writeFileSync(join(pdir, '20-echo.json'), JSON.stringify({ ...POLICY, match: { exe: '*/mcpf-echo2-server' } }));
	const count = (map) => JSON.parse(spawnSync('bpftool', ['-j', 'map', 'dump', 'pinned', `${PINS}/${map}`],
		{ encoding: 'utf8', maxBuffer: 1 << 28 }).stdout).length;
	const enrolledRe = (pid) => new RegExp(`pid ${pid} \\([^)]*\\): enrolled: `, 'm');
	const endedRe = (pid) => new RegExp(`pid ${pid} \\([^)]*\\): its stdin is read by no one any more`, 'm');
	const d = await startDaemon(pdir);
	// a small client over pipes: starts the server, prints its pid, then as mode says
	const client = (mode) => {
		const py = `
import json, os, subprocess, sys, time
srv = subprocess.Popen([sys.argv[1]], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
print(json.dumps({"pid": srv.pid}), flush=True)
sys.stdin.readline()  # once the daemon has enrolled the server
call = lambda i, n: (json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call",
    "params": {"name": n, "arguments": {}}}) + "\\n").encode()
if sys.argv[2] == "two":
    child = os.fork()
    if child == 0:
        os.write(srv.stdin.fileno(), call(1, "get-env"))
        os._exit(0)
    os.waitpid(child, 0)
    os.write(srv.stdin.fileno(), call(2, "echo"))
    for _ in range(2):
        sys.stdout.write(srv.stdout.readline().decode())
    sys.stdout.flush()
    srv.stdin.close()
    srv.wait()
else:
    os.write(srv.stdin.fileno(), call(1, "echo"))
    sys.stdout.write(srv.stdout.readline().decode())
    sys.stdout.flush()
    time.sleep(60)
`;
		const c = spawn('python3', ['-c', py, echo, mode], { stdio: ['pipe', 'pipe', 'pipe'] });
		children.add(c);
		c.out = '';
		c.stdout.on('data', (b) => { c.out += b; });
		c.stderr.on('data', (b) => { c.out += b; });
		c.lines = () => c.out.split('\n').filter(Boolean).map((l) => JSON.parse(l));
		// its server enrolled, the client writes: each line's writer is known
		c.go = async () => {
			await until(() => c.lines().length === 1, 10000, `${mode}: the server started (${c.out})`);
			c.spid = c.lines()[0].pid;
			await until(() => enrolledRe(c.spid).test(d.out), 10000, `${mode}: pid ${c.spid} enrolled`);
			c.stdin.write('go\n');
		};
		return c;
	};
	try {
		// a server that forks: sh runs a copy of cat in the background, which reads the shared
		// stdin (an asynchronous list's stdin is /dev/null: the socket goes as fd 3)
		const f = spawn(forking, ['-c', `exec 3<&0; ${forkChild} <&3 & wait`], { stdio: ['pipe', 'pipe', 'ignore'] });
		children.add(f);
		let fout = '';
		f.stdout.on('data', (b) => { fout += b; });
		f.stdin.write(line(callMsg(1, 'get-env')) + line(callMsg(2, 'echo', { from: 'fork' })));
		await until(() => fout.split('\n').length > 2, 10000, `the forked cat wrote both lines back (have ${JSON.stringify(fout)})`);
		assert.match(d.out, enrolledRe(f.pid), d.out);
		assert.match(d.out, /: its stdin is enforced on already, as the stdin of session \d+ \(it shares it/, d.out);
		const [fd, fa] = fout.split('\n').map((l) => JSON.parse(l || '{}'));
		assert.notEqual(fd.method, 'tools/call', `the child read get-env: ${fout}`);
		assert.equal(fa.method, 'tools/call', fout);
		f.stdin.end();
		await until(() => endedRe(f.pid).test(d.out), 10000, 'the forking server\'s session ended');

		// two clients of one server (pipes, --pipe-action audit): each call judged, with its writer
		const two = client('two');
		await two.go();
		await until(() => two.lines().length === 3, 10000, `two clients: both lines back (have ${two.out})`);
		const spid = two.spid;
		await until(() => endedRe(spid).test(d.out), 10000, 'the two clients\' session ended');
		const lines = readAudit(d.audit).filter((l) => l.server === `pid:${spid}`);
		assert.deepEqual(lines.map((l) => [l.tool, l.decision]).sort(), [['echo', 'allow'], ['get-env', 'deny']],
			JSON.stringify(lines));
		assert.notEqual(lines[0].client.pid, lines[1].client.pid, `two writers: ${JSON.stringify(lines)}`);
		assert.ok(lines.every((l) => l.client.pid !== spid), JSON.stringify(lines));

		// a client that dies: its server reads EOF and ends; the session's entries go
		const dying = client('die');
		await dying.go();
		await until(() => dying.lines().length === 2, 10000, `dying client: its answer (have ${dying.out})`);
		const dpid = dying.spid;
		dying.kill('SIGKILL');
		await until(() => endedRe(dpid).test(d.out), 10000, 'the dead client\'s session ended');
		assert.deepEqual([count('stdio_streams'), count('stdio_guards')], [0, 0], 'every entry gone');
	} finally {
		await stopAttach(d);
	}
});

// Writes no SDK makes, on the socketpair the SDK's spawn makes: none may run get-env (its answer
// would carry the canary), and the session answers the next call.
test('socketpair: hostile writes never reach a denied tool', skipKernel, async () => {
	const r = rawSocketpairSession();
	try {
		await r.init();
		const a = await startAttach([r.pid]);
		assert.match(a.out, EXPECT.pidLine(r.pid, EXPECT.SOCKETPAIR), a.out);
		let id = 100;
		const healthy = async (what) => {
			const n = ++id;
			await r.write(line(callMsg(n, 'echo', { message: 'still here' })));
			const m = await r.byId(n);
			assert.equal(m.result?.content?.[0]?.text, 'Echo: still here', `${what}: the next call`);
		};
		// a denied call in 1-byte writes: its method went by before its name, so it cannot be
		// rewritten; its line is made unreadable (README: the server answers nothing for it)
		let n = ++id;
		await r.writeEach(bytes(line(callMsg(n, 'get-env'))));
		await healthy('1-byte writes');
		assertNoAnswerOrDenied(r, n, '1-byte writes');
		// split inside the tool name: the same
		n = ++id;
		const msg = line(callMsg(n, 'get-env'));
		const cut = msg.indexOf('get-env') + 3;
		await r.writeEach([msg.slice(0, cut), msg.slice(cut)], 20);
		await healthy('split in the name');
		assertNoAnswerOrDenied(r, n, 'split in the name');
		// an allowed and a denied call in one write
		const n1 = ++id, n2 = ++id;
		await r.write(line(callMsg(n1, 'echo', { message: 'packed' })) + line(callMsg(n2, 'get-env')));
		assert.equal((await r.byId(n1)).result?.content?.[0]?.text, 'Echo: packed');
		assertDeniedMsg(await r.byId(n2), 'environment is private', 'packed');
		// a message of 100 KB (several skbs), then a denied call, in one write: past what the
		// kernel reads (48 KiB), the first is refused unread (README: unless "unparsed" is
		// "allow"), and the stream frames the next line right
		const n3 = ++id, n4 = ++id;
		const big = 'x'.repeat(100 * 1024);
		await r.write(line(callMsg(n3, 'echo', { message: big })) + line(callMsg(n4, 'get-env')));
		assertDeniedMsg(await r.byId(n4), 'environment is private', 'after 100 KB');
		await healthy('after 100 KB');
		assert.ok(!r.msgs.some((m) => m.id === n3 && m.result), 'the 100 KB message was read');
		// a bare CR between two messages (the Node server reads one line, not JSON)
		await r.write(callMsg(++id, 'echo', { message: 'cr' }) + '\r' + line(callMsg(++id, 'get-env')));
		await sleep(500);
		await healthy('bare CR');
		// an escape in the name: the server reads get-env, so does the scanner
		n = ++id;
		await r.write(line(`{"jsonrpc":"2.0","id":${n},"method":"tools/call","params":{"name":"get\\u002denv","arguments":{}}}`));
		assertDeniedMsg(await r.byId(n), 'environment is private', 'an escape in the name');
		// a duplicate name: the server reads the last one (refused unread, or denied: either way
		// not run; whether the server answers depends on how it is refused)
		await r.write(line(`{"jsonrpc":"2.0","id":${++id},"method":"tools/call","params":{"name":"echo","name":"get-env","arguments":{"message":"dup"}}}`));
		await sleep(500);
		await healthy('a duplicate name');
		assert.ok(!r.rawOut().includes(CANARY), `get-env ran: ${brief(r.rawOut().slice(r.rawOut().indexOf(CANARY) - 200))}`);
		const st = stats();
		assert.equal(st.get('get-env', 'allow'), 0, st.s);
		await stopAttach(a);
	} finally {
		r.close();
	}
});

// ─── attached: pipes ───────────────────────────────────────────────────────────────────────

// --pipe-action audit: nothing on a pipe is stopped; every call is counted and audited, the
// ones the policy denies said so.
test('pipes, --pipe-action audit: calls counted and audited, NOT stopped', skipKernel, async () => {
	await notAtMidnight();
	const p = await pipeSession([EVERYTHING]);
	try {
		await p.init();
		const base = await p.call('echo', { message: 'pipes' }); // before attach: not counted
		const a = await startAttach([p.pid], { pipeAction: 'audit' });
		assert.match(a.out, EXPECT.pidLine(p.pid, EXPECT.PIPE), a.out);

		let r = await p.call('echo', { message: 'pipes' }, 10);
		assert.deepEqual(r.response.result, base.response.result);
		// denied by the policy, and NOT stopped: on a pipe in audit mode the call runs
		r = await p.call('get-env', {}, 11);
		assert.ok(JSON.stringify(r.response ?? r).includes(CANARY),
			`--pipe-action audit does not stop calls on pipes: get-env runs: ${brief(r)}`);
		for (let i = 0; i < 4; i++) {
			r = await p.call('get-sum', { a: 2, b: 40 }, 20 + i);
			assert.equal(r.response?.result?.content?.[0]?.text, 'The sum of 2 and 40 is 42.',
				`get-sum #${i + 1} runs (a limit is audited, not enforced, on pipes)`);
		}
		// raw writes: one call in 1-byte writes, two calls in one write
		r = await p.cmd({ op: 'raw', data: line(callMsg(30, 'echo', { message: 'bytewise' })), split: 1,
			expect: [30] });
		assert.equal(r.responses[0]?.response.result.content[0].text, 'Echo: bytewise');
		r = await p.cmd({ op: 'raw', data: line(callMsg(31, 'echo', { message: 'a' })) +
			line(callMsg(32, 'get-env')), expect: [31, 32] });
		assert.equal(r.responses.length, 2, brief(r));

		// 9 calls since attach
		const st = stats();
		assert.equal(st.get('echo', 'allow'), 3, st.s);
		assert.equal(st.get('get-env', 'rule'), 2, st.s);
		assert.equal(st.get('get-sum', 'allow'), 3, st.s);
		assert.equal(st.get('get-sum', 'limit'), 1, st.s);
		assert.equal(st.total(), 9, st.s);
		// status counts a denial that a pipe let through as denied (its audit line: not stopped)
		const { row } = await statusRow(p.pid, 9);
		assert.equal(row.conn, `pipe:${p.pid}`);
		assert.equal(row.denied, 3, JSON.stringify(row));
		let lines = await auditLines(a, 9);
		assert.equal(lines.length, 9, JSON.stringify(lines));
		assert.ok(lines.every((l) => l.plane === EXPECT.plane), JSON.stringify(lines));
		assert.deepEqual(lines.map((l) => l.id).sort((x, y) => x - y), [10, 11, 20, 21, 22, 23, 30, 31, 32]);
		if (EXPECT.clientIsWriter)
			assert.ok(lines.every((l) => l.client?.pid === p.child.pid), JSON.stringify(lines));
		const env = lines.filter((l) => l.tool === 'get-env');
		assert.equal(env.length, 2);
		assert.ok(env.every((l) => EXPECT.auditOnly(l) && l.kind === 'rule' &&
			l.rule === '/tools/get-env/action'), JSON.stringify(env));
		const over = lines.filter((l) => l.tool === 'get-sum' && l.kind === 'limit');
		assert.equal(over.length, 1, JSON.stringify(lines));
		assert.ok(EXPECT.auditOnly(over[0]), JSON.stringify(over[0]));

		// a get-env behind a bare CR (a Python server reads two messages): not missed
		r = await p.cmd({ op: 'raw', data: callMsg(40, 'echo', { message: 'cr' }) + '\r' +
			line(callMsg(41, 'get-env')), expect: [], timeout: 1 });
		await until(() => readAudit(a.audit).length > 9, 5000, 'an audit line for the bare CR');
		lines = readAudit(a.audit).slice(9);
		assert.ok(lines.some((l) => l.kind === 'unparsed' || l.tool === 'get-env'), JSON.stringify(lines));

		await stopAttach(a);
		r = await p.call('get-env', {}, 50);
		assert.ok(JSON.stringify(r.response).includes(CANARY));
		const gone = spawnSync(MCPFENCE, ['stats'], { encoding: 'utf8' });
		assert.equal(gone.status, 1);
	} finally {
		await p.close();
	}
});

// --pipe-action kill: a denied call kills the server before it acts. The tool has an effect
// outside the server: server-filesystem's write_file creates a file. The client sees its
// server's stdout end (no answer to the call), the file never exists, the audit line says the
// server was killed. Then a race: 8 servers in one attach, each sent a denied write at once,
// plain, in 1-byte writes, behind an allowed call in the same write, or with 200 KB of content
// (several pipe buffers): not one file.
test('pipes, --pipe-action kill: a denied call kills the server before it acts', skipKernel, async () => {
	const fsRoot = (i) => {
		const d = join(dir, `fs-${i}`);
		mkdirSync(d, { recursive: true });
		writeFileSync(join(d, 'readme.txt'), 'read me');
		return d;
	};
	// unattached, write_file does write: the effect is real
	const d0 = fsRoot(0);
	let p = await pipeSession([FILESYSTEM, d0]);
	await p.init();
	let r = await p.call('write_file', { path: join(d0, 'before.txt'), content: 'x' });
	assert.match(r.response?.result?.content?.[0]?.text ?? '', /Successfully wrote/, brief(r));
	assert.ok(existsSync(join(d0, 'before.txt')));
	await p.close();

	const d1 = fsRoot(1);
	p = await pipeSession([FILESYSTEM, d1]);
	await p.init();
	const a = await startAttach([p.pid], { pipeAction: 'kill' });
	try {
		assert.match(a.out, EXPECT.pidLine(p.pid, EXPECT.PIPE), a.out);
		r = await p.call('read_text_file', { path: join(d1, 'readme.txt') }, 1);
		assert.equal(r.response?.result?.content?.[0]?.text, 'read me', 'an allowed call runs');
		const target = join(d1, 'denied.txt');
		r = await p.call('write_file', { path: target, content: 'must not exist' }, 2);
		assert.equal(r.eof, true, `the client sees its server exit: ${brief(r)}`);
		assert.equal(r.returncode, EXPECT.killedReturncode, brief(r));
		const t = await p.cmd({ op: 'transcript' });
		assert.ok(!t.messages.some((m) => m.id === 2),
			`the server answered the denied call: ${brief(t.messages.find((m) => m.id === 2))}`);
		await sleep(500);
		assert.ok(!existsSync(target), 'write_file ran: the server was not killed before it acted');
		const lines = await auditLines(a, 2);
		assert.ok(lines.every((l) => l.plane === EXPECT.plane), JSON.stringify(lines));
		const w = lines.filter((l) => l.tool === 'write_file');
		assert.equal(w.length, 1, JSON.stringify(lines));
		assert.ok(EXPECT.killed(w[0]), `the audit line says the server was killed: ${JSON.stringify(w[0])}`);
		assert.equal(w[0].rule, '/tools/write_file/action');
		const st = stats();
		assert.equal(st.get('write_file', 'rule'), 1, st.s);
		assert.equal(st.get('read_text_file', 'allow'), 1, st.s);
	} finally {
		await p.close();
		await stopAttach(a);
	}

	// the race
	const K = 8;
	const sessions = [];
	for (let i = 0; i < K; i++) {
		const root = fsRoot(10 + i);
		const s = await pipeSession([FILESYSTEM, root]);
		await s.init();
		sessions.push({ s, root, target: join(root, 'denied.txt') });
	}
	const b = await startAttach(sessions.map((x) => x.s.pid), { pipeAction: 'kill' });
	try {
		for (const { s } of sessions) assert.match(b.out, EXPECT.pidLine(s.pid, EXPECT.PIPE), b.out);
		const write = (x) => callMsg(2, 'write_file', { path: x.target, content: 'must not exist' });
		const results = await Promise.all(sessions.map((x, i) => {
			switch (i % 4) {
			case 0: return x.s.call('write_file', { path: x.target, content: 'must not exist' }, 2);
			case 1: return x.s.cmd({ op: 'raw', data: line(write(x)), split: 1, expect: [2] });
			case 2: return x.s.cmd({ op: 'raw', data: line(callMsg(1, 'read_text_file',
				{ path: join(x.root, 'readme.txt') })) + line(write(x)), expect: [1, 2] });
			default: return x.s.call('write_file', { path: x.target, content: 'y'.repeat(200 * 1024) }, 2);
			}
		}));
		await sleep(1000);
		for (let i = 0; i < K; i++) {
			const x = sessions[i], res = results[i];
			assert.ok(!existsSync(x.target), `race ${i} (variant ${i % 4}): write_file ran`);
			const t = await x.s.cmd({ op: 'transcript' });
			assert.ok(!t.messages.some((m) => m.id === 2), `race ${i}: the server answered the denied call`);
			assert.equal(t.eof, true, `race ${i}: the server is still running: ${brief(res)}`);
		}
		// variant 3's message (200 KB) is past what the kernel reads (MCPF_STDIO_VALUE_MAX):
		// refused unread, its tool unnamed, the server killed all the same
		const big = Math.floor((K + 0) / 4);
		const lines = await auditLines(b, K);
		const killed = lines.filter((l) => l.tool === 'write_file' && EXPECT.killed(l));
		assert.equal(killed.length, K - big, JSON.stringify(lines));
		const unread = lines.filter((l) => l.kind === 'unparsed' && EXPECT.killed(l) &&
			/too large|past what/i.test(l.reason));
		assert.equal(new Set(unread.map((l) => l.server)).size, big, JSON.stringify(lines));
		assert.equal(stats().get('write_file', 'rule'), K - big);
	} finally {
		for (const { s } of sessions) await s.close();
		await stopAttach(b);
	}
});

// ─── refusals ──────────────────────────────────────────────────────────────────────────────

test('attach --pid: usage errors and a pid that does not exist', skipKernel, () => {
	const pol = join(dir, 'policy.json');
	for (const bad of [['--pid', 'abc'], ['--pid', '0'], ['--pid', '-3'],
		['--pid', String(process.pid), '--pipe-action', 'maybe']]) {
		const r = spawnSync(MCPFENCE, ['attach', '--policy', pol, ...bad], { encoding: 'utf8' });
		assert.equal(r.status, 2, `attach ${bad.join(' ')}: exit ${r.status}: ${r.stderr}`);
	}
	// a pid that is free: a child that was reaped
	const gone = spawnSync('true');
	const r = spawnSync(MCPFENCE, ['attach', '--policy', pol, '--pid', String(gone.pid)],
		{ encoding: 'utf8', timeout: 30000 });
	assert.equal(r.status, 1, `attach --pid ${gone.pid}: exit ${r.status}: ${r.stdout}${r.stderr}`);
	assert.match(r.stderr, EXPECT.noSuchPid);
	assert.ok(!existsSync(PINS), 'nothing left attached');
});
