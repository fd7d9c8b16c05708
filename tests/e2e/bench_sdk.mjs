// SPDX-License-Identifier: Apache-2.0
// bench/stdio's second part: tools/call "echo" round trips of the real SDK client (v1
// @modelcontextprotocol/sdk) to the real server-everything over stdio: spawned directly, through
// a plain poll/read/write relay (bench/stdio --relay) and through `mcpfence run` (allow-all
// policy, audit to a file), the three connected at once and called in turn, so that the noise
// of a shared machine falls on each alike. Every answer is checked. Prints p50/p99 per target.
//   node tests/e2e/bench_sdk.mjs MCPFENCE RELAY POLICY AUDIT [ROUNDS]
// Exits 0 with a line saying why when the npm packages are not installed; 1 on a wrong answer.
import { existsSync } from 'node:fs';
import { EVERYTHING, loadSdk } from './lib.mjs';

const [mcpfence, relay, policy, audit, roundsArg] = process.argv.slice(2);
const ROUNDS = Number(roundsArg || 2000);
const WARMUP = 300;

if (!existsSync(EVERYTHING)) {
	console.log(`  SDK + server-everything: skipped: ${EVERYTHING} missing (make setup-test)`);
	process.exit(0);
}
const { Client, StdioClientTransport } = await loadSdk();
const server = [process.execPath, EVERYTHING, 'stdio'];
const targets = [
	{ name: 'direct', command: server[0], args: server.slice(1) },
	{ name: 'relay', command: relay, args: ['--relay', ...server] },
	{ name: 'mcpfence', command: mcpfence,
	  args: ['run', '--policy', policy, '--audit', audit, '--', ...server] },
];

for (const t of targets) {
	t.transport = new StdioClientTransport({ command: t.command, args: t.args, stderr: 'ignore' });
	t.client = new Client({ name: 'mcpfence-bench', version: '1.0.0' });
	await t.client.connect(t.transport);
	t.lat = [];
}

async function call(t, i) {
	const msg = `bench ${i}`;
	const t0 = process.hrtime.bigint();
	const r = await t.client.callTool({ name: 'echo', arguments: { message: msg } });
	const ns = Number(process.hrtime.bigint() - t0);
	const text = r.content?.map((c) => c.text ?? '').join('');
	if (r.isError || !text.includes(msg)) {
		console.log(`  SDK + server-everything: ${t.name}: wrong answer to call ${i}: ` +
			    JSON.stringify(r).slice(0, 300));
		process.exit(1);
	}
	return ns;
}

for (let i = 0; i < WARMUP; i++)
	for (const t of targets) await call(t, i);
for (let i = 0; i < ROUNDS; i++)
	for (const t of targets) t.lat.push(await call(t, i));
for (const t of targets) await t.client.close();

const pct = (a, p) => a[Math.min(a.length - 1, Math.floor(a.length * p))] / 1e3;
console.log(`  SDK + server-everything (v1 client, "echo", ${ROUNDS} each after ${WARMUP} ` +
	    'untimed, the three called in turn; Node ' + process.version + ')');
for (const t of targets) {
	t.lat.sort((a, b) => a - b);
	t.p50 = pct(t.lat, 0.5);
	t.p99 = pct(t.lat, 0.99);
	console.log(`    ${t.name.padEnd(9)} p50 ${t.p50.toFixed(1).padStart(7)} µs  ` +
		    `p99 ${t.p99.toFixed(1).padStart(7)} µs`);
}
const [d, r, m] = targets;
console.log(`    over relay p50 ${(m.p50 - r.p50).toFixed(1)} µs, over direct p50 ` +
	    `${(m.p50 - d.p50).toFixed(1)} µs (${(m.p50 / d.p50).toFixed(2)}x)`);
