// SPDX-License-Identifier: Apache-2.0
// Kernel plane on TCP under the three seed policies of policies/, as published: `mcpfence
// attach --policy policies/X.json --port` in front of an unchanged server on the real SDK
// (fixtures/named_http_server.mjs, offering the seeds' tools and others) and the real SDK
// client. BinanceFuturesCloseListenKey: 10 calls of a minute run and the next are denied, so are
// 30 of binance_us_close_listen_key (limits of scope grant: one budget for every connection of
// the attachment); cleanup_all_streams with {} runs as often as asked; any other tool is denied
// by the default. What ran is the server's ledger; stats and the audit name each decision's rule.
// Root only.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';
import { MCPFENCE, ROOT, kernelLock, clearStale, awaitAudit, sleep, text, attachRun, kernelStats, waitPort }
	from './lib.mjs';

const SERVER = join(ROOT, 'tests/e2e/fixtures/named_http_server.mjs');
const PORT = 30001 + (process.pid % 5000) * 2;
const require = createRequire(join(ROOT, 'tests/e2e/package.json'));
const imp = (m) => import(pathToFileURL(require.resolve(m)).href);

// The seeds: policy file, its tool, its max a minute (0: no limit), its counter.
const SEEDS = [
	['binance-futures', 'BinanceFuturesCloseListenKey', 10, 'binancefuturescloselistenkey_rate'],
	['binance-us', 'binance_us_close_listen_key', 30, 'binance_us_close_listen_key_rate'],
	['streams-cleanup', 'cleanup_all_streams', 0, null],
];
// what the server offers: the seeds' tools, another of its own, names close to the seeds'
const TOOLS = [...SEEDS.map(([, t]) => t), 'get_account', 'binancefuturescloselistenkey',
	'Binance_US_Close_Listen_Key', 'cleanup_all_streams_now', 'cleanup_all_stream'];

function whyNot() {
	if (process.getuid() !== 0) return 'needs root (BPF programs on a cgroup)';
	if (!existsSync(MCPFENCE)) return `${MCPFENCE} is not built (make)`;
	try {
		require.resolve('@modelcontextprotocol/sdk/client/index.js');
	} catch {
		return 'tests/e2e/node_modules missing (make setup-test)';
	}
	return null;
}
// other test files attach too: one at a time (taken before looking for an attachment in place)
const unlock = process.getuid() === 0 ? await kernelLock() : () => {};
const skipReason = unlock ? whyNot() : 'another test file kept the kernel plane for 20 minutes';
if (skipReason) unlock?.();

let server, dir, ledger, attach, sdk;
const ran = () => (existsSync(ledger)
	? readFileSync(ledger, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : []);

before(async () => {
	if (skipReason) return;
	clearStale();
	const [client, http] = await Promise.all([imp('@modelcontextprotocol/sdk/client/index.js'),
		imp('@modelcontextprotocol/sdk/client/streamableHttp.js')]);
	sdk = { Client: client.Client, Transport: http.StreamableHTTPClientTransport };
	dir = mkdtempSync(join(tmpdir(), 'mcpfence-kseeds-'));
	ledger = join(dir, 'ledger.jsonl');
	server = spawn(process.execPath, [SERVER, String(PORT), ledger, ...TOOLS],
		{ stdio: ['ignore', 'ignore', 'ignore'] });
	await waitPort(PORT);
});

after(async () => {
	if (skipReason) return;
	await attach?.stop();
	server?.kill('SIGTERM');
	unlock();
});

// A real SDK client (v1) on a connection of its own; call() the tool with args.
async function client() {
	const c = new sdk.Client({ name: 'kernel-seeds', version: '1' });
	await c.connect(new sdk.Transport(new URL(`http://127.0.0.1:${PORT}/mcp`)));
	return { call: (name, args) => c.callTool({ name, arguments: args }, undefined, { timeout: 10000 }),
		close: () => c.close() };
}

// What a client sees of a denial: the call's JSON-RPC error, rewritten to say so.
const denied = (e) => {
	assert.equal(e.code, -32601, e.message);
	assert.match(e.message, /denied by policy/);
	return true;
};
// each call as the client got it: the tool's text, or 'denied'
const outcome = (p) => p.then(text, (e) => denied(e) && 'denied');

// Windows are aligned to the epoch, and attach refills the budgets as each starts: wait until
// the window has `need` seconds left and its refill had 300 ms to land. Its index, for inWindow.
async function windowStart(w, need) {
	for (;;) {
		const into = (Date.now() / 1000) % w;
		if (into >= 0.3 && w - into >= need) return Math.floor(Date.now() / 1000 / w);
		await sleep(50);
	}
}
function inWindow(w, index) {
	assert.equal(Math.floor(Date.now() / 1000 / w), index,
		'the calls ran past the end of their window: the counts would be of two windows');
}

for (const [name, tool, max, counter] of SEEDS) {
	const what = max ? `${max} a minute, counter ${counter}, scope grant` : 'with {}, no limit';
	test(`kernel TCP, seed ${name}.json as published: ${tool} ${what}; any other tool denied`,
		{ skip: skipReason || false }, async () => {
			const policy = join(ROOT, 'policies', `${name}.json`);
			const audit = join(dir, `${name}.audit.jsonl`);
			const before = ran().length;
			attach = await attachRun(['--policy', policy, '--port', String(PORT), '--audit', audit]);
			try {
				// max + 2 calls (40 without a limit) in one window, one after another, each
				// on the next of four connections: one budget for all of them
				const n = max ? max + 2 : 40;
				const args = (k) => (max ? { listenKey: `k${k}` } : {});
				const w = await windowStart(60, 20);
				const clients = await Promise.all([0, 1, 2, 3].map(() => client()));
				const got = [];
				try {
					for (let k = 0; k < n; k++)
						got.push(await outcome(clients[k % 4].call(tool, args(k))));
				} finally {
					await Promise.all(clients.map((c) => c.close()));
				}
				inWindow(60, w);
				const ok = max || n;
				assert.deepEqual(got, Array.from({ length: n }, (_, k) =>
					(k < ok ? `ran ${tool} ${JSON.stringify(args(k))}` : 'denied')));
				// any other tool, on a connection that goes on afterwards: the default, deny
				const c = await client();
				try {
					for (const other of TOOLS.filter((t) => t !== tool))
						await assert.rejects(c.call(other, {}), denied, other);
					if (!max) assert.equal(text(await c.call(tool, {})), `ran ${tool} {}`);
				} finally {
					await c.close();
				}

				// the server ran the allowed calls and nothing else
				const runs = ran().slice(before);
				assert.equal(runs.length, ok + (max ? 0 : 1));
				assert.ok(runs.every((r) => r.tool === tool), JSON.stringify(runs));
				if (!max) assert.ok(runs.every((r) => JSON.stringify(r.args) === '{}'));
				// stats: every decision under this policy, named after its file
				const { get, j } = kernelStats();
				assert.equal(get(tool, 'allow', name), runs.length, JSON.stringify(j));
				assert.equal(get(tool, 'limit', name), max ? 2 : 0, JSON.stringify(j));
				for (const other of TOOLS.filter((t) => t !== tool))
					assert.equal(get(other, 'default', name), 1, `${other}: ${JSON.stringify(j)}`);
				assert.ok(j.calls.every((x) => x.policy === name), JSON.stringify(j.calls));
				// the audit: which rule decided each
				const lines = await awaitAudit(audit, (l) => l.method === 'tools/call' &&
					l.plane === 'kernel', n + TOOLS.length - (max ? 1 : 0));
				const seen = (pred) => lines.filter(pred).length;
				assert.equal(seen((l) => l.tool === tool && l.decision === 'allow' &&
					l.rule === `/tools/${tool}`), runs.length);
				assert.equal(seen((l) => l.tool === tool && l.decision === 'deny' &&
					l.kind === 'limit' && l.rule === `/tools/${tool}/limits/0`), max ? 2 : 0);
				assert.equal(seen((l) => l.tool !== tool && l.decision === 'deny' &&
					l.kind === 'default' && l.rule === '(default deny)'), TOOLS.length - 1);
			} finally {
				await attach.stop();
				attach = null;
			}
		});
}
