// SPDX-License-Identifier: Apache-2.0
// The README's main command: a real SDK client drives server-everything through
// `mcpfence run --policy policies/demo.json` and prints what happens, call by call.
import { join } from 'node:path';
import { missing, connect, tmp, readAudit, text, ROOT, EVERYTHING } from './lib.mjs';

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
