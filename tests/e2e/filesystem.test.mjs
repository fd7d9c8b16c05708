// SPDX-License-Identifier: Apache-2.0
// The real server-filesystem under a policy that lets the agent read one directory only:
// a `require` regex on args.path. Allowed calls return what they return without mcpfence.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync, writeFileSync, realpathSync } from 'node:fs';
import { missing, connect, tmp, writePolicy, readAudit, awaitAudit, text, FILESYSTEM }
	from './lib.mjs';

const skip = missing();

describe('server-filesystem with a require regex on args.path', { skip: skip ?? false }, () => {
	let root, work, direct, fenced, audit;
	before(async () => {
		root = realpathSync(tmp());
		work = join(root, 'work');
		mkdirSync(join(work, 'sub'), { recursive: true });
		mkdirSync(join(root, 'private'));
		writeFileSync(join(work, 'notes.txt'), 'line one\nline two\n');
		writeFileSync(join(work, 'sub', 'deep.txt'), 'deep');
		writeFileSync(join(root, 'private', 'secret.txt'), 'the secret');
		const esc = work.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
		const policy = writePolicy(root, {
			version: '1',
			default: 'deny',
			tools: {
				'read_text_file': { require: [{ path: 'args.path', op: 'regex',
					value: `^${esc}/[^/]+(/[^/]+)*$` }],
					deny_if: [{ path: 'args.path', op: 'contains', value: '..' }],
					reason: 'only files under the work directory' },
				'list_directory': { require: [{ path: 'args.path', op: 'regex',
					value: `^${esc}(/|$)` }] },
				'list_allowed_directories': {},
				'write_file': { action: 'deny', reason: 'read-only' },
			},
		});
		audit = join(root, 'audit.jsonl');
		const server = [FILESYSTEM, root];
		direct = await connect({ server });
		fenced = await connect({ server, fence: { policy, audit } });
	});
	after(async () => {
		await direct?.close();
		await fenced?.close();
	});

	test('tools/list: only the tools the policy could allow', async () => {
		const names = (await fenced.client.listTools()).tools.map((t) => t.name).sort();
		assert.deepEqual(names, ['list_allowed_directories', 'list_directory', 'read_text_file']);
	});

	test('allowed calls: same result as without mcpfence', async () => {
		for (const [name, args] of [
			['read_text_file', { path: join(work, 'notes.txt') }],
			['read_text_file', { path: join(work, 'sub', 'deep.txt') }],
			['read_text_file', { path: join(work, 'notes.txt'), head: 1 }],
			['list_directory', { path: work }],
			['list_allowed_directories', {}],
		]) {
			const want = await direct.client.callTool({ name, arguments: args });
			const got = await fenced.client.callTool({ name, arguments: args });
			assert.deepEqual(got, want, `${name} ${JSON.stringify(args)}`);
			assert.notEqual(got.isError, true);
		}
	});

	test('paths outside the directory are denied with the rule\'s reason', async () => {
		for (const path of [join(root, 'private', 'secret.txt'), '/etc/passwd',
				    join(work, '..', 'private', 'secret.txt'), `${work}x/notes.txt`]) {
			// the server itself would read some of these (they are inside its root)
			const r = await fenced.client.callTool({ name: 'read_text_file', arguments: { path } });
			assert.equal(r.isError, true, path);
			assert.equal(text(r), 'denied by policy: only files under the work directory');
			assert.equal(r._meta.kind, 'condition');
			assert.match(r._meta.rule, /^\/tools\/read_text_file\/(require|deny_if)\/0$/);
			assert.ok(!text(r).includes('the secret'));
		}
		const inside = await direct.client.callTool({ name: 'read_text_file',
			arguments: { path: join(root, 'private', 'secret.txt') } });
		assert.equal(text(inside), 'the secret', 'the server alone would have read it');
		const noPath = await fenced.client.callTool({ name: 'read_text_file', arguments: {} });
		assert.equal(noPath._meta.kind, 'condition');
		const w = await fenced.client.callTool({ name: 'write_file',
			arguments: { path: join(work, 'x'), content: 'x' } });
		assert.equal(text(w), 'denied by policy: read-only');
	});

	test('the audit log names the condition that fired, without the path', async () => {
		// lines are written at most 10 ms after their decision
		await awaitAudit(audit, (l) => l.tool === 'read_text_file' && l.decision === 'deny');
		const lines = readAudit(audit).filter((l) => l.tool === 'read_text_file');
		assert.ok(lines.some((l) => l.decision === 'allow'));
		const d = lines.find((l) => l.decision === 'deny');
		assert.equal(d.kind, 'condition');
		assert.deepEqual(d.argument_keys, ['path']);
		assert.ok(!JSON.stringify(lines).includes('secret.txt'));
	});
});
