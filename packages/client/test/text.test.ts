// Message text as a person counts it: grapheme clusters, no white-space-only messages, and an
// envelope that always fits. One rule for the SDK's send, the CLI and the web composer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeBackend } from '@tacit/protocol/node';
import {
  MAX_ENVELOPE_BYTES,
  MAX_TEXT_LENGTH,
  MemoryRecordStore,
  TacitClient,
  checkText,
  countCharacters,
  decodeEnvelope,
  describeTextProblem,
  encodeEnvelope,
  isClientError,
} from '../src/index.ts';
import { MemoryServer } from './support/memory-server.ts';

const FAMILY = '\u{1F468}\u200D\u{1F469}\u200D\u{1F467}\u200D\u{1F466}'; // 11 UTF-16 units, 25 UTF-8 bytes
const SMILE = '\u{1F600}';

test('characters are grapheme clusters: emoji, flags, families and accents count once', () => {
  assert.equal(countCharacters('abc'), 3);
  assert.equal(countCharacters(SMILE), 1);
  assert.equal(SMILE.length, 2);
  assert.equal(countCharacters('\u{1F1EB}\u{1F1F7}'), 1, 'a flag');
  assert.equal(countCharacters(FAMILY), 1);
  assert.equal(countCharacters('e\u0301'), 1, 'e and a combining accent');
  assert.equal(countCharacters(''), 0);
});

test('checkText: empty and white-space-only are refused; the limit is in characters, not code units', () => {
  for (const blank of ['', ' ', '\n', ' \t\n\u00a0\u3000 ']) assert.deepEqual(checkText(blank), { code: 'EMPTY' }, JSON.stringify(blank));
  assert.equal(checkText(' a '), undefined);
  assert.equal(checkText('a'.repeat(MAX_TEXT_LENGTH)), undefined);
  assert.deepEqual(checkText('a'.repeat(MAX_TEXT_LENGTH + 1)), { code: 'TOO_LONG', characters: MAX_TEXT_LENGTH + 1, max: MAX_TEXT_LENGTH });
  // Twice as many UTF-16 units as the limit, yet exactly the limit in characters: accepted.
  assert.equal(checkText(SMILE.repeat(MAX_TEXT_LENGTH)), undefined);
  assert.deepEqual(checkText(SMILE.repeat(MAX_TEXT_LENGTH + 1)), { code: 'TOO_LONG', characters: MAX_TEXT_LENGTH + 1, max: MAX_TEXT_LENGTH });
  const accents = 'e\u0301'.repeat(MAX_TEXT_LENGTH);
  assert.equal(checkText(accents), undefined);
});

test('checkText: text of very long characters is too large before it is too long, and says so', () => {
  const families = FAMILY.repeat(4_000);
  const p = checkText(families);
  assert.equal(p?.code, 'TOO_LARGE');
  assert.ok(p?.code === 'TOO_LARGE' && p.bytes > MAX_ENVELOPE_BYTES && p.max === MAX_ENVELOPE_BYTES);
  // Control characters take six bytes each once JSON-escaped.
  assert.equal(checkText('\u0001'.repeat(15_000))?.code, 'TOO_LARGE');
  // Everything checkText accepts fits in an envelope the receiver decodes.
  for (const t of [SMILE.repeat(MAX_TEXT_LENGTH), 'a'.repeat(MAX_TEXT_LENGTH), '\u0001'.repeat(13_000), FAMILY.repeat(3_000)]) {
    assert.equal(checkText(t), undefined);
    const env = encodeEnvelope({ v: 1, id: 'f'.repeat(32), text: t, sentAt: Date.now() });
    assert.ok(env.length <= MAX_ENVELOPE_BYTES);
    assert.equal(decodeEnvelope(env)?.text, t);
  }
});

test('describeTextProblem says what is wrong in characters a person counts', () => {
  assert.equal(describeTextProblem({ code: 'EMPTY' }), 'the message is empty (only white space)');
  assert.equal(
    describeTextProblem({ code: 'TOO_LONG', characters: 16_385, max: MAX_TEXT_LENGTH }),
    'the message is 16,385 characters long; at most 16,384 fit in one message',
  );
  assert.match(describeTextProblem({ code: 'TOO_LARGE', bytes: 100_000, max: MAX_ENVELOPE_BYTES }), /^the message is too large to send \(98 KiB encoded; at most 80 KiB\)/);
});

test('send refuses a white-space-only or too long message before storing anything', async () => {
  const server = new MemoryServer();
  const backend = nodeBackend();
  const opts = () => ({ store: new MemoryRecordStore(), backend, connect: server.factory, fetch: server.fetch });
  const alice = await TacitClient.register(opts(), { server: 'http://tacit.test', username: 'alice' });
  const bob = await TacitClient.register(opts(), { server: 'http://tacit.test', username: 'bob' });
  try {
    for (const bad of ['   ', SMILE.repeat(MAX_TEXT_LENGTH + 1)]) {
      await assert.rejects(alice.send('bob', bad), (e: unknown) => isClientError(e) && e.code === 'INVALID_ARGUMENT');
    }
    assert.deepEqual(await alice.history('bob'), [], 'nothing was stored');
    assert.equal(alice.outboxSize, 0);
  } finally {
    await alice.close();
    await bob.close();
  }
});
