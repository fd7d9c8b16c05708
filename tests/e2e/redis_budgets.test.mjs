// SPDX-License-Identifier: Apache-2.0
// Budgets shared beyond one host: a policy's "state": {"redis": URL} keeps its budgets of scopes
// global and agent in Redis. One real redis-server (Debian's) started here; real `mcpfence run`
// gateways, each with a host table of its own (so that only Redis can share a budget), some of
// them in a second network namespace that reaches Redis over a veth pair as a second host
// would; the real SDK client, a server that records what it ran. Then Redis is stopped: calls
// that need it are denied, saying why, in the answer and the audit line; a policy that says
// "unreachable": "allow" lets them through uncounted, and its audit line says that.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { createHash } from 'node:crypto';
import { missing, connect, tmp, writePolicy, awaitAudit, text, sleep, until, waitPort, windowWithRoom,
	 inWindow, tableUsed, freePort, redisMissing, startRedis, redisCli, kernelLock, MCPFENCE,
	 ROOT } from './lib.mjs';

const LEDGER = join(ROOT, 'tests/e2e/fixtures/ledger.mjs');
const V2_SERVER = join(ROOT, 'tests/e2e/fixtures/v2_http_server.mjs');
const require = createRequire(join(ROOT, 'tests/e2e/package.json'));
const imp = (m) => import(pathToFileURL(require.resolve(m)).href);
// The gateways here start node servers on pipes: while another test file's daemon runs (its
// policies name */node), it would take them for its own. One file at a time, as the kernel
// plane's files are.
const unlock = process.getuid() === 0 ? await kernelLock() : () => {};
const skip = missing() ?? redisMissing() ??
	(unlock ? null : 'another test file kept the kernel plane for 20 minutes');
const rootSkip = process.getuid() === 0 ? null : 'a second network namespace needs root';

const ip = (...args) => {
	const r = spawnSync('ip', args, { encoding: 'utf8' });
	if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
};

// A second "host": a network namespace joined to this one by a veth pair; Redis listens on
// this side's address, which the gateways of both sides name.
function secondHost() {
	const n = process.pid % 200 + 20, ns = `mcpf-e2e-${process.pid}`;
	const a = `mcpfa${process.pid}`.slice(0, 15), b = `mcpfb${process.pid}`.slice(0, 15);
	ip('netns', 'add', ns);
	try {
		ip('link', 'add', a, 'type', 'veth', 'peer', 'name', b, 'netns', ns);
		ip('addr', 'add', `10.231.${n}.1/30`, 'dev', a);
		ip('link', 'set', a, 'up');
		ip('-n', ns, 'addr', 'add', `10.231.${n}.2/30`, 'dev', b);
		ip('-n', ns, 'link', 'set', b, 'up');
		ip('-n', ns, 'link', 'set', 'lo', 'up');
	} catch (e) {
		spawnSync('ip', ['netns', 'del', ns]);
		throw e;
	}
	return { ns, addr: `10.231.${n}.1`, peer: `10.231.${n}.2`, wrap: ['ip', 'netns', 'exec', ns],
		 remove: () => spawnSync('ip', ['netns', 'del', ns]) };
}

const ran = (ledger) => existsSync(ledger)
	? readFileSync(ledger, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];

describe('budgets in Redis', { skip: skip ?? false }, () => {
	let host2 = null, redis = null, port = 0, addr = '127.0.0.1';

	before(async () => {
		if (!rootSkip) {
			host2 = secondHost();
			addr = host2.addr;
		}
		port = await freePort();
		redis = await startRedis(port, ['127.0.0.1', ...(host2 ? [addr] : [])]);
	});
	after(async () => {
		await redis?.stop();
		host2?.remove();
		unlock?.();
	});

	test('gateways on two hosts share one global budget: exactly max under concurrent load',
		{ skip: rootSkip ?? false }, async () => {
			const d = tmp();
			const prefix = `e2e-${process.pid}-load:`;
			const ledger = join(d, 'ledger.jsonl'), audit = join(d, 'audit.jsonl');
			const policy = writePolicy(d, { version: '1', default: 'deny',
				state: { redis: `redis://${addr}:${port}/0`, prefix },
				tools: { write: { limits: [{ counter: 'w', scope: 'global', window: 'minute',
					max: 5 }] } } });
			const w = await windowWithRoom(60, 40);
			// six gateways, three on each host, each with a table of its own
			const gws = await Promise.all(Array.from({ length: 6 }, (_, i) => connect({
				fence: { policy, audit, wrap: i % 2 ? host2.wrap : null },
				server: [LEDGER, ledger, 'write'],
				env: { MCPFENCE_RUNTIME_DIR: join(d, `run${i}`) } })));
			let results;
			try {
				// four calls from each at once: 24 calls for a budget of 5
				results = await Promise.all(gws.flatMap((g, i) => Array.from({ length: 4 },
					(_, j) => g.client.callTool({ name: 'write',
						arguments: { n: `${i}.${j}` } }))));
			} finally {
				await Promise.all(gws.map((g) => g.close()));
			}
			inWindow(60, w);
			const ok = results.filter((r) => !r.isError);
			assert.equal(ok.length, 5, `${ok.length} calls ran: ${JSON.stringify(ok)}`);
			for (const r of results.filter((r) => r.isError)) {
				assert.equal(r._meta.kind, 'limit');
				assert.match(text(r), /^denied by policy: rate limit of 5 calls per minute reached; retry in \d+ s$/);
			}
			assert.equal(ran(ledger).length, 5);
			// both hosts ran some: the budget was one across them
			const byHost = new Set(ok.map((r) => Number(text(r).match(/"n":"(\d)/)[1]) % 2));
			console.log(`# ran on host ${[...byHost].join(' and ')} of 2 (of 24 calls, 5 ran)`);
			const lines = await awaitAudit(audit, (l) => l.tool === 'write', 24);
			assert.equal(lines.length, 24);
			assert.equal(lines.filter((l) => l.decision === 'allow').length, 5);
			assert.equal(lines.filter((l) => l.kind === 'limit').length, 19);
			// one key in Redis: the prefix, the SHA-256 of the budget's name, its window; at 5
			const name = 'w\x1fglobal\x1f60\x1f0:\x1f';
			const keys = redisCli(port, '--scan', '--pattern', `${prefix}*`).split('\n');
			assert.deepEqual(keys, [`${prefix}b:${createHash('sha256').update(name, 'latin1')
				.digest('hex')}:${w * 60}`]);
			assert.equal(redisCli(port, 'GET', keys[0]), '5');
			// the host tables hold nothing of it
			for (let i = 0; i < 6; i++)
				assert.equal(tableUsed(join(d, `run${i}`, 'global-budgets'), name), 0);
		});

	// The same with mcpfence proxy: two proxies, one on each host, in front of one HTTP server,
	// each with a table of its own; then the shared Redis stops, and the next call is denied.
	// Behind a load balancer the retry of an input_required may reach another proxy: with the
	// policy's "state", the proxies share the key of its requestState and its single use.
	test('two proxies behind a balancer share input_required approvals, good once',
		async () => {
			const d = tmp();
			const toolLog = join(d, 'tools.log'), audit = join(d, 'audit.jsonl');
			const sport = await freePort(), ports = [await freePort(), await freePort()];
			const policy = writePolicy(d, { version: '1', default: 'allow',
				state: { redis: `redis://127.0.0.1:${port}/0`, prefix: `e2e-${process.pid}-ask:` },
				tools: { 'get-sum': { action: 'approve', approval: { via: ['client'] } } } });
			const server = spawn(process.execPath, [V2_SERVER], { stdio: 'ignore',
				env: { ...process.env, PORT: String(sport), MCPFENCE_TOOL_LOG: toolLog } });
			const proxies = ports.map((p, i) => {
				const c = spawn(MCPFENCE, ['proxy', '--listen', `127.0.0.1:${p}`, '--upstream',
					`http://127.0.0.1:${sport}`, '--policy', policy, '--audit', audit],
				{ stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env,
					MCPFENCE_RUNTIME_DIR: join(d, `run-${i}`) } });
				const x = { c, out: '' };
				c.stderr.on('data', (b) => { x.out += b; });
				return x;
			});
			// the balancer: each request to the next proxy in turn
			let turn = 0;
			const hits = [0, 0];
			const balanced = (url, init) => {
				const u = new URL(url instanceof Request ? url.url : url);
				hits[turn % 2]++;
				u.port = String(ports[turn++ % 2]);
				return fetch(u, init);
			};
			try {
				assert.ok(await waitPort(sport), 'the server did not listen');
				await until(() => proxies.every((x) => /approvals through input_required are shared/
					.test(x.out)), 10000, 'both proxies to share approvals');
				const { Client, StreamableHTTPClientTransport } = await imp('@modelcontextprotocol/client');
				const client = new Client({ name: 'redis-ask', version: '1.0.0' },
					{ versionNegotiation: { mode: { pin: '2026-07-28' } },
						capabilities: { elicitation: { form: {} } } });
				client.setRequestHandler('elicitation/create', async () =>
					({ action: 'accept', content: { approve: true } }));
				await client.connect(new StreamableHTTPClientTransport(
					new URL(`http://127.0.0.1:${ports[0]}/mcp`), { fetch: balanced }));
				try {
					// each call's question from one proxy, its retry through the other
					for (let i = 0; i < 3; i++) {
						const before = hits.slice();
						assert.equal(text(await client.callTool({ name: 'get-sum',
							arguments: { a: i, b: 1 } })), `The sum of ${i} and 1 is ${i + 1}.`);
						assert.deepEqual([hits[0] - before[0], hits[1] - before[1]], [1, 1]);
					}
					// a state used through one proxy is used for the other too
					const raw = (extra) => client.callTool({ name: 'get-sum', arguments: { a: 9,
						b: 9 }, ...extra }, { allowInputRequired: true });
					let first = await raw({});
					while (first.resultType !== 'input_required') first = await raw({});
					const yes = { 'mcpfence-approval': { action: 'accept', content: { approve: true } } };
					const again = { inputResponses: yes, requestState: first.requestState };
					assert.equal(text(await raw(again)), 'The sum of 9 and 9 is 18.');
					const replay = await raw(again);
					assert.equal(replay.isError, true);
					assert.match(text(replay), /used already/);
				} finally {
					await client.close();
				}
				assert.equal(readFileSync(toolLog, 'utf8').split('\n').filter(Boolean).length, 4);
				const lines = await awaitAudit(audit, (l) => l.tool === 'get-sum', 5);
				assert.deepEqual(lines.map((l) => l.decision).sort(),
					['allow', 'allow', 'allow', 'allow', 'deny']);
			} finally {
				for (const x of proxies) x.c.kill('SIGTERM');
				server.kill('SIGTERM');
			}
		});

	test('two proxies on two hosts share one global budget; Redis gone: denied, said',
		{ skip: rootSkip ?? false }, async () => {
			const d = tmp();
			const prefix = `e2e-${process.pid}-proxy:`, toolLog = join(d, 'tools.log');
			const audit = join(d, 'audit.jsonl');
			const sport = await freePort(), pa = await freePort(), pb = await freePort();
			const policy = writePolicy(d, { version: '1', default: 'deny',
				state: { redis: `redis://${addr}:${port}/0`, prefix },
				tools: { echo: { limits: [{ counter: 'e', scope: 'global', window: 'minute',
					max: 5 }] } } });
			const server = spawn(process.execPath, [V2_SERVER], { stdio: 'ignore',
				env: { ...process.env, PORT: String(sport), HOST: '0.0.0.0',
					MCPFENCE_TOOL_LOG: toolLog } });
			const proxies = [];
			const proxy = (wrap, listen, upstream, run) => {
				const argv = [...wrap, MCPFENCE, 'proxy', '--listen', listen, '--upstream',
					upstream, '--policy', policy, '--audit', audit];
				const c = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'],
					env: { ...process.env, MCPFENCE_RUNTIME_DIR: join(d, run) } });
				const p = { c, out: '' };
				c.stdout.on('data', (x) => { p.out += x; });
				c.stderr.on('data', (x) => { p.out += x; });
				proxies.push(p);
				return p;
			};
			try {
				assert.ok(await waitPort(sport), 'the server did not listen');
				const a = proxy([], `127.0.0.1:${pa}`, `http://127.0.0.1:${sport}`, 'run-a');
				const b = proxy(host2.wrap, `${host2.peer}:${pb}`, `http://${addr}:${sport}`,
					'run-b');
				await until(() => /proxy: listening/.test(a.out) && /proxy: listening/.test(b.out),
					10000, 'both proxies to listen');
				const w = await windowWithRoom(60, 40);
				const { Client } = await imp('@modelcontextprotocol/sdk/client/index.js');
				const { StreamableHTTPClientTransport } =
					await imp('@modelcontextprotocol/sdk/client/streamableHttp.js');
				const clients = await Promise.all(Array.from({ length: 6 }, async (_, i) => {
					const c = new Client({ name: `redis-proxy-${i}`, version: '1' });
					await c.connect(new StreamableHTTPClientTransport(new URL(i % 2
						? `http://${host2.peer}:${pb}/mcp` : `http://127.0.0.1:${pa}/mcp`)));
					return c;
				}));
				let results;
				try {
					results = await Promise.all(clients.flatMap((c, i) => Array.from({ length: 4 },
						(_, j) => c.callTool({ name: 'echo', arguments: { message: `${i}.${j}` } }))));
				} finally {
					await Promise.all(clients.map((c) => c.close()));
				}
				inWindow(60, w);
				const ok = results.filter((r) => !r.isError);
				assert.equal(ok.length, 5, JSON.stringify(ok));
				for (const r of results.filter((r) => r.isError))
					assert.match(text(r), /rate limit of 5 calls per minute reached/);
				assert.equal(readFileSync(toolLog, 'utf8').split('\n').filter(Boolean).length, 5);
				const lines = await awaitAudit(audit, (l) => l.plane === 'http' && l.tool === 'echo', 24);
				assert.equal(lines.filter((l) => l.decision === 'allow').length, 5);
				// Redis gone: the next call through either proxy is denied, and says why
				await redis.stop();
				const c = new Client({ name: 'redis-proxy-gone', version: '1' });
				await c.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${pa}/mcp`)));
				try {
					const r = await c.callTool({ name: 'echo', arguments: { message: 'gone' } });
					assert.equal(r.isError, true);
					assert.match(text(r), /the budgets of scope global cannot be counted \(Redis at /);
				} finally {
					await c.close();
				}
				const [line] = await awaitAudit(audit, (l) => l.tool === 'echo' &&
					/cannot be counted/.test(l.reason ?? ''));
				assert.equal(line.decision, 'deny');
				assert.equal(line.plane, 'http');
			} finally {
				for (const p of proxies) p.c.kill('SIGTERM');
				server.kill('SIGTERM');
			}
		});

	test('Redis stopped: fail closed, saying why; "unreachable": "allow" lets calls through, said',
		async () => {
			const d = tmp();
			const ledger = join(d, 'ledger.jsonl'), audit = join(d, 'audit.jsonl');
			const own = await freePort();
			let r2 = await startRedis(own, ['127.0.0.1']);
			const tools = { write: { limits: [{ scope: 'global', window: 'hour', max: 100 }] },
				read: {} };
			const closed = writePolicy(d, { version: '1', default: 'deny',
				state: { redis: `redis://127.0.0.1:${own}` }, tools }, 'closed.json');
			const open = writePolicy(d, { version: '1', default: 'deny',
				state: { redis: `redis://127.0.0.1:${own}`, unreachable: 'allow' }, tools },
			'open.json');
			const env = { MCPFENCE_RUNTIME_DIR: join(d, 'run') };
			const server = [LEDGER, ledger, 'write', 'read'];
			const g = await connect({ fence: { policy: closed, audit }, server, env });
			const g2 = await connect({ fence: { policy: open, audit }, server, env });
			try {
				const call = (c, n) => c.client.callTool({ name: 'write', arguments: { n } });
				assert.equal(text(await call(g, 1)), 'ran write {"n":1}');
				await r2.stop();
				const r = await call(g, 2);
				assert.equal(r.isError, true);
				assert.equal(r._meta.kind, 'limit');
				assert.match(text(r), new RegExp('^denied by policy: the budgets of scope global ' +
					`cannot be counted \\(Redis at redis://127\\.0\\.0\\.1:${own}/0: .+\\): ` +
					'denied until Redis answers$'));
				// a tool without a budget there goes on
				assert.equal(text(await g.client.callTool({ name: 'read', arguments: {} })),
					'ran read {}');
				// the other policy lets it through, uncounted
				assert.equal(text(await call(g2, 3)), 'ran write {"n":3}');
				const [denied] = await awaitAudit(audit, (l) => l.tool === 'write' &&
					l.decision === 'deny');
				assert.equal(denied.kind, 'limit');
				assert.match(denied.reason, /cannot be counted \(Redis at /);
				const [through] = await awaitAudit(audit, (l) => l.tool === 'write' &&
					l.decision === 'allow' && l.note);
				assert.match(through.note, /not counted \(Redis at .*\): let through, as "unreachable": "allow" says/);
				assert.deepEqual(ran(ledger).map((l) => l.args.n).filter(Boolean), [1, 3]);
				// Redis back (empty): counted again, a second after the failure at most
				r2 = await startRedis(own, ['127.0.0.1']);
				await sleep(1100);
				assert.equal(text(await call(g, 4)), 'ran write {"n":4}');
				const key = redisCli(own, '--scan', '--pattern', 'mcpfence:*');
				assert.equal(redisCli(own, 'GET', key), '1');
				assert.match(g.stderr(), /Redis at redis:\/\/127\.0\.0\.1:\d+\/0: reachable again/);
			} finally {
				await g.close();
				await g2.close();
				await r2.stop();
			}
		});
});
