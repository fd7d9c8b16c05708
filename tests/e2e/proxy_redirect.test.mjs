// SPDX-License-Identifier: Apache-2.0
// `mcpfence proxy --redirect-port` (root): BPF on the host's cgroup sends unchanged clients to
// the proxy. Not in the valgrind pass: valgrind knows too little of bpf(2) to say anything of
// its callers (libbpf's attributes read as uninitialised); the ASan pass runs it.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import { missing, tmp, text, waitPort, freePort, readAudit, awaitAudit, EVERYTHING, MCPFENCE,
	 kernelLock, attachRun, clearStale } from './lib.mjs';
import { CANARY, start, startProxy, session, assertDenied } from './proxy_lib.mjs';

const skip = missing() ?? (existsSync(MCPFENCE) ? null : `${MCPFENCE} is not built (make)`);

// --redirect-port: unchanged clients, that connect to the server's own port, get the whole
// policy; getpeername still names the server; [::1] is refused (it would reach the dual-stack
// server around the proxy); a kernel plane on the same port does not judge the proxy's calls
// again; a proxy that dies leaves its port closed, not the server open, until the next one.
const redirectSkip = skip ?? (process.getuid() === 0 ? null : 'needs root (BPF on a cgroup)');
const unlockRedirect = redirectSkip ? () => {} : await kernelLock();
describe('mcpfence proxy --redirect-port', { skip: redirectSkip ?? (unlockRedirect ? false :
	'another test file kept the kernel plane for 20 minutes') }, () => {
	let dir, server, port;
	const pins = () => join('/sys/fs/bpf/mcpfence-proxy', String(port));
	const connectTo = (host) => new Promise((res) => {
		const c = net.connect({ host, port });
		c.on('connect', () => {
			const peer = { address: c.remoteAddress, port: c.remotePort };
			c.destroy();
			res({ ok: true, ...peer });
		});
		c.on('error', (e) => res({ ok: false, code: e.code }));
	});

	before(async () => {
		clearStale();
		dir = tmp();
		writeFileSync(join(dir, 'policy.json'), JSON.stringify({ version: '1', default: 'allow',
			tools: { 'get-env': { action: 'deny', reason: 'private' },
				echo: { deny_if: [{ path: 'args.message', op: 'contains', value: 'secret' }],
					limits: [{ window: 'hour', max: 2 }] } } }));
		port = await freePort();
		server = start(process.execPath, [EVERYTHING, 'streamableHttp'],
			{ PORT: String(port), MCPFENCE_CANARY: CANARY });
		assert.ok(await waitPort(port), 'server-everything did not listen');
	});
	after(async () => {
		await server?.stop();
		unlockRedirect?.();
	});

	test('an unchanged client gets the policy; getpeername; [::1]; the kernel plane; a crash',
		async () => {
			// (the first SDK connection of this process to the port: fetch keeps connections
			// open, and one made before the redirect would go on reaching the server)
			// a kernel plane on the server's port that would deny echo
			writeFileSync(join(dir, 'kernel.json'), JSON.stringify({ version: '1',
				default: 'allow', tools: { echo: { action: 'deny', reason: 'kernel says no' } } }));
			const attach = await attachRun(['--policy', join(dir, 'kernel.json'), '--port',
				String(port), '--audit', join(dir, 'kernel-audit.jsonl')]);
			let proxy = await startProxy(dir, port, ['--redirect-port', String(port)]);
			try {
				assert.match(proxy.out, /local connections to http:\/\/127\.0\.0\.1:\d+ are sent here/);
				const s = await session(`http://127.0.0.1:${port}/mcp`, 1, null);
				try {
					const names = (await s.client.listTools()).tools.map((t) => t.name);
					assert.ok(!names.includes('get-env'), names.join(','));
					assertDenied(await s.call('get-env'), 'rule', /^denied by policy: private$/);
					// judged once: the kernel plane would have refused it
					assert.equal(text(await s.call('echo', { message: 'once' })), 'Echo: once');
					assertDenied(await s.call('echo', { message: 'a secret' }), 'condition',
						/^denied by policy: /);
					assert.equal(text(await s.call('echo', { message: 'twice' })), 'Echo: twice');
					assertDenied(await s.call('echo', { message: 'thrice' }), 'limit',
						/rate limit of 2 calls per hour/);
				} finally {
					await s.close();
				}
				const lines = await awaitAudit(join(dir, 'audit.jsonl'),
					(l) => l.plane === 'http' && l.tool === 'get-env');
				assert.equal(lines[lines.length - 1].decision, 'deny');
				const kernelSaw = existsSync(join(dir, 'kernel-audit.jsonl'))
					? readAudit(join(dir, 'kernel-audit.jsonl')).filter((l) => l.tool) : [];
				assert.deepEqual(kernelSaw, [], 'the kernel plane judged the proxy\'s calls');
				// getpeername names the server, not the proxy
				const peer = await connectTo('127.0.0.1');
				assert.deepEqual(peer, { ok: true, address: '127.0.0.1', port });
				// [::1] would reach the server around the proxy: refused
				const v6 = await connectTo('::1');
				assert.equal(v6.ok, false);
				assert.equal(v6.code, 'EPERM');
				// the proxy dies: the port stays closed to clients, the server is not reached
				proxy.child.kill('SIGKILL');
				await proxy.exited;
				assert.ok(existsSync(pins()), 'the redirect outlives the proxy');
				assert.equal((await connectTo('127.0.0.1')).code, 'ECONNREFUSED');
				// the next proxy takes its place
				proxy = await startProxy(dir, port, ['--redirect-port', String(port)]);
				assert.match(proxy.out, /replaced the redirect a proxy before left/);
				const s2 = await session(`http://127.0.0.1:${port}/mcp`, 1, null);
				assertDenied(await s2.call('get-env'), 'rule', /private/);
				await s2.close();
			} finally {
				await proxy.stop();
				await attach.stop();
			}
			// stopped cleanly: no redirect left, the server answers itself again
			assert.ok(!existsSync(pins()));
			assert.deepEqual(await connectTo('127.0.0.1'), { ok: true, address: '127.0.0.1', port });
		});
});
