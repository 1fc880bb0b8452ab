import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';

const SRC = join(import.meta.dirname, '..', 'src');
/** The Node-only entry point and the modules only it imports. */
const NODE_ONLY = (rel: string): boolean => rel === 'node.ts' || rel.startsWith('node/');

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

test('the SDK imports no node:* module, ws or Buffer outside the Node-only entry point', async () => {
  for (const file of await walk(SRC)) {
    const rel = relative(SRC, file).split('\\').join('/');
    if (NODE_ONLY(rel)) continue;
    const text = await readFile(file, 'utf8');
    assert.doesNotMatch(text, /from '(node:[^']+|ws|fs|path|crypto|os)'/, rel);
    assert.doesNotMatch(text, /\bBuffer\b|\bprocess\./, rel);
    assert.doesNotMatch(text, /from '\.\/node(\/|\.js)/, `${rel} imports Node-only code`);
  }
});
