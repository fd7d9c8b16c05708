// SPDX-License-Identifier: Apache-2.0
// Line-level tests: what an agent trying to get a denied call through would send, transport
// edge cases (split reads, huge lines, batches, pages), and the lifecycle of the server.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { execFileSync, execSync } from 'node:child_process';
import { missing, rawRun, tmp, writePolicy, readAudit, sleep, until, EVERYTHING, MCPFENCE, ROOT }
	from './lib.mjs';

const skip = missing();
const FIXTURE = join(ROOT, 'tests/e2e/fixtures/server.mjs');
const { BAD_UTF8 } = await import(join(ROOT, 'tests/e2e/fixtures/bad_utf8.mjs'));
const dir = skip ? null : tmp();
const policy = skip ? null : writePolicy(dir, { version: '1', default: 'deny',
	tools: { alpha: {}, gamma: {}, echo: {}, 'trigger-long-running-operation': {},
		 held: { action: 'approve', approval: { timeout: '20s' } } } });
const fixture = (mode = 'mcp', extra = [], opts = {}) =>
	rawRun(['--policy', policy, '--audit', opts.audit ?? '/dev/null', ...extra, '--',
		process.execPath, FIXTURE, mode], opts);
const called = (r, id) => r.out.find((m) => m.id === id)?.result?.content?.[0]?.text;

describe('an agent trying to get a denied call through', { skip: skip ?? false }, () => {
	test('a denied tool hidden in a batch is judged on its own; answers come as one array',
	     async () => {
		const r = fixture();
		await r.init();
		r.line(JSON.stringify([
			{ jsonrpc: '2.0', id: 'b1', method: 'tools/call', params: { name: 'alpha' } },
			{ jsonrpc: '2.0', id: 'b2', method: 'tools/call', params: { name: 'secret_b' } },
			{ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: 1 } },
			42,
			{ jsonrpc: '2.0', id: 'b3', method: 'tools/call', params: { name: 'gamma', arguments: { x: 1 } } },
		]));
		const batch = await r.wait((m) => Array.isArray(m));
		const by = Object.fromEntries(batch.map((m) => [m.id, m]));
		assert.equal(batch.length, 4);
		assert.equal(by.b1.result.content[0].text, 'called alpha {}');
		assert.equal(by.b2.result.isError, true);
		assert.equal(by.b2.result._meta.kind, 'default');
		assert.equal(by.b3.result.content[0].text, 'called gamma {"x":1}');
		assert.equal(by.null.error.code, -32600);
		// only notifications: no answer at all
		r.line(JSON.stringify([{ jsonrpc: '2.0', method: 'notifications/initialized' }]));
		r.call('after', 'alpha');
		await r.byId('after');
		assert.equal(r.out.filter((m) => Array.isArray(m)).length, 1);
		assert.ok(!JSON.stringify(r.out).includes('called secret_b'));
		await r.end();
	});

	test('a batch whose call waits for approval is answered once the human decides', async () => {
		const r = fixture();
		await r.init({ elicitation: {} });
		r.line(JSON.stringify([
			{ jsonrpc: '2.0', id: 'h1', method: 'tools/call', params: { name: 'held' } },
			{ jsonrpc: '2.0', id: 'a1', method: 'tools/call', params: { name: 'alpha' } },
		]));
		const ask = await r.wait((m) => m.method === 'elicitation/create');
		await sleep(100);
		assert.equal(r.out.filter((m) => Array.isArray(m)).length, 0, 'waits for the whole batch');
		r.line({ jsonrpc: '2.0', id: ask.id, result: { action: 'decline' } });
		const batch = await r.wait((m) => Array.isArray(m));
		assert.deepEqual(batch.map((m) => m.id).sort(), ['a1', 'h1']);
		assert.equal(batch.find((m) => m.id === 'h1').result._meta.kind, 'approval');
		await r.end();
	});

	test('duplicate keys are refused, never judged on one and run on another', async () => {
		const r = fixture();
		await r.init();
		r.line('{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"alpha","name":"secret_b"}}');
		r.line('{"jsonrpc":"2.0","id":10,"method":"tools/call","method":"tools/list","params":{"name":"secret_b"}}');
		r.line('{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"alpha","arguments":{},"name":"secret_b"}}');
		for (const id of [9, 10, 11]) {
			const m = await r.byId(id);
			assert.equal(m.error?.code, -32600, `id ${id}`);
			assert.match(m.error.message, /duplicate/);
		}
		await sleep(200);
		assert.ok(!r.out.some((m) => /called/.test(m.result?.content?.[0]?.text ?? '')));
		await r.end();
	});

	test('escaped names are judged as the server reads them', async () => {
		const r = fixture();
		await r.init();
		r.line('{"jsonrpc":"2.0","id":"e1","method":"tools/call","params":{"name":"\\u0073ecret_b"}}');
		r.line('{"jsonrpc":"2.0","id":"e2","method":"tools/call","params":{"name":"\\u0061lpha"}}');
		r.line('{"jsonrpc":"2.0","id":"e3","method":"tools/call","params":{"name":"alpha\\u0000x"}}');
		r.line('{"\\u006aso\\u006erpc":"2.0","id":"e4","\\u006dethod":"tools/call","params":{"\\u006eame":"secret_c"}}');
		assert.equal((await r.byId('e1')).result._meta.kind, 'default');
		assert.equal(called(r, 'e2') ?? (await r.byId('e2')).result.content[0].text, 'called alpha {}');
		assert.equal((await r.wait((m) => m.error && m.id === null)).error.code, -32700);
		assert.equal((await r.byId('e4')).result.isError, true);
		await r.end();
	});

	test('reusing the id of a pending tools/list does not unfilter the list', async () => {
		const r = fixture();
		await r.init();
		r.line({ jsonrpc: '2.0', id: 'dup', method: 'tools/call', params: { name: 'alpha' } });
		r.line({ jsonrpc: '2.0', id: 'dup', method: 'tools/list' });
		r.line({ jsonrpc: '2.0', id: 'dup', method: 'ping' });
		r.line({ jsonrpc: '2.0', id: 'dup', method: 'tools/list' });
		await until(() => r.out.filter((m) => m.id === 'dup').length === 4);
		const lists = r.out.filter((m) => m.id === 'dup' && m.result?.tools);
		assert.equal(lists.length, 2);
		for (const l of lists)
			assert.deepEqual(l.result.tools.map((t) => t.name), ['alpha']);
		await r.end();
	});

	test('keys a server matches without regard to case are refused, naming the key', async () => {
		const r = fixture();
		await r.init();
		// Go's encoding/json reads NAME, Name, paramſ (U+017F) as name and params, the last wins
		r.line('{"jsonrpc":"2.0","id":"f1","method":"tools/call","params":{"name":"alpha","NAME":"secret_b"}}');
		r.line('{"jsonrpc":"2.0","id":"f2","method":"tools/call","params":{"name":"alpha"},"param\u017f":{"name":"secret_b"}}');
		r.line('{"jsonrpc":"2.0","id":"f3","method":"tools/call","params":{"Name":"secret_b"}}');
		// a response to the server that carries a METHOD is not forwarded as a response
		r.line('{"jsonrpc":"2.0","id":"f4","result":{},"METHOD":"tools/call","params":{"name":"secret_b"}}');
		r.line('{"jsonrpc":"2.0","id":"f5","method":"tools/call","params":{"name":"alpha","arguments":{"NAME":1}}}');
		for (const [id, key] of [['f1', 'NAME'], ['f2', 'param\u017f'], ['f3', 'Name'], ['f4', 'METHOD']]) {
			const m = await r.byId(id);
			assert.equal(m.error?.code, -32600, `id ${id}: ${JSON.stringify(m)}`);
			assert.ok(m.error.message.includes(`"${key}"`), m.error.message);
		}
		// keys inside the arguments are the tool's own
		assert.equal((await r.byId('f5')).result.content[0].text, 'called alpha {"NAME":1}');
		await sleep(200);
		assert.ok(!JSON.stringify(r.out).includes('called secret_b'));
		assert.ok(!r.out.some((m) => /server got a response to "f4"/.test(m.params?.data ?? '')));
		await r.end();
	});

	test('a bare CR inside a line is refused (servers with universal newlines split there)', async () => {
		const r = fixture();
		await r.init();
		r.send('{"jsonrpc":"2.0","id":"cr1",\r"method":"tools/call","params":{"name":"alpha"}}\n');
		r.send('{"jsonrpc":"2.0","id":"cr2","method":"tools/call","params":{"name":"alpha"}}\r\n');
		const m = await r.byId('cr1');
		assert.equal(m.error?.code, -32600);
		assert.match(m.error.message, /bare CR/);
		assert.equal((await r.byId('cr2')).result.content[0].text, 'called alpha {}');
		await r.end();
	});

	test('every tools list is filtered: many pipelined, and ids a server writes back otherwise',
	     async () => {
		const r = fixture();
		await r.init();
		// 300 lists in one write: more than any table of pending ids would hold
		let burst = '';
		for (let i = 0; i < 300; i++)
			burst += JSON.stringify({ jsonrpc: '2.0', id: `l${i}`, method: 'tools/list' }) + '\n';
		r.send(burst);
		// a JavaScript server answers 9007199254740993 as ...992: no id match is needed
		r.send('{"jsonrpc":"2.0","id":9007199254740993,"method":"tools/list"}\n');
		await until(() => r.out.filter((m) => m.result?.tools).length === 301, 20000, '301 lists');
		for (const l of r.out.filter((m) => m.result?.tools))
			assert.deepEqual(l.result.tools.map((t) => t.name), ['alpha']);
		await r.end();
	});

	test('a call split across many writes is judged whole', async () => {
		const r = fixture();
		await r.init();
		const line = '{"jsonrpc":"2.0","id":"s","method":"tools/call","params":{"name":"secret_b"}}\n'
			+ '{"jsonrpc":"2.0","id":"t","method":"tools/call","params":{"name":"alpha","arguments":{"k":1}}}\n';
		for (let i = 0; i < line.length; i += 7) {
			r.send(line.slice(i, i + 7));
			await sleep(2);
		}
		assert.equal((await r.byId('s')).result.isError, true);
		assert.equal((await r.byId('t')).result.content[0].text, 'called alpha {"k":1}');
		await r.end();
	});

	test('bad bytes get a clear error and the stream goes on', async () => {
		const r = fixture();
		await r.init();
		r.send(Buffer.concat([Buffer.from('{"jsonrpc":"2.0","id":"u","method":"tools/call","params":{"name":"alpha\xff'),
			Buffer.from([0xff, 0xfe]), Buffer.from('"}}\n')]));
		r.line('{"jsonrpc":"2.0","id":"trunc","method":"tools/c');
		r.line('not json at all');
		r.line('{"jsonrpc":"1.0","id":"v1","method":"tools/call","params":{"name":"alpha"}}');
		r.line('{"jsonrpc":"2.0","method":"tools/call","params":{"name":"alpha"}}');
		r.line('');
		r.call('after', 'alpha');
		assert.equal((await r.byId('after')).result.content[0].text, 'called alpha {}');
		const errs = r.out.filter((m) => m.error);
		assert.equal(errs.filter((m) => m.error.code === -32700 && m.id === null).length, 3);
		assert.equal(errs.find((m) => m.id === 'v1')?.error.code, -32600);
		assert.ok(errs.some((m) => m.id === null && /without an "id"/.test(m.error.message)));
		assert.equal(r.out.filter((m) => /called/.test(m.result?.content?.[0]?.text ?? '')).length, 1);
		await r.end();
	});

	test('a 100 MB line is refused without holding it, and what follows still works', async () => {
		const r = fixture();
		await r.init();
		const chunk = Buffer.alloc(1 << 20, 'a');
		for (let i = 0; i < 100; i++)
			if (!r.send(chunk)) await new Promise((res) => r.child.stdin.once('drain', res));
		r.send('\n');
		r.call('big-after', 'alpha');
		const e = await r.wait((m) => m.error?.code === -32700, 30000);
		assert.match(e.error.message, /longer than/);
		assert.equal((await r.byId('big-after', 30000)).result.content[0].text, 'called alpha {}');
		const hwm = +readFileSync(`/proc/${r.child.pid}/status`, 'utf8').match(/VmHWM:\s+(\d+)/)[1];
		if (!process.env.MCPFENCE_WRAPPED) // valgrind and ASan have their own footprint
			assert.ok(hwm < 80 * 1024, `peak RSS ${hwm} kB`);
		await r.end();
	});

	test('ids that mimic mcpfence\'s own do not reach its approvals, and ours never reach the server', async () => {
		const r = fixture();
		await r.init({ elicitation: {} });
		r.call('h1', 'held');
		const ask = await r.wait((m) => m.method === 'elicitation/create');
		assert.match(ask.id, /^mcpfence-[0-9a-f]{32}-\d+$/);
		// a guess at our id with the wrong nonce is an ordinary response: it goes to the server
		r.line({ jsonrpc: '2.0', id: 'mcpfence-00000000000000000000000000000000-1',
			 result: { action: 'accept', content: { approve: true } } });
		await r.wait((m) => /server got a response to "mcpfence-0000/.test(m.params?.data ?? ''));
		assert.equal(r.out.find((m) => m.id === 'h1'), undefined, 'still waiting');
		// a request of the client with such an id is forwarded and answered
		r.line({ jsonrpc: '2.0', id: ask.id.replace(/\d+$/, '99'), method: 'ping' });
		await r.wait((m) => m.id === ask.id.replace(/\d+$/, '99') && m.result?.seen === 'ping');
		// the real answer is consumed, twice (a replay) too
		r.line({ jsonrpc: '2.0', id: ask.id, result: { action: 'accept', content: { approve: true } } });
		r.line({ jsonrpc: '2.0', id: ask.id, result: { action: 'accept', content: { approve: true } } });
		assert.equal((await r.byId('h1')).result.content[0].text, 'called held {}');
		await sleep(200);
		assert.ok(!r.out.some((m) => (m.params?.data ?? '').includes(ask.id)),
			  'our elicitation answers never reach the server');
		await r.end();
	});
});

describe('transport', { skip: skip ?? false }, () => {
	test('every tools/list page is filtered; server lines that are not JSON-RPC pass', async () => {
		const r = fixture();
		await r.init();
		r.line({ jsonrpc: '2.0', id: 'l1', method: 'tools/list' });
		const p1 = await r.byId('l1');
		assert.deepEqual(p1.result.tools.map((t) => t.name), ['alpha']);
		assert.equal(p1.result.nextCursor, 'p2');
		r.line({ jsonrpc: '2.0', id: 'l2', method: 'tools/list', params: { cursor: 'p2' } });
		assert.deepEqual((await r.byId('l2')).result.tools.map((t) => t.name), ['gamma']);
		assert.ok(r.out.some((m) => m.unparsed === 'hello, this line is not JSON-RPC'));
		await r.end();
		assert.match(r.stderr(), /not JSON-RPC/);
	});

	test('a list with bytes that are not UTF-8 is filtered as the client reads it; one that cannot be read is withheld',
	     async () => {
		const r = fixture();
		await r.init();
		r.line({ jsonrpc: '2.0', id: 'u1', method: 'tools/list', params: { cursor: 'bad-utf8' } });
		const p = await r.byId('u1');
		assert.deepEqual(p.result.tools.map((t) => t.name), ['alpha']);
		// as Node's own decoder reads the server's bytes
		assert.equal(p.result.tools[0].description, Buffer.from(BAD_UTF8).toString('utf8'));
		r.line({ jsonrpc: '2.0', id: 'u2', method: 'tools/list', params: { cursor: 'surrogate' } });
		await r.wait((m) => m.id === null && /withheld/.test(m.error?.message ?? ''));
		r.line({ jsonrpc: '2.0', id: 'u3', method: 'tools/list', params: { cursor: 'escaped-key' } });
		await until(() => r.out.filter((m) => m.id === null && /withheld/.test(m.error?.message ?? ''))
			.length === 2);
		r.call('after', 'alpha');
		assert.equal((await r.byId('after')).result.content[0].text, 'called alpha {}');
		assert.equal(r.out.find((m) => m.id === 'u2' || m.id === 'u3'), undefined);
		assert.ok(!r.rawOut().includes('secret_b'), 'a hidden tool reached the client');
		await r.end();
		assert.match(r.stderr(), /could list tools and cannot be read/);
	});

	test('notifications/cancelled reaches the server: no answer for the cancelled call', async () => {
		const r = rawRun(['--policy', policy, '--audit', '/dev/null', '--', process.execPath,
				  EVERYTHING]);
		await r.init();
		r.call('long', 'trigger-long-running-operation', { duration: 1, steps: 1 });
		await sleep(100);
		r.line({ jsonrpc: '2.0', method: 'notifications/cancelled',
			 params: { requestId: 'long', reason: 'user' } });
		r.call('e', 'echo', { message: 'still here' });
		assert.equal((await r.byId('e')).result.content[0].text, 'Echo: still here');
		await sleep(1500);
		assert.equal(r.out.find((m) => m.id === 'long'), undefined);
		await r.end();
	});

	test('a held call that the client cancels is dropped and audited', async () => {
		const d = tmp();
		const audit = join(d, 'a.jsonl');
		const r = fixture('mcp', [], { audit });
		await r.init();
		r.call('h', 'held');
		await until(() => readAudit(audit).length === 0 && r.stderr().includes('waits for approval'));
		r.line({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'h' } });
		await until(() => readAudit(audit).some((l) => l.tool === 'held'));
		const l = readAudit(audit).find((x) => x.tool === 'held');
		assert.equal(l.decision, 'deny');
		assert.match(l.reason, /cancelled/);
		const list = execFileSync(MCPFENCE, ['approvals', '--json', '--pid', String(r.child.pid)],
			{ encoding: 'utf8' });
		assert.equal(list.trim(), '');
		assert.equal(r.out.find((m) => m.id === 'h'), undefined);
		await r.end();
	});
});

describe('lifecycle', { skip: skip ?? false }, () => {
	test('the exit code is the server\'s', async () => {
		const r = fixture('exit7');
		assert.equal((await r.exited).code, 7);
	});

	test('a server that dies mid-message: its bytes arrive, then a clean EOF and its code', async () => {
		const r = fixture('die');
		await r.init();
		r.call('x', 'alpha');
		const { code } = await r.exited;
		assert.equal(code, 3);
		assert.ok(r.rawOut().includes('{"jsonrpc":"2.0","id":"x","resu'));
	});

	test('client EOF closes the server\'s stdin; the server exits by itself', async () => {
		const r = fixture('mcp');
		await r.init();
		const t0 = Date.now();
		assert.equal((await r.end()).code, 0);
		assert.ok(Date.now() - t0 < 1500);
	});

	test('then SIGTERM after the grace period', async () => {
		const r = fixture('trap', ['--grace', '0.3']);
		await r.init();
		const t0 = Date.now();
		const e = await r.end();
		assert.equal(e.code, 0);
		assert.ok(Date.now() - t0 >= 250);
		assert.ok(r.out.some((m) => m.params?.data === 'got SIGTERM'));
	});

	test('then SIGKILL', async () => {
		const r = fixture('stubborn', ['--grace', '0.3']);
		await r.init();
		assert.equal((await r.end()).code, 137);
	});

	test('SIGTERM and SIGINT are forwarded to the server', async () => {
		for (const sig of ['SIGTERM', 'SIGINT']) {
			const r = fixture('trap');
			await r.init();
			r.child.kill(sig);
			const e = await r.exited;
			if (sig === 'SIGTERM') {
				assert.equal(e.code, 0);
				assert.ok(r.out.some((m) => m.params?.data === 'got SIGTERM'));
			} else {
				assert.equal(e.code, 128 + 2); // node dies of SIGINT
			}
		}
	});

	test('a client that vanishes: mcpfence and the server go away', async () => {
		const r = rawRun(['--policy', policy, '--audit', '/dev/null', '--grace', '0.5', '--',
				  process.execPath, EVERYTHING]);
		await r.init();
		const kids = execSync(`pgrep -P ${r.child.pid} || true`, { encoding: 'utf8' }).trim();
		assert.ok(kids, 'the server runs');
		r.child.stdout.destroy();
		r.child.stdin.destroy();
		const t = setTimeout(() => r.child.kill('SIGKILL'), 8000);
		const e = await r.exited;
		clearTimeout(t);
		assert.notEqual(e.sig, 'SIGKILL', 'mcpfence exited by itself');
		for (const pid of kids.split('\n'))
			assert.throws(() => process.kill(+pid, 0), 'the server is gone');
	});
});

describe('approval fallbacks', { skip: skip ?? false }, () => {
	test('a client that refuses elicitation/create: the control socket takes over', async () => {
		const r = fixture('mcp', []);
		await r.init({ elicitation: {} });
		r.call('f', 'held');
		const ask = await r.wait((m) => m.method === 'elicitation/create');
		r.line({ jsonrpc: '2.0', id: ask.id, error: { code: -32601, message: 'no UI here' } });
		const cli = (...a) => execFileSync(MCPFENCE, a, { encoding: 'utf8',
			stdio: ['ignore', 'pipe', 'pipe'] });
		const [w] = await until(() => {
			const out = cli('approvals', '--json', '--pid', String(r.child.pid)).trim();
			return out && out.split('\n').map((l) => JSON.parse(l));
		}, 5000, 'the call on the socket');
		assert.equal(w.tool, 'held');
		await until(() => /falling back to the control socket/.test(r.stderr()));
		cli('approve', w.id);
		assert.equal((await r.byId('f')).result.content[0].text, 'called held {}');
		await r.end();
	});

	test('a flood of calls that need approval: at most 64 wait, the rest are denied', async () => {
		const r = fixture('mcp', []);
		await r.init();
		for (let i = 0; i < 70; i++) r.call(`f${i}`, 'held');
		await until(() => r.out.filter((m) => /^f\d+$/.test(m.id)).length === 6);
		for (const m of r.out.filter((x) => /^f\d+$/.test(x.id))) {
			assert.equal(m.result._meta.kind, 'approval');
			assert.match(m.result.content[0].text, /too many calls/);
			assert.ok(+m.id.slice(1) >= 64);
		}
		await r.end();
	});

	test('held calls are denied in the audit log when the client goes away', async () => {
		const d = tmp();
		const audit = join(d, 'a.jsonl');
		const r = fixture('mcp', [], { audit });
		await r.init();
		r.call('g', 'held');
		await until(() => r.stderr().includes('waits for approval'));
		await r.end();
		const l = readAudit(audit).find((x) => x.tool === 'held');
		assert.equal(l.decision, 'deny');
		assert.match(l.reason, /went away/);
	});
});
