// SPDX-License-Identifier: Apache-2.0
// What the proxy's test files share: a process, a proxy, an SDK session, a denial as read.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { randomBytes } from 'node:crypto';
import { text, sleep, until, freePort, MCPFENCE, ROOT } from './lib.mjs';

export const CANARY = 'mcpfence-canary-' + randomBytes(6).toString('hex');
const require = createRequire(join(ROOT, 'tests/e2e/package.json'));
export const imp = (m) => import(pathToFileURL(require.resolve(m)).href);

// A process until stop(); out holds what it printed.
export function start(cmd, args, env = {}) {
	const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'],
		env: { ...process.env, ...env } });
	const p = { child, out: '' };
	child.stdout.on('data', (d) => { p.out += d; });
	child.stderr.on('data', (d) => { p.out += d; });
	p.exited = new Promise((res) => child.on('exit', (code, sig) => res({ code, sig })));
	p.stop = async () => {
		if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
		await Promise.race([p.exited, sleep(5000)]);
		if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
	};
	return p;
}

export async function startProxy(dir, upstreamPort, extra = []) {
	const port = await freePort();
	const p = start(MCPFENCE, ['proxy', '--listen', `127.0.0.1:${port}`, '--upstream',
		`http://127.0.0.1:${upstreamPort}`, '--policy', join(dir, 'policy.json'), '--audit',
		join(dir, 'audit.jsonl'), ...extra], { MCPFENCE_RUNTIME_DIR: join(dir, 'run') });
	await until(() => p.out.includes('proxy: listening') || p.child.exitCode !== null, 10000,
		'the proxy to listen');
	assert.match(p.out, /proxy: listening on/, p.out);
	p.port = port;
	p.url = `http://127.0.0.1:${port}/mcp`;
	return p;
}

// A client of SDK v (1 or 2; mode: the v2 client's versionNegotiation mode) at url.
export async function session(url, v, mode) {
	let client;
	if (v === 1) {
		const { Client } = await imp('@modelcontextprotocol/sdk/client/index.js');
		const { StreamableHTTPClientTransport } =
			await imp('@modelcontextprotocol/sdk/client/streamableHttp.js');
		client = new Client({ name: 'proxy-e2e', version: '1.0.0' });
		await client.connect(new StreamableHTTPClientTransport(new URL(url)));
	} else {
		const { Client, StreamableHTTPClientTransport } = await imp('@modelcontextprotocol/client');
		client = new Client({ name: 'proxy-e2e', version: '1.0.0' },
			mode ? { versionNegotiation: { mode } } : {});
		await client.connect(new StreamableHTTPClientTransport(new URL(url)));
	}
	const call = (tool, a = {}, opts = {}) => client.callTool({ name: tool, arguments: a },
		undefined, { timeout: 10000, ...opts });
	return { client, call, close: () => client.close() };
}

// The tools a server fixture ran, as its MCPFENCE_TOOL_LOG says (one name a line).
export const toolsRan = (log) => (existsSync(log)
	? readFileSync(log, 'utf8').split('\n').filter(Boolean) : []);

// A denial as the agent reads it: a result, isError, "denied by policy: ...".
export function assertDenied(r, kind, re) {
	assert.equal(r.isError, true, JSON.stringify(r));
	assert.equal(r._meta.kind, kind);
	assert.match(text(r), re);
	assert.ok(!text(r).includes(CANARY));
}
