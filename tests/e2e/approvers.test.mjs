// SPDX-License-Identifier: Apache-2.0
// Who may approve a held call, with real uids: the gateway runs as uid 65534 (the agent's, as
// when its client spawns it), and `mcpfence approvals` / `approve` / `deny` run as root, as
// that same uid, as a member of an approver group and as a uid nobody listed. What is checked
// is what a user would check: the client's answer, whether the server ran the call, the audit.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, chmodSync, chownSync, copyFileSync, statSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { missing, rawRun, writePolicy, awaitAudit, sleep, until, binaryFor, ROOT }
	from './lib.mjs';

const AGENT = 65534;	// the gateway's uid, and the agent's
const MEMBER = 65533;	// a member of GROUP
const STRANGER = 65532; // in no list
const GROUP = 4242;	// an approver group, by number: no /etc/group entry needed

const why = missing() ?? (process.getuid() !== 0 ? 'needs root (to run as other uids)' : null) ??
	(spawnSync('setpriv', ['--version']).status !== 0 ? 'needs setpriv (util-linux)' : null);
const skip = why ?? false;

// A directory every uid can read, with a copy of the fixture server and the module it imports
// (the clone may be 0700).
let shared = null;
function sharedDir() {
	if (shared) return shared;
	const dir = mkdtempSync(join(tmpdir(), 'mcpfence-approvers-'));
	chmodSync(dir, 0o755);
	for (const f of ['server.mjs', 'bad_utf8.mjs']) {
		copyFileSync(join(ROOT, 'tests/e2e/fixtures', f), join(dir, f));
		chmodSync(join(dir, f), 0o644);
	}
	shared = { dir, server: join(dir, 'server.mjs'), n: 0 };
	return shared;
}

const as = (uid, groups = null) => ['setpriv', `--reuid=${uid}`, `--regid=${uid}`,
	groups === null ? '--clear-groups' : `--groups=${groups}`];

// mcpfence as uid (null: root, as it is); {status, stdout, stderr}.
function cli(uid, groups, ...args) {
	const bin = binaryFor(AGENT);
	const argv = uid === null ? [bin, ...args] : [...as(uid, groups), bin, ...args];
	return spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', timeout: 10000 });
}

const listOf = (res) => res.stdout.trim() ? res.stdout.trim().split('\n').map((l) => JSON.parse(l))
	: [];

// A gateway as the agent's uid. viaShell: its client is a shell of that uid too (a pipe on
// stdin, so the client's uid is read from its parent, the shell), as when the agent's own
// client spawns it.
function gateway(policy, { viaShell = false } = {}) {
	const { dir, server } = sharedDir();
	const d = join(dir, `g${shared.n++}`);
	const sub = mkdtempSync(d);
	chmodSync(sub, 0o755);
	chownSync(sub, AGENT, AGENT); // the audit log is written as the agent's uid
	const path = writePolicy(sub, policy);
	chmodSync(path, 0o644);
	const audit = join(sub, 'audit.jsonl');
	const wrap = viaShell ? [...as(AGENT), 'sh', '-c', 'cat | exec "$0" "$@"'] : as(AGENT);
	const r = rawRun(['--policy', path, '--audit', audit, '--', process.execPath, server, 'mcp'],
			 { wrap, bin: binaryFor(AGENT) });
	r.audit = audit;
	gateways.push(r);
	return r;
}
const gateways = [];

// The ID the gateway logged for a call that waits on the control socket, and its pid.
async function held(r, n = 1) {
	const ids = await until(() => {
		const m = [...r.stderr().matchAll(/call (\d+)-([0-9a-f]{8})-([0-9a-f]{16}) \(tool "[^"]*"\) waits/g)];
		return m.length >= n ? m : null;
	}, 5000, `${n} call(s) waiting for approval`);
	return { pid: ids[0][1], ids: ids.map((m) => `${m[1]}-${m[2]}-${m[3]}`) };
}

after(() => {
	if (shared) rmSync(shared.dir, { recursive: true, force: true });
});

const answer = (r, id) => r.out.find((m) => m.id === id);
const ran = (r, id) => answer(r, id)?.result?.content?.[0]?.text;

const heldPolicy = (approval) => ({ version: '1', default: 'deny',
	tools: { held: { action: 'approve', approval: { timeout: '30s', ...approval } } } });

describe('who may approve a held call', { skip }, () => {
	after(async () => {
		for (const r of gateways) if (r.child.exitCode === null) await r.end(3000);
	});

	test('the agent\'s uid lists its own call but cannot approve or deny it; root can, and the audit says so',
	     async () => {
		const r = gateway(heldPolicy({ approvers: { groups: [GROUP] } }));
		await r.init();
		r.call('h1', 'held', { n: 1 });
		const { pid, ids: [id] } = await held(r);

		const mine = listOf(cli(AGENT, null, 'approvals', '--json', '--pid', pid));
		assert.equal(mine.length, 1, 'the agent sees its own pending call');
		assert.equal(mine[0].id, id);
		assert.equal(mine[0].tool, 'held');
		assert.deepEqual(mine[0].arguments, { n: 1 });
		assert.equal(mine[0].gateway_uid, AGENT);
		assert.equal(mine[0].may_approve, `root, members of group ${GROUP}`);
		assert.match(cli(AGENT, null, 'approvals', '--pid', pid).stdout,
			     new RegExp(`${id}\\n  server fixture, tool "held", arguments sha256 ${id.slice(-16)}`));

		for (const verb of ['approve', 'deny']) {
			const res = cli(AGENT, null, verb, id);
			assert.equal(res.status, 1);
			assert.match(res.stderr, new RegExp(`permission denied: uid ${AGENT} may not ${verb} this call: it is the uid this gateway runs as`));
		}
		// even as a member of the approver group: its uid is the gateway's
		const grouped = cli(AGENT, GROUP, 'approve', id);
		assert.equal(grouped.status, 1);
		assert.match(grouped.stderr, /permission denied/);
		await sleep(300);
		assert.equal(answer(r, 'h1'), undefined, 'the call still waits: the server never ran it');
		assert.match(r.stderr(), new RegExp(`uid ${AGENT} \\(pid \\d+\\) may not approve call ${id}`));

		const ok = cli(null, null, 'approve', id);
		assert.equal(ok.status, 0, ok.stderr);
		assert.match(ok.stdout, new RegExp(`^ok: call ${id} \\(tool "held" of fixture\\) approved`));
		assert.equal((await r.byId('h1')).result.content[0].text, 'called held {"n":1}');
		const [line] = await awaitAudit(r.audit, (l) => l.tool === 'held');
		assert.equal(line.decision, 'allow');
		assert.equal(line.approved_by, 'uid 0 (root)');
		await r.end();
	});

	test('a member of an approver group approves; a uid in no list can neither see nor approve',
	     async () => {
		const r = gateway(heldPolicy({ approvers: { groups: [GROUP] } }));
		await r.init();
		r.call('h2', 'held', { n: 2 });
		const { pid, ids: [id] } = await held(r);

		const seen = cli(STRANGER, null, 'approvals', '--json', '--pid', pid);
		assert.deepEqual(listOf(seen), []);
		assert.match(seen.stderr, new RegExp(`permission denied: uid ${STRANGER} may not see the calls waiting here`));
		const refused = cli(STRANGER, null, 'approve', id);
		assert.equal(refused.status, 1);
		assert.match(refused.stderr, new RegExp(`permission denied: uid ${STRANGER} may not approve this call: not root, not in approvers.users, not a member of approvers.groups`));
		await sleep(200);
		assert.equal(answer(r, 'h2'), undefined);

		const theirs = listOf(cli(MEMBER, GROUP, 'approvals', '--json', '--pid', pid));
		assert.deepEqual(theirs.map((w) => w.id), [id]);
		const ok = cli(MEMBER, GROUP, 'approve', id);
		assert.equal(ok.status, 0, ok.stderr);
		assert.equal((await r.byId('h2')).result.content[0].text, 'called held {"n":2}');
		const [line] = await awaitAudit(r.audit, (l) => l.tool === 'held');
		assert.equal(line.approved_by, `uid ${MEMBER}`);
		assert.match(r.stderr(), new RegExp(`approved by uid ${MEMBER} \\(a member of group ${GROUP}, in approvers.groups\\)`));
		await r.end();
	});

	test('an ID binds one call and is used once: another digest, another call\'s number, a replay, a stale pid',
	     async () => {
		const r = gateway(heldPolicy({}));
		await r.init();
		r.call('a', 'held', { n: 1 });
		r.call('b', 'held', { n: 2 });
		const { pid, ids: [ida, idb] } = await held(r, 2);
		const [, tokA, digA] = ida.split('-');
		const [, , digB] = idb.split('-');
		const flip = (s) => s.slice(0, -1) + (s.endsWith('0') ? '1' : '0');

		for (const forged of [`${pid}-${tokA}-${digB}`, `${pid}-${tokA}-${flip(digA)}`]) {
			const res = cli(null, null, 'approve', forged);
			assert.equal(res.status, 1, forged);
			assert.match(res.stderr, /does not name the call waiting as .*: nothing decided/);
		}
		const other = cli(null, null, 'approve', `${pid}-${flip(tokA)}-${digA}`);
		assert.equal(other.status, 1);
		assert.match(other.stderr, /no call .* waits for approval here/);
		const old = cli(null, null, 'approve', `${pid}-1`);
		assert.equal(old.status, 2);
		assert.match(old.stderr, /not an approval ID \(PID-CALL-DIGEST/);
		await sleep(200);
		assert.equal(answer(r, 'a'), undefined);
		assert.equal(answer(r, 'b'), undefined);

		assert.equal(cli(null, null, 'approve', ida).status, 0);
		assert.equal((await r.byId('a')).result.content[0].text, 'called held {"n":1}');
		const replay = cli(null, null, 'approve', ida);
		assert.equal(replay.status, 1);
		assert.match(replay.stderr, /no call .* waits/);
		// the same call again is another call: the first ID does not approve it
		r.call('a2', 'held', { n: 1 });
		const { ids } = await held(r, 3);
		assert.notEqual(ids[2], ida);
		assert.equal(ids[2].split('-')[2], digA, 'same tool and arguments: same digest');
		assert.equal(cli(null, null, 'approve', ida).status, 1);
		await sleep(200);
		assert.equal(answer(r, 'a2'), undefined);
		assert.equal(cli(null, null, 'deny', ids[2]).status, 0);
		const denied = await r.byId('a2');
		assert.equal(denied.result.isError, true);
		assert.match(denied.result.content[0].text, /declined the call \(uid 0 \(root\)\)/);
		const [line] = await awaitAudit(r.audit, (l) => l.id === 'a2');
		assert.equal(line.decision, 'deny');
		assert.equal(line.approved_by, 'uid 0 (root)');

		await r.end();
		assert.equal(ran(r, 'b'), undefined, 'b never ran');
		const stale = cli(null, null, 'approve', idb);
		assert.equal(stale.status, 1);
		assert.match(stale.stderr, new RegExp(`no gateway of pid ${pid} takes approvals`));
	});

	test('the client\'s own uid approves only when approvers.users names it, never through a group',
	     async () => {
		const g = gateway(heldPolicy({ approvers: { groups: [GROUP] } }), { viaShell: true });
		await g.init();
		g.call('g1', 'held');
		const { pid: gpid, ids: [gid] } = await held(g);
		const [w] = listOf(cli(null, null, 'approvals', '--json', '--pid', gpid));
		assert.equal(w.client.uid, AGENT, 'the client is the agent\'s shell');
		const res = cli(AGENT, GROUP, 'approve', gid);
		assert.equal(res.status, 1);
		assert.match(res.stderr, /it is the uid of the client that made the call/);
		await sleep(200);
		assert.equal(answer(g, 'g1'), undefined);
		await g.end();

		const u = gateway(heldPolicy({ approvers: { users: [AGENT] } }), { viaShell: true });
		await u.init();
		u.call('u1', 'held');
		const { ids: [uid] } = await held(u);
		const ok = cli(AGENT, null, 'approve', uid);
		assert.equal(ok.status, 0, ok.stderr);
		assert.equal((await u.byId('u1')).result.content[0].text, 'called held {}');
		const [line] = await awaitAudit(u.audit, (l) => l.tool === 'held');
		assert.equal(line.approved_by, `uid ${AGENT} (nobody)`);
		await u.end();
	});
});

describe('through which channel', { skip }, () => {
	test('via ["operator"] never sends elicitation/create, even to a client that declares it',
	     async () => {
		const r = gateway(heldPolicy({ via: ['operator'] }));
		await r.init({ elicitation: {} });
		r.call('o1', 'held', { x: 'y' });
		const { ids: [id] } = await held(r);
		await sleep(200);
		assert.ok(!r.out.some((m) => m.method === 'elicitation/create'), 'the client was not asked');
		assert.equal(cli(null, null, 'approve', id).status, 0);
		assert.equal((await r.byId('o1')).result.content[0].text, 'called held {"x":"y"}');
		assert.ok(!r.out.some((m) => m.method === 'elicitation/create'));
		await r.end();
	});

	test('via ["client"]: a client that cannot ask is denied at once, and the socket decides nothing',
	     async () => {
		const r = gateway(heldPolicy({ via: ['client'] }));
		await r.init();
		const t0 = Date.now();
		r.call('c1', 'held');
		const d = await r.byId('c1');
		assert.ok(Date.now() - t0 < 3000, 'denied at once, not at the timeout');
		assert.equal(d.result.isError, true);
		assert.equal(d.result._meta.kind, 'approval');
		assert.match(d.result.content[0].text, /asks only the client .* cannot ask its user/);
		await r.end();

		const e = gateway(heldPolicy({ via: ['client'] }));
		await e.init({ elicitation: {} });
		e.call('c2', 'held');
		const ask = await e.wait((m) => m.method === 'elicitation/create');
		const pid = String(e.child.pid);
		const w = await until(() => listOf(cli(null, null, 'approvals', '--json', '--pid', pid))[0],
				      5000, 'the call in the list');
		assert.equal(w.asked, 'client');
		assert.deepEqual(w.via, ['client']);
		const res = cli(null, null, 'approve', w.id);
		assert.equal(res.status, 1);
		assert.match(res.stderr, /asked through the client only/);
		await sleep(200);
		assert.equal(answer(e, 'c2'), undefined);
		e.line({ jsonrpc: '2.0', id: ask.id, result: { action: 'accept', content: { approve: true } } });
		assert.equal((await e.byId('c2')).result.content[0].text, 'called held {}');
		const [line] = await awaitAudit(e.audit, (l) => l.tool === 'held');
		assert.equal(line.approved_by, 'elicitation');
		await e.end();
	});
});

describe('names, tickets and the gateway process', { skip }, () => {
	// A process that binds an abstract name exactly (Node pads it to 108 bytes) and answers
	// each connection with lines; it prints its pid once it listens.
	const PY = `
import json, os, socket, sys
name, lines = sys.argv[1].replace('{pid}', str(os.getpid())), json.loads(sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind('\\0' + name)
s.listen(8)
print(os.getpid(), flush=True)
while True:
    c, _ = s.accept()
    try:
        c.recv(256)
        c.sendall(''.join(json.dumps(l).replace('{pid}', str(os.getpid())) + '\\n' for l in lines).encode())
    except OSError:
        pass  # a peer that only looked at who listens
    c.close()
`;
	const squat = async (name, lines = []) => {
		const p = spawn('python3', ['-c', PY, name, JSON.stringify(lines)], { stdio: ['ignore', 'pipe', 'inherit'] });
		let out = '';
		p.stdout.on('data', (d) => { out += d; });
		const pid = await until(() => out.trim(), 5000, 'the squatter');
		return { pid, close: () => p.kill() };
	};

	test('a name taken before the gateway listens: it takes another, and approvers still reach it',
	     async () => {
		const r = gateway(heldPolicy({}));
		await r.init();
		const pid = String(r.child.pid); // setpriv execs mcpfence: the gateway's own pid
		const squatter = await squat(`mcpfence/approvals/${pid}`);
		try {
			r.call('s1', 'held');
			const { ids: [id] } = await held(r);
			assert.match(r.stderr(), new RegExp(`control socket @mcpfence/approvals/${pid} is taken \\(pid ${squatter.pid}, uid 0\\): not by this gateway`));
			const list = cli(null, null, 'approvals', '--json', '--pid', pid);
			assert.deepEqual(listOf(list).map((w) => w.id), [id]);
			assert.match(list.stderr, new RegExp(`ignored: @mcpfence/approvals/${pid} is held by pid ${squatter.pid} \\(uid 0\\), not by pid ${pid}`));
			const ok = cli(null, null, 'approve', id);
			assert.equal(ok.status, 0, ok.stderr);
			assert.equal((await r.byId('s1')).result.content[0].text, 'called held {}');
		} finally {
			squatter.close();
			await r.end();
		}
	});

	test('a listing that names one call and shows another is left out', async () => {
		const r = gateway(heldPolicy({}));
		await r.init();
		r.call('f2', 'held', { target: '/' });
		const { pid, ids: [real] } = await held(r);
		const dig = real.split('-')[2];
		// a process of its own pid, showing harmless arguments under the real call's digest,
		// and the real call's ID under harmless arguments
		const fake = await squat('mcpfence/approvals/{pid}', [
			{ id: `{pid}-0badc0de-${dig}`, tool: 'held', digest: dig.padEnd(64, '0'),
			  arguments: { target: '/tmp/x' } },
			{ id: real, tool: 'held', digest: dig.padEnd(64, '0'), arguments: { target: '/tmp/x' } },
		]);
		try {
			const res = cli(null, null, 'approvals', '--json', '--pid', fake.pid);
			assert.deepEqual(listOf(res), []);
			assert.match(res.stderr, /left out of the list: call .* the tool and arguments listed do not have its digest/);
			assert.match(res.stderr, new RegExp(`left out of the list: call ${real} is not of pid ${fake.pid}`));
			const table = cli(null, null, 'approvals', '--pid', fake.pid);
			assert.match(table.stdout, /^no call waits for approval/);
			// the real one is listed by its gateway, with its real arguments
			const [w] = listOf(cli(null, null, 'approvals', '--json', '--pid', pid));
			assert.deepEqual(w.arguments, { target: '/' });
		} finally {
			fake.close();
			await r.end();
		}
		assert.equal(ran(r, 'f2'), undefined);
	});

	test('kernel-plane tickets are root\'s: another uid is refused, and told why', () => {
		const res = cli(AGENT, null, 'approve', '--tool', 'held', '--count', '5');
		assert.equal(res.status, 1);
		assert.match(res.stderr, new RegExp(`tickets are given by root only \\(this is uid ${AGENT}\\)`));
	});

	test('the gateway is not dumpable: its own uid cannot read its memory or environment',
	     async () => {
		const r = gateway(heldPolicy({}));
		await r.init();
		const pid = r.child.pid;
		const server = await until(() => spawnSync('pgrep', ['-P', String(pid)],
			{ encoding: 'utf8' }).stdout.trim(), 5000, 'the server');
		assert.equal(statSync(`/proc/${pid}/fd`).uid, 0, '/proc/PID is root\'s');
		for (const f of ['environ', 'mem']) {
			const res = spawnSync('setpriv', [...as(AGENT), 'dd', `if=/proc/${pid}/${f}`,
				'of=/dev/null', 'count=1', 'skip=4096'], { encoding: 'utf8' });
			assert.notEqual(res.status, 0, f);
			assert.match(res.stderr, /Permission denied/, f);
		}
		// the server it runs is dumpable again (execve): the same uid reads its environment
		const srv = spawnSync('setpriv', [...as(AGENT), 'cat', `/proc/${server}/environ`]);
		assert.equal(srv.status, 0, 'the server is the agent\'s own business');
		await r.end();
	});
});
