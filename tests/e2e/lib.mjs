// SPDX-License-Identifier: Apache-2.0
// Helpers for the e2e tests: where things are, temporary policies, a real SDK client through
// `mcpfence run`, a raw line-level client for what the SDK would never send, audit reading.
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import { mkdtempSync, writeFileSync, readFileSync, existsSync, chmodSync, copyFileSync, accessSync,
	 mkdirSync, rmSync, statSync,
	 constants as fsc } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(here, '../..');
export const MCPFENCE = resolve(process.env.MCPFENCE_BIN || join(ROOT, 'build/mcpfence'));
const nm = join(here, 'node_modules/@modelcontextprotocol');
export const EVERYTHING = join(nm, 'server-everything/dist/index.js');
export const FILESYSTEM = join(nm, 'server-filesystem/dist/index.js');

// Each test file has a runtime directory of its own (the host-wide budget table, the approval
// sockets), which every mcpfence it starts inherits: the tests never count against, or read,
// the host's own table, which the mcpfence processes of the host use (another version, maybe).
if (!process.env.MCPFENCE_RUNTIME_DIR)
	process.env.MCPFENCE_RUNTIME_DIR = join(mkdtempSync(join(tmpdir(), 'mcpfence-e2e-run-')), 'run');

// Why the tests cannot run, or null.
export function missing() {
	if (!existsSync(MCPFENCE)) return `${MCPFENCE} is not built (make)`;
	for (const p of [EVERYTHING, FILESYSTEM, join(nm, 'sdk/package.json')])
		if (!existsSync(p)) return `${p} missing (make setup-test runs npm ci in tests/e2e)`;
	return null;
}

let sdk = null;
export async function loadSdk() {
	if (sdk) return sdk;
	const require = createRequire(join(here, 'package.json'));
	const imp = (m) => import(pathToFileURL(require.resolve(m)).href);
	const [client, stdio, types] = await Promise.all([
		imp('@modelcontextprotocol/sdk/client/index.js'),
		imp('@modelcontextprotocol/sdk/client/stdio.js'),
		imp('@modelcontextprotocol/sdk/types.js'),
	]);
	sdk = { Client: client.Client, StdioClientTransport: stdio.StdioClientTransport, types };
	return sdk;
}

export function tmp(prefix = 'mcpfence-e2e-') {
	const d = mkdtempSync(join(tmpdir(), prefix));
	chmodSync(d, 0o700);
	return d;
}

// The mcpfence binary as another uid can run it: the build itself when that uid can reach it,
// else a copy in a directory of mode 0755 (a clone under /root, mode 0700, is out of its reach).
const forOthers = new Map();
export function binaryFor(uid) {
	if (forOthers.has(uid)) return forOthers.get(uid);
	let bin = MCPFENCE;
	const probe = spawnSync('test', ['-x', MCPFENCE], { uid, gid: uid });
	if (probe.status !== 0) {
		const d = mkdtempSync(join(tmpdir(), 'mcpfence-bin-'));
		chmodSync(d, 0o755);
		bin = join(d, 'mcpfence');
		copyFileSync(MCPFENCE, bin);
		chmodSync(bin, 0o755);
	}
	forOthers.set(uid, bin);
	return bin;
}

export function writePolicy(dir, obj, name = 'policy.json') {
	const p = join(dir, name);
	writeFileSync(p, typeof obj === 'string' ? obj : JSON.stringify(obj, null, 2));
	return p;
}

export function readAudit(file) {
	if (!existsSync(file)) return [];
	return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Windows are aligned to the epoch. When fewer than `need` seconds are left of the current one,
// wait for the next: every call of a test then falls in one window. Returns its index, for
// inWindow to check after the calls (a test that overran its window fails, never passes).
export async function windowWithRoom(windowS, need) {
	const left = windowS - (Date.now() / 1000) % windowS;
	if (left < need) await sleep(left * 1000 + 250);
	return Math.floor(Date.now() / 1000 / windowS);
}
export function inWindow(windowS, index) {
	assert.equal(Math.floor(Date.now() / 1000 / windowS), index,
		'the calls ran past the end of their window: the counts would be of two windows');
}

// A port of 127.0.0.1 that nothing listens on (now).
export const freePort = () => new Promise((res, rej) => {
	const s = net.createServer();
	s.on('error', rej);
	s.listen(0, '127.0.0.1', () => {
		const { port } = s.address();
		s.close(() => res(port));
	});
});

// Debian's redis-server, for the budgets a policy keeps in Redis ("state").
const REDIS = '/usr/bin/redis-server';
export const redisMissing = () => (existsSync(REDIS) ? null
	: `${REDIS} is not installed (apt-get install redis-server)`);

// redis-server on port, listening on the addresses binds; stop() kills it (SIGKILL: its
// budgets are gone with it, as after a crash).
export async function startRedis(port, binds = ['127.0.0.1']) {
	const child = spawn(REDIS, ['--port', String(port), '--bind', ...binds, '--save', '',
		'--appendonly', 'no', '--protected-mode', 'no', '--loglevel', 'warning'],
	{ stdio: 'ignore' });
	const exited = new Promise((res) => child.on('exit', res));
	assert.ok(await waitPort(port), `redis-server did not listen on ${port}`);
	return { port, stop: async () => { child.kill('SIGKILL'); await exited; } };
}

export const redisCli = (port, ...args) => spawnSync('redis-cli', ['-p', String(port), ...args],
	{ encoding: 'utf8' }).stdout.trim();

// Does something accept connections on 127.0.0.1:port?
export function portOpen(port) {
	return new Promise((res) => {
		const s = net.connect(port, '127.0.0.1');
		s.on('connect', () => { s.destroy(); res(true); });
		s.on('error', () => res(false));
	});
}

// Wait up to ms for a server on port: whether it is there.
export async function waitPort(port, ms = 10000) {
	for (const t0 = Date.now(); ; await sleep(100)) {
		if (await portOpen(port)) return true;
		if (Date.now() - t0 >= ms) return false;
	}
}

// One test file at a time attaches the kernel plane: node --test runs files side by side, and
// the pins under /sys/fs/bpf/mcpfence are host-wide. A file that attaches takes this lock (a
// directory, made atomically) before it looks for an attachment in place, and calls the function
// returned when it is done. A lock whose holder is gone is taken over. null: not had in time.
const KERNEL_LOCK = '/tmp/mcpfence-e2e-kernel.lock';
export async function kernelLock(ms = 20 * 60 * 1000) {
	const end = Date.now() + ms;
	for (;;) {
		try {
			mkdirSync(KERNEL_LOCK, { mode: 0o700 });
			writeFileSync(join(KERNEL_LOCK, 'pid'), String(process.pid));
			return () => rmSync(KERNEL_LOCK, { recursive: true, force: true });
		} catch (e) {
			if (e.code !== 'EEXIST') throw e;
		}
		let pid = 0, age = 0;
		try {
			age = Date.now() - statSync(KERNEL_LOCK).mtimeMs;
			pid = Number(readFileSync(join(KERNEL_LOCK, 'pid'), 'utf8'));
		} catch { /* being made or removed */ }
		let gone = !pid && age > 60000;
		if (pid) {
			try { process.kill(pid, 0); } catch (e) { gone = e.code === 'ESRCH'; }
		}
		if (gone) {
			rmSync(KERNEL_LOCK, { recursive: true, force: true });
			continue;
		}
		if (Date.now() > end) return null;
		await sleep(250);
	}
}

// An attachment already in place (a file that attaches calls this once it holds kernelLock): one
// left by a killed attach (its flock on the pin directory is free) is detached; a live one is not
// ours to touch, and the tests fail saying so.
export function clearStale(bin = MCPFENCE) {
	const PINS = '/sys/fs/bpf/mcpfence';
	if (!existsSync(PINS)) return;
	const live = spawnSync('flock', ['-n', PINS, 'true']);
	if (live.error) throw new Error(`${PINS} exists and flock(1) cannot tell whether its attach runs: ${live.error.message}`);
	if (live.status !== 0)
		throw new Error(`${PINS} holds the attachment of a running mcpfence attach: stop it first`);
	const d = spawnSync(bin, ['detach'], { encoding: 'utf8' });
	if (existsSync(PINS))
		throw new Error(`${PINS}: a stale attachment that mcpfence detach does not remove: ${d.stdout}${d.stderr}`);
	console.log(`# cleaned a stale attachment in ${PINS}`);
}

export async function until(fn, ms = 5000, what = 'condition') {
	const end = Date.now() + ms;
	for (;;) {
		const v = await fn();
		if (v) return v;
		if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
		await sleep(25);
	}
}

// `mcpfence attach ARGS…` (or cmd: `mcpfence daemon`) until what it prints matches ready (a string or a RegExp). a.out is
// all it printed; a.stop(signal = 'SIGTERM') stops it (SIGKILL after 5 s) and then, unless the
// signal was SIGKILL (the caller checks what is left), runs `mcpfence detach`.
export async function attachRun(args, { ready = 'watching TCP port', env = {}, bin = MCPFENCE,
	ms = 60000, cmd = 'attach' } = {}) {
	const child = spawn(bin, [cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'],
		env: { ...process.env, ...env } });
	const a = { child, out: '', args: [cmd, ...args] };
	child.stdout.on('data', (d) => { a.out += d; });
	child.stderr.on('data', (d) => { a.out += d; });
	a.exited = new Promise((res) => child.on('exit', (code, sig) => res({ code, sig })));
	const live = () => child.exitCode === null && child.signalCode === null;
	a.stop = async (signal = 'SIGTERM') => {
		if (live()) {
			child.kill(signal);
			await Promise.race([a.exited, sleep(5000)]);
			if (live()) child.kill('SIGKILL');
		}
		if (signal !== 'SIGKILL') spawnSync(bin, ['detach']);
	};
	const seen = () => (typeof ready === 'string' ? a.out.includes(ready) : ready.test(a.out));
	const end = Date.now() + ms;
	while (!seen()) {
		if (!live() || Date.now() > end) {
			const how = child.exitCode ?? child.signalCode ?? 'none: timed out';
			if (live()) child.kill('SIGKILL');
			throw new Error(`mcpfence ${a.args.join(' ')} did not start (exit ${how}):\n${a.out}`);
		}
		await sleep(50);
	}
	return a;
}

// `mcpfence stats --json` (it must succeed). get(tool, verdict[, policy[, digest]]) sums the
// matching rows, total() every row; s is the JSON as text.
export function kernelStats(bin = MCPFENCE) {
	const r = spawnSync(bin, ['stats', '--json'], { encoding: 'utf8' });
	if (r.status !== 0) throw new Error(`mcpfence stats --json: exit ${r.status}: ${r.stderr}`);
	const j = JSON.parse(r.stdout);
	const get = (tool, verdict, policy, digest) =>
		j.calls.filter((c) => c.tool === tool && c.verdict === verdict &&
			(policy === undefined || c.policy === policy) &&
			(digest === undefined || c.policy_digest === digest))
			.reduce((n, c) => n + c.count, 0);
	const total = () => j.calls.reduce((n, c) => n + c.count, 0);
	return { j, get, total, s: JSON.stringify(j) };
}

// The host-wide table (user/limits.c): a 64-byte head, then slots of 64 bytes: the SHA-256 of
// the budget's name, {u64 window_start, u64 used, u32 window_s, u32 pad}, u32 generation, pad.
// The used count of the budget named name in its current window, 0 if none.
export function tableUsed(path, name) {
	if (!existsSync(path)) return 0;
	const b = readFileSync(path);
	const key = createHash('sha256').update(name, 'latin1').digest();
	for (let off = 64; off + 64 <= b.length; off += 64) {
		const w = b.readUInt32LE(off + 48);
		if (!w || !b.subarray(off, off + 32).equals(key)) continue;
		const start = Number(b.readBigUInt64LE(off + 32));
		const now = Math.floor(Date.now() / 1000);
		return start === now - (now % w) ? Number(b.readBigUInt64LE(off + 40)) : 0;
	}
	return 0;
}

// The audit lines that pred picks, once there are at least n: mcpfence writes a decision's
// line after forwarding the messages it concerns, so a client can see its answer first.
export async function awaitAudit(file, pred, n = 1) {
	return until(() => {
		const lines = readAudit(file).filter(pred);
		return lines.length >= n ? lines : null;
	}, 5000, `${n} audit line(s) in ${file}`);
}

// A real SDK client. fence: {policy, audit, extra} wraps the server in mcpfence; null: direct.
export async function connect({ fence = null, server = [EVERYTHING], caps = {}, env = {},
				 onStderr = null, setup = null } = {}) {
	const { Client, StdioClientTransport } = await loadSdk();
	let command = process.execPath, args = [...server];
	if (fence) {
		// fence.wrap: a command that runs mcpfence for us (`ip netns exec NS`)
		command = fence.wrap ? fence.wrap[0] : MCPFENCE;
		args = [...(fence.wrap ? [...fence.wrap.slice(1), MCPFENCE] : []), 'run'];
		if (fence.policy) args.push('--policy', fence.policy);
		args.push('--audit', fence.audit ?? '/dev/null', ...(fence.extra ?? []), '--',
			  process.execPath, ...server);
	}
	const transport = new StdioClientTransport({
		command, args, stderr: 'pipe',
		env: { ...process.env, ...env },
	});
	let stderr = '';
	transport.stderr?.on('data', (d) => {
		stderr += d;
		onStderr?.(String(d));
	});
	const client = new Client({ name: 'mcpfence-e2e', version: '1.0.0' }, { capabilities: caps });
	setup?.(client);
	await client.connect(transport);
	return { client, transport, stderr: () => stderr, close: () => client.close() };
}

// The text of a tools/call result.
export const text = (r) => r.content?.map((c) => c.text ?? '').join('');

// A raw client: lines in, parsed messages out, for what the SDK would never send.
// wrap: a command that runs `BIN run ARGS...` for us (setpriv, to run it as another uid).
export function rawRun(args, { env = {}, wrap = null, bin = MCPFENCE } = {}) {
	const argv = [...(wrap ?? []), bin, 'run', ...args];
	const child = spawn(argv[0], argv.slice(1), {
		stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env },
	});
	const out = [], waiters = [];
	let buf = '', stderr = '', rawOut = '';
	child.stdout.setEncoding('utf8');
	child.stdout.on('data', (d) => {
		rawOut += d;
		buf += d;
		let i;
		while ((i = buf.indexOf('\n')) >= 0) {
			const line = buf.slice(0, i);
			buf = buf.slice(i + 1);
			let msg;
			try { msg = JSON.parse(line); } catch { msg = { unparsed: line }; }
			out.push(msg);
		}
		for (const w of [...waiters]) w();
	});
	child.stderr.on('data', (d) => { stderr += d; });
	const exited = new Promise((res) => child.on('exit', (code, sig) => res({ code, sig })));
	const r = {
		child, out, exited,
		stderr: () => stderr,
		rawOut: () => rawOut,
		send: (s) => child.stdin.write(s),
		line: (obj) => child.stdin.write((typeof obj === 'string' ? obj : JSON.stringify(obj)) + '\n'),
		// the first message matching pred, waiting up to ms
		wait: (pred, ms = 5000, what = 'a message') => until(() => out.find(pred), ms, what),
		byId: (id, ms) => r.wait((m) => m.id === id && (m.result || m.error), ms, `response ${JSON.stringify(id)}`),
		async init(caps = {}) {
			r.line({ jsonrpc: '2.0', id: 'init', method: 'initialize', params: {
				protocolVersion: '2025-06-18', capabilities: caps,
				clientInfo: { name: 'raw', version: '1' } } });
			await r.byId('init', 10000);
			r.line({ jsonrpc: '2.0', method: 'notifications/initialized' });
		},
		call: (id, name, args = {}) => r.line({ jsonrpc: '2.0', id, method: 'tools/call',
						      params: { name, arguments: args } }),
		async end(ms = 10000) {
			child.stdin.end();
			const t = setTimeout(() => child.kill('SIGKILL'), ms);
			const e = await exited;
			clearTimeout(t);
			return e;
		},
	};
	return r;
}
