import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseArgs, UsageError } from '../src/args.ts';
import { EXIT, exitCodeFor } from '../src/exit-codes.ts';
import { formatSafetyNumber, makeOutput, sanitize } from '../src/output.ts';
import { CLIENT_ERROR_CODES } from '@tacit/client';

test('sanitize: no escape sequences, bidi overrides or stray controls reach the terminal', () => {
  assert.equal(sanitize('plain text ✓'), 'plain text ✓');
  assert.equal(sanitize('\u001b[2J\u001b]0;pwned\u0007'), '\ufffd[2J\ufffd]0;pwned\ufffd');
  assert.equal(sanitize('evil\u202egnp.exe'), 'evil\ufffdgnp.exe');
  assert.equal(sanitize('a\rb\u0000c\u009bd'), 'a\ufffdb\ufffdc\ufffdd');
  assert.equal(sanitize('two\nlines'), 'two\n    lines');
});

test('--json output is one object per line; errors go to stderr', () => {
  const out: string[] = [];
  const err: string[] = [];
  const o = makeOutput(true, { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) } });
  o.event('message', { text: 'line\nbreak \u001b' }, 'human');
  o.error({ code: 'X', message: 'm', exit: 8 });
  assert.deepEqual(out.map((l) => JSON.parse(l)), [{ event: 'message', text: 'line\nbreak \u001b' }]);
  assert.ok(out.every((l) => l.endsWith('\n') && l.indexOf('\n') === l.length - 1));
  assert.deepEqual(JSON.parse(err[0]!), { event: 'error', code: 'X', message: 'm', exit: 8 });
});

test('a batch reaches each stream in one write, in order; hooks run once', () => {
  const out: string[] = [];
  let hooks = 0;
  const o = makeOutput(true, { stdout: { write: (s: string) => out.push(s) }, stderr: { write: () => undefined } }, () => hooks++, () => hooks++);
  o.batch(() => {
    o.event('message', { n: 1 }, undefined);
    o.event('message', { n: 2 }, undefined);
  });
  assert.deepEqual(out, ['{"event":"message","n":1}\n{"event":"message","n":2}\n']);
  assert.equal(hooks, 2);
  o.batch(() => undefined);
  assert.equal(out.length, 1, 'an empty batch writes nothing');
  assert.throws(() => o.batch(() => {
    o.event('message', { n: 3 }, undefined);
    throw new Error('render failed');
  }));
  assert.equal(out.length, 1, 'a failing batch writes nothing (its messages are displayed again)');
});

test('safety numbers print as 3 lines of 4 groups of 5 digits', () => {
  const digits = '0123456789'.repeat(6);
  assert.equal(formatSafetyNumber(digits), '  01234 56789 01234 56789\n  01234 56789 01234 56789\n  01234 56789 01234 56789');
});

test('argument parsing: global flags anywhere, values, and clear usage errors', () => {
  const a = parseArgs(['--json', 'send', 'bob', '--home', '/h', 'hi there']);
  assert.equal(a.command, 'send');
  assert.deepEqual(a.positionals, ['bob', 'hi there']);
  assert.equal(a.home, '/h');
  assert.equal(a.json, true);
  assert.deepEqual(parseArgs(['send', 'bob', '--', '--not-a-flag']).positionals, ['bob', '--not-a-flag']);
  assert.deepEqual(parseArgs(['send', 'bob', '-']).positionals, ['bob', '-']);
  assert.equal(parseArgs(['recv', '--wait=2.5']).wait, 2.5);
  assert.equal(parseArgs(['history', 'bob', '--before', '3f9a2c1e']).before, '3f9a2c1e');
  assert.equal(parseArgs(['history', 'bob']).before, undefined);
  for (const bad of [['--bogus'], ['recv', '--wait'], ['history', 'bob', '--before'], ['recv', '--wait', '-1'], ['recv', '--wait', '1e9'], ['--json=1']]) {
    assert.throws(() => parseArgs(bad), UsageError, bad.join(' '));
  }
});

test('every SDK error code maps to a documented, non-zero exit code', () => {
  const documented = new Set<number>(Object.values(EXIT));
  for (const code of CLIENT_ERROR_CODES) {
    const exit = exitCodeFor(code);
    assert.ok(exit !== 0 && documented.has(exit), code);
  }
});
