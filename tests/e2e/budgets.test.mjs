// SPDX-License-Identifier: Apache-2.0
// Budgets that outlive a gateway: a client that starts the server once per call (as the MCP
// Inspector CLI does) or runs several at once gets one grant budget between all of them; one
// client identity gets one agent budget across its sessions; a session budget stays the
// session's. Real `mcpfence run` processes, the real SDK client, real servers; each test has a
// table of its own ($MCPFENCE_RUNTIME_DIR in a temporary directory).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { existsSync, readFileSync, writeFileSync, unlinkSync, realpathSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { missing, connect, tmp, writePolicy, readAudit, awaitAudit, text, sleep, until,
	 tableUsed, windowWithRoom, inWindow, EVERYTHING, MCPFENCE, ROOT } from './lib.mjs';

const skip = missing();
const LEDGER = join(ROOT, 'tests/e2e/fixtures/ledger.mjs');

// A directory with a table of its own, an audit log, and a ledger of the calls a server ran.
function place() {
	const d = tmp();
	return { d, env: { MCPFENCE_RUNTIME_DIR: join(d, 'run') }, audit: join(d, 'audit.jsonl'),
		 ledger: join(d, 'ledger.jsonl'), table: join(d, 'run', 'global-budgets') };
}

// What the server really ran: its ledger lines.
const ran = (p) => existsSync(p.ledger)
	? readFileSync(p.ledger, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l))
	: [];

// One `mcpfence run` process: connect, make the calls in order, close (the Inspector CLI).
async function session(p, policy, server, calls, extra = []) {
	const c = await connect({ fence: { policy, audit: p.audit, extra }, server, env: p.env });
	try {
		const out = [];
		for (const [name, args] of calls) out.push(await c.client.callTool({ name, arguments: args }));
		return out;
	} finally {
		await c.close();
	}
}

// A limit denial as the agent reads it; its retry_after_s leads to the end of window w (the
// test's), from a moment of that window that has passed.
function assertLimitDenial(r, { max, window, rule, windowS, w }) {
	assert.equal(r.isError, true, `want a denial, got ${JSON.stringify(r)}`);
	assert.equal(r._meta.kind, 'limit');
	assert.equal(r._meta.rule, rule);
	const m = text(r).match(/^denied by policy: rate limit of (\d+) calls per (\w+) reached; retry in (\d+) s$/);
	assert.ok(m, text(r));
	assert.equal(Number(m[1]), max);
	assert.equal(m[2], window);
	assert.equal(Number(m[3]), r._meta.retry_after_s);
	const at = (w + 1) * windowS - r._meta.retry_after_s;
	assert.ok(at >= w * windowS && at <= Date.now() / 1000,
		`retry_after_s ${r._meta.retry_after_s}: not the end of the window of the calls`);
}

const decisions = (p, tool) => readAudit(p.audit).filter((l) => l.tool === tool)
	.map((l) => l.decision);

describe('scope grant: one budget for one server under one policy', { skip: skip ?? false }, () => {
	test('one call per process, one process after another: exactly N run', async () => {
		const p = place();
		const policy = writePolicy(p.d, { version: '1', default: 'deny', tools: {
			echo: { limits: [{ counter: 'echo', window: 'minute', max: 3 }] } } });
		const w = await windowWithRoom(60, 30);
		const results = [];
		for (let i = 0; i < 5; i++)
			results.push((await session(p, policy, [EVERYTHING], [['echo', { message: `m${i}` }]]))[0]);
		inWindow(60, w);
		assert.deepEqual(results.slice(0, 3).map(text), ['Echo: m0', 'Echo: m1', 'Echo: m2']);
		for (const r of results.slice(3))
			assertLimitDenial(r, { max: 3, window: 'minute', rule: '/tools/echo/limits/0', windowS: 60, w });
		// five gateways, five sessions: the audit says which ran and why the others did not
		const lines = await awaitAudit(p.audit, (l) => l.tool === 'echo', 5);
		assert.deepEqual(lines.map((l) => l.decision), ['allow', 'allow', 'allow', 'deny', 'deny']);
		assert.equal(new Set(lines.map((l) => l.session)).size, 5);
		for (const l of lines.slice(3)) {
			assert.equal(l.kind, 'limit');
			assert.equal(l.rule, '/tools/echo/limits/0');
			assert.match(l.reason, /^rate limit of 3 calls per minute reached; retry in \d+ s$/);
		}
	});

	test('processes side by side: N run in total, whichever asks first', async () => {
		const p = place();
		const policy = writePolicy(p.d, { version: '1', default: 'deny', tools: {
			write: { rate_limit: '4/minute' } } });
		const server = [LEDGER, p.ledger, 'write'];
		const w = await windowWithRoom(60, 30);
		// six clients connected at once, then every one calls at the same moment
		const clients = await Promise.all(Array.from({ length: 6 }, () =>
			connect({ fence: { policy, audit: p.audit }, server, env: p.env })));
		let results;
		try {
			results = await Promise.all(clients.map((c, i) =>
				c.client.callTool({ name: 'write', arguments: { n: i } })));
		} finally {
			await Promise.all(clients.map((c) => c.close()));
		}
		inWindow(60, w);
		const ok = results.filter((r) => !r.isError);
		assert.equal(ok.length, 4);
		for (const r of results.filter((r) => r.isError))
			assertLimitDenial(r, { max: 4, window: 'minute', rule: '/tools/write/rate_limit', windowS: 60, w });
		assert.equal(ran(p).length, 4);
		assert.deepEqual(ran(p).map((l) => l.args.n).sort(),
			ok.map((r) => Number(text(r).match(/"n":(\d)/)[1])).sort());
		// a seventh, later, is refused too: the budget outlived all six
		const [late] = await session(p, policy, server, [['write', { n: 7 }]]);
		assertLimitDenial(late, { max: 4, window: 'minute', rule: '/tools/write/rate_limit', windowS: 60, w });
		assert.equal(ran(p).length, 4);
	});

	// policies/binance-futures.json and binance-us.json as published: limits [{counter
	// "binancefuturescloselistenkey_rate" / "binance_us_close_listen_key_rate", window minute,
	// max 10 / 30, scope grant}]. N+1 calls in one window: exactly N run, whatever the processes.
	test('the seeds: 10 and 30 a minute hold across many processes', async () => {
		const p = place();
		const futures = join(ROOT, 'policies/binance-futures.json');
		const us = join(ROOT, 'policies/binance-us.json');
		const fTool = 'BinanceFuturesCloseListenKey', uTool = 'binance_us_close_listen_key';
		const server = [LEDGER, p.ledger, fTool, uTool];
		const name = ['--name', 'binance'];
		const w = await windowWithRoom(60, 20);
		// futures: twelve processes of one call each, one after another
		const f = [];
		for (let i = 0; i < 12; i++)
			f.push((await session(p, futures, server, [[fTool, { listenKey: `k${i}` }]], name))[0]);
		// us: eight processes side by side, four calls each
		const u = (await Promise.all(Array.from({ length: 8 }, (_, i) =>
			session(p, us, server, Array.from({ length: 4 }, (_, j) =>
				[uTool, { listenKey: `u${i}-${j}` }]), name)))).flat();
		inWindow(60, w);
		assert.deepEqual(f.slice(0, 10).map(text), Array.from({ length: 10 }, (_, i) =>
			`ran ${fTool} {"listenKey":"k${i}"}`));
		for (const r of f.slice(10))
			assertLimitDenial(r, { max: 10, window: 'minute', rule: `/tools/${fTool}/limits/0`, windowS: 60, w });
		assert.equal(u.filter((r) => !r.isError).length, 30);
		for (const r of u.filter((r) => r.isError))
			assertLimitDenial(r, { max: 30, window: 'minute', rule: `/tools/${uTool}/limits/0`, windowS: 60, w });
		// what the server ran, and what the audit says
		assert.equal(ran(p).filter((l) => l.tool === fTool).length, 10);
		assert.equal(ran(p).filter((l) => l.tool === uTool).length, 30);
		await awaitAudit(p.audit, (l) => l.tool === uTool, 32);
		assert.deepEqual(decisions(p, fTool), [...Array(10).fill('allow'), 'deny', 'deny']);
		assert.equal(decisions(p, uTool).filter((d) => d === 'allow').length, 30);
		for (const l of readAudit(p.audit).filter((l) => l.decision === 'deny')) {
			assert.equal(l.kind, 'limit');
			assert.equal(l.rule, `/tools/${l.tool}/limits/0`);
		}
		// the budgets are the published counters', of scope grant, a minute long, in the
		// host-wide table: policy (real path) and server (--name) are the grant's key
		const grant = (counter, policy) =>
			`${counter}\x1fgrant\x1f60\x1f0:\x1f${Buffer.byteLength(policy)}:${policy}name:binance`;
		assert.equal(tableUsed(p.table, grant('binancefuturescloselistenkey_rate',
			realpathSync(futures))), 10);
		assert.equal(tableUsed(p.table, grant('binance_us_close_listen_key_rate',
			realpathSync(us))), 30);
	});

	test('another server, or another policy, has a budget of its own; --name names the server',
	     async () => {
		const p = place();
		const body = { version: '1', default: 'deny', tools: { t: { rate_limit: '1/minute' } } };
		const a = writePolicy(p.d, body, 'a.json'), b = writePolicy(p.d, body, 'b.json');
		const one = [LEDGER, p.ledger, 't'], two = [LEDGER, p.ledger, 't', 'other'];
		const w = await windowWithRoom(60, 30);
		const call = async (policy, server, extra) =>
			(await session(p, policy, server, [['t', {}]], extra))[0].isError ? 'deny' : 'ran';
		assert.equal(await call(a, one), 'ran');
		assert.equal(await call(a, one), 'deny');
		assert.equal(await call(a, two), 'ran'); // other arguments: another server
		assert.equal(await call(b, one), 'ran'); // another policy file
		// one server named by --name whatever its command line
		assert.equal(await call(a, one, ['--name', 'ledger']), 'ran');
		assert.equal(await call(a, two, ['--name', 'ledger']), 'deny');
		// the same policy through a symlink is the same policy
		spawnSync('ln', ['-s', a, join(p.d, 'link.json')]);
		assert.equal(await call(join(p.d, 'link.json'), one), 'deny');
		inWindow(60, w);
		assert.equal(ran(p).length, 4);
	});
});

describe('scope agent: one budget per client identity', { skip: skip ?? false }, () => {
	test('two sessions of one client share it, across servers; another client has its own',
	     async () => {
		const p = place();
		const policy = writePolicy(p.d, { version: '1', default: 'deny', tools: {
			t: { limits: [{ counter: 'per-agent', window: 'minute', max: 3, scope: 'agent' }] } } });
		const one = [LEDGER, p.ledger, 't'], two = [LEDGER, p.ledger, 't', 'x'];
		const w = await windowWithRoom(60, 30);
		// this node process is one client (uid and executable): two sessions at once
		const s1 = await connect({ fence: { policy, audit: p.audit }, server: one, env: p.env });
		const s2 = await connect({ fence: { policy, audit: p.audit }, server: two, env: p.env });
		const call = (s, n) => s.client.callTool({ name: 't', arguments: { n } });
		let denied;
		try {
			assert.equal(text(await call(s1, 1)), 'ran t {"n":1}');
			assert.equal(text(await call(s2, 2)), 'ran t {"n":2}');
			assert.equal(text(await call(s1, 3)), 'ran t {"n":3}');
			denied = await call(s2, 4);
			assertLimitDenial(denied, { max: 3, window: 'minute', rule: '/tools/t/limits/0', windowS: 60, w });
			assert.equal((await call(s1, 5)).isError, true);
		} finally {
			await s1.close();
			await s2.close();
		}
		// another client identity: the shell (dash) as client, one line of JSON-RPC each
		const lines = [
			{ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18',
				capabilities: {}, clientInfo: { name: 'sh', version: '1' } } },
			{ jsonrpc: '2.0', method: 'notifications/initialized' },
			...[6, 7].map((n) => ({ jsonrpc: '2.0', id: n, method: 'tools/call',
				params: { name: 't', arguments: { n } } })),
		].map((m) => JSON.stringify(m)).join('\n') + '\n';
		const input = join(p.d, 'input.jsonl');
		writeFileSync(input, lines);
		const sh = spawnSync('/bin/sh', ['-c', 'cat "$1" | "$2" run --policy "$3" --audit "$4" -- ' +
			'"$5" "$6" "$7" t', 'sh', input, MCPFENCE, policy, p.audit, process.execPath, LEDGER,
			p.ledger], { encoding: 'utf8', env: { ...process.env, ...p.env }, timeout: 20000 });
		inWindow(60, w);
		const answers = sh.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
		assert.deepEqual(answers.filter((m) => m.id >= 6).map((m) => m.result.content[0].text),
			['ran t {"n":6}', 'ran t {"n":7}'], sh.stdout + sh.stderr);
		assert.deepEqual(ran(p).map((l) => l.args.n), [1, 2, 3, 6, 7]);
		// the audit names the two clients
		const audit = await awaitAudit(p.audit, (l) => l.tool === 't', 7);
		const exes = new Set(audit.map((l) => l.client.exe));
		assert.equal(exes.size, 2, [...exes].join(', '));
	});
});

describe('scope session: still one session', { skip: skip ?? false }, () => {
	test('each gateway session has its own budget', async () => {
		const p = place();
		const policy = writePolicy(p.d, { version: '1', default: 'deny', tools: {
			t: { rate_limit: { max: 2, window: 60 } } } });
		const server = [LEDGER, p.ledger, 't'];
		const w = await windowWithRoom(60, 30);
		const calls = [1, 2, 3].map((n) => ['t', { n }]);
		const a = await session(p, policy, server, calls);
		const b = await session(p, policy, server, calls);
		inWindow(60, w);
		for (const r of [a, b]) {
			assert.deepEqual(r.slice(0, 2).map((x) => x.isError ?? false), [false, false]);
			assertLimitDenial(r[2], { max: 2, window: 'minute', rule: '/tools/t/rate_limit', windowS: 60, w });
		}
		assert.equal(ran(p).length, 4);
	});
});

describe('the host-wide table', { skip: skip ?? false }, () => {
	test('one of an earlier layout: limited calls are denied saying what to do; SIGHUP opens it again',
	     async () => {
		const p = place();
		const policy = writePolicy(p.d, { version: '1', default: 'deny', tools: {
			t: { rate_limit: '5/minute' }, free: {} } });
		// the layout of earlier versions: "MCPFGLB1", 4096 slots of 256 bytes
		spawnSync('mkdir', ['-m', '0700', join(p.d, 'run')]);
		const old = Buffer.alloc(16 + 4096 * 256);
		old.write('MCPFGLB1', 0, 'latin1');
		old.writeUInt32LE(4096, 8);
		old.writeUInt32LE(256, 12);
		writeFileSync(p.table, old, { mode: 0o600 });
		const c = await connect({ fence: { policy, audit: p.audit },
			server: [LEDGER, p.ledger, 't', 'free'], env: p.env });
		try {
			assert.match(c.stderr(), /global-budgets: a budget table of an earlier mcpfence .*remove the file/);
			const r = await c.client.callTool({ name: 't', arguments: {} });
			assert.equal(r.isError, true);
			assert.equal(r._meta.kind, 'limit');
			assert.match(text(r), /^denied by policy: budgets of scope grant are kept host-wide and the table cannot be used \(.*global-budgets: a budget table of an earlier mcpfence/);
			// a call without a limit is not concerned
			assert.equal(text(await c.client.callTool({ name: 'free', arguments: {} })), 'ran free {}');
			unlinkSync(p.table);
			process.kill(c.transport.pid, 'SIGHUP');
			await until(() => /SIGHUP: policy .* reloaded/.test(c.stderr()), 5000, 'the reload');
			assert.equal(text(await c.client.callTool({ name: 't', arguments: {} })), 'ran t {}');
			assert.equal(readFileSync(p.table).subarray(0, 8).toString('latin1'), 'MCPFBUDG');
		} finally {
			await c.close();
		}
		assert.deepEqual(ran(p).map((l) => l.tool), ['free', 't']);
	});
});

// The three seeds in policies/ as published: default deny, one tool each. Whatever else the
// server offers is not listed and not run; cleanup_all_streams has no limit at all.
describe('the seeds as published: one tool each, the rest denied', { skip: skip ?? false }, () => {
	const SEEDS = [['binance-futures.json', 'BinanceFuturesCloseListenKey'],
		['binance-us.json', 'binance_us_close_listen_key'],
		['streams-cleanup.json', 'cleanup_all_streams']];
	// the server's other tools: another of its own, and names close to the seeds'
	const TOOLS = [...SEEDS.map(([, t]) => t), 'get_account', 'binancefuturescloselistenkey',
		'Binance_US_Close_Listen_Key', 'cleanup_all_streams_now', 'cleanup_all_stream'];

	test('each lists and runs its tool; any other is denied by the default', async () => {
		const p = place();
		const server = [LEDGER, p.ledger, ...TOOLS];
		for (const [file, tool] of SEEDS) {
			const c = await connect({ fence: { policy: join(ROOT, 'policies', file), audit: p.audit },
				server, env: p.env });
			try {
				assert.deepEqual((await c.client.listTools()).tools.map((t) => t.name), [tool]);
				for (const other of TOOLS.filter((t) => t !== tool)) {
					const r = await c.client.callTool({ name: other, arguments: {} });
					assert.equal(r.isError, true, other);
					assert.equal(text(r), `denied by policy: tool "${other}" is not allowed (default deny)`);
					assert.deepEqual(r._meta, { rule: '(default deny)', kind: 'default', retry_after_s: null });
				}
				assert.equal(text(await c.client.callTool({ name: tool, arguments: {} })), `ran ${tool} {}`);
			} finally {
				await c.close();
			}
		}
		assert.deepEqual(ran(p).map((l) => [l.tool, l.args]), SEEDS.map(([, t]) => [t, {}]));
		const audit = await awaitAudit(p.audit, () => true, SEEDS.length * TOOLS.length);
		assert.equal(audit.filter((l) => l.decision === 'deny' && l.kind === 'default' &&
			l.rule === '(default deny)').length, SEEDS.length * (TOOLS.length - 1));
	});

	test('streams-cleanup: cleanup_all_streams with {} runs, as often as asked', async () => {
		const p = place();
		const policy = join(ROOT, 'policies/streams-cleanup.json');
		const server = [LEDGER, p.ledger, ...TOOLS];
		// more than either Binance max, in one window: four processes side by side, ten each
		const results = (await Promise.all(Array.from({ length: 4 }, () =>
			session(p, policy, server, Array.from({ length: 10 }, () =>
				['cleanup_all_streams', {}]))))).flat();
		assert.deepEqual(results.map(text), Array(40).fill('ran cleanup_all_streams {}'));
		assert.equal(ran(p).length, 40);
		const audit = await awaitAudit(p.audit, (l) => l.tool === 'cleanup_all_streams', 40);
		assert.ok(audit.every((l) => l.decision === 'allow' && l.rule === '/tools/cleanup_all_streams'),
			JSON.stringify(audit[0]));
	});
});
