// SPDX-License-Identifier: Apache-2.0
// Kernel plane on TCP and the 2026-07-28 revision: the v2 SDK server over Streamable HTTP
// (fixtures/v2_http_server.mjs: stateless 2026-07-28 requests, and 2025 sessions) and real
// clients (the v2 SDK client pinned to 2026-07-28 and in its 2025 handshake, the v1 client),
// neither changed, with `mcpfence attach --port` in between. Allowed calls answer as they do
// unattached, a denial is an error the client reads as the call's answer, limits hold, lists
// are filtered, approval is a ticket (`mcpfence approve --tool`), stats and audit count each
// decision. Raw HTTP: Mcp-Method/Mcp-Name headers that disagree with the body, Mcp-Param-*
// headers, requests without Mcp-Session-Id. Root only.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { MCPFENCE, kernelLock, clearStale, readAudit, awaitAudit, sleep, text, attachRun,
	kernelStats, waitPort }
	from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const SERVER = join(here, 'fixtures/v2_http_server.mjs');
const PORT = 25000 + (process.pid % 5000);
const LONG_URI = `mcpfence://long/${'x'.repeat(200)}`;
const CANARY = 'mcpfence-canary-' + randomBytes(6).toString('hex');
const require = createRequire(join(here, 'package.json'));
const imp = (m) => import(pathToFileURL(require.resolve(m)).href);

function whyNot() {
	if (process.getuid() !== 0) return 'needs root (BPF programs on a cgroup)';
	if (!existsSync(MCPFENCE)) return `${MCPFENCE} is not built (make)`;
	for (const m of ['@modelcontextprotocol/server', '@modelcontextprotocol/client',
		'@modelcontextprotocol/sdk/client/index.js']) {
		try {
			require.resolve(m);
		} catch {
			return `${m} missing from tests/e2e/node_modules (make setup-test)`;
		}
	}
	return null;
}
const unlock = process.getuid() === 0 ? await kernelLock() : () => {};
const skipReason = unlock ? whyNot() : 'another test file kept the kernel plane for 20 minutes';
if (skipReason) unlock?.();

const POLICY = {
	version: '1',
	default: 'deny',
	tools: {
		echo: {},
		'café': {},
		'get-sum': { limits: [{ counter: 'sums', window: 'hour', max: 2 }] },
		'get-env': { action: 'deny', reason: 'the environment is private' },
		stamp: { action: 'approve' },
	},
};

let server, dir, toolLog, attach;
const audit = () => join(dir, 'audit.jsonl');
const ran = () => (existsSync(toolLog) ? readFileSync(toolLog, 'utf8').split('\n').filter(Boolean) : []);

before(async () => {
	if (skipReason) return;
	clearStale();
	dir = mkdtempSync(join(tmpdir(), 'mcpfence-kh26-'));
	toolLog = join(dir, 'tools.log');
	writeFileSync(join(dir, 'policy.json'), JSON.stringify(POLICY));
	server = spawn(process.execPath, [SERVER], {
		env: { ...process.env, PORT: String(PORT), MCPFENCE_CANARY: CANARY, MCPFENCE_TOOL_LOG: toolLog },
		stdio: ['ignore', 'ignore', 'ignore'],
	});
	await waitPort(PORT);
});

after(async () => {
	if (skipReason) return;
	await stopAttach();
	server?.kill('SIGTERM');
	unlock();
});

async function startAttach() {
	attach = await attachRun(['--policy', join(dir, 'policy.json'), '--port', String(PORT),
		'--audit', audit()]);
}

async function stopAttach() {
	if (process.env.KTCP_DEBUG) console.error(attach?.out);
	await attach?.stop();
}

const stats = () => kernelStats();

// A client of SDK v (1 or 2; mode: the v2 client's versionNegotiation mode) at /mcp; the
// headers of each POST it sends are kept in posts.
async function session(v, mode, name) {
	const url = new URL(`http://127.0.0.1:${PORT}/mcp`);
	const posts = [];
	const fetchSeen = (u, init) => {
		if (init?.method === 'POST')
			posts.push({ headers: Object.fromEntries(new Headers(init.headers)), body: init.body });
		return fetch(u, init);
	};
	let client;
	if (v === 1) {
		const { Client } = await imp('@modelcontextprotocol/sdk/client/index.js');
		const { StreamableHTTPClientTransport } =
			await imp('@modelcontextprotocol/sdk/client/streamableHttp.js');
		client = new Client({ name, version: '1.0.0' });
		await client.connect(new StreamableHTTPClientTransport(url, { fetch: fetchSeen }));
	} else {
		const { Client, StreamableHTTPClientTransport } = await imp('@modelcontextprotocol/client');
		client = new Client({ name, version: '1.0.0' }, mode ? { versionNegotiation: { mode } } : {});
		await client.connect(new StreamableHTTPClientTransport(url, { fetch: fetchSeen }));
	}
	const call = (tool, a = {}) => client.callTool({ name: tool, arguments: a }, undefined,
		{ timeout: 10000 });
	return { client, call, posts, close: () => client.close() };
}

// The denial as the client sees it: the JSON-RPC error of the call, read as its answer (the
// SDKs throw it as a protocol error with its code and message), not a failed POST.
const denied = (e) => {
	assert.equal(e.code, -32601, `${e.constructor?.name}: ${e.message}`);
	assert.match(e.message, /denied by policy/);
	assert.doesNotMatch(e.message, /rpc\.denied|disagree|Error POSTing/);
	assert.ok(!e.message.includes(CANARY));
	return true;
};

const CASES = [
	[2, { pin: '2026-07-28' }, '2026-07-28', 'SDK v2 client pinned to 2026-07-28'],
	[2, null, '2025-11-25', 'SDK v2 client, 2025 handshake'],
	[1, null, null, 'SDK v1 client'],
];

for (const [v, mode, version, what] of CASES) {
	test(`kernel TCP, v2 server: ${what}: allowed as direct, denial readable, limits, approval by ticket, stats, audit`,
		{ skip: skipReason || false }, async () => {
			const name = `kh26-v${v}-${version ?? 'v1'}`;
			// unattached: what the server answers, and get-env runs
			// the list first: a 2026-07-28 client learns from it which arguments go in
			// Mcp-Param-* headers (x-mcp-header); without it, its first echo goes without the
			// header, the server refuses it, and the client lists and sends it again
			const d = await session(v, mode, name);
			const want = {
				list: (await d.client.listTools()).tools,
				echo: await d.call('echo', { message: 'eras hé' }),
				sum: await d.call('get-sum', { a: 1, b: 2 }),
				long: await d.client.readResource({ uri: LONG_URI }),
				cafe: await d.call('café'),
				stamp: await d.call('stamp'),
			};
			assert.ok(text(await d.call('get-env')).includes(CANARY), 'get-env runs unattached');
			await d.close();

			await startAttach();
			const before = ran().length;
			const s = await session(v, mode, name);
			try {
				if (version) assert.equal(s.client.getNegotiatedProtocolVersion(), version);
				// the list as the policy shows it: the tools it denies by name or by its
				// default taken out, the rest as the server sent them
				assert.ok(want.list.some((t) => t.name === 'get-env'));
				assert.deepEqual((await s.client.listTools()).tools,
					want.list.filter((t) => ['echo', 'café', 'get-sum', 'stamp'].includes(t.name)));
				assert.deepEqual(await s.call('echo', { message: 'eras hé' }), want.echo);
				// its URI goes whole in Mcp-Name (2026-07-28): longer than any name, read
				assert.deepEqual(await s.client.readResource({ uri: LONG_URI }), want.long);
				await assert.rejects(s.call('get-env'), denied);
				// a tool the policy does not name: the default (deny)
				await assert.rejects(s.call('nope'), denied);
				// limit 2 an hour: the third is denied, the connection goes on
				assert.deepEqual(await s.call('get-sum', { a: 1, b: 2 }), want.sum);
				assert.deepEqual(await s.call('get-sum', { a: 1, b: 2 }), want.sum);
				await assert.rejects(s.call('get-sum', { a: 1, b: 2 }), denied);
				assert.equal(text(await s.call('echo', { message: 'after' })), 'Echo: after');
				assert.deepEqual(await s.call('café'), want.cafe);
				// approval on this plane is a ticket: without one, a denial the client reads;
				// with one, the call as it answers unattached, once
				await assert.rejects(s.call('stamp'), denied);
				const t = spawnSync(MCPFENCE, ['approve', '--tool', 'stamp', '--count', '1',
					'--for', '1m'], { encoding: 'utf8' });
				assert.equal(t.status, 0, t.stderr);
				assert.deepEqual(await s.call('stamp'), want.stamp);
				await assert.rejects(s.call('stamp'), denied);

				// what the client sent: 2026-07-28 carries Mcp-Method, Mcp-Name and the
				// Mcp-Param-Message header echo declares, and no Mcp-Session-Id
				const calls = s.posts.filter((p) => /"tools\/call"/.test(p.body));
				assert.equal(calls.length, 11, calls.map((p) => JSON.stringify(p.headers)).join('\n'));
				if (version === '2026-07-28') {
					assert.equal(s.posts.find((p) => /"resources\/read"/.test(p.body))
						?.headers['mcp-name'], LONG_URI);
					for (const p of calls) {
						assert.equal(p.headers['mcp-method'], 'tools/call');
						assert.equal(p.headers['mcp-session-id'], undefined);
					}
					assert.equal(calls[0].headers['mcp-name'], 'echo');
					// a value past ASCII goes base64 in the header
					assert.equal(calls[0].headers['mcp-param-message'],
						`=?base64?${Buffer.from('eras hé').toString('base64')}?=`);
					assert.equal(calls[6].headers['mcp-param-message'], 'after');
					// so does a name past ASCII in Mcp-Name
					assert.equal(calls[7].headers['mcp-name'],
						`=?base64?${Buffer.from('café').toString('base64')}?=`);
				} else {
					assert.ok(calls.every((p) => !p.headers['mcp-method']));
					assert.ok(calls.every((p) => p.headers['mcp-session-id']));
				}

				const { get, j } = stats();
				assert.equal(get('echo', 'allow'), 2, JSON.stringify(j));
				assert.equal(get('café', 'allow'), 1, JSON.stringify(j));
				assert.equal(get('get-env', 'rule'), 1, JSON.stringify(j));
				assert.equal(get('nope', 'default'), 1, JSON.stringify(j));
				assert.equal(get('get-sum', 'allow'), 2, JSON.stringify(j));
				assert.equal(get('get-sum', 'limit'), 1, JSON.stringify(j));
				assert.equal(get('stamp', 'allow'), 1, JSON.stringify(j));
				assert.equal(get('stamp', 'approval'), 2, JSON.stringify(j));
				assert.equal(j.totals.replies_rewritten, 5, JSON.stringify(j.totals));
			} finally {
				await s.close();
				await stopAttach();
			}
			// the server ran what was allowed, and nothing else
			assert.deepEqual(ran().slice(before),
				['echo', 'get-sum', 'get-sum', 'echo', 'café', 'stamp']);
			const lines = (await awaitAudit(audit(), (l) => l.client?.pid === process.pid &&
				l.method === 'tools/call' && l.plane === 'kernel', 11)).slice(-11);
			assert.deepEqual(lines.map((l) => [l.tool, l.decision, l.kind ?? '-']), [
				['echo', 'allow', '-'], ['get-env', 'deny', 'rule'], ['nope', 'deny', 'default'],
				['get-sum', 'allow', '-'], ['get-sum', 'allow', '-'],
				['get-sum', 'deny', 'limit'], ['echo', 'allow', '-'], ['café', 'allow', '-'],
				['stamp', 'deny', 'approval'], ['stamp', 'allow', '-'],
				['stamp', 'deny', 'approval']]);
			assert.equal(lines[1].rule, '/tools/get-env/action');
			for (const l of lines) assert.match(l.conn, new RegExp(`^tcp:\\d+->${PORT}$`));
		});
}

// ---- raw HTTP ----------------------------------------------------------------------------

// One request on a connection of its own; what came back until the server closed or `idle` ms
// passed without bytes after the first.
function raw(req, { idle = 700 } = {}) {
	return new Promise((res) => {
		const s = net.connect(PORT, '127.0.0.1');
		let out = '', timer = null;
		const done = () => { clearTimeout(timer); s.destroy(); res(out); };
		s.on('data', (d) => { out += d; clearTimeout(timer); timer = setTimeout(done, idle); });
		s.on('close', done);
		s.on('error', () => {});
		s.on('connect', () => { s.write(req); timer = setTimeout(done, 5000); });
	});
}

const META = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28',
	'io.modelcontextprotocol/clientInfo': { name: 'raw26', version: '1' },
	'io.modelcontextprotocol/clientCapabilities': {} };

// A 2026-07-28 tools/call POST: no session; headers as given (the body's own by default).
function post26(id, tool, args = {}, headers = null) {
	const body = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call',
		params: { name: tool, arguments: args, _meta: META } }));
	const h = headers ?? { 'Mcp-Method': 'tools/call', 'Mcp-Name': tool };
	let head = `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${PORT}\r\nContent-Type: application/json\r\n` +
		'Accept: application/json, text/event-stream\r\nMcp-Protocol-Version: 2026-07-28\r\n';
	for (const [k, val] of Object.entries(h)) head += `${k}: ${val}\r\n`;
	return Buffer.concat([Buffer.from(`${head}Content-Length: ${body.length}\r\n\r\n`), body]);
}

const status = (out) => Number(/^HTTP\/1\.1 (\d{3}) /.exec(out)?.[1] ?? 0);

test('kernel TCP, v2 server, raw 2026-07-28: headers that disagree, Mcp-Param-*, no session',
	{ skip: skipReason || false }, async () => {
		// unattached: the server itself refuses headers that disagree with the body (-32020,
		// HTTP 400), and runs get-env when they agree
		const lie = { 'Mcp-Method': 'tools/call', 'Mcp-Name': 'echo' };
		const before0 = ran().length;
		let out = await raw(post26(1, 'get-env', {}, lie));
		assert.equal(status(out), 400, out);
		assert.match(out, /"code":-32020/);
		out = await raw(post26(2, 'get-env', {}, { 'Mcp-Method': 'tools/list', 'Mcp-Name': 'get-env' }));
		assert.equal(status(out), 400, out);
		assert.ok(!ran().slice(before0).includes('get-env'), 'the server ran get-env on headers that disagree');
		out = await raw(post26(3, 'get-env'));
		assert.ok(out.includes(CANARY), `get-env does not run unattached:\n${out}`);

		await startAttach();
		const before = ran().length;
		try {
			// disagreeing headers: refused by the kernel plane (the body's first byte made
			// invalid: the server answers 400), whatever the headers name
			for (const [id, h] of [[10, lie], [11, { 'Mcp-Method': 'tools/list', 'Mcp-Name': 'get-env' }],
				[12, { 'Mcp-Method': 'tools/call', 'Mcp-Name': 'GET-ENV' }],
				[13, { 'Mcp-Method': 'tools/call', 'Mcp-Name': `=?base64?${Buffer.from('echo').toString('base64')}?=` }]]) {
				out = await raw(post26(id, 'get-env', {}, h));
				assert.equal(status(out), 400, `${JSON.stringify(h)}:\n${out}`);
				assert.ok(!out.includes(CANARY), out);
			}
			// agreeing, denied: the answer to the id, in-band; Mcp-Name as it is or in base64
			out = await raw(post26(14, 'get-env'));
			assert.equal(status(out), 200, out);
			assert.match(out, /"id":14,"error":\{"code":-32601,"message":"denied by policy"\}/);
			out = await raw(post26(20, 'get-env', {}, { 'Mcp-Method': 'tools/call',
				'Mcp-Name': `=?base64?${Buffer.from('get-env').toString('base64')}?=` }));
			assert.equal(status(out), 200, out);
			assert.match(out, /"id":20,"error":\{"code":-32601,"message":"denied by policy"\}/);
			// a method written with an escape: neutralized as rpc.denied_, which its
			// Mcp-Method (rpc.denied) does not say; the server refuses that (-32020)
			out = await raw(Buffer.from(post26(21, 'get-env').toString()
				.replace('"tools/call"', '"tools\\/call"').replace(/Content-Length: (\d+)/,
					(m, n) => `Content-Length: ${Number(n) + 1}`)));
			assert.equal(status(out), 400, out);
			assert.match(out, /"code":-32020/);
			assert.ok(!out.includes(CANARY), out);
			// Mcp-Param-* headers pass: plain, base64, and one the tool does not declare
			out = await raw(post26(15, 'echo', { message: 'p1' },
				{ 'Mcp-Method': 'tools/call', 'Mcp-Name': 'echo', 'Mcp-Param-Message': 'p1' }));
			assert.match(out, /Echo: p1/, out);
			out = await raw(post26(16, 'echo', { message: ' p2' }, { 'Mcp-Method': 'tools/call',
				'Mcp-Name': 'echo', 'Mcp-Param-Message': `=?base64?${Buffer.from(' p2').toString('base64')}?=` }));
			assert.match(out, /Echo:  p2/, out);
			// a Mcp-Param header that disagrees is the server's to refuse (it does not run)
			out = await raw(post26(17, 'echo', { message: 'p3' },
				{ 'Mcp-Method': 'tools/call', 'Mcp-Name': 'echo', 'Mcp-Param-Message': 'other' }));
			assert.equal(status(out), 400, out);
			assert.doesNotMatch(out, /Echo: p3/);
			// no Mcp-Method or Mcp-Name at all, no session: judged from the body alone
			out = await raw(post26(18, 'get-env', {}, {}));
			assert.ok(!out.includes(CANARY), out);
			assert.match(out, /denied by policy|"error"/, out);
			out = await raw(post26(19, 'get-sum', { a: 2, b: 3 }));
			assert.match(out, /The sum of 2 and 3 is 5\./, out);
			await sleep(300);
			const { get, j } = stats();
			assert.equal(get('get-env', 'allow'), 0, JSON.stringify(j));
			assert.ok(get('get-env', 'rule') >= 1, JSON.stringify(j));
		} finally {
			await stopAttach();
		}
		assert.ok(!ran().slice(before).includes('get-env'), ran().join(','));
		assert.deepEqual(ran().slice(before), ['echo', 'echo', 'get-sum']);
		const refused = readAudit(audit()).filter((l) => l.kind === 'unparsed' &&
			/disagree/.test(l.reason ?? ''));
		assert.ok(refused.length >= 4, JSON.stringify(refused));
		assert.ok(refused.every((l) => l.decision === 'deny'));
	});

// Budgets of scope session are keyed by Mcp-Session-Id; 2026-07-28 requests have none, so all
// of them count in one entry (as scope grant does), whichever connection they come on, while
// each 2025 session has its own.
test('kernel TCP, v2 server: a session budget without Mcp-Session-Id is one budget',
	{ skip: skipReason || false }, async () => {
		writeFileSync(join(dir, 'policy.json'), JSON.stringify({ version: '1', default: 'allow',
			tools: { 'get-sum': { limits: [{ counter: 's', window: 'hour', max: 2, scope: 'session' }] } } }));
		await startAttach();
		try {
			const answers = [];
			for (let id = 30; id < 33; id++)
				answers.push(await raw(post26(id, 'get-sum', { a: id, b: 1 })));
			assert.match(answers[0], /The sum of 30 and 1 is 31\./);
			assert.match(answers[1], /The sum of 31 and 1 is 32\./);
			assert.match(answers[2], /"id":32,"error":\{"code":-32601,"message":"denied by policy"\}/);
			// a 2025 session of its own still has its 2
			const s = await session(2, null, 'kh26-session');
			try {
				assert.equal(text(await s.call('get-sum', { a: 1, b: 1 })), 'The sum of 1 and 1 is 2.');
				assert.equal(text(await s.call('get-sum', { a: 1, b: 2 })), 'The sum of 1 and 2 is 3.');
				await assert.rejects(s.call('get-sum', { a: 1, b: 3 }), denied);
			} finally {
				await s.close();
			}
			const { get, j } = stats();
			assert.equal(get('get-sum', 'allow'), 4, JSON.stringify(j));
			assert.equal(get('get-sum', 'limit'), 2, JSON.stringify(j));
		} finally {
			await stopAttach();
			writeFileSync(join(dir, 'policy.json'), JSON.stringify(POLICY));
		}
	});
