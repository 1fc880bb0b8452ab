// The work one incoming message can cost: a forged message is tried against every session state
// of its sender (current and up to 40 archived), each of which must walk its chain to the
// message's counter before the MAC check can fail. Counted in HMAC calls, not time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type CryptoBackend,
  isProtocolError,
  KeyPair,
  MAX_ARCHIVED_STATES,
  
  MAX_FORWARD_JUMPS,
  type PreKeyBundle,
  portableBackend,
  ProtocolAddress,
  SessionRecord,
  utf8Decode,
  utf8Encode,
} from '../src/index.ts';
import { nodeBackend } from '../src/node.ts';
import { encodeSignalMessage } from '../src/wire.ts';
const MAX_CHAIN_STEPS_PER_MESSAGE = 50_000;
import { TacitParty } from './support/tacit.ts';

/** A backend that counts HMAC calls and throws once `limit` is passed (so old code fails fast). */
function counting(inner: CryptoBackend): { backend: CryptoBackend; calls: () => number; limit: (n: number) => void } {
  let calls = 0;
  let limit = Number.POSITIVE_INFINITY;
  const backend: CryptoBackend = {
    ...inner,
    hmacSha256(key, ...parts) {
      if (++calls > limit) throw new Error(`more than ${limit} HMAC calls for one message`);
      return inner.hmacSha256(key, ...parts);
    },
  };
  return { backend, calls: () => calls, limit: (n) => (limit = n) };
}

/** A bundle of `p` without one-time keys: its Kyber key is a last-resort key, reusable. */
async function reusableBundle(p: TacitParty): Promise<PreKeyBundle> {
  const bundle = await p.bundle(false);
  const kyber = await p.stores.kyberPreKey.loadKyberPreKey(bundle.kyberPreKeyId);
  assert.ok(kyber !== null);
  await p.stores.kyberPreKey.storeKyberPreKey(bundle.kyberPreKeyId, kyber, true);
  return bundle;
}

/** Bob holds `n` session states for mallory, all made by mallory alone from one bundle. */
async function victimWithStates(backend: CryptoBackend, n: number): Promise<{ bob: TacitParty; mallory: TacitParty }> {
  const bob = new TacitParty('bob', backend);
  const mallory = new TacitParty('mallory', nodeBackend());
  const bundle = await reusableBundle(bob);
  for (let i = 0; i < n; i++) {
    await mallory.processBundle('bob', bundle);
    await bob.decrypt('mallory', await mallory.encrypt('bob', utf8Encode(`session ${i}`)));
  }
  const record = (await bob.stores.session.loadSession(new ProtocolAddress('mallory', 1))) as SessionRecord;
  assert.equal(record.previous.length, n - 1);
  return { bob, mallory };
}

function forged(mallory: TacitParty, bob: TacitParty, counter: number): { type: 'whisper'; body: Uint8Array } {
  const m = encodeSignalMessage(
    mallory.backend,
    mallory.backend.randomBytes(32),
    KeyPair.generate(mallory.backend).publicKey,
    counter,
    0,
    mallory.backend.randomBytes(32),
    mallory.identityKey,
    bob.identityKey,
  );
  return { type: 'whisper', body: m.serialized };
}

for (const inner of [nodeBackend(), portableBackend()]) {
  test(`${inner.name}: a forged message against 41 session states costs at most MAX_CHAIN_STEPS_PER_MESSAGE chain steps`, async () => {
    const c = counting(inner);
    const { bob, mallory } = await victimWithStates(c.backend, MAX_ARCHIVED_STATES + 1);
    const address = new ProtocolAddress('mallory', 1);
    const before = ((await bob.stores.session.loadSession(address)) as SessionRecord).serialize();
    // One chain step is one HMAC; each state tried adds a few for its message keys and MAC.
    const bound = MAX_CHAIN_STEPS_PER_MESSAGE + (MAX_ARCHIVED_STATES + 1) * 8;
    const start = c.calls();
    c.limit(start + bound);
    await assert.rejects(bob.decrypt('mallory', forged(mallory, bob, MAX_FORWARD_JUMPS - 1)), (e) => isProtocolError(e, 'BAD_MAC'));
    const spent = c.calls() - start;
    assert.ok(spent >= MAX_FORWARD_JUMPS - 1, `the cheapest state is walked in full (${spent} HMACs)`);
    c.limit(Number.POSITIVE_INFINITY);
    const after = ((await bob.stores.session.loadSession(address)) as SessionRecord).serialize();
    assert.deepEqual(after, before, 'nothing changed');
    // Mallory's real session still works.
    assert.equal(utf8Decode(await bob.decrypt('mallory', await mallory.encrypt('bob', utf8Encode('real')))), 'real');
  });
}

test('a message that fails its MAC costs one HMAC per chain step, not a full key derivation', async () => {
  const c = counting(nodeBackend());
  const { bob, mallory } = await victimWithStates(c.backend, 1);
  const start = c.calls();
  c.limit(start + 1000 + 8);
  await assert.rejects(bob.decrypt('mallory', forged(mallory, bob, 1000)), (e) => isProtocolError(e, 'BAD_MAC'));
});

test('a genuine message for the oldest archived state, on a new chain, still decrypts behind 40 newer states', async () => {
  const b = nodeBackend();
  const alice = new TacitParty('alice', b);
  const bob = new TacitParty('bob', b);
  const bundle = await reusableBundle(bob);
  await alice.processBundle('bob', bundle);
  await bob.decrypt('alice', await alice.encrypt('bob', utf8Encode('first')));
  await alice.decrypt('bob', await bob.encrypt('alice', utf8Encode('reply'))); // alice ratchets: her next key is new to bob
  const aliceAddress = new ProtocolAddress('bob', 1);
  const oldRecord = SessionRecord.deserialize(((await alice.stores.session.loadSession(aliceAddress)) as SessionRecord).serialize());
  for (let i = 0; i < MAX_ARCHIVED_STATES; i++) {
    await alice.processBundle('bob', bundle);
    await bob.decrypt('alice', await alice.encrypt('bob', utf8Encode(`newer ${i}`)));
  }
  // Alice goes back to the first session (e.g. restored from a backup) and sends; all but the
  // last message are lost, so bob must walk its chain to counter 999 in every candidate state.
  await alice.stores.session.storeSession(aliceAddress, oldRecord);
  let last;
  for (let i = 0; i < 1000; i++) last = await alice.encrypt('bob', utf8Encode(`late ${i}`));
  assert.ok(last !== undefined && last.type === 'whisper');
  assert.ok(41 * 999 <= MAX_CHAIN_STEPS_PER_MESSAGE);
  assert.equal(utf8Decode(await bob.decrypt('alice', last)), 'late 999');
});
