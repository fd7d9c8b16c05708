// SPDX-License-Identifier: Apache-2.0
// The README's main command: a real SDK client drives server-everything through
// `mcpfence run --policy policies/demo.json` and prints what happens, call by call; then, as
// root, the same policy in the kernel under `mcpfence daemon`.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { missing, connect, tmp, readAudit, text, attachRun, ROOT, MCPFENCE } from './lib.mjs';

const why = missing();
if (why) {
	console.error(`demo: cannot run: ${why}`);
	process.exit(1);
}
const policy = join(ROOT, 'policies/demo.json');
const audit = join(tmp('mcpfence-demo-'), 'audit.jsonl');
const show = (s) => console.log(s);
const result = (r) => r.isError
	? `DENIED   ${text(r)}\n           _meta: ${JSON.stringify(r._meta)}`
	: `allowed  ${text(r)}`;

show(`$ mcpfence run --policy policies/demo.json --audit ${audit} -- node server-everything\n`);
const direct = await connect();
const all = (await direct.client.listTools()).tools.map((t) => t.name);
await direct.close();
const c = await connect({ fence: { policy, audit } });
const seen = (await c.client.listTools()).tools.map((t) => t.name);
show(`tools/list   the server offers ${all.length} tools; through mcpfence the agent sees ${seen.length}:`);
show(`           ${seen.join(', ')}`);
show(`           (hidden or denied: ${all.filter((t) => !seen.includes(t)).join(', ')})\n`);
const call = async (name, args) => {
	const r = await c.client.callTool({ name, arguments: args });
	show(`call ${name} ${JSON.stringify(args)}\n        -> ${result(r)}`);
	return r;
};
await call('echo', { message: 'hello through the fence' });
await call('get-tiny-image', {});
for (let i = 1; i <= 3; i++) await call('get-sum', { a: i, b: 10 });
await call('get-env', {});
await c.close();
show(`\naudit log (${audit}):`);
for (const l of readAudit(audit))
	show(`  ${l.time}  ${l.decision.padEnd(5)}  ${l.tool.padEnd(15)} ${l.rule}` +
	     (l.reason ? `  "${l.reason}"` : ''));

// The kernel plane, as root: `mcpfence daemon` finds server-everything when the SDK client spawns
// it, with nothing between them, and enforces the same policy in the kernel.
const skipped = (why) => show(`\nkernel plane: skipped (${why})`);
if (process.getuid() !== 0) {
	skipped('not root: the daemon loads BPF programs; run make demo as root to see it');
} else if (existsSync('/sys/fs/bpf/mcpfence')) {
	skipped('/sys/fs/bpf/mcpfence exists: another attachment is in place');
} else {
	const dir = tmp('mcpfence-demo-daemon-');
	const pdir = join(dir, 'policies');
	const kaudit = join(dir, 'audit.jsonl');
	mkdirSync(pdir);
	// the demo policy, saying which servers it is for
	const demo = JSON.parse(readFileSync(policy, 'utf8'));
	writeFileSync(join(pdir, '10-everything.json'), JSON.stringify({ ...demo,
		match: { exe: '*/node', argv: '* */server-everything/dist/index.js' } }, null, 2));
	show(`\n$ mcpfence daemon --policy-dir ${pdir} --audit ${kaudit}`);
	show(`  (${pdir}/10-everything.json: policies/demo.json with "match": ` +
	     `{"exe": "*/node", "argv": "* */server-everything/dist/index.js"})`);
	let d;
	try {
		d = await attachRun(['--policy-dir', pdir, '--audit', kaudit, '--quiet'],
			{ cmd: 'daemon', ready: /^daemon: finding /m });
	} catch (e) {
		skipped(`the daemon did not start: ${e.message.split('\n').slice(0, 3).join(' ')}`);
	}
	if (d) {
		try {
			show('$ node client.js   # the SDK client spawns node server-everything itself: no wrapper\n');
			const k = await connect();
			const pid = k.transport.pid;
			for (const l of d.out.split('\n').filter((x) => x.includes(`pid ${pid} `)))
				show(`  daemon: ${l.replace(/^mcpfence: /, '')}`);
			const kcall = async (name, args) => {
				let r;
				try {
					r = `allowed  ${text(await k.client.callTool({ name, arguments: args }))}`;
				} catch (e) {
					r = `DENIED   ${e.message}`;
				}
				show(`call ${name} ${JSON.stringify(args)}\n        -> ${r}`);
			};
			await kcall('echo', { message: 'hello through the kernel' });
			await kcall('get-tiny-image', {});
			for (let i = 1; i <= 3; i++) await kcall('get-sum', { a: i, b: 10 });
			await sleep(1500); // status is written once a second
			for (const cmd of [['status'], ['stats']]) {
				const r = spawnSync(MCPFENCE, cmd, { encoding: 'utf8' });
				show(`\n$ mcpfence ${cmd.join(' ')}\n${(r.stdout + r.stderr).trimEnd()}`);
			}
			await k.close();
		} finally {
			await d.stop();
			rmSync(dir, { recursive: true, force: true });
		}
	}
}
