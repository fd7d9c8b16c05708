// SPDX-License-Identifier: Apache-2.0
// The real SDK client over its stdio transport, through `mcpfence run`, to the real
// server-everything: what the client receives, compared with a direct run, and the audit log.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { missing, connect, tmp, writePolicy, readAudit, awaitAudit, text, until, loadSdk,
	MCPFENCE } from './lib.mjs';
import { execFileSync } from 'node:child_process';

const skip = missing();
const dir = skip ? null : tmp();

const POLICY = {
	version: '1',
	default: 'deny',
	hide: ['get-env'],
	tools: {
		echo: {},
		'get-sum': { limits: [{ counter: 'sums', window: 'hour', max: 2 }] },
		'get-env': {},
		'get-tiny-image': { action: 'deny', reason: 'no images today' },
		'toggle-*': { action: 'deny' },
	},
};

describe('server-everything through mcpfence', { skip: skip ?? false }, () => {
	let direct, fenced, audit, directTools;
	before(async () => {
		audit = join(dir, 'audit.jsonl');
		direct = await connect();
		fenced = await connect({ fence: { policy: writePolicy(dir, POLICY), audit } });
		directTools = (await direct.client.listTools()).tools;
	});
	after(async () => {
		await direct?.close();
		await fenced?.close();
	});

	test('tools/list shows only what the policy could allow (hide applies)', async () => {
		const names = (await fenced.client.listTools()).tools.map((t) => t.name).sort();
		assert.deepEqual(names, ['echo', 'get-sum']);
		// and exactly as the server describes them
		const echo = (await fenced.client.listTools()).tools.find((t) => t.name === 'echo');
		assert.deepEqual(echo, directTools.find((t) => t.name === 'echo'));
		assert.ok(directTools.length > 5, 'the direct run lists every tool');
	});

	test('allowed calls return what they return without mcpfence', async () => {
		for (const [name, args] of [['echo', { message: 'héllo \u2028 "quoted"' }],
					    ['get-sum', { a: 2, b: 40 }]]) {
			const a = await direct.client.callTool({ name, arguments: args });
			const b = await fenced.client.callTool({ name, arguments: args });
			assert.deepEqual(b, a, name);
		}
	});

	test('a denied call is an isError result with reason and _meta', async () => {
		const r = await fenced.client.callTool({ name: 'get-tiny-image', arguments: {} });
		assert.equal(r.isError, true);
		assert.equal(text(r), 'denied by policy: no images today');
		assert.deepEqual(r._meta, { rule: '/tools/get-tiny-image/action', kind: 'rule',
					    retry_after_s: null });
		const d = await fenced.client.callTool({ name: 'get-resource-links', arguments: {} });
		assert.equal(d._meta.kind, 'default');
		assert.equal(d._meta.rule, '(default deny)');
		const h = await fenced.client.callTool({ name: 'get-env', arguments: {} });
		assert.equal(h._meta.kind, 'hidden');
		assert.equal(h._meta.rule, '/hide/0');
		assert.match(text(h), /^denied by policy: .*hidden/);
	});

	test('a spent budget denies with retry_after_s', async () => {
		// get-sum was called once above; max 2 per hour
		const ok = await fenced.client.callTool({ name: 'get-sum', arguments: { a: 1, b: 1 } });
		assert.equal(text(ok), 'The sum of 1 and 1 is 2.');
		const r = await fenced.client.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } });
		assert.equal(r.isError, true);
		assert.equal(r._meta.kind, 'limit');
		assert.equal(r._meta.rule, '/tools/get-sum/limits/0');
		assert.ok(r._meta.retry_after_s > 0 && r._meta.retry_after_s <= 3600);
	});

	test('a 10 MB message goes through both ways', async () => {
		const message = 'x'.repeat(10_000_000);
		const r = await fenced.client.callTool({ name: 'echo', arguments: { message } });
		assert.equal(text(r).length, message.length + 'Echo: '.length);
		assert.ok(text(r).endsWith('xxx'));
	});

	test('the audit log has one line per decision, argument values redacted', async () => {
		// lines are written at most 10 ms after their decision
		await awaitAudit(audit, (l) => l.method === 'tools/call', 8);
		const lines = readAudit(audit);
		const img = lines.find((l) => l.tool === 'get-tiny-image');
		assert.equal(img.decision, 'deny');
		assert.equal(img.kind, 'rule');
		assert.equal(img.rule, '/tools/get-tiny-image/action');
		assert.equal(img.reason, 'no images today');
		assert.equal(img.method, 'tools/call');
		assert.equal(img.plane, 'stdio');
		assert.equal(img.server, 'mcp-servers/everything');
		assert.equal(img.client.pid, process.pid);
		assert.equal(img.client.uid, process.getuid());
		assert.equal(img.client.exe, process.execPath);
		assert.match(img.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
		assert.equal(typeof img.latency_us, 'number');
		assert.ok(img.id !== undefined);
		const sums = lines.filter((l) => l.tool === 'get-sum');
		assert.deepEqual(sums.map((l) => l.decision), ['allow', 'allow', 'deny']);
		assert.deepEqual(sums[0].argument_keys, ['a', 'b']);
		assert.equal(sums[0].rule, '/tools/get-sum');
		assert.ok(!JSON.stringify(lines).includes('héllo'), 'values are not logged');
		assert.equal(new Set(lines.map((l) => l.session)).size, 1);
		const calls = lines.filter((l) => l.method === 'tools/call');
		assert.ok(calls.length >= 8);
	});
});

describe('without a policy', { skip: skip ?? false }, () => {
	test('every call is denied and tools/list is empty', async () => {
		const c = await connect({ fence: {} });
		try {
			assert.deepEqual((await c.client.listTools()).tools, []);
			const r = await c.client.callTool({ name: 'echo', arguments: { message: 'x' } });
			assert.equal(r.isError, true);
			assert.equal(r._meta.rule, '(no policy)');
		} finally {
			await c.close();
		}
	});
});

describe('audit values when the policy asks', { skip: skip ?? false }, () => {
	test('"audit": {"arguments": "values"} logs the values', async () => {
		const d = tmp();
		const audit = join(d, 'a.jsonl');
		const c = await connect({ fence: { policy: writePolicy(d, { version: '1',
			default: 'allow', audit: { arguments: 'values' } }), audit } });
		try {
			await c.client.callTool({ name: 'echo', arguments: { message: 'visible' } });
			const [l] = await awaitAudit(audit, (x) => x.tool === 'echo');
			assert.deepEqual(l.arguments, { message: 'visible' });
			assert.equal(l.rule, '(default allow)');
		} finally {
			await c.close();
		}
	});
});

describe('approval', { skip: skip ?? false }, () => {
	const policy = (timeout = '30s') => ({ version: '1', default: 'deny', tools: {
		echo: { action: 'approve', approval: { timeout } } } });

	test('through elicitation/create when the client can ask its user', async () => {
		const { types } = await loadSdk();
		const d = tmp();
		const audit = join(d, 'a.jsonl');
		const asked = [];
		let answer = true;
		const c = await connect({
			fence: { policy: writePolicy(d, policy()), audit },
			caps: { elicitation: {} },
			setup: (client) => client.setRequestHandler(types.ElicitRequestSchema, (req) => {
				asked.push(req);
				return { action: 'accept', content: { approve: answer } };
			}),
		});
		try {
			const direct = await connect();
			const want = await direct.client.callTool({ name: 'echo', arguments: { message: 'ok?' } });
			await direct.close();
			const r = await c.client.callTool({ name: 'echo', arguments: { message: 'ok?' } });
			assert.deepEqual(r, want);
			assert.equal(asked.length, 1);
			assert.match(asked[0].params.message, /"echo"/);
			assert.match(asked[0].params.message, /ok\?/);
			answer = false;
			const n = await c.client.callTool({ name: 'echo', arguments: { message: 'no' } });
			assert.equal(n.isError, true);
			assert.equal(n._meta.kind, 'approval');
			assert.match(text(n), /declined/);
			const lines = await awaitAudit(audit, (l) => l.tool === 'echo', 2);
			assert.equal(lines[0].decision, 'allow');
			assert.equal(lines[0].approved_by, 'elicitation');
			assert.equal(lines[1].decision, 'deny');
		} finally {
			await c.close();
		}
	});

	test('through the control socket: mcpfence approvals / approve / deny', async () => {
		const d = tmp();
		const audit = join(d, 'a.jsonl');
		const c = await connect({ fence: { policy: writePolicy(d, policy()), audit } });
		const pid = String(c.transport.pid);
		const cli = (...a) => execFileSync(MCPFENCE, a, { encoding: 'utf8',
			stdio: ['ignore', 'pipe', 'pipe'] });
		// other gateways of the host may wait too: this one's calls only
		const waiting = () => until(() => {
			try {
				const out = cli('approvals', '--json', '--pid', pid).trim();
				return out ? out.split('\n').map((l) => JSON.parse(l)) : null;
			} catch { return null; }
		}, 5000, 'a waiting call');
		try {
			const p = c.client.callTool({ name: 'echo', arguments: { message: 'via socket' } });
			const [w] = await waiting();
			assert.equal(w.tool, 'echo');
			assert.deepEqual(w.arguments, { message: 'via socket' });
			assert.match(w.id, new RegExp(`^${pid}-[0-9a-f]{8}-${w.digest.slice(0, 16)}$`));
			assert.equal(w.asked, 'operator');
			assert.match(cli('approvals', '--pid', pid), /tool "echo"/);
			assert.match(cli('approve', w.id), /^ok: call .* approved/);
			assert.equal(text(await p), 'Echo: via socket');
			const q = c.client.callTool({ name: 'echo', arguments: { message: 'nope' } });
			const [w2] = await waiting();
			cli('deny', w2.id);
			const r = await q;
			assert.equal(r.isError, true);
			assert.equal(r._meta.kind, 'approval');
			assert.match(text(r), /declined the call \(uid 0 \(root\)\)/);
			// a second decision on the same call is refused
			assert.throws(() => cli('approve', w2.id), /no call .* waits/);
			const lines = await awaitAudit(audit, (l) => l.tool === 'echo', 2);
			assert.equal(lines[0].decision, 'allow');
			assert.equal(lines[0].approved_by, 'uid 0 (root)');
			assert.equal(lines[1].decision, 'deny');
			assert.equal(lines[1].approved_by, 'uid 0 (root)');
			// --tool is the kernel plane's ticket, never a way around a gateway decision
			assert.throws(() => cli('deny', '--tool', 'echo'), /kernel plane denies/s);
		} finally {
			await c.close();
		}
	});

	test('nobody answers: denied when the timeout ends', async () => {
		const d = tmp();
		const c = await connect({ fence: { policy: writePolicy(d, policy('1s')) } });
		try {
			const t0 = Date.now();
			const r = await c.client.callTool({ name: 'echo', arguments: { message: 'x' } });
			assert.equal(r._meta.kind, 'approval');
			assert.match(text(r), /within 1 s/);
			assert.ok(Date.now() - t0 >= 900);
		} finally {
			await c.close();
		}
	});
});

describe('SIGHUP', { skip: skip ?? false }, () => {
	test('reloads the policy, and keeps the old one when the new one is bad', async () => {
		const d = tmp();
		const path = writePolicy(d, { version: '1', default: 'deny' });
		const { types } = await loadSdk();
		let changed = 0;
		const c = await connect({ fence: { policy: path }, setup: (client) =>
			client.setNotificationHandler(types.ToolListChangedNotificationSchema,
						      () => { changed++; }) });
		const echo = () => c.client.callTool({ name: 'echo', arguments: { message: 'hup' } });
		try {
			assert.equal((await echo()).isError, true);
			writePolicy(d, { version: '1', default: 'deny', tools: { echo: {} } });
			await c.client.listTools(); // the server's own list_changed after initialize is in
			const before = changed;
			process.kill(c.transport.pid, 'SIGHUP');
			await until(async () => !(await echo()).isError, 5000, 'the reload');
			await until(() => changed > before, 3000, 'notifications/tools/list_changed');
			assert.deepEqual((await c.client.listTools()).tools.map((t) => t.name), ['echo']);
			writeFileSync(path, '{"version": "1", "default": "maybe"}');
			process.kill(c.transport.pid, 'SIGHUP');
			await until(() => /keeping the policy in force/.test(c.stderr()), 5000, 'the error');
			assert.match(c.stderr(), /default/);
			assert.equal(text(await echo()), 'Echo: hup');
		} finally {
			await c.close();
		}
	});
});

describe('server-to-client traffic passes through', { skip: skip ?? false }, () => {
	test('sampling, the server\'s own elicitation, roots and progress reach the client and back',
	     async () => {
		const { types } = await loadSdk();
		const d = tmp();
		const policy = writePolicy(d, { version: '1', default: 'allow',
			tools: { 'trigger-elicitation-request': {}, echo: { action: 'approve' } } });
		const seen = { sampling: 0, elicit: [], roots: 0 };
		const setup = (client) => {
			client.setRequestHandler(types.CreateMessageRequestSchema, (req) => {
				seen.sampling++;
				return { model: 'test-model', role: 'assistant',
					 content: { type: 'text', text: `sampled: ${req.params.messages[0].content.text}` } };
			});
			client.setRequestHandler(types.ElicitRequestSchema, (req) => {
				seen.elicit.push(req.params.message);
				if (/mcpfence/.test(req.params.message))
					return { action: 'accept', content: { approve: true } };
				return { action: 'accept', content: { name: 'Ada' } };
			});
			client.setRequestHandler(types.ListRootsRequestSchema, () => {
				seen.roots++;
				return { roots: [{ uri: 'file:///tmp', name: 'tmp' }] };
			});
		};
		const caps = { sampling: {}, elicitation: {}, roots: { listChanged: true } };
		const c = await connect({ fence: { policy }, caps, setup });
		try {
			const s = await c.client.callTool({ name: 'trigger-sampling-request',
				arguments: { prompt: 'hi', maxTokens: 10 } });
			assert.match(text(s), /sampled: .*hi/);
			assert.equal(seen.sampling, 1);
			// the server's elicitation is the server's: answered by the client, not by mcpfence
			const e = await c.client.callTool({ name: 'trigger-elicitation-request', arguments: {} });
			assert.match(text(e), /Name: Ada/);
			assert.equal(seen.elicit.length, 1);
			// ours and the server's at once: an approval for echo, answered by the same client
			const a = await c.client.callTool({ name: 'echo', arguments: { message: 'both' } });
			assert.equal(text(a), 'Echo: both');
			assert.equal(seen.elicit.length, 2);
			await until(() => seen.roots > 0, 3000, 'roots/list from the server');
			const progress = [];
			const p = await c.client.callTool({ name: 'trigger-long-running-operation',
				arguments: { duration: 0.3, steps: 3 } }, undefined,
				{ onprogress: (x) => progress.push(x.progress) });
			assert.match(text(p), /completed/);
			// the SDK client may resolve the call before it handles the last progress
			// notification (it does so without mcpfence too): the ones seen are in order
			assert.ok(progress.length >= 2, `progress ${progress}`);
			assert.deepEqual(progress, [1, 2, 3].slice(0, progress.length));
		} finally {
			await c.close();
		}
	});
});

describe('scope global across gateways', { skip: skip ?? false }, () => {
	test('two mcpfence run processes share one global budget, and one grant budget', async () => {
		const d = tmp();
		const counter = `e2e-global-${process.pid}-${Date.now()}`;
		const policy = writePolicy(d, {
			version: '1', default: 'deny',
			tools: {
				echo: { limits: [{ counter, window: 3600, max: 3, scope: 'global' }] },
				'get-sum': { rate_limit: '2/hour' },
			},
		});
		// not across an hour boundary: both budgets would start again
		const left = 3600 - (Date.now() / 1000) % 3600;
		if (left < 30) await new Promise((r) => setTimeout(r, left * 1000 + 250));
		const a = await connect({ fence: { policy } });
		const b = await connect({ fence: { policy } });
		const echo = (c, m) => c.client.callTool({ name: 'echo', arguments: { message: m } });
		const sum = (c) => c.client.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } });
		try {
			assert.equal(text(await echo(a, 'a1')), 'Echo: a1');
			assert.equal(text(await echo(b, 'b1')), 'Echo: b1');
			assert.equal(text(await echo(a, 'a2')), 'Echo: a2');
			// the host's budget of 3 is spent, whichever gateway asks
			const r = await echo(b, 'b2');
			assert.equal(r.isError, true);
			assert.equal(r._meta.kind, 'limit');
			assert.equal(r._meta.rule, '/tools/echo/limits/0');
			// scope grant: one server under one policy, 2 between the two gateways
			assert.equal(text(await sum(a)), 'The sum of 1 and 2 is 3.');
			assert.equal(text(await sum(b)), 'The sum of 1 and 2 is 3.');
			for (const c of [a, b])
				assert.equal((await sum(c))._meta.kind, 'limit');
			assert.doesNotMatch(a.stderr() + b.stderr(), /cannot be used/);
		} finally {
			await a.close();
			await b.close();
		}
	});
});
