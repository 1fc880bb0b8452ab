// Which parts of a message become links: http and https URLs only, written out in full.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_LINK_LENGTH, linkify } from '../src/links.ts';

const links = (text: string) => linkify(text).filter((p) => typeof p !== 'string');

test('http and https URLs become links; the text around them stays text', () => {
  assert.deepEqual(linkify('see https://example.com/a?b=1#c and http://x.org'), [
    'see ',
    { text: 'https://example.com/a?b=1#c', href: 'https://example.com/a?b=1#c' },
    ' and ',
    { text: 'http://x.org', href: 'http://x.org/' },
  ]);
  assert.deepEqual(linkify('no links here'), ['no links here']);
  assert.deepEqual(linkify(''), []);
});

test('sentence punctuation after a URL is not part of it; balanced brackets are', () => {
  assert.deepEqual(links('read https://example.com/page.'), [{ text: 'https://example.com/page', href: 'https://example.com/page' }]);
  assert.deepEqual(links('(https://example.com/x), then'), [{ text: 'https://example.com/x', href: 'https://example.com/x' }]);
  assert.deepEqual(links('https://en.wikipedia.org/wiki/Tacit_(band)!'), [
    { text: 'https://en.wikipedia.org/wiki/Tacit_(band)', href: 'https://en.wikipedia.org/wiki/Tacit_(band)' },
  ]);
});

test('nothing but http and https: no javascript:, data:, file:, bare domains or credentials', () => {
  for (const t of [
    'javascript:alert(1)',
    'JaVaScRiPt:alert(1)',
    'data:text/html,<script>alert(1)</script>',
    'file:///etc/passwd',
    'vbscript:x',
    'ftp://example.com',
    'example.com',
    'www.example.com',
    'https://',
    'https://user:pw@example.com',
    'https://google.com@evil.example',
    'xhttps://example.com',
  ]) {
    assert.deepEqual(links(t), [], t);
  }
  // A javascript: URL that merely contains "https://" is no link either.
  assert.deepEqual(links('javascript:alert("https://")'), []);
});

test('joining the parts gives the text back; control and bidi characters end a URL', () => {
  for (const t of ['a https://x.org/\u202egnp.exe b', 'https://x.org/\u0000y', 'x https://a.b/c) (https://d.e/f', 'https://a.b\nhttps://c.d']) {
    assert.equal(
      linkify(t)
        .map((p) => (typeof p === 'string' ? p : p.text))
        .join(''),
      t,
    );
  }
  assert.deepEqual(links('https://x.org/\u202egnp.exe'), [{ text: 'https://x.org/', href: 'https://x.org/' }]);
});

test('a link longer than MAX_LINK_LENGTH stays text', () => {
  const long = `https://example.com/${'a'.repeat(MAX_LINK_LENGTH)}`;
  assert.deepEqual(links(long), []);
});
