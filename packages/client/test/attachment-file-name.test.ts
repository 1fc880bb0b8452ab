// safeFileName: whatever a sender names a file, the receiver gets one plain, visible, bounded
// file name in the directory it chose.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FALLBACK_FILE_NAME, MAX_FILE_NAME_BYTES, numberedFileName, safeFileName } from '../src/index.js';

const utf8 = (s: string) => new TextEncoder().encode(s).length;

test('hostile names become plain names', () => {
  const cases: [string, string][] = [
    ['report.pdf', 'report.pdf'],
    ['../../etc/passwd', '_.._etc_passwd'],
    ['/etc/passwd', '_etc_passwd'],
    ['..\\..\\windows\\system32', '_.._windows_system32'],
    ['.bashrc', 'bashrc'],
    ['...', FALLBACK_FILE_NAME],
    ['', FALLBACK_FILE_NAME],
    ['   ', FALLBACK_FILE_NAME],
    ['a\u0000b\u0007c\u001b[31md', 'abc[31md'],
    ['invoice\u202Efdp.exe', 'invoicefdp.exe'],
    ['\u2066x\u2069.txt', 'x.txt'],
    ['zero\u200Bwidth\uFEFF.txt', 'zerowidth.txt'],
    ['line\nbreak\r.txt', 'linebreak.txt'],
    ['CON', '_CON'],
    ['nul.txt', '_nul.txt'],
    ['COM1.tar.gz', '_COM1.tar.gz'],
    ['what?<>:*|".txt', 'what_______.txt'],
    ['trailing dots...', 'trailing dots'],
    ['e\u0301.txt', '\u00e9.txt'],
    ['снимок экрана.png', 'снимок экрана.png'],
  ];
  for (const [input, want] of cases) assert.equal(safeFileName(input), want, JSON.stringify(input));
});

test('long names are cut to the bound, keeping the extension and whole characters', () => {
  const long = safeFileName('é'.repeat(300) + '.jpeg');
  assert.ok(utf8(long) <= MAX_FILE_NAME_BYTES);
  assert.ok(long.endsWith('é.jpeg'));
  const noExt = safeFileName('x'.repeat(1000));
  assert.equal(noExt, 'x'.repeat(MAX_FILE_NAME_BYTES));
  const emoji = safeFileName('😀'.repeat(100));
  assert.ok(utf8(emoji) <= MAX_FILE_NAME_BYTES && !emoji.includes('\ufffd'));
});

test('any string gives a safe name (property)', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 400 }), (s) => {
      const n = safeFileName(s);
      assert.ok(n.length > 0);
      assert.ok(utf8(n) <= MAX_FILE_NAME_BYTES);
      assert.doesNotMatch(n, /[/\\:*?"<>|\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u);
      assert.doesNotMatch(n, /^[.\s]/u);
      assert.notEqual(n, '..');
      assert.equal(safeFileName(n), n, 'idempotent');
    }),
    { numRuns: 2000 },
  );
});

test('numbered alternatives keep the extension', () => {
  assert.equal(numberedFileName('a.pdf', 0), 'a.pdf');
  assert.equal(numberedFileName('a.pdf', 2), 'a (2).pdf');
  assert.equal(numberedFileName('archive.tar.gz', 1), 'archive.tar (1).gz');
  assert.equal(numberedFileName('README', 3), 'README (3)');
});
