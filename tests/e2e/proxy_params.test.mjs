// SPDX-License-Identifier: Apache-2.0
// `mcpfence proxy` and Mcp-Param-* headers (2026-07-28): the v2 SDK server of
// fixtures/v2_http_server.mjs declares its echo tool's message as the header Mcp-Param-Message
// (x-mcp-header). The v2 client mirrors the argument there, plainly or in base64; the proxy,
// which judged the body, refuses a header that says something else, or that it cannot check,
// with HTTP 400 and -32020, on which the client lists the tools again and retries once. The
// server's own log says what it ran.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { missing, tmp, text, until, waitPort, freePort, MCPFENCE, ROOT } from './lib.mjs';
import { imp, start, startProxy, toolsRan } from './proxy_lib.mjs';

const SERVER = join(ROOT, 'tests/e2e/fixtures/v2_http_server.mjs');
const skip = missing() ?? (existsSync(MCPFENCE) ? null : `${MCPFENCE} is not built (make)`);
const b64 = (s) => `=?base64?${Buffer.from(s, 'utf8').toString('base64')}?=`;
const META = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28',
	'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
	'io.modelcontextprotocol/clientCapabilities': {} };

describe('mcpfence proxy, Mcp-Param-* headers', { skip: skip ?? false }, () => {
	let dir, server, port, toolLog;
	const ran = () => toolsRan(toolLog);

	before(async () => {
		dir = tmp();
		toolLog = join(dir, 'tools.log');
		writeFileSync(join(dir, 'policy.json'), JSON.stringify({ version: '1', default: 'deny',
			tools: { echo: {} } }));
		port = await freePort();
		server = start(process.execPath, [SERVER], { PORT: String(port),
			MCPFENCE_TOOL_LOG: toolLog });
		assert.ok(await waitPort(port), 'the v2 server did not listen');
	});
	after(async () => { await server?.stop(); });

	// A v2 client pinned to 2026-07-28 at url; seen gets each POST it makes: the method, the
	// Mcp-Param-Message it sent, the HTTP status it read.
	async function client(url, seen) {
		const { Client, StreamableHTTPClientTransport } = await imp('@modelcontextprotocol/client');
		const c = new Client({ name: 'params-e2e', version: '1.0.0' },
			{ versionNegotiation: { mode: { pin: '2026-07-28' } } });
		const recording = async (u, init) => {
			const h = new Headers(init?.headers);
			const res = await fetch(u, init);
			if (init?.method === 'POST')
				seen.push([h.get('mcp-method'), h.get('mcp-param-message'), res.status]);
			return res;
		};
		await c.connect(new StreamableHTTPClientTransport(new URL(url), { fetch: recording }));
		const echo = (message) => c.callTool({ name: 'echo', arguments: { message } }, undefined,
			{ timeout: 20000 });
		return { c, echo };
	}

	// A proxy on a port given (start of proxy_lib.mjs picks a free one): the same port again.
	async function proxyOn(p) {
		const proxy = start(MCPFENCE, ['proxy', '--listen', `127.0.0.1:${p}`, '--upstream',
			`http://127.0.0.1:${port}`, '--policy', join(dir, 'policy.json'), '--audit',
			join(dir, 'audit.jsonl')], { MCPFENCE_RUNTIME_DIR: join(dir, 'run') });
		await until(() => proxy.out.includes('proxy: listening') || proxy.child.exitCode !== null,
			20000, 'the proxy to listen');
		assert.match(proxy.out, /proxy: listening on/, proxy.out);
		return proxy;
	}

	test('the v2 client lists and calls echo, plain and in base64: answers as direct', async () => {
		const MESSAGES = ['plain words', 'h\u00e9llo w\u00f6rld \u2713', ' padded '];
		const direct = [];
		const d = await client(`http://127.0.0.1:${port}/mcp`, direct);
		const want = { list: (await d.c.listTools()).tools.filter((t) => t.name === 'echo') };
		want.echo = [];
		for (const m of MESSAGES)
			want.echo.push(await d.echo(m));
		await d.c.close();
		// the client mirrors the argument: plainly when it can, else in base64
		assert.deepEqual(direct.filter(([m]) => m === 'tools/call').map(([, h]) => h),
			['plain words', b64(MESSAGES[1]), b64(MESSAGES[2])]);

		const proxy = await startProxy(dir, port);
		const seen = [];
		const before = ran().length;
		const s = await client(proxy.url, seen);
		try {
			assert.deepEqual((await s.c.listTools()).tools, want.list);
			for (const [i, m] of MESSAGES.entries())
				assert.deepEqual(await s.echo(m), want.echo[i]);
			assert.equal(text(want.echo[1]), `Echo: ${MESSAGES[1]}`);
			// the same headers went through the proxy, and not one call was refused
			assert.deepEqual(seen.filter(([m]) => m === 'tools/call'),
				[['tools/call', 'plain words', 200], ['tools/call', b64(MESSAGES[1]), 200],
					['tools/call', b64(MESSAGES[2]), 200]]);
			assert.deepEqual(ran().slice(before), ['echo', 'echo', 'echo']);
		} finally {
			await s.c.close();
			await proxy.stop();
		}
	});

	test('a proxy restarted after the client listed: the call is refused once, then runs',
		async () => {
			const first = await startProxy(dir, port);
			const seen = [];
			const s = await client(first.url, seen);
			let second;
			try {
				await s.c.listTools();
				// a proxy that has seen no listing: the client still holds the schema, and
				// mirrors the message into its header
				await first.stop();
				second = await proxyOn(first.port);
				const before = ran().length;
				seen.length = 0;
				const r = await s.echo('after the restart');
				assert.equal(text(r), 'Echo: after the restart');
				// what happened: the proxy could not check the header (-32020, HTTP 400); the
				// client dropped its cached list, listed the tools through the proxy (which
				// learned the schema from that answer) and sent the call again, which ran once
				assert.deepEqual(seen, [['tools/call', 'after the restart', 400],
					['tools/list', null, 200], ['tools/call', 'after the restart', 200]]);
				assert.match(second.out, /refused \(400\): Mcp-Param-Message: this tool's inputSchema was not listed through mcpfence/);
				assert.deepEqual(ran().slice(before), ['echo']);
			} finally {
				await s.c.close();
				await first.stop();
				await second?.stop();
			}
		});

	test('raw 2026-07-28 calls: a header that disagrees or cannot be checked never runs',
		async () => {
			const proxy = await startProxy(dir, port);
			const body = (args, id = 7) => JSON.stringify({ jsonrpc: '2.0', id,
				method: 'tools/call', params: { name: 'echo', arguments: args, _meta: META } });
			const HEAD = { 'content-type': 'application/json',
				accept: 'application/json, text/event-stream', 'mcp-method': 'tools/call',
				'mcp-name': 'echo', 'mcp-protocol-version': '2026-07-28' };
			const post = (args, headers) => fetch(proxy.url, { method: 'POST', body: body(args),
				headers: { ...HEAD, ...headers } });
			// what fetch cannot send: a header twice, a name as written, bytes past ASCII
			const raw = (args, lines) => new Promise((res, rej) => {
				const b = Buffer.from(body(args));
				const head = [`POST /mcp HTTP/1.1`, `Host: 127.0.0.1:${proxy.port}`,
					'Connection: close', `Content-Length: ${b.length}`,
					...Object.entries(HEAD).map(([k, v]) => `${k}: ${v}`),
					...lines.map(([k, v]) => `${k}: ${v}`)].join('\r\n');
				const sock = net.connect(proxy.port, '127.0.0.1');
				const got = [];
				sock.on('data', (d) => got.push(d));
				sock.on('error', rej);
				sock.on('end', () => {
					sock.end();
					const all = Buffer.concat(got);
					const at = all.indexOf('\r\n\r\n');
					const h = all.subarray(0, at).toString('latin1');
					let rest = all.subarray(at + 4);
					if (at < 0 || !/^HTTP\/1\.1 \d{3} /.test(h))
						return rej(new Error(`not an HTTP answer: ${all}`));
					if (/^transfer-encoding: *chunked/im.test(h)) {
						const parts = [];
						for (let i = 0, n; (n = parseInt(rest.subarray(i,
							rest.indexOf('\r\n', i)).toString(), 16)) > 0;) {
							i = rest.indexOf('\r\n', i) + 2;
							parts.push(rest.subarray(i, i + n));
							i += n + 2;
						}
						rest = Buffer.concat(parts);
					}
					res(new Response(rest, { status: Number(h.split(' ')[1]),
						headers: { 'content-type': /^content-type: *(.*)$/im.exec(h)?.[1] ?? '' } }));
				});
				// not half-closed: the proxy takes a client that shuts its side for one gone
				sock.write(Buffer.concat([Buffer.from(`${head}\r\n\r\n`, 'utf8'), b]));
			});
			// the answer as JSON, from a JSON body or the last event of a stream
			const answer = async (res) => {
				const t = await res.text();
				if (!/event-stream/.test(res.headers.get('content-type') ?? '')) return JSON.parse(t);
				const data = t.split('\n').filter((l) => l.startsWith('data:'));
				return JSON.parse(data[data.length - 1].slice(5));
			};
			const refused = async (what, res, re) => {
				const t = await res.clone().text();
				assert.equal(res.status, 400, `${what}: ${t}`);
				const j = await answer(res);
				assert.equal(j.id, 7, what);
				assert.equal(j.error.code, -32020, `${what}: ${t}`);
				assert.match(j.error.message, /^mcpfence: Mcp-Param-/, what);
				assert.match(j.error.message, re, what);
			};
			const runs = async (what, res, message) => {
				assert.equal(res.status, 200, what);
				assert.equal(text((await answer(res)).result), `Echo: ${message}`, what);
			};
			try {
				const before = ran().length;
				// nothing listed through this proxy yet: a header it cannot check
				await refused('not listed yet', await post({ message: 'hello' },
					{ 'mcp-param-message': 'hello' }), /was not listed through mcpfence/);
				// without the header the proxy judges the call as any other and passes it on:
				// the header it lacks is the server's to ask for, and this one does
				const bare = await post({ message: 'hello' }, {});
				assert.equal(bare.status, 400);
				assert.match((await answer(bare)).error.message,
					/^Bad Request: .*Mcp-Param-Message header is absent/);
				const { 'mcp-name': _, ...listHead } = HEAD;
				const list = await fetch(proxy.url, { method: 'POST', headers: { ...listHead,
					'mcp-method': 'tools/list' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1,
					method: 'tools/list', params: { _meta: META } }) });
				assert.equal(list.status, 200);
				assert.match(await list.text(), /"x-mcp-header":"Message"/);

				const CASES = [
					['plain, another value', { message: 'hello' }, { 'mcp-param-message': 'evil' },
						/disagrees with the body's value/],
					['base64, another value', { message: 'h\u00e9llo' },
						{ 'mcp-param-message': b64('hallo') }, /disagrees/],
					['base64 of the value with another case', { message: 'h\u00e9llo' },
						{ 'mcp-param-message': b64('H\u00e9llo') }, /disagrees/],
					// fetch, as HTTP, strips the header's surrounding spaces: the body keeps them
					['whitespace, sent plainly', { message: ' hello ' },
						{ 'mcp-param-message': ' hello ' }, /disagrees/],
					['a header the schema does not declare', { message: 'hello' },
						{ 'mcp-param-message': 'hello', 'mcp-param-other': 'x' },
						/Mcp-Param-other: the tool's inputSchema declares no such header/],
					['the body has no message', {}, { 'mcp-param-message': 'hello' },
						/is sent, but the body has no value there/],
					['the body\'s message is null', { message: null },
						{ 'mcp-param-message': 'null' }, /the body has no value there/],
					['bad base64', { message: 'hello' }, { 'mcp-param-message': '=?base64?aGVsbG8?=' },
						/is not =\?base64\?\.\.\.\?= of UTF-8 text/],
					['base64 of a NUL', { message: 'hello' }, { 'mcp-param-message': '=?base64?AA==?=' },
						/is not =\?base64/],
					['the sentinel, plainly', { message: '=?base64?aGk=?=' },
						{ 'mcp-param-message': '=?base64?aGk=?=' }, /disagrees/],
				];
				for (const [what, args, headers, re] of CASES)
					await refused(what, await post(args, headers), re);
				const RAW = [
					['the header twice', [['Mcp-Param-Message', 'hello'], ['Mcp-Param-Message', 'hello']],
						/Mcp-Param-Message is sent twice/],
					['twice, in two cases', [['Mcp-Param-Message', 'hello'],
						['mcp-param-MESSAGE', 'evil']], /is sent twice/],
					['the name in capitals', [['MCP-PARAM-MESSAGE', 'evil']],
						/Mcp-Param-MESSAGE disagrees/],
					['the name with underscores', [['Mcp_Param_Message', 'evil']],
						/Mcp-Param-Message disagrees/],
					['bytes past ASCII, plainly', [['Mcp-Param-Message', 'h\u00e9llo']],
						/not printable ASCII/],
				];
				for (const [what, lines, re] of RAW)
					await refused(what, await raw({ message: what === 'bytes past ASCII, plainly'
						? 'h\u00e9llo' : 'hello' }, lines), re);
				assert.deepEqual(ran().slice(before), []);

				await runs('plain', await post({ message: 'hello' },
					{ 'mcp-param-message': 'hello' }), 'hello');
				await runs('base64', await post({ message: 'h\u00e9llo w\u00f6rld' },
					{ 'mcp-param-message': b64('h\u00e9llo w\u00f6rld') }), 'h\u00e9llo w\u00f6rld');
				await runs('the name as written', await raw({ message: 'hello' },
					[['mcp-param-MESSAGE', 'hello']]), 'hello');
				assert.deepEqual(ran().slice(before), ['echo', 'echo', 'echo']);
			} finally {
				await proxy.stop();
			}
		});
});
