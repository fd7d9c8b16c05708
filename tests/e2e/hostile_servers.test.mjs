// SPDX-License-Identifier: Apache-2.0
// The differential tier's hostile corpus (tests/diff/gen.py and tests/diff/cases/) against real
// servers, under a policy that denies get-env: a Go server that reads messages as mcp-go does
// (tests/diff/mcpgo) behind `mcpfence run` on stdio and behind `mcpfence attach --port` on
// Streamable HTTP, and an express.json() server with the real SDK (fixtures/express_server.mjs)
// behind `mcpfence attach --port`. Each server logs every tool it runs; the tests read those logs,
// not mcpfence's view. Unattached first: the hostile classes do reach get-env, so that the
// assertion that none does behind mcpfence proves something. The kernel half needs root (and
// `flock /tmp/mcpfence-bpf.lock` around the run: the pins are host-wide).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import { kernelLock, sleep, waitPort } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(here, '../..');
const MCPFENCE = resolve(process.env.MCPFENCE_BIN || join(ROOT, 'build/mcpfence'));
const MCPGO = join(ROOT, 'build/tests/diff/mcpgo');
const EXPRESS = join(here, 'fixtures/express_server.mjs');
const PY = '/usr/bin/python3';
const PORT_GO = 30000 + (process.pid % 5000) * 2;
const PORT_EX = PORT_GO + 1;
const POLICY = { version: '1', default: 'allow',
		 tools: { 'get-env': { action: 'deny', reason: 'the environment is private' } } };

// The Go server, built as the differential tier builds it (offline, standard library only).
function buildGo() {
	const r = spawnSync('go', ['build', '-o', MCPGO, '.'], {
		cwd: join(ROOT, 'tests/diff/mcpgo'), encoding: 'utf8',
		env: { ...process.env, GOFLAGS: '-mod=mod', GOPROXY: 'off', GOTOOLCHAIN: 'local',
		       GOCACHE: join(ROOT, 'build/go-cache'), GOPATH: join(ROOT, 'build/go-path') },
	});
	if (r.error) return 'go is not installed (scripts/setup.sh test installs golang-go)';
	return r.status === 0 ? null : `go build of tests/diff/mcpgo failed:\n${r.stdout}${r.stderr}`;
}

// The corpus: {id, cls, plane, data}, the generated cases then the hand-written ones.
function corpus() {
	const r = spawnSync(PY, [join(ROOT, 'tests/diff/gen.py')], { encoding: 'utf8',
								       maxBuffer: 256 << 20 });
	if (r.status !== 0) throw new Error(`tests/diff/gen.py failed: ${r.stderr}`);
	const cases = r.stdout.split('\n').filter(Boolean).map((l) => {
		const c = JSON.parse(l);
		return { id: c.id, cls: c.class, plane: c.plane, data: Buffer.from(c.data, 'base64') };
	});
	const dir = join(ROOT, 'tests/diff/cases');
	for (const f of readdirSync(dir).sort()) {
		const [cls, name, plane] = f.split('.');
		if (plane === 'stdio' || plane === 'http')
			cases.push({ id: `${cls}/${name}/${plane}`, cls, plane, data: readFileSync(join(dir, f)) });
	}
	return cases;
}

function whyNot() {
	if (!existsSync(MCPFENCE)) return `${MCPFENCE} is not built (make)`;
	if (!existsSync(PY)) return `${PY} is missing (scripts/setup.sh test installs python3)`;
	if (!existsSync(join(here, 'node_modules/express'))) return 'tests/e2e/node_modules is missing (make setup-test)';
	return buildGo();
}
const skipReason = whyNot();
const CASES = skipReason ? [] : corpus();
const byClass = (plane) => {
	const m = new Map();
	for (const c of CASES.filter((k) => k.plane === plane)) {
		if (!m.has(c.cls)) m.set(c.cls, []);
		m.get(c.cls).push(c);
	}
	return m;
};

// The tools a server's log says it ran, from line `from` on.
function ran(log, from = 0) {
	if (!existsSync(log)) return [];
	return readFileSync(log, 'utf8').split('\n').filter(Boolean).slice(from).map((l) => JSON.parse(l))
		.filter((e) => e.ran).map((e) => e.tool);
}
const lines = (log) => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean).length : 0);
const count = (tools, t) => tools.filter((x) => x === t).length;

// Run argv with data on its stdin to its end; resolves when it exits.
function feed(argv, data) {
	return new Promise((res, rej) => {
		const p = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'ignore', 'pipe'] });
		let err = '';
		const t = setTimeout(() => p.kill('SIGKILL'), 30000);
		p.stderr.on('data', (d) => { err += d; });
		p.on('error', rej);
		p.on('exit', (code, sig) => { clearTimeout(t); res({ code, sig, err }); });
		p.stdin.on('error', () => {});
		p.stdin.end(data);
	});
}

// A class's stdio cases as one stream: each case on lines of its own.
const stream = (cases) => Buffer.concat(cases.map((c) => (c.data.at(-1) === 10 ?
	c.data : Buffer.concat([c.data, Buffer.from('\n')]))));

const dir = skipReason ? null : mkdtempSync(join(tmpdir(), 'mcpfence-hostile-'));
const policy = dir ? join(dir, 'policy.json') : null;
if (dir) writeFileSync(policy, JSON.stringify(POLICY));
after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

test('hostile stdio: the mcp-go server behind mcpfence run never runs get-env',
     { skip: skipReason || false }, async (t) => {
	const classes = byClass('stdio');
	const reached = [], table = [];
	let behindEcho = 0;
	for (const [cls, cases] of classes) {
		const data = stream(cases);
		const bare = join(dir, `stdio-${cls}.bare.log`), fenced = join(dir, `stdio-${cls}.fenced.log`);
		await feed([MCPGO, 'stdio', '--log', bare], data);
		const r = await feed([MCPFENCE, 'run', '--policy', policy, '--audit', '/dev/null', '--',
				      MCPGO, 'stdio', '--log', fenced], data);
		assert.equal(r.sig, null, `mcpfence run was killed on class ${cls}: ${r.err}`);
		const u = count(ran(bare), 'get-env'), f = count(ran(fenced), 'get-env');
		behindEcho += count(ran(fenced), 'echo');
		table.push(`${cls}: ${cases.length} cases, get-env ran ${u} times unattached, ${f} behind mcpfence run`);
		if (u && cls !== 'basic') reached.push(cls);
		assert.equal(f, 0, `behind mcpfence run the Go server ran get-env (class ${cls})`);
	}
	for (const l of table) t.diagnostic(l);
	// the corpus is hostile to this server: its folding and last-key-wins reading reach get-env
	for (const cls of ['fold', 'dup'])
		assert.ok(reached.includes(cls), `class ${cls} never reached get-env unattached: the test proves nothing`);
	assert.ok(behindEcho > 0, 'behind mcpfence run the Go server never ran echo: it proves nothing');
});

// --- the kernel plane ---

// Send the bytes on a connection of their own; done when the server closes it, or says nothing
// more for `idle` ms after answering, or nothing at all for `first` ms.
function send(port, data, { idle = 250, first = 1500 } = {}) {
	return new Promise((res) => {
		const s = net.connect(port, '127.0.0.1');
		let timer = null, finished = false;
		const done = () => {
			if (finished) return;
			finished = true;
			clearTimeout(timer);
			s.destroy();
			res();
		};
		const arm = (ms) => { clearTimeout(timer); timer = setTimeout(done, ms); };
		s.on('connect', () => { s.write(data, () => {}); arm(first); });
		s.on('data', () => arm(idle));
		s.on('close', done);
		s.on('error', done);
	});
}

async function sendAll(jobs, width = 24) {
	let next = 0;
	await Promise.all(Array.from({ length: width }, async () => {
		while (next < jobs.length) {
			const [port, data] = jobs[next++];
			await send(port, data);
		}
	}));
}

function kernelWhyNot() {
	if (skipReason) return skipReason;
	if (process.getuid() !== 0) return 'needs root (BPF programs on a cgroup)';
	return null;
}
const kernelSkip = kernelWhyNot();
test('hostile HTTP: the mcp-go and express.json() servers behind mcpfence attach never run get-env',
     { skip: kernelSkip || false }, async (t) => {
	// one file at a time attaches: the lock first, then a look for an attachment in place
	const unlock = await kernelLock();
	if (!unlock) return t.skip('another test file kept the kernel plane for 20 minutes');
	if (existsSync('/sys/fs/bpf/mcpfence')) {
		unlock();
		return t.skip('an attachment is in place (/sys/fs/bpf/mcpfence): not touching it');
	}
	const goLog = join(dir, 'http-go.log'), exLog = join(dir, 'http-express.log');
	let serverOut = '';
	const servers = [
		spawn(MCPGO, ['http', '--listen', `127.0.0.1:${PORT_GO}`, '--log', goLog]),
		spawn(process.execPath, [EXPRESS, String(PORT_EX), exLog]),
	];
	for (const s of servers) {
		s.stdout.on('data', (d) => { serverOut += d; });
		s.stderr.on('data', (d) => { serverOut += d; });
	}
	let attach = null, attachOut = '';
	try {
		for (const port of [PORT_GO, PORT_EX]) {
			assert.ok(await waitPort(port), `no server on port ${port}:\n${serverOut}`);
		}
		const classes = byClass('http');
		const logs = [['mcp-go', goLog, PORT_GO], ['express', exLog, PORT_EX]];

		// unattached: the hostile classes reach get-env
		const reached = { 'mcp-go': new Set(), express: new Set() };
		for (const [cls, cases] of classes) {
			const before = logs.map(([, log]) => lines(log));
			await sendAll(logs.flatMap(([, , port]) => cases.map((c) => [port, c.data])));
			await sleep(300);
			logs.forEach(([name, log], i) => {
				const n = count(ran(log, before[i]), 'get-env');
				t.diagnostic(`unattached ${name} ${cls}: ${cases.length} cases, get-env ran ${n} times`);
				if (n && cls !== 'basic') reached[name].add(cls);
			});
		}
		// mcp-go folds keys; body-parser decodes charsets and inflates bodies
		for (const cls of ['fold', 'dup'])
			assert.ok(reached['mcp-go'].has(cls), `mcp-go: class ${cls} never reached get-env unattached`);
		for (const cls of ['dup', 'charset', 'encoding'])
			assert.ok(reached.express.has(cls), `express: class ${cls} never reached get-env unattached`);

		// attached: none does, whatever the class
		attach = spawn(MCPFENCE, ['attach', '--policy', policy, '--port', String(PORT_GO), '--port',
					  String(PORT_EX), '--audit', join(dir, 'audit.jsonl'), '--quiet'],
			       { stdio: ['ignore', 'pipe', 'pipe'] });
		attach.stdout.on('data', (d) => { attachOut += d; });
		attach.stderr.on('data', (d) => { attachOut += d; });
		for (let i = 0; i < 600 && !attachOut.includes('watching TCP port'); i++) {
			assert.equal(attach.exitCode, null, `mcpfence attach exited:\n${attachOut}`);
			await sleep(100);
		}
		assert.match(attachOut, /watching TCP port/, attachOut);
		const from = logs.map(([, log]) => lines(log));
		await sendAll([...classes.values()].flat().flatMap((c) => logs.map(([, , port]) => [port, c.data])));
		await sleep(1000);
		logs.forEach(([name, log], i) => {
			const tools = ran(log, from[i]);
			t.diagnostic(`attached ${name}: ${tools.length} tool runs, get-env ${count(tools, 'get-env')}, echo ${count(tools, 'echo')}`);
			assert.equal(count(tools, 'get-env'), 0, `behind mcpfence attach ${name} ran get-env`);
			assert.ok(count(tools, 'echo') > 0, `behind mcpfence attach ${name} never ran echo: it proves nothing`);
		});
	} finally {
		if (attach && attach.exitCode === null) {
			attach.kill('SIGTERM');
			for (let i = 0; i < 50 && attach.exitCode === null; i++) await sleep(100);
		}
		if (attach) spawnSync(MCPFENCE, ['detach']);
		for (const s of servers) s.kill('SIGTERM');
		unlock();
	}
});
