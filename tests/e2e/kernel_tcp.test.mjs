// SPDX-License-Identifier: Apache-2.0
// Kernel plane on TCP: the real server-everything in Streamable HTTP mode and the real SDK
// client, neither changed, with `mcpfence attach --port` enforcing in between. Root only.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, existsSync, readdirSync, symlinkSync,
	unlinkSync, realpathSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';
import { randomBytes, createHash } from 'node:crypto';
import net from 'node:net';
import { connect as connectGateway, text, binaryFor, kernelLock, clearStale, attachRun,
	kernelStats, tableUsed, waitPort, until, freePort, redisMissing, startRedis, redisCli }
	from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(here, '../..');
const MCPFENCE = resolve(process.env.MCPFENCE_BIN || join(ROOT, 'build/mcpfence'));
const EVERYTHING = join(here, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');
const PORT = 20000 + (process.pid % 5000) * 2;
const CANARY = 'mcpfence-canary-' + randomBytes(6).toString('hex');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function whyNot() {
	if (process.getuid() !== 0) return 'needs root (BPF programs on a cgroup)';
	if (!existsSync(MCPFENCE)) return `${MCPFENCE} is not built (make)`;
	if (!existsSync(EVERYTHING)) return 'tests/e2e/node_modules missing (make setup-test)';
	return null;
}
// other test files attach too: one at a time (taken before looking for an attachment in place)
const unlock = process.getuid() === 0 ? await kernelLock() : () => {};
const skipReason = unlock ? whyNot() : 'another test file kept the kernel plane for 20 minutes';
if (skipReason) unlock?.();

let sdk;
async function loadSdk() {
	const require = createRequire(join(here, 'package.json'));
	const imp = (m) => import(pathToFileURL(require.resolve(m)).href);
	const [client, http] = await Promise.all([
		imp('@modelcontextprotocol/sdk/client/index.js'),
		imp('@modelcontextprotocol/sdk/client/streamableHttp.js'),
	]);
	return { Client: client.Client, Transport: http.StreamableHTTPClientTransport };
}

async function connectClient() {
	const c = new sdk.Client({ name: 'kernel-e2e', version: '1' });
	await c.connect(new sdk.Transport(new URL(`http://127.0.0.1:${PORT}/mcp`)));
	return c;
}

let server, attach, dir;
const policyPath = () => join(dir, 'policy.json');

function writePolicy(obj) {
	writeFileSync(policyPath(), JSON.stringify(obj, null, 2));
}

const POLICY = {
	version: '1',
	default: 'allow',
	tools: {
		'get-env': { action: 'deny', reason: 'environment is private' },
		'trigger-*': { action: 'deny' },
		echo: { limits: [{ counter: 'echoes', window: 3, max: 3 }] },
		'get-tiny-image': { action: 'approve' },
	},
};

async function startAttach(policy = policyPath(), env = {}, port = PORT) {
	attach = await attachRun(['--policy', policy, '--port', String(port), '--audit',
		join(dir, 'audit.jsonl')], { env });
}

async function stopAttach() {
	if (process.env.KTCP_DEBUG) console.error(attach?.out);
	await attach?.stop();
}

const stats = () => kernelStats();

// Wait until attach has put a policy in force n times in all.
async function policiesLoaded(n) {
	const count = () => (attach.out.match(/in force \(generation/g) || []).length;
	const end = Date.now() + 10000;
	while (count() < n && Date.now() < end) await sleep(100);
	assert.equal(count(), n, attach.out);
}

// How many whole HTTP responses are in out (Content-Length or chunked framing).
function responses(out) {
	let n = 0, rest = out;
	for (;;) {
		const he = rest.indexOf('\r\n\r\n');
		if (he < 0) return n;
		const head = rest.slice(0, he);
		const cl = /content-length: *(\d+)/i.exec(head);
		let end;
		if (cl) {
			end = he + 4 + Number(cl[1]);
			if (Buffer.byteLength(rest) < end) return n;
		} else if (/transfer-encoding: *chunked/i.test(head)) {
			const z = rest.indexOf('\r\n0\r\n\r\n', he);
			if (z < 0) return n;
			end = z + 7;
		} else {
			end = he + 4;
		}
		n++;
		rest = rest.slice(end);
	}
}

// Raw HTTP: send the chunks (with a pause between them), collect what comes back until
// `expect` responses arrived, the server closed, or nothing came for `idle` ms.
function raw(chunks, { pause = 50, idle = 1500, expect = 1, port = PORT } = {}) {
	return new Promise((res) => {
		const s = net.connect(port, '127.0.0.1');
		let out = '', timer, closed = false, sendErr = null, finished = false;
		const done = () => {
			if (finished) return;
			finished = true;
			clearTimeout(timer);
			s.destroy();
			res({ out, closed, sendErr });
		};
		const arm = () => { clearTimeout(timer); timer = setTimeout(done, idle); };
		s.on('data', (d) => {
			out += d;
			if (responses(out) >= expect) setTimeout(done, 30);
			else arm();
		});
		s.on('close', () => { closed = true; done(); });
		s.on('error', (e) => { sendErr = e.code; });
		s.on('connect', async () => {
			for (const c of chunks) {
				s.write(c);
				await sleep(pause);
			}
			arm();
		});
	});
}

function post(body, headers = {}, { session = rawSession, cl, ctype = 'application/json',
	path = '/mcp' } = {}) {
	const b = Buffer.from(body);
	let h = `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1:${PORT}\r\n` +
		`Content-Type: ${ctype}\r\nAccept: application/json, text/event-stream\r\n` +
		'Mcp-Protocol-Version: 2025-06-18\r\n';
	if (session) h += `Mcp-Session-Id: ${session}\r\n`;
	for (const [k, v] of Object.entries(headers)) h += `${k}: ${v}\r\n`;
	if (cl !== null) h += `Content-Length: ${cl ?? b.length}\r\n`;
	return Buffer.concat([Buffer.from(h + '\r\n'), b]);
}

const call = (id, name, args = {}) =>
	JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });

let rawSession = null;
async function rawInit() {
	const init = JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: {
		protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });
	const r = await raw([post(init, {}, { session: null })]);
	const m = /mcp-session-id: ([^\r\n]+)/i.exec(r.out);
	assert.ok(m, `no session id in ${r.out}`);
	rawSession = m[1];
	await raw([post(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }))]);
}

before(async () => {
	if (skipReason) return;
	clearStale();
	sdk = await loadSdk();
	dir = mkdtempSync(join(tmpdir(), 'mcpfence-ktcp-'));
	writePolicy(POLICY);
	server = spawn(process.execPath, [EVERYTHING, 'streamableHttp'], {
		env: { ...process.env, PORT: String(PORT), MCPFENCE_CANARY: CANARY },
		stdio: ['ignore', 'ignore', 'ignore'],
	});
	await waitPort(PORT);
});

after(async () => {
	if (skipReason) return;
	await stopAttach();
	if (server) server.kill('SIGTERM');
	unlock();
});

// Wait until a window of w seconds has at least `need` seconds left, and its refill (done by
// mcpfence attach as the window starts) had 300 ms to land.
async function windowStart(w, need) {
	for (;;) {
		const into = (Date.now() / 1000) % w;
		if (into >= 0.3 && w - into >= need) return;
		await sleep(50);
	}
}

test('kernel TCP: allowed calls unchanged, denials, budgets, stats', { skip: skipReason || false }, async () => {
	// unattached baseline
	let c = await connectClient();
	const base = {
		sum: await c.callTool({ name: 'get-sum', arguments: { a: 2, b: 40 } }),
		echo: await c.callTool({ name: 'echo', arguments: { message: 'hello kernel' } }),
		env: await c.callTool({ name: 'get-env', arguments: {} }),
		list: await c.listTools(),
	};
	assert.ok(JSON.stringify(base.env).includes(CANARY), 'get-env shows the canary unattached');
	await c.close();
	const hidden = ['get-env', 'trigger-long-running-operation'];
	for (const h of hidden) assert.ok(base.list.tools.some((t) => t.name === h), `${h} listed unattached`);

	await startAttach();
	try {
		c = await connectClient();
		// the list as the policy shows it: the tools it denies by name taken out, the rest as
		// the server wrote them
		const list = await c.listTools();
		assert.deepEqual(list.tools, base.list.tools.filter((t) => !hidden.includes(t.name)));
		const sum = await c.callTool({ name: 'get-sum', arguments: { a: 2, b: 40 } });
		assert.deepEqual(sum, base.sum);
		await assert.rejects(c.callTool({ name: 'get-env', arguments: {} }), (e) => {
			assert.equal(e.code, -32601);
			assert.match(e.message, /denied by policy/);
			return true;
		});
		// the next call on the same session works
		const sum2 = await c.callTool({ name: 'get-sum', arguments: { a: 2, b: 40 } });
		assert.deepEqual(sum2, base.sum);
		// a glob rule
		await assert.rejects(c.callTool({ name: 'trigger-long-running-operation',
			arguments: { duration: 1, steps: 1 } }), /denied by policy/);

		// budget: 3 echoes per 3-second window; the 4th is refused, then the refill
		await windowStart(3, 2);
		for (let i = 0; i < 3; i++) {
			const r = await c.callTool({ name: 'echo', arguments: { message: 'hello kernel' } });
			assert.deepEqual(r, base.echo);
		}
		await assert.rejects(c.callTool({ name: 'echo', arguments: { message: 'x' } }),
			/denied by policy/);
		await sleep((3 - ((Date.now() / 1000) % 3)) * 1000 + 400);
		const again = await c.callTool({ name: 'echo', arguments: { message: 'hello kernel' } });
		assert.deepEqual(again, base.echo);
		await c.close();

		const { get, j } = stats();
		assert.equal(get('get-sum', 'allow'), 2, JSON.stringify(j));
		assert.equal(get('get-env', 'rule'), 1, JSON.stringify(j));
		assert.equal(get('trigger-long-running-operation', 'rule'), 1, JSON.stringify(j));
		assert.equal(get('echo', 'allow'), 4, JSON.stringify(j));
		assert.equal(get('echo', 'limit'), 1, JSON.stringify(j));
		assert.equal(j.totals.replies_rewritten, 3);
		assert.equal(j.totals.list_hidden, 2);
		assert.equal(j.totals.list_unfiltered, 0);
		// every call was decided by the one policy, named after its file
		assert.ok(j.calls.every((x) => x.policy === 'policy'), JSON.stringify(j));
		assert.deepEqual(j.policies.map((p) => [p.name, p.path, p.in_force]),
			[['policy', realpathSync(policyPath()), true]]);
		// status: a row per TCP connection that made calls (attach writes them once a second)
		let rows = [];
		await until(() => {
			const r = spawnSync(MCPFENCE, ['status', '--json'], { encoding: 'utf8' });
			rows = r.status === 0 ? JSON.parse(r.stdout).sessions : [];
			return rows.reduce((n, x) => n + x.calls, 0) === 9;
		}, 5000, 'mcpfence status: 9 calls');
		assert.ok(rows.every((x) => x.plane === 'kernel' && /^tcp:\d+->\d+$/.test(x.conn) &&
			x.server === `tcp:${PORT}` && x.client_pid > 0), JSON.stringify(rows));
		assert.equal(rows.reduce((n, x) => n + x.denied, 0), 3, JSON.stringify(rows));

		const audit = readFileSync(join(dir, 'audit.jsonl'), 'utf8').trim().split('\n')
			.map((l) => JSON.parse(l));
		const env = audit.find((a) => a.tool === 'get-env');
		assert.equal(env.decision, 'deny');
		assert.equal(env.rule, '/tools/get-env/action');
		assert.equal(env.plane, 'kernel');
		assert.ok(env.client.pid > 0);
	} finally {
		await stopAttach();
	}
	// detached: everything back to normal
	c = await connectClient();
	const env = await c.callTool({ name: 'get-env', arguments: {} });
	assert.ok(JSON.stringify(env).includes(CANARY));
	await c.close();
});

// The policy file is a symlink: SIGHUP after pointing it at another file swaps to that file,
// after rewriting the file swaps to its new version. Stats keep each call under the policy
// (file name and digest of its bytes) that decided it.
test('kernel TCP: SIGHUP swaps the policy; stats count per policy', { skip: skipReason || false }, async () => {
	const strict = join(dir, 'strict.json'), relaxed = join(dir, 'relaxed.json');
	const current = join(dir, 'current.json');
	writeFileSync(strict, JSON.stringify(POLICY));
	writeFileSync(relaxed, JSON.stringify({ version: '1', default: 'allow',
		tools: { 'get-sum': { action: 'deny' } } }));
	symlinkSync(strict, current);
	await startAttach(current);
	try {
		const c = await connectClient();
		await assert.rejects(c.callTool({ name: 'get-env', arguments: {} }), /denied by policy/);
		await c.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } });
		let { get, j } = stats();
		assert.equal(get('get-env', 'rule', 'strict'), 1, JSON.stringify(j));
		assert.equal(get('get-sum', 'allow', 'strict'), 1, JSON.stringify(j));
		assert.deepEqual(j.policies.map((p) => [p.name, p.path, p.in_force]),
			[['strict', realpathSync(strict), true]]);

		unlinkSync(current);
		symlinkSync(relaxed, current);
		attach.child.kill('SIGHUP');
		await policiesLoaded(2);
		const env = await c.callTool({ name: 'get-env', arguments: {} });
		assert.ok(JSON.stringify(env).includes(CANARY));
		await assert.rejects(c.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } }),
			/denied by policy/);
		({ get, j } = stats());
		assert.equal(get('get-env', 'rule', 'strict'), 1, JSON.stringify(j));
		assert.equal(get('get-sum', 'allow', 'strict'), 1, JSON.stringify(j));
		assert.equal(get('get-env', 'allow', 'strict'), 0, JSON.stringify(j));
		assert.equal(get('get-env', 'allow', 'relaxed'), 1, JSON.stringify(j));
		assert.equal(get('get-sum', 'rule', 'relaxed'), 1, JSON.stringify(j));
		assert.deepEqual(j.policies.map((p) => [p.name, p.in_force]),
			[['strict', false], ['relaxed', true]]);
		const relaxedV1 = j.policies[1].digest;

		// the same file, changed: a new version, the old one's counts stay with it
		writeFileSync(relaxed, JSON.stringify({ version: '1', default: 'allow',
			tools: { 'get-sum': { action: 'deny', reason: 'v2' } } }));
		attach.child.kill('SIGHUP');
		await policiesLoaded(3);
		await assert.rejects(c.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } }),
			/denied by policy/);
		({ get, j } = stats());
		const relaxedV2 = j.policies.find((p) => p.in_force).digest;
		assert.notEqual(relaxedV2, relaxedV1);
		assert.equal(get('get-sum', 'rule', 'relaxed', relaxedV1), 1, JSON.stringify(j));
		assert.equal(get('get-sum', 'rule', 'relaxed', relaxedV2), 1, JSON.stringify(j));
		assert.equal(get('get-sum', 'rule'), 2, JSON.stringify(j));

		// table: a policy column, versions of one name told apart by their digest
		const t = spawnSync(MCPFENCE, ['stats'], { encoding: 'utf8' });
		assert.equal(t.status, 0, t.stderr);
		assert.match(t.stdout, /^POLICY +TOOL +VERDICT +CALLS$/m);
		assert.match(t.stdout, /^strict +get-env +rule +1$/m);
		assert.match(t.stdout, new RegExp(`^relaxed@${relaxedV1.slice(0, 8)} +get-sum +rule +1$`, 'm'));
		assert.match(t.stdout, new RegExp(`^relaxed@${relaxedV2.slice(0, 8)} +${relaxedV2} +in force +${realpathSync(relaxed)}$`, 'm'));
		// Prometheus: one series per label set, the policy labels on each
		const p = spawnSync(MCPFENCE, ['stats', '--prometheus'], { encoding: 'utf8' });
		assert.equal(p.status, 0, p.stderr);
		const series = p.stdout.split('\n').filter((l) => l.startsWith('mcpfence_kernel_calls_total{'));
		assert.equal(new Set(series.map((l) => l.replace(/ \d+$/, ''))).size, series.length);
		assert.ok(series.includes('mcpfence_kernel_calls_total{policy="strict",policy_digest="' +
			`${j.policies[0].digest}",tool="get-env",verdict="rule"} 1`), p.stdout);
		assert.ok(series.includes(`mcpfence_kernel_calls_total{policy="relaxed",policy_digest="${relaxedV1}",` +
			'tool="get-sum",verdict="rule"} 1'), p.stdout);
		assert.match(p.stdout, new RegExp(`^mcpfence_kernel_policy_in_force\\{policy="relaxed",policy_digest="${relaxedV2}",path="[^"]+"\\} 1$`, 'm'));
		// the same into a textfile of node_exporter's collector: replaced whole, 0644, no
		// temporary file left beside it; a directory that does not exist: an error naming it
		const textdir = mkdtempSync(join(dir, 'textfile-'));
		const prom = join(textdir, 'mcpfence.prom');
		writeFileSync(prom, 'old\n');
		const o = spawnSync(MCPFENCE, ['stats', '--prometheus', '--output', prom],
			{ encoding: 'utf8' });
		assert.equal(o.status, 0, o.stderr);
		assert.equal(o.stdout, '');
		assert.equal(readFileSync(prom, 'utf8'), p.stdout);
		assert.equal(statSync(prom).mode & 0o777, 0o644);
		assert.deepEqual(readdirSync(textdir), ['mcpfence.prom']);
		const bad = spawnSync(MCPFENCE, ['stats', '--prometheus', '--output',
			join(textdir, 'no', 'mcpfence.prom')], { encoding: 'utf8' });
		assert.equal(bad.status, 1);
		assert.match(bad.stderr, /--output .*\/no\/mcpfence\.prom: .*No such file or directory/);
		assert.deepEqual(readdirSync(textdir), ['mcpfence.prom']);

		// a broken policy leaves the one in force, and its counts
		writeFileSync(relaxed, '{"version": "1", "default": "maybe"}');
		attach.child.kill('SIGHUP');
		await sleep(500);
		await assert.rejects(c.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } }),
			/denied by policy/);
		({ get, j } = stats());
		assert.equal(get('get-sum', 'rule', 'relaxed', relaxedV2), 2, JSON.stringify(j));
		await c.close();
	} finally {
		await stopAttach();
		unlinkSync(current);
	}
});

test('kernel TCP: approval tickets', { skip: skipReason || false }, async () => {
	writePolicy(POLICY);
	await startAttach();
	try {
		const c = await connectClient();
		await assert.rejects(c.callTool({ name: 'get-tiny-image', arguments: {} }),
			/denied by policy/);
		const t = spawnSync(MCPFENCE, ['approve', '--tool', 'get-tiny-image', '--count', '2',
			'--for', '1m'], { encoding: 'utf8' });
		assert.equal(t.status, 0, t.stderr);
		for (let i = 0; i < 2; i++) {
			const r = await c.callTool({ name: 'get-tiny-image', arguments: {} });
			assert.ok(r.content.some((x) => x.type === 'image'));
		}
		await assert.rejects(c.callTool({ name: 'get-tiny-image', arguments: {} }),
			/denied by policy/);
		// a ticket does not open a tool that is denied outright
		spawnSync(MCPFENCE, ['approve', '--tool', 'get-env']);
		await assert.rejects(c.callTool({ name: 'get-env', arguments: {} }), /denied by policy/);
		await c.close();
		const { get } = stats();
		assert.equal(get('get-tiny-image', 'allow'), 2);
		assert.equal(get('get-tiny-image', 'approval'), 2);
		const bad = spawnSync(MCPFENCE, ['approve', '--tool', 'x', '--for', 'fortnight']);
		assert.equal(bad.status, 2);
	} finally {
		await stopAttach();
	}
});

// --policy-dir: each port the first file whose match names it, else default.json; two servers
// in one attachment, each with its own denials.
test('kernel TCP: --policy-dir gives each port its own policy', { skip: skipReason || false }, async () => {
	const pdir = join(dir, 'policies');
	mkdirSync(pdir, { recursive: true });
	writeFileSync(join(pdir, 'default.json'), JSON.stringify(POLICY));
	writeFileSync(join(pdir, '10-second.json'), JSON.stringify({ version: '1', default: 'allow',
		match: { port: PORT + 1 }, tools: { 'get-sum': { action: 'deny', reason: 'no sums here' } } }));
	const second = spawn(process.execPath, [EVERYTHING, 'streamableHttp'], {
		env: { ...process.env, PORT: String(PORT + 1), MCPFENCE_CANARY: CANARY },
		stdio: ['ignore', 'ignore', 'ignore'],
	});
	try {
		await waitPort(PORT + 1);
		attach = await attachRun(['--policy-dir', pdir, '--port', String(PORT), '--port',
			String(PORT + 1), '--audit', join(dir, 'audit-dir.jsonl')]);
		assert.match(attach.out, new RegExp(`TCP port ${PORT}: policy ${join(pdir, 'default.json')}`));
		assert.match(attach.out, new RegExp(`TCP port ${PORT + 1}: policy ${join(pdir, '10-second.json')}`));
		const callOn = async (port, name, args = {}) => {
			const c = new sdk.Client({ name: 'kernel-e2e', version: '1' });
			await c.connect(new sdk.Transport(new URL(`http://127.0.0.1:${port}/mcp`)));
			try {
				return await c.callTool({ name, arguments: args });
			} finally {
				await c.close();
			}
		};
		await assert.rejects(callOn(PORT, 'get-env'), /denied by policy/, 'get-env on the first port');
		assert.ok(JSON.stringify(await callOn(PORT + 1, 'get-env')).includes(CANARY), 'get-env on the second port');
		assert.ok((await callOn(PORT, 'get-sum', { a: 1, b: 2 })).content, 'get-sum on the first port');
		await assert.rejects(callOn(PORT + 1, 'get-sum', { a: 1, b: 2 }), /denied by policy/, 'get-sum on the second port');
		const lines = readFileSync(join(dir, 'audit-dir.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
			.filter((l) => l.method === 'tools/call');
		assert.deepEqual(lines.map((l) => [l.server, l.tool, l.decision, l.policy]), [
			[`tcp:${PORT}`, 'get-env', 'deny', join(pdir, 'default.json')],
			[`tcp:${PORT + 1}`, 'get-env', 'allow', join(pdir, '10-second.json')],
			[`tcp:${PORT}`, 'get-sum', 'allow', join(pdir, 'default.json')],
			[`tcp:${PORT + 1}`, 'get-sum', 'deny', join(pdir, '10-second.json')],
		]);
	} finally {
		await stopAttach();
		second.kill('SIGTERM');
	}
});

// The daemon watching a port: its exit (SIGTERM, SIGKILL) leaves the port enforced by the pinned
// programs; the next daemon with the same ports takes the attachment back, one with other ports
// refuses it, naming why.
test('kernel TCP: the daemon leaves a port enforced; the next daemon takes it back', { skip: skipReason || false }, async () => {
	const pdir = join(dir, 'policies-daemon');
	mkdirSync(pdir, { recursive: true });
	writeFileSync(join(pdir, 'default.json'), JSON.stringify(POLICY));
	const daemon = (port = PORT) => attachRun(['--policy-dir', pdir, '--port', String(port), '--audit',
		join(dir, 'audit-daemon.jsonl')], { cmd: 'daemon', ready: /daemon: finding .*; pins in /, ms: 30000 });
	const call = async (name, args = {}) => {
		const c = await connectClient();
		try {
			return await c.callTool({ name, arguments: args });
		} finally {
			await c.close();
		}
	};
	const enforced = async (what) => {
		await assert.rejects(call('get-env'), /denied by policy/, `${what}: get-env`);
		assert.ok((await call('get-sum', { a: 1, b: 2 })).content, `${what}: get-sum`);
	};
	let d = await daemon();
	try {
		await enforced('daemon running');
		for (const signal of ['SIGTERM', 'SIGKILL']) {
			d.child.kill(signal);
			await new Promise((r) => d.child.exitCode !== null || d.child.signalCode !== null ? r() : d.child.on('exit', r));
			assert.ok(existsSync('/sys/fs/bpf/mcpfence'), `the pins after ${signal}`);
			await enforced(`no daemon, after ${signal}`);
			if (signal === 'SIGTERM')
				await assert.rejects(daemon(PORT + 1), /cannot adopt: it watches TCP ports '\d+', not '\d+'/);
			d = await daemon();
			assert.match(d.out, /took back the attachment a daemon left in \/sys\/fs\/bpf\/mcpfence: 0 sessions/, d.out);
			// the generation in force was described from default.json, unchanged
			assert.doesNotMatch(d.out, /is not in .* as it was/, d.out);
			await enforced(`taken back after ${signal}`);
		}
	} finally {
		await d.stop();
	}
	assert.ok(!existsSync('/sys/fs/bpf/mcpfence'), 'detach removes the pins');
	assert.ok(JSON.stringify(await call('get-env')).includes(CANARY), 'after detach: get-env runs');
});

test('kernel TCP: clear refusals', { skip: skipReason || false }, () => {
	writePolicy(POLICY);
	const r = spawnSync(binaryFor(65534), ['attach', '--policy', policyPath(), '--port',
		String(PORT)], { uid: 65534, gid: 65534, encoding: 'utf8' });
	assert.equal(r.status, 1);
	assert.match(r.stderr, /needs root/);
	const u = spawnSync(MCPFENCE, ['attach', '--policy', policyPath()], { encoding: 'utf8' });
	assert.equal(u.status, 2);
	const c = spawnSync(MCPFENCE, ['attach', '--policy', policyPath(), '--port', String(PORT),
		'--cgroup', '/tmp'], { encoding: 'utf8' });
	assert.equal(c.status, 1);
	assert.match(c.stderr, /not a cgroup v2 directory/);
	const s = spawnSync(MCPFENCE, ['stats'], { encoding: 'utf8' });
	assert.equal(s.status, 1);
	assert.match(s.stderr, /nothing attached/);
});

// Hostile requests on raw sockets: none may make the server run get-env (its answer would
// carry the canary from the server's environment).
test('kernel TCP: hostile HTTP never reaches a denied tool', { skip: skipReason || false }, async () => {
	writePolicy(POLICY);
	await rawInit();
	await startAttach();
	const seen = [];
	// Nothing that ran get-env, and an answer: a dead server must not pass.
	const check = (what, r, { answer = true } = {}) => {
		seen.push(what);
		if (process.env.KTCP_DEBUG)
			console.error(`--- ${what}: closed=${r.closed} err=${r.sendErr}\n` +
				r.out.replace(/\r/g, '').split('\n').filter((l) => /^HTTP|^data|^\{/.test(l)).join('\n'));
		assert.ok(!r.out.includes(CANARY), `${what}: get-env ran:\n${r.out.slice(0, 2000)}`);
		if (answer)
			assert.ok(/^HTTP\/1\.1 [1-5]\d\d /.test(r.out), `${what}: no answer arrived:\n${r.out.slice(0, 500)}`);
		return r;
	};
	try {
		const env = call(7, 'get-env');
		let r = check('plain', await raw([post(env)]));
		assert.match(r.out, /denied by policy/);

		// headers split in three sends, body in a fourth
		const whole = post(env);
		r = check('split', await raw([whole.subarray(0, 10), whole.subarray(10, 60),
			whole.subarray(60, whole.length - 20), whole.subarray(whole.length - 20)]));
		assert.match(r.out, /denied by policy/);

		// pipelined: allowed then denied in one send
		r = check('pipelined', await raw([Buffer.concat([post(call(8, 'get-sum', { a: 1, b: 2 })),
			post(env)])], { expect: 2 }));
		assert.match(r.out, /The sum of 1 and 2 is 3/);
		assert.match(r.out, /denied by policy/);

		// chunked body
		const body = Buffer.from(env);
		const chunked = Buffer.concat([Buffer.from(
			`POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
			`Accept: application/json, text/event-stream\r\nMcp-Session-Id: ${rawSession}\r\n` +
			`Transfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n`), body,
			Buffer.from('\r\n0\r\n\r\n')]);
		r = check('chunked', await raw([chunked]));
		assert.match(r.out, /^HTTP\/1.1 400/);

		// Content-Length shorter than the body: the rest is a smuggled second request
		const smuggled = post(env);
		const front = Buffer.from(call(9, 'get-sum', { a: 1, b: 1 }));
		r = check('cl-short', await raw([Buffer.concat([post(front, {}, { cl: front.length }),
			smuggled])], { expect: 2 }));
		assert.match(r.out, /denied by policy/);
		// Content-Length longer than the body, and a second request to fill it
		r = check('cl-long', await raw([Buffer.concat([post(env, {}, { cl: Buffer.byteLength(env) + 40 }),
			post(env)])]));
		// two Content-Length headers
		r = check('cl-twice', await raw([post(env, { 'Content-Length': '5' })]));
		assert.match(r.out, /^HTTP\/1.1 400/);
		// bare LF line ends
		r = check('bare-lf', await raw([Buffer.from(post(env).toString().replace(/\r\n/g, '\n'))]));
		assert.match(r.out, /^HTTP\/1.1 400/);
		// Mcp-Name header disagreeing with the body
		r = check('mcp-name', await raw([post(env, { 'Mcp-Method': 'tools/call', 'Mcp-Name': 'echo' })]));
		assert.match(r.out, /^HTTP\/1.1 400/);
		// escapes in the name, a batch, duplicate keys, name inside arguments
		r = check('escape', await raw([post(call(10, 'get\\u002denv').replace('get\\\\u002denv', 'get\\u002denv'))]));
		assert.match(r.out, /"id":10,"error":\{"code":-32601,"message":"denied by policy"/);
		r = check('batch', await raw([post(`[${call(11, 'echo', { message: 'a' })},${env}]`)]));
		assert.match(r.out, /Echo: a/);
		assert.match(r.out, /denied by policy/);
		r = check('dup-name', await raw([post('{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"echo","name":"get-env","arguments":{}}}')]));
		r = check('name-in-args', await raw([post('{"jsonrpc":"2.0","id":13,"method":"tools/call","params":{"arguments":{"name":"echo"},"name":"get-env"}}')]));
		assert.match(r.out, /denied by policy|"error"/);
		// content-encoding: see the test of its own below
		r = check('gzip', await raw([post(env, { 'Content-Encoding': 'gzip' })]));
		assert.match(r.out, /^HTTP\/1.1 400/);

		// TCP Fast Open: data queued before the socket is watched (python3 has MSG_FASTOPEN)
		const tfo = spawnSync('python3', ['-c', `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(2)
try:
    s.sendto(sys.stdin.buffer.read(), socket.MSG_FASTOPEN, ("127.0.0.1", ${PORT}))
    print(s.recv(65536).decode(errors="replace"))
except OSError as e:
    print("refused:", e)
`], { input: post(env), encoding: 'utf8' });
		assert.equal(tfo.error, undefined, 'python3 runs the TCP Fast Open client');
		// either the send is refused (the client bit is off) or an answer arrives: never nothing
		r = check('tcp-fastopen', { out: tfo.stdout + tfo.stderr }, { answer: false });
		assert.match(r.out, /^refused:|HTTP\/1\.1 [1-5]\d\d /, r.out);

		// The scanner's corpus of hostile messages, each as one request, under "default":
		// "deny": a tools/call that reaches the server's handler answers with "content":[ (a
		// result, isError or not) or -32602; a neutralized one with "denied by policy".
		const corpus = join(ROOT, 'tests/data/messages');
		if (existsSync(corpus)) {
			writePolicy({ version: '1', default: 'deny' });
			attach.child.kill('SIGHUP');
			const end = Date.now() + 10000;
			while (!attach.out.includes('generation 1') && Date.now() < end) await sleep(100);
			assert.ok(attach.out.includes('generation 1'), attach.out);
			let n = 0;
			for (const f of readdirSync(corpus).filter((x) => x.endsWith('.json')).sort()) {
				const msg = readFileSync(join(corpus, f));
				r = check(`corpus ${f}`, await raw([post(msg)], { idle: 2000 }));
				assert.ok(!r.out.includes('"content":[') && !/-32602,"message":"[^"]*tool/i.test(r.out),
					`corpus ${f}: a tools/call reached the server:\n${r.out.slice(0, 1500)}`);
				n++;
			}
			assert.ok(n > 50, `only ${n} corpus messages`);
		}
		const { get } = stats();
		assert.equal(get('get-env', 'allow'), 0);
	} finally {
		await stopAttach();
	}
});

// A body with a Content-Encoding is not read by the kernel plane, so it is refused. The server
// reads it otherwise: server-everything ignores the header and takes the bytes as JSON, so
// unattached the same requests run (echo answers, get-env shows the canary); attached both are
// refused (HTTP 400: the body's first byte made invalid) and the audit says why.
test('kernel TCP: a Content-Encoding body is refused', { skip: skipReason || false }, async () => {
	writePolicy(POLICY);
	await rawInit();
	const send = (body, enc) => raw([post(body, { 'Content-Encoding': enc })]);
	const echo = call(60, 'echo', { message: 'encoded' });
	let r = await send(echo, 'gzip');
	assert.match(r.out, /^HTTP\/1.1 200/, r.out);
	assert.match(r.out, /Echo: encoded/, `unattached, the server answers the call itself:\n${r.out}`);
	r = await send(call(61, 'get-env'), 'identity');
	assert.ok(r.out.includes(CANARY), `unattached, get-env runs:\n${r.out}`);

	const encoded = () => (existsSync(join(dir, 'audit.jsonl')) ? readFileSync(join(dir, 'audit.jsonl'), 'utf8') : '')
		.split('\n').filter(Boolean).map((l) => JSON.parse(l))
		.filter((a) => /a Content-Encoding/.test(a.reason ?? ''));
	const before = encoded().length;
	await startAttach();
	try {
		for (const [body, enc] of [[echo, 'gzip'], [call(62, 'get-env'), 'identity'],
			[call(63, 'echo', { message: 'encoded' }), 'br']]) {
			r = await send(body, enc);
			assert.match(r.out, /^HTTP\/1.1 400 /, `${enc}: not refused:\n${r.out}`);
			assert.ok(!r.out.includes(CANARY) && !r.out.includes('Echo: encoded'), r.out);
		}
		await sleep(300);
		const refused = encoded().slice(before);
		assert.equal(refused.length, 3, JSON.stringify(refused));
		assert.ok(refused.every((a) => a.decision === 'deny' && a.kind === 'unparsed'));
	} finally {
		await stopAttach();
	}
});

// `bpftool map dump` of tcp_budgets: the left of every entry of scope key 0, by ident.
function kernelLeft() {
	const r = spawnSync('bpftool', ['-j', 'map', 'dump', 'pinned', '/sys/fs/bpf/mcpfence/tcp_budgets'],
		{ encoding: 'utf8' });
	if (r.status !== 0) return null;
	return JSON.parse(r.stdout).map((e) => e.formatted?.value?.left ?? e.value?.left)
		.filter((v) => v !== undefined);
}

// Scope "global" is the host: a gateway (`mcpfence run`, stdio) and the kernel plane (attach,
// TCP) with one policy share one budget through one table ($MCPFENCE_RUNTIME_DIR here, so the
// host's own table is left alone). 3 per day: calls alternate between the planes and the 4th,
// whichever plane it goes through, is refused.
test('kernel TCP: global budgets shared with the gateways', { skip: skipReason || false }, async () => {
	const d = mkdtempSync(join(tmpdir(), 'mcpfence-glb-'));
	const env = { MCPFENCE_RUNTIME_DIR: join(d, 'run') };
	const table = join(d, 'run', 'global-budgets');
	// counter, scope, window, owner (none: a named counter), scope key (none: global)
	const key = 'shared-echo\x1fglobal\x1f86400\x1f0:\x1f';
	const pol = join(d, 'global.json');
	writeFileSync(pol, JSON.stringify({ version: '1', default: 'allow', tools: { echo: {
		limits: [{ counter: 'shared-echo', window: 'day', max: 3, scope: 'global' }] } } }));
	// not across a day boundary (UTC midnight): the budget would start again
	const left = 86400 - (Date.now() / 1000) % 86400;
	if (left < 60) await sleep(left * 1000 + 500);

	await startAttach(pol, env);
	assert.match(attach.out, /shared with every gateway through .*global-budgets/);
	const g = await connectGateway({ fence: { policy: pol }, env });
	const k = await connectClient();
	const viaKernel = () => k.callTool({ name: 'echo', arguments: { message: 'k' } });
	const viaGateway = () => g.client.callTool({ name: 'echo', arguments: { message: 'g' } });
	const lag = { toTable: [], toKernel: [] };
	// a kernel call reaches the table when attach reads its event
	const kernelCall = async (n) => {
		assert.equal(text(await viaKernel()), 'Echo: k');
		const t0 = Date.now();
		while (tableUsed(table, key) < n && Date.now() - t0 < 5000) await sleep(2);
		lag.toTable.push(Date.now() - t0);
		assert.equal(tableUsed(table, key), n);
	};
	// a gateway call reaches BPF at the next sync
	const gatewayCall = async (n) => {
		assert.equal(text(await viaGateway()), 'Echo: g');
		assert.equal(tableUsed(table, key), n);
		const t0 = Date.now();
		let l = kernelLeft();
		while (l && !l.includes(3 - n) && Date.now() - t0 < 5000) {
			await sleep(5);
			l = kernelLeft();
		}
		lag.toKernel.push(Date.now() - t0);
		if (l) assert.ok(l.includes(3 - n), `tcp_budgets left ${l}, want ${3 - n}`);
		else await sleep(400); // no bpftool: two sync intervals
	};
	try {
		await kernelCall(1);
		await gatewayCall(2);
		await kernelCall(3);
		// the 4th is refused through either plane, and neither counts
		const r = await viaGateway();
		assert.equal(r.isError, true);
		assert.equal(r._meta.kind, 'limit');
		assert.match(text(r), /rate limit of 3 calls per day/);
		await assert.rejects(viaKernel(), (e) => {
			assert.equal(e.code, -32601);
			assert.match(e.message, /denied by policy/);
			return true;
		});
		assert.equal(tableUsed(table, key), 3);
		console.log(`# global budget lag: kernel->table ${lag.toTable.join(',')} ms, ` +
			`gateway->kernel ${lag.toKernel.join(',')} ms`);
	} finally {
		await k.close();
		await g.close();
		await stopAttach();
	}

	// the other way round: the gateway first, then the kernel plane refuses the 4th
	const d2 = join(d, 'run2');
	const env2 = { MCPFENCE_RUNTIME_DIR: d2 };
	await startAttach(pol, env2);
	const g2 = await connectGateway({ fence: { policy: pol }, env: env2 });
	const k2 = await connectClient();
	try {
		assert.equal(text(await g2.client.callTool({ name: 'echo', arguments: { message: 'g' } })),
			'Echo: g');
		await sleep(400);
		assert.equal(text(await k2.callTool({ name: 'echo', arguments: { message: 'k' } })), 'Echo: k');
		assert.equal(text(await g2.client.callTool({ name: 'echo', arguments: { message: 'g' } })),
			'Echo: g');
		await sleep(400);
		await assert.rejects(k2.callTool({ name: 'echo', arguments: { message: 'k' } }),
			/denied by policy/);
		const r = await g2.client.callTool({ name: 'echo', arguments: { message: 'g' } });
		assert.equal(r._meta?.kind, 'limit');
		assert.equal(tableUsed(join(d2, 'global-budgets'), key), 3);
	} finally {
		await k2.close();
		await g2.close();
		await stopAttach();
	}
});

// A policy with "state": its global budget is kept in Redis (a real redis-server), which the
// kernel plane syncs from and charges as it does the table, and a gateway with a table of its
// own shares it through Redis alone. With Redis gone, the next sync leaves BPF nothing: the
// kernel plane refuses, and its audit line says why; so does the gateway.
test('kernel TCP: global budgets in Redis, shared with a gateway; Redis gone: refused',
	{ skip: skipReason || redisMissing() || false }, async () => {
		const d = mkdtempSync(join(tmpdir(), 'mcpfence-redis-'));
		const port = await freePort();
		let redis = await startRedis(port);
		const prefix = `ktcp-${process.pid}:`, name = 'r-echo\x1fglobal\x1f86400\x1f0:\x1f';
		const pol = join(d, 'redis.json');
		writeFileSync(pol, JSON.stringify({ version: '1', default: 'allow',
			state: { redis: `redis://127.0.0.1:${port}`, prefix },
			tools: { echo: { limits: [{ counter: 'r-echo', window: 'day', max: 4,
				scope: 'global' }] } } }));
		const left = 86400 - (Date.now() / 1000) % 86400;
		if (left < 60) await sleep(left * 1000 + 500);
		const day = Math.floor(Date.now() / 1000 / 86400) * 86400;
		const key = `${prefix}b:${createHash('sha256').update(name, 'latin1').digest('hex')}:${day}`;
		const used = () => Number(redisCli(port, 'GET', key) || 0);
		await startAttach(pol, { MCPFENCE_RUNTIME_DIR: join(d, 'run') });
		assert.match(attach.out, /budgets of scope "global" kept in Redis at redis:\/\/127\.0\.0\.1:\d+\/0/);
		const g = await connectGateway({ fence: { policy: pol },
			env: { MCPFENCE_RUNTIME_DIR: join(d, 'run2') } });
		const k = await connectClient();
		const viaKernel = () => k.callTool({ name: 'echo', arguments: { message: 'k' } });
		const viaGateway = () => g.client.callTool({ name: 'echo', arguments: { message: 'g' } });
		const kernelHas = (n) => until(() => kernelLeft()?.includes(n), 5000,
			`tcp_budgets left ${n}`);
		try {
			assert.equal(text(await viaKernel()), 'Echo: k');
			await until(() => used() === 1, 5000, 'the kernel call counted in Redis');
			assert.equal(text(await viaGateway()), 'Echo: g');
			assert.equal(used(), 2);
			await kernelHas(2);
			assert.equal(text(await viaKernel()), 'Echo: k');
			await until(() => used() === 3, 5000, 'the second kernel call counted in Redis');
			await redis.stop();
			// one left, but Redis cannot say so: fail closed
			await kernelHas(0);
			await assert.rejects(viaKernel(), /denied by policy/);
			const r = await viaGateway();
			assert.equal(r._meta?.kind, 'limit');
			assert.match(text(r), /the budgets of scope global cannot be counted \(Redis at /);
			const lines = await until(() => {
				const l = readFileSync(join(dir, 'audit.jsonl'), 'utf8').split('\n')
					.filter(Boolean).map((x) => JSON.parse(x))
					.filter((x) => /kept in Redis, which cannot be read/.test(x.reason ?? ''));
				return l.length ? l : null;
			}, 5000, 'the kernel plane\'s audit line');
			assert.equal(lines[0].decision, 'deny');
			assert.equal(lines[0].kind, 'limit');
			assert.equal(lines[0].tool, 'echo');
			// Redis back (empty, as after a crash): the budget starts again, in both planes
			redis = await startRedis(port);
			await kernelHas(4);
			assert.equal(text(await viaKernel()), 'Echo: k');
			await until(() => used() === 1, 5000, 'counted in the new Redis');
		} finally {
			await k.close();
			await g.close();
			await stopAttach();
			await redis.stop();
		}
	});

// Fail closed: a policy with a global limit is not enforced without the host-wide table.
test('kernel TCP: no host-wide table, no global limit', { skip: skipReason || false }, async () => {
	const d = mkdtempSync(join(tmpdir(), 'mcpfence-glb-'));
	const pol = join(d, 'global.json');
	writeFileSync(pol, JSON.stringify({ version: '1', default: 'allow', tools: { echo: {
		limits: [{ counter: 'c', window: 'day', max: 3, scope: 'global' }] } } }));
	// a table that others could write is refused
	const run = join(d, 'run');
	spawnSync('mkdir', ['-m', '0700', run]);
	writeFileSync(join(run, 'global-budgets'), '', { mode: 0o666 });
	spawnSync('chmod', ['0666', join(run, 'global-budgets')]);
	const r = spawnSync(MCPFENCE, ['attach', '--policy', pol, '--port', String(PORT)],
		{ encoding: 'utf8', env: { ...process.env, MCPFENCE_RUNTIME_DIR: run }, timeout: 30000 });
	assert.notEqual(r.status, 0);
	assert.match(r.stderr, /global-budgets cannot be used: the policy is not enforced/);
	assert.ok(!existsSync('/sys/fs/bpf/mcpfence'), 'nothing left attached');
});

// A server that decodes the body by the charset its Content-Type declares: server-everything's
// SSE transport does (the SDK's SSEServerTransport, through raw-body and iconv-lite), so in
// UTF-7 "tools+AC8-call" is tools/call. Unattached, the UTF-7 call runs: the class is real.
// Attached, a body in any charset but UTF-8 is not read, so it is refused, and the audit line
// says why.
test('kernel TCP: a body in another charset (UTF-7) is refused', { skip: skipReason || false }, async () => {
	const port = PORT + 1;
	const sse = spawn(process.execPath, [EVERYTHING, 'sse'], {
		env: { ...process.env, PORT: String(port), MCPFENCE_CANARY: CANARY },
		stdio: ['ignore', 'ignore', 'ignore'],
	});
	let stream = null;
	try {
		await waitPort(port);
		// one SSE session: the GET stream carries every answer
		let events = '';
		stream = net.connect(port, '127.0.0.1');
		stream.on('data', (d) => { events += d; });
		stream.on('error', () => {});
		stream.write(`GET /sse HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`);
		const end = Date.now() + 10000;
		while (!/data: (\/message\?sessionId=[^\r\n]+)/.test(events) && Date.now() < end)
			await sleep(50);
		const path = /data: (\/message\?sessionId=[^\r\n]+)/.exec(events)[1];
		const send = (body, ctype) => raw([post(body, {}, { session: null, ctype, path })],
			{ port, idle: 500 });
		const answered = async (id, ms = 3000) => {
			const until = Date.now() + ms;
			const re = new RegExp(`"id":${id}[,}]`);
			while (!re.test(events) && Date.now() < until) await sleep(50);
			return re.test(events);
		};
		await send(JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: {
			protocolVersion: '2025-06-18', capabilities: {},
			clientInfo: { name: 'raw', version: '1' } } }));
		assert.ok(await answered(0), events);
		await send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
		const utf7 = (id) => `{"jsonrpc":"2.0","id":${id},"method":"tools+AC8-call",` +
			'"params":{"name":"get-env","arguments":{}}}';

		// unattached: the server decodes UTF-7 and runs get-env
		await send(utf7(1), 'application/json; charset=utf-7');
		assert.ok(await answered(1), `no answer to the UTF-7 call:\n${events}`);
		assert.ok(events.includes(CANARY), 'the server did not decode UTF-7: the test proves nothing');

		writePolicy(POLICY);
		await startAttach(policyPath(), {}, port);
		events = '';
		let r = await send(utf7(2), 'application/json; charset=utf-7');
		assert.match(r.out, /^HTTP\/1.1 400/, r.out);
		r = await send(utf7(3), 'application/json;charset="UTF-7"');
		assert.match(r.out, /^HTTP\/1.1 400/, r.out);
		await sleep(500);
		assert.ok(!events.includes(CANARY), `get-env ran:\n${events}`);
		// what is declared as UTF-8 is read and decided
		await send(call(4, 'echo', { message: 'utf8' }), 'application/json; charset=utf-8');
		assert.ok(await answered(4), events);
		assert.match(events, /Echo: utf8/);
		await send(call(5, 'get-env'), 'application/json; charset=utf-8');
		assert.ok(await answered(5), events);
		assert.ok(!events.includes(CANARY), `get-env ran:\n${events}`);
		await sleep(300);
		const audit = readFileSync(join(dir, 'audit.jsonl'), 'utf8').split('\n').filter(Boolean)
			.map((l) => JSON.parse(l)).filter((a) => a.server === `tcp:${port}`);
		const refused = audit.filter((a) => a.kind === 'unparsed');
		assert.equal(refused.length, 2, JSON.stringify(audit));
		for (const a of refused) {
			assert.equal(a.decision, 'deny');
			assert.match(a.reason, /refused unread: a charset other than utf-8/);
			assert.match(a.conn, new RegExp(`^tcp:\\d+->${port}$`));
		}
		assert.ok(audit.some((a) => a.tool === 'get-env' && a.kind === 'rule'));
		assert.match(attach.out, /conn=tcp:\d+->\d+ \(neutralized\): refused unread: a charset/);
	} finally {
		stream?.destroy();
		await stopAttach();
		sse.kill('SIGTERM');
	}
});
