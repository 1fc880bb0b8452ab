/**
 * The stylesheet parses without a syntax error. A rule left unclosed once swallowed every rule
 * after it (the link code's QR size among them) with no error anywhere: browsers recover silently.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { transform } from 'esbuild';

const CSS = new URL('../src/styles.css', import.meta.url);

describe('styles.css', () => {
  it('parses without warnings (balanced braces, known syntax)', async () => {
    const r = await transform(readFileSync(CSS, 'utf8'), { loader: 'css', logLevel: 'silent' });
    assert.deepEqual(
      r.warnings.map((w) => `${w.location?.line ?? '?'}: ${w.text}`),
      [],
    );
  });

  it('would notice an unclosed rule', async () => {
    const r = await transform('.a {\n  color: red;\n.b { color: blue; }\n', { loader: 'css', logLevel: 'silent' });
    assert.ok(r.warnings.length > 0, 'esbuild reports the unbalanced brace');
  });
});
