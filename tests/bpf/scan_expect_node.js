// SPDX-License-Identifier: Apache-2.0
// Checks every OK expectation in tests/data/messages against JSON.parse, the parser of the real
// MCP servers (Node): same methods, same params.name, same ids. Prints one line per mismatch and
// exits 1 if any. Usage: node scan_expect_node.js DIR
'use strict';
const fs = require('fs');
const path = require('path');
const dir = process.argv[2];
let checked = 0, bad = 0;
for (const f of fs.readdirSync(dir).filter((f) => f.endsWith('.expect')).sort()) {
	const ex = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
	if (ex.status !== 'OK')
		continue;
	const bytes = fs.readFileSync(path.join(dir, f.replace(/\.expect$/, '.json')));
	let v;
	try {
		v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, ex.end)));
	} catch (e) {
		console.log(`${f}: JSON.parse refuses what the scanner reads: ${e.message}`);
		bad++;
		continue;
	}
	const msgs = Array.isArray(v) ? v : [v];
	if (msgs.length !== ex.calls.length) {
		console.log(`${f}: ${msgs.length} messages, expected ${ex.calls.length}`);
		bad++;
		continue;
	}
	msgs.forEach((m, i) => {
		const c = ex.calls[i];
		const name = m.params && typeof m.params === 'object' && !Array.isArray(m.params) ?
			m.params.name : undefined;
		const why = [];
		if (m.method !== c.method)
			why.push(`method ${JSON.stringify(m.method)} vs ${JSON.stringify(c.method)}`);
		if (c.name !== undefined ? name !== c.name : m.method === 'tools/call')
			why.push(`name ${JSON.stringify(name)} vs ${JSON.stringify(c.name)}`);
		if ((c.id === undefined) !== !('id' in m) ||
		    (c.id !== undefined && JSON.stringify(JSON.parse(c.id)) !== JSON.stringify(m.id)))
			why.push(`id ${JSON.stringify(m.id)} vs ${c.id}`);
		if (why.length) {
			console.log(`${f}: call ${i}: ${why.join(', ')}`);
			bad++;
		}
	});
	checked++;
}
console.log(`JSON.parse: ${checked} OK cases checked, ${bad} mismatches`);
process.exit(bad ? 1 : 0);
