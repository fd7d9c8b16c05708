// SPDX-License-Identifier: Apache-2.0
// Both protocol eras through `mcpfence run`: the v2 SDK client pinned to 2026-07-28 (no
// initialize; every request carries the revision, clientInfo and capabilities in its _meta;
// results must carry resultType) and in its 2025 handshake, and the v1 SDK client, each against
// the v2 SDK server (fixtures/v2_server.mjs). A denial is a result the client accepts and the
// model can read, allowed calls answer as they do directly, the list is filtered, limits hold,
// and the audit names the server and the client in both eras.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { missing, tmp, writePolicy, readAudit, awaitAudit, text, loadSdk, sleep, MCPFENCE }
	from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const V2_SERVER = join(here, 'fixtures/v2_server.mjs');
const require = createRequire(join(here, 'package.json'));
const imp = (m) => import(pathToFileURL(require.resolve(m)).href);
const skip = missing();
const dir = skip ? null : tmp();

const POLICY = {
	version: '1',
	default: 'deny',
	tools: {
		echo: {},
		'get-sum': { limits: [{ counter: 'sums', window: 'hour', max: 2, scope: 'session' }] },
		'get-env': { action: 'deny', reason: 'the environment is private' },
	},
};

// A client of SDK v (1 or 2; mode: the v2 client's versionNegotiation mode) on the v2 server,
// through `mcpfence run`; the server spawned directly when fenced is false.
async function session(v, { mode = null, audit = '/dev/null', fenced = true, name } = {}) {
	const argv = [process.execPath, V2_SERVER];
	const command = fenced ? MCPFENCE : argv[0];
	const args = fenced ? ['run', '--policy', writePolicy(dir, POLICY), '--audit', audit, '--',
		...argv] : argv.slice(1);
	let Client, StdioClientTransport, opts = {};
	if (v === 1) {
		({ Client, StdioClientTransport } = await loadSdk());
	} else {
		({ Client } = await imp('@modelcontextprotocol/client'));
		({ StdioClientTransport } = await imp('@modelcontextprotocol/client/stdio'));
		if (mode) opts = { versionNegotiation: { mode } };
	}
	const transport = new StdioClientTransport({ command, args, stderr: 'pipe' });
	let stderr = '';
	transport.stderr?.on('data', (d) => { stderr += d; });
	const client = new Client({ name, version: '1.0.0' }, opts);
	await client.connect(transport);
	const call = (tool, a = {}) => client.callTool({ name: tool, arguments: a }, undefined,
		{ timeout: 10000 });
	return { client, call, stderr: () => stderr, close: () => client.close() };
}

const CASES = [
	[2, { pin: '2026-07-28' }, '2026-07-28', 'SDK v2 client pinned to 2026-07-28'],
	[2, null, '2025-11-25', 'SDK v2 client, 2025 handshake'],
	[1, null, null, 'SDK v1 client'],
];

for (const [v, mode, version, what] of CASES) {
	test(`${what}, v2 server, through run: denial readable, list filtered, limits, audit`,
		{ skip: skip ?? false }, async () => {
			const audit = join(dir, `audit-${v}-${version}.jsonl`);
			const name = `e2e-v${v}-${version ?? 'v1'}`;
			const direct = await session(v, { mode, fenced: false, name });
			const s = await session(v, { mode, audit, name });
			try {
				if (version)
					assert.equal(s.client.getNegotiatedProtocolVersion(), version);
				// allowed: as direct
				const want = await direct.call('echo', { message: 'eras' });
				const got = await s.call('echo', { message: 'eras' });
				assert.equal(text(got), 'Echo: eras');
				assert.deepEqual(got.content, want.content);
				// the list: what the policy can allow
				const tools = (await s.client.listTools()).tools.map((t) => t.name).sort();
				assert.deepEqual(tools, ['echo', 'get-sum']);
				// denied: a result the client accepted, with the reason
				const d = await s.call('get-env');
				assert.equal(d.isError, true);
				assert.equal(text(d), 'denied by policy: the environment is private');
				assert.equal(d._meta?.rule, '/tools/get-env/action');
				assert.doesNotMatch(JSON.stringify(d), /MCPFENCE_CANARY=/);
				// a tool the server has and the policy does not name: denied by default
				const u = await s.call('nope');
				assert.equal(u.isError, true);
				assert.match(text(u), /^denied by policy: /);
				// limit 2 per session: the third is denied, the session goes on
				assert.equal(text(await s.call('get-sum', { a: 1, b: 2 })), 'The sum of 1 and 2 is 3.');
				assert.equal(text(await s.call('get-sum', { a: 2, b: 2 })), 'The sum of 2 and 2 is 4.');
				const third = await s.call('get-sum', { a: 3, b: 2 });
				assert.equal(third.isError, true);
				assert.match(text(third), /^denied by policy: /);
				assert.equal(third._meta?.kind, 'limit');
				assert.equal(text(await s.call('echo', { message: 'after' })), 'Echo: after');
			} finally {
				await s.close();
				await direct.close();
			}
			const lines = await awaitAudit(audit, (l) => l.method === 'tools/call', 7);
			// the server names itself in initialize, or (2026-07-28, no handshake) in the _meta
			// of its first answer: the line of the call decided before that names the command
			lines.forEach((l, i) => {
				assert.equal(l.server, i === 0 && mode ? 'node' : 'mcpfence-v2-server',
					JSON.stringify(l));
				assert.equal(l.client?.name, name, JSON.stringify(l));
			});
			assert.deepEqual(readAudit(audit).filter((l) => l.decision === 'deny').map((l) => l.tool),
				['get-env', 'nope', 'get-sum']);
		});
}

// Approval in the 2026-07-28 revision: the call that needs a human is answered with an
// input_required result whose embedded elicitation/create the v2 client hands to its handler;
// the retry carries the answer and mcpfence's requestState. Approved: the call runs, once;
// declined: a readable denial. A retry made by hand with the state of another call, with other
// arguments, or a second time, is denied.
const ASK = {
	version: '1',
	default: 'deny',
	tools: {
		echo: { action: 'approve', approval: { via: ['client'] } },
		'get-sum': { action: 'approve', approval: { via: ['client'] } },
	},
};

// subscriptions/listen (2026-07-28) is no tools/call: it passes, and so do the notifications
// its stream carries; the list the client then asks for is filtered like any other.
test('2026-07-28: subscriptions/listen through run: acknowledged, notified, list filtered',
	{ skip: skip || false }, async () => {
		const policy = { version: '1', default: 'deny',
			tools: { echo: {}, grow: {}, late: { action: 'deny', reason: 'not this one' } } };
		const argv = [process.execPath, V2_SERVER];
		const { Client } = await imp('@modelcontextprotocol/client');
		const { StdioClientTransport } = await imp('@modelcontextprotocol/client/stdio');
		const client = new Client({ name: 'eras-listen', version: '1.0.0' },
			{ versionNegotiation: { mode: { pin: '2026-07-28' } } });
		await client.connect(new StdioClientTransport({ command: MCPFENCE,
			args: ['run', '--policy', writePolicy(dir, policy), '--audit', '/dev/null', '--',
				...argv], stderr: 'pipe' }));
		try {
			let notified = 0;
			const changed = new Promise((res) => client.setNotificationHandler(
				'notifications/tools/list_changed', () => { notified++; res(); }));
			const sub = await client.listen({ toolsListChanged: true });
			assert.deepEqual(sub.honoredFilter, { toolsListChanged: true });
			assert.equal(text(await client.callTool({ name: 'grow', arguments: {} })), 'grown');
			await Promise.race([changed, sleep(5000)]);
			assert.equal(notified, 1, 'the list_changed notification reached the client');
			const tools = (await client.listTools()).tools.map((t) => t.name).sort();
			assert.deepEqual(tools, ['echo', 'grow']);
			const late = await client.callTool({ name: 'late', arguments: {} });
			assert.equal(late.isError, true);
			assert.match(text(late), /denied by policy: not this one/);
			await sub.close();
			assert.equal(await Promise.race([sub.closed, sleep(3000).then(() => 'open')]),
				'local');
			assert.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'x' } })),
				'Echo: x');
		} finally {
			await client.close();
		}
	});

test('2026-07-28: approval through input_required, bound to the call and used once',
	{ skip: skip ?? false }, async () => {
		const audit = join(dir, 'audit-ask.jsonl');
		const { Client } = await imp('@modelcontextprotocol/client');
		const { StdioClientTransport } = await imp('@modelcontextprotocol/client/stdio');
		const transport = new StdioClientTransport({ command: MCPFENCE, stderr: 'pipe',
			args: ['run', '--policy', writePolicy(dir, ASK, 'ask.json'), '--audit', audit, '--',
				process.execPath, V2_SERVER] });
		const client = new Client({ name: 'e2e-ask', version: '1.0.0' },
			{ versionNegotiation: { mode: { pin: '2026-07-28' } },
				capabilities: { elicitation: { form: {} } } });
		const asked = [];
		let approve = true;
		client.setRequestHandler('elicitation/create', async (req) => {
			asked.push(req.params.message);
			return approve ? { action: 'accept', content: { approve: true } } :
				{ action: 'decline' };
		});
		await client.connect(transport);
		try {
			// as clients do, the list first: its _meta names the server
			assert.deepEqual((await client.listTools()).tools.map((t) => t.name).sort(),
				['echo', 'get-sum']);
			const ok = await client.callTool({ name: 'echo', arguments: { message: 'yes' } });
			assert.equal(text(ok), 'Echo: yes');
			assert.equal(asked.length, 1);
			assert.match(asked[0], /the tool "echo" of mcpfence-v2-server with arguments \{"message":"yes"\}/);
			approve = false;
			const no = await client.callTool({ name: 'echo', arguments: { message: 'no' } });
			assert.equal(no.isError, true);
			assert.match(text(no), /^denied by policy: a human declined the call/);
			assert.equal(asked.length, 2);

			// by hand: the first leg, then retries the SDK would never make
			const raw = (args, extra = {}) => client.callTool({ name: 'get-sum', arguments: args,
				...extra }, { allowInputRequired: true });
			const first = await raw({ a: 1, b: 2 });
			assert.equal(first.resultType, 'input_required', JSON.stringify(first));
			const state = first.requestState;
			assert.ok(state.startsWith('mcpfence1.'), state);
			const yes = { 'mcpfence-approval': { action: 'accept', content: { approve: true } } };
			// other arguments with this state: refused
			const other = await raw({ a: 100, b: 2 }, { inputResponses: yes, requestState: state });
			assert.equal(other.isError, true);
			assert.match(text(other), /not given for this tool and these arguments/);
			// an altered state: refused
			const altered = await raw({ a: 1, b: 2 }, { inputResponses: yes,
				requestState: state.slice(0, -1) + (state.endsWith('0') ? '1' : '0') });
			assert.match(text(altered), /not given for this tool and these arguments/);
			// the right retry: runs
			const good = await raw({ a: 1, b: 2 }, { inputResponses: yes, requestState: state });
			assert.equal(text(good), 'The sum of 1 and 2 is 3.');
			// once
			const again = await raw({ a: 1, b: 2 }, { inputResponses: yes, requestState: state });
			assert.equal(again.isError, true);
			assert.match(text(again), /used already/);
		} finally {
			await client.close();
		}
		const lines = await awaitAudit(audit, (l) => l.method === 'tools/call', 6);
		assert.deepEqual(lines.map((l) => [l.tool, l.decision, l.approved_by ?? null]), [
			['echo', 'allow', 'elicitation'],
			['echo', 'deny', 'elicitation'],
			['get-sum', 'deny', null],
			['get-sum', 'deny', null],
			['get-sum', 'allow', 'elicitation'],
			['get-sum', 'deny', null],
		]);
	});
