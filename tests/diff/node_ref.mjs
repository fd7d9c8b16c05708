// SPDX-License-Identifier: Apache-2.0
// The differential tier's Node decoders: the real v1 MCP SDK (tests/e2e/node_modules), reading
// each case exactly as a server built on it does, and reporting the tools/call it would run.
//
//   node tests/diff/node_ref.mjs DECODER < cases.jsonl > seen.jsonl
//
// In: {"id", "plane": "stdio" | "http", "data": BASE64} lines; out: {"id", "calls": [NAME...]}
// lines, the tool names the SDK's own tools/call handler received, in order. DECODER:
//   sdk      stdio: StdioServerTransport (split on \n, one trailing \r cut, Buffer to UTF-8,
//            JSON.parse, JSONRPCMessageSchema) into a real Server; HTTP: a real node:http server
//            (llhttp) and StreamableHTTPServerTransport reading the body itself (UTF-8)
//   express  HTTP only: express with express.json() (body-parser: the charset the Content-Type
//            declares, through iconv-lite, UTF-7 included), then StreamableHTTPServerTransport
//            with transport.handleRequest(req, res, req.body), as the SDK's examples do
//   sse      HTTP only: SSEServerTransport.handlePostMessage (raw-body with the declared charset)
// Every server is the SDK's own Server with a tools/call handler (CallToolRequestSchema), so the
// name is the one its schemas give it. HTTP runs through a unix socket: no network.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { PassThrough } from 'node:stream';
import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import http from 'node:http';
import net from 'node:net';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '../e2e/package.json'));
const imp = (m) => import(pathToFileURL(require.resolve(m)).href);

const decoder = process.argv[2];
if (!['sdk', 'express', 'sse'].includes(decoder)) {
	console.error('usage: node_ref.mjs sdk|express|sse < cases.jsonl');
	process.exit(2);
}

const [{ Server }, { StdioServerTransport }, { StreamableHTTPServerTransport }, { SSEServerTransport },
	{ CallToolRequestSchema }] = await Promise.all([
	imp('@modelcontextprotocol/sdk/server/index.js'),
	imp('@modelcontextprotocol/sdk/server/stdio.js'),
	imp('@modelcontextprotocol/sdk/server/streamableHttp.js'),
	imp('@modelcontextprotocol/sdk/server/sse.js'),
	imp('@modelcontextprotocol/sdk/types.js'),
]);
const express = decoder === 'express' ? (await imp('express')).default : null;

// A real SDK server whose tools/call handler records the name it is given.
function mcpServer(calls) {
	const s = new Server({ name: 'diff-ref', version: '1' }, { capabilities: { tools: {} } });
	s.setRequestHandler(CallToolRequestSchema, async (req) => {
		calls.push(req.params.name);
		return { content: [{ type: 'text', text: 'ran' }] };
	});
	s.onerror = () => {};
	return s;
}

// Let every promise chain the bytes started run to its end (no timers or I/O in them).
async function settle(turns = 6) {
	for (let i = 0; i < turns; i++) await new Promise((r) => setImmediate(r));
}

async function stdioCase(data) {
	const calls = [], stdin = new PassThrough(), stdout = new PassThrough();
	stdout.resume();
	const server = mcpServer(calls);
	const transport = new StdioServerTransport(stdin, stdout);
	await server.connect(transport);
	transport.onerror = () => {};
	stdin.write(data);
	await settle();
	await server.close();
	return calls;
}

// The HTTP server: each connection belongs to the case that opened it.
let current = null;
const noop = () => {};
async function httpHandler(req, res) {
	const calls = req.socket.caseCalls;
	const server = mcpServer(calls);
	try {
		if (decoder === 'sse') {
			const sseRes = { writeHead() { return this; }, write() { return true; }, on: noop, end: noop };
			const t = new SSEServerTransport('/message', sseRes);
			await server.connect(t);
			t.onerror = noop;
			await t.handlePostMessage(req, res);
		} else {
			const t = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined,
								     enableJsonResponse: true });
			await server.connect(t);
			t.onerror = noop;
			const handled = decoder === 'express' ? t.handleRequest(req, res, req.body) :
				t.handleRequest(req, res);
			// a GET opens the server's own stream, which stays open: it reads no message, so
			// once its promise chains ran its stream is ended here
			await (req.method === 'GET' ? Promise.race([handled, settle(20)]) : handled);
		}
	} catch {
		if (!res.headersSent) res.writeHead(500);
	}
	if (!res.writableEnded) {
		await settle();
		res.end();
	}
}

let app = httpHandler;
if (express) {
	const e = express();
	e.use(express.json());
	e.use((req, res) => httpHandler(req, res));
	e.use((err, req, res, next) => res.status(err.status || 500).end());
	app = e;
}
const dir = mkdtempSync(join(tmpdir(), 'mcpfence-diff-node-'));
const sock = join(dir, 'http.sock');
const httpServer = http.createServer(app);
// a client's end of sending is not the end of its requests: answer them all, then close
httpServer.httpAllowHalfOpen = true;
httpServer.on('connection', (s) => { s.caseCalls = current; });
httpServer.on('clientError', (err, s) => s.destroy());
await new Promise((r) => httpServer.listen(sock, r));

function httpCase(data) {
	const calls = [];
	current = calls;
	return new Promise((resolve) => {
		const c = net.connect(sock);
		let finished = false;
		const done = async () => {
			if (finished) return;
			finished = true;
			clearTimeout(timer);
			c.destroy();
			await settle();
			resolve(calls);
		};
		const timer = setTimeout(done, 5000);
		c.on('connect', () => c.end(data));
		c.on('data', noop);
		c.on('error', done);
		c.on('close', done);
	});
}

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of rl) {
	if (!line.trim()) continue;
	const c = JSON.parse(line);
	const data = Buffer.from(c.data, 'base64');
	let calls = [];
	if (c.plane === 'stdio') {
		if (decoder === 'sdk') calls = await stdioCase(data);
		else calls = null; // this decoder reads no stdio
	} else {
		calls = await httpCase(data);
	}
	process.stdout.write(JSON.stringify({ id: c.id, calls }) + '\n');
}
httpServer.close();
rmSync(dir, { recursive: true, force: true });
