import { test } from 'node:test';
import assert from 'node:assert/strict';
import { portableBackend, utf8Decode, utf8Encode } from '../src/index.ts';
import { nodeBackend } from '../src/node.ts';
import { TacitParty } from './support/tacit.ts';

test('two tacit parties (node and portable backends) exchange messages', async () => {
  const a = new TacitParty('alice', nodeBackend());
  const b = new TacitParty('bob', portableBackend());
  await a.processBundle('bob', await b.bundle(true));
  const m1 = await a.encrypt('bob', utf8Encode('hello'));
  assert.equal(m1.type, 'prekey');
  assert.equal(utf8Decode(await b.decrypt('alice', m1)), 'hello');
  const m2 = await b.encrypt('alice', utf8Encode('hi'));
  assert.equal(m2.type, 'whisper');
  assert.equal(utf8Decode(await a.decrypt('bob', m2)), 'hi');
});
