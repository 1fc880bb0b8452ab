// Sender keys on their own, on both backends: round trips, transactional decrypt, limits, hostile
// input, persistence, redaction and decoder fuzzing. (Interop with libsignal: group-interop.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import { inspect } from 'node:util';
import fc from 'fast-check';
import {
  type CryptoBackend,
  decodeSenderKeyMessage,
  DistributionId,
  GroupCipher,
  InMemorySenderKeyStore,
  isProtocolError,
  KeyPair,
  MAX_SENDER_KEY_STATES,
  ProtocolAddress,
  ProtocolError,
  type ProtocolErrorCode,
  portableBackend,
  SENDER_KEY_VERSION_BYTE,
  SenderKeyDistributionMessage,
  SenderKeyRecord,
  toHex,
  utf8Decode,
  utf8Encode,
} from '../src/index.ts';
import { nodeBackend } from '../src/node.ts';
import { encodeSenderKeyMessage } from '../src/sender-key-message.ts';
import { senderChainKeyNext, senderKeyName, senderMessageKey, senderMessageSeed } from '../src/sender-key.ts';
import { MAX_MESSAGE_KEYS } from '../src/state.ts';
import { MAX_FORWARD_JUMPS } from '../src/ratchet.ts';
import { Writer } from '../src/protobuf.ts';

const BACKENDS: CryptoBackend[] = [nodeBackend(), portableBackend()];
const ALICE = new ProtocolAddress('alice', 1);

interface Group {
  b: CryptoBackend;
  dist: DistributionId;
  alice: GroupCipher;
  aliceStore: InMemorySenderKeyStore;
  bob: GroupCipher;
  bobStore: InMemorySenderKeyStore;
  skdm: SenderKeyDistributionMessage;
  send(text: string): Promise<Uint8Array>;
  read(body: Uint8Array): Promise<string>;
  snapshot(): Promise<string>;
}

async function group(b: CryptoBackend): Promise<Group> {
  const dist = DistributionId.random(b);
  const aliceStore = new InMemorySenderKeyStore();
  const bobStore = new InMemorySenderKeyStore();
  const alice = new GroupCipher(b, aliceStore);
  const bob = new GroupCipher(b, bobStore);
  const skdm = await alice.createSenderKeyDistributionMessage(ALICE, dist);
  await bob.processSenderKeyDistributionMessage(ALICE, SenderKeyDistributionMessage.deserialize(skdm.serialize()));
  return {
    b,
    dist,
    alice,
    aliceStore,
    bob,
    bobStore,
    skdm,
    send: (text) => alice.groupEncrypt(ALICE, dist, utf8Encode(text)),
    read: async (body) => utf8Decode((await bob.groupDecrypt(ALICE, body)).plaintext),
    snapshot: async () => {
      const r = await bobStore.loadSenderKey(ALICE, dist);
      return r === null ? 'none' : toHex(r.serialize());
    },
  };
}

async function expectCode(p: Promise<unknown>, codes: ProtocolErrorCode[]): Promise<void> {
  await assert.rejects(p, (e) => {
    assert.ok(e instanceof ProtocolError, `expected a ProtocolError, got ${String(e)}`);
    assert.ok(codes.includes(e.code), `unexpected code ${e.code}`);
    return true;
  });
}

/** A backend that counts HMAC and AES calls, to see what work a message caused. */
function counting(b: CryptoBackend): CryptoBackend & { hmacs: number; aes: number } {
  const c = {
    ...b,
    hmacs: 0,
    aes: 0,
    hmacSha256(key: Uint8Array, ...parts: Uint8Array[]) {
      c.hmacs++;
      return b.hmacSha256(key, ...parts);
    },
    aes256CbcDecrypt(key: Uint8Array, iv: Uint8Array, ct: Uint8Array) {
      c.aes++;
      return b.aes256CbcDecrypt(key, iv, ct);
    },
  };
  return c;
}

for (const b of BACKENDS) {
  test(`${b.name}: group messages round-trip, in and out of order, and the message says its distribution id`, async () => {
    const g = await group(b);
    assert.equal(g.skdm.iteration, 0);
    const m = [];
    for (let i = 0; i < 20; i++) m.push(await g.send(`m${i}`));
    const order = [0, 5, 3, 4, 1, 2, 19, 6, 18, 7, 8, 9, 10, 17, 11, 12, 13, 16, 14, 15];
    for (const i of order) assert.equal(await g.read(m[i] as Uint8Array), `m${i}`);
    const r = await g.bob.groupDecrypt(ALICE, await g.send('last'));
    assert.ok(r.distributionId.equals(g.dist));
    // One ciphertext serves every member: a second reader gets the same text.
    const carol = new GroupCipher(b, new InMemorySenderKeyStore());
    await carol.processSenderKeyDistributionMessage(ALICE, await g.alice.createSenderKeyDistributionMessage(ALICE, g.dist));
    const shared = await g.send('to all');
    assert.equal(utf8Decode((await carol.groupDecrypt(ALICE, shared)).plaintext), 'to all');
    assert.equal(await g.read(shared), 'to all');
  });

  test(`${b.name}: a duplicate is a distinct DUPLICATE error and changes nothing`, async () => {
    const g = await group(b);
    const m0 = await g.send('once');
    const m1 = await g.send('skipped');
    const m2 = await g.send('ahead');
    assert.equal(await g.read(m0), 'once');
    assert.equal(await g.read(m2), 'ahead');
    let before = await g.snapshot();
    await expectCode(g.read(m0), ['DUPLICATE']);
    await expectCode(g.read(m2), ['DUPLICATE']);
    assert.equal(await g.snapshot(), before);
    assert.equal(await g.read(m1), 'skipped', 'a stored key is used once ...');
    before = await g.snapshot();
    await expectCode(g.read(m1), ['DUPLICATE']);
    assert.equal(await g.snapshot(), before, '... and its repeat changes nothing');
  });

  test(`${b.name}: the signature is checked first: a forged far-ahead message costs no chain steps`, async () => {
    const c = counting(b);
    const g = await group(c);
    const good = decodeSenderKeyMessage(await g.send('real'));
    const mallory = new GroupCipher(b, new InMemorySenderKeyStore());
    await mallory.createSenderKeyDistributionMessage(ALICE, g.dist);
    const forgedState = (await mallory.store.loadSenderKey(ALICE, g.dist))?.current;
    assert.ok(forgedState?.signingPrivateKey);
    const forged = encodeSenderKeyMessage(b, forgedState.signingPrivateKey, {
      distributionId: g.dist,
      chainId: good.chainId,
      iteration: MAX_FORWARD_JUMPS,
      ciphertext: good.ciphertext,
    });
    const before = await g.snapshot();
    c.hmacs = 0;
    c.aes = 0;
    await expectCode(g.read(forged.serialized), ['BAD_SIGNATURE']);
    assert.equal(c.hmacs, 0, 'no chain step before the signature check');
    assert.equal(c.aes, 0);
    assert.equal(await g.snapshot(), before);
    assert.equal(await g.read(good.serialized), 'real');
  });

  test(`${b.name}: a signed message whose body does not decrypt is BAD_MAC and consumes nothing`, async () => {
    const g = await group(b);
    const state = (await g.aliceStore.loadSenderKey(ALICE, g.dist))?.current;
    assert.ok(state?.signingPrivateKey);
    const sign = (iteration: number, ciphertext: Uint8Array): Uint8Array =>
      encodeSenderKeyMessage(b, state.signingPrivateKey!, { distributionId: g.dist, chainId: state.chainId, iteration, ciphertext }).serialized;
    // A random body has valid PKCS#7 padding about once in 256 tries (and then decrypts to noise,
    // as libsignal's would), so the bodies here are made to decrypt to a last byte of 0: never valid.
    const startKey = Uint8Array.from(state.chainKey);
    const startIteration = state.iteration;
    const badPadding = (iteration: number, blocks: number): Uint8Array => {
      let ck: Uint8Array = startKey;
      for (let i = startIteration; i < iteration; i++) ck = senderChainKeyNext(b, ck);
      const key = senderMessageKey(b, iteration, senderMessageSeed(b, ck));
      const plain = b.randomBytes(16 * blocks);
      plain[plain.length - 1] = 0;
      const cipher = createCipheriv('aes-256-cbc', key.cipherKey, key.iv).setAutoPadding(false);
      return new Uint8Array(Buffer.concat([cipher.update(plain), cipher.final()]));
    };
    const before = await g.snapshot();
    for (const ct of [new Uint8Array(0), new Uint8Array(15), badPadding(3, 2), badPadding(3, 3)]) {
      await expectCode(g.read(sign(3, ct)), ['BAD_MAC']);
      assert.equal(await g.snapshot(), before, `ciphertext of ${ct.length} bytes changed the state`);
    }
    const real = [await g.send('0'), await g.send('1'), await g.send('2'), await g.send('3')];
    assert.equal(await g.read(real[3] as Uint8Array), '3');
    const after = await g.snapshot();
    await expectCode(g.read(sign(1, badPadding(1, 2))), ['BAD_MAC']);
    assert.equal(await g.snapshot(), after, 'a failed message keeps the stored key');
    assert.equal(await g.read(real[1] as Uint8Array), '1');
  });

  test(`${b.name}: forward jumps: exactly MAX_FORWARD_JUMPS ahead reads, one more is refused unchanged`, async () => {
    const g = await group(b);
    // Step alice's chain to the edge directly (signing 25,000 messages would only test the signer).
    const record = (await g.aliceStore.loadSenderKey(ALICE, g.dist)) as SenderKeyRecord;
    const s = record.current!;
    for (let i = 0; i <= MAX_FORWARD_JUMPS; i++) s.chainKey = senderChainKeyNext(b, s.chainKey);
    s.iteration = MAX_FORWARD_JUMPS + 1;
    await g.aliceStore.storeSenderKey(ALICE, g.dist, record);
    const far = await g.send('far');
    const before = await g.snapshot();
    await expectCode(g.read(far), ['TOO_FAR_AHEAD']);
    assert.equal(await g.snapshot(), before);
    // A reader one step along is exactly MAX_FORWARD_JUMPS behind.
    const bob2 = new GroupCipher(b, new InMemorySenderKeyStore());
    await bob2.processSenderKeyDistributionMessage(
      ALICE,
      SenderKeyDistributionMessage.create({
        distributionId: g.dist,
        chainId: g.skdm.chainId,
        iteration: 1,
        chainKey: senderChainKeyNext(b, g.skdm.chainKeyUnsafe),
        signingKey: g.skdm.signingKey,
      }),
    );
    assert.equal(utf8Decode((await bob2.groupDecrypt(ALICE, far)).plaintext), 'far');
    const kept = (await bob2.store.loadSenderKey(ALICE, g.dist))?.current;
    assert.equal(kept?.messageKeys.size, MAX_MESSAGE_KEYS);
    assert.equal(kept?.iteration, MAX_FORWARD_JUMPS + 2);
  });
}

test('node and portable backends read each other’s group messages', async () => {
  for (const [x, y] of [
    [nodeBackend(), portableBackend()],
    [portableBackend(), nodeBackend()],
  ] as const) {
    const dist = DistributionId.random(x);
    const alice = new GroupCipher(x, new InMemorySenderKeyStore());
    const bob = new GroupCipher(y, new InMemorySenderKeyStore());
    await bob.processSenderKeyDistributionMessage(ALICE, await alice.createSenderKeyDistributionMessage(ALICE, dist));
    for (let i = 0; i < 5; i++) {
      assert.equal(utf8Decode((await bob.groupDecrypt(ALICE, await alice.groupEncrypt(ALICE, dist, utf8Encode(`x${i}`)))).plaintext), `x${i}`);
    }
  }
});

test('no sender key: unknown sender, unknown distribution id, or a key that is not ours to send with', async () => {
  const g = await group(nodeBackend());
  const m = await g.send('hi');
  await expectCode(g.bob.groupDecrypt(new ProtocolAddress('alice', 2), m), ['NO_SENDER_KEY']);
  await expectCode(g.bob.groupEncrypt(ALICE, g.dist, utf8Encode('x')), ['NO_SENDER_KEY']); // alice's key, not bob's
  await expectCode(g.bob.groupEncrypt(new ProtocolAddress('bob', 1), g.dist, utf8Encode('x')), ['NO_SENDER_KEY']);
  const other = DistributionId.random(g.b);
  await expectCode(g.alice.groupEncrypt(ALICE, other, utf8Encode('x')), ['NO_SENDER_KEY']);
  assert.equal(await g.read(m), 'hi');
});

test(`at most ${MAX_SENDER_KEY_STATES} states: a re-created sender key replaces the oldest`, async () => {
  const b = nodeBackend();
  const dist = DistributionId.random(b);
  const bob = new GroupCipher(b, new InMemorySenderKeyStore());
  const messages: Uint8Array[] = [];
  for (let i = 0; i <= MAX_SENDER_KEY_STATES; i++) {
    const alice = new GroupCipher(b, new InMemorySenderKeyStore()); // a reinstall: a new chain id
    await bob.processSenderKeyDistributionMessage(ALICE, await alice.createSenderKeyDistributionMessage(ALICE, dist));
    messages.push(await alice.groupEncrypt(ALICE, dist, utf8Encode(`chain ${i}`)));
  }
  const record = await bob.store.loadSenderKey(ALICE, dist);
  assert.equal(record?.states.length, MAX_SENDER_KEY_STATES);
  await expectCode(bob.groupDecrypt(ALICE, messages[0] as Uint8Array), ['NO_SENDER_KEY']);
  for (let i = 1; i <= MAX_SENDER_KEY_STATES; i++) assert.equal(utf8Decode((await bob.groupDecrypt(ALICE, messages[i] as Uint8Array)).plaintext), `chain ${i}`);
});

test('a distribution message with a known chain id but another signing key replaces that state', async () => {
  const b = nodeBackend();
  const g = await group(b);
  const m = await g.send('before');
  const impostor = SenderKeyDistributionMessage.create({
    distributionId: g.dist,
    chainId: g.skdm.chainId,
    iteration: 0,
    chainKey: b.randomBytes(32),
    signingKey: KeyPair.generate(b).publicKey,
  });
  await g.bob.processSenderKeyDistributionMessage(ALICE, impostor);
  assert.equal((await g.bobStore.loadSenderKey(ALICE, g.dist))?.states.length, 1);
  await expectCode(g.read(m), ['BAD_SIGNATURE']);
  // alice's real distribution message (it arrives over her pairwise session) restores reading.
  await g.bob.processSenderKeyDistributionMessage(ALICE, g.skdm);
  assert.equal(await g.read(m), 'before');
});

test('concurrent encrypts and decrypts for one sender run one at a time', async () => {
  const g = await group(nodeBackend());
  const sent = await Promise.all(Array.from({ length: 40 }, (_, i) => g.send(`c${i}`)));
  const iterations = new Set(sent.map((m) => decodeSenderKeyMessage(m).iteration));
  assert.equal(iterations.size, 40);
  const read = await Promise.all([...sent].reverse().map((m) => g.read(m)));
  assert.deepEqual(read.sort(), sent.map((_, i) => `c${i}`).sort());
  await Promise.all(sent.slice(0, 5).map((m) => expectCode(g.read(m), ['DUPLICATE'])));
});

test('records persist: serialize/deserialize keeps every state, key and stored seed', async () => {
  const g = await group(nodeBackend());
  const m = [];
  for (let i = 0; i < 10; i++) m.push(await g.send(`p${i}`));
  assert.equal(await g.read(m[9] as Uint8Array), 'p9');
  const bytes = (await g.bobStore.loadSenderKey(ALICE, g.dist))!.serialize();
  const copy = SenderKeyRecord.deserialize(bytes);
  assert.deepEqual(copy.serialize(), bytes);
  assert.equal(copy.current?.messageKeys.size, 9);
  const mine = (await g.aliceStore.loadSenderKey(ALICE, g.dist))!;
  assert.deepEqual(SenderKeyRecord.deserialize(mine.serialize()).serialize(), mine.serialize());
  assert.equal(senderKeyName(ALICE, g.dist), `alice.1/${g.dist.toString()}`);
});

test('record decoding is bounded and refuses what it cannot hold', async () => {
  const g = await group(nodeBackend());
  const one = (await g.bobStore.loadSenderKey(ALICE, g.dist))!.serialize();
  const stateBytes = one.subarray(2); // one state: tag 0x0a, a one-byte length, the state
  assert.deepEqual([one[0], one[1]], [0x0a, stateBytes.length]);
  const record = (n: number): Uint8Array => {
    const w = new Writer();
    for (let i = 0; i < n; i++) w.bytes(1, stateBytes);
    return w.finish();
  };
  assert.equal(SenderKeyRecord.deserialize(record(MAX_SENDER_KEY_STATES)).states.length, MAX_SENDER_KEY_STATES);
  assert.throws(() => SenderKeyRecord.deserialize(record(MAX_SENDER_KEY_STATES + 1)), (e) => isProtocolError(e, 'BAD_STATE'));
  // Too many stored keys in one state.
  const state = new Writer();
  state.uint32(1, 7);
  const chain = new Writer();
  chain.bytes(2, new Uint8Array(32));
  state.bytes(2, chain.finish());
  const signing = new Writer();
  signing.bytes(1, g.skdm.signingKey.serialize());
  state.bytes(3, signing.finish());
  const key = (i: number): Uint8Array => {
    const k = new Writer();
    k.uint32(1, i + 1);
    k.bytes(2, new Uint8Array(32));
    return k.finish();
  };
  for (let i = 0; i <= MAX_MESSAGE_KEYS; i++) state.bytes(4, key(i));
  const tooMany = new Writer();
  tooMany.bytes(1, state.finish());
  assert.throws(() => SenderKeyRecord.deserialize(tooMany.finish()), (e) => isProtocolError(e, 'BAD_STATE'));
  // Another version, a short seed, a missing signing key, oversize input.
  const v4 = new Writer();
  v4.bytes(1, new Uint8Array([...stateBytes, 0x28, 0x04]));
  assert.throws(() => SenderKeyRecord.deserialize(v4.finish()), (e) => isProtocolError(e, 'BAD_STATE'));
  assert.throws(() => SenderKeyRecord.deserialize(new Uint8Array(2 * 1024 * 1024)), (e) => isProtocolError(e, 'BAD_STATE'));
  assert.throws(() => SenderKeyRecord.deserialize(Uint8Array.of(0x0a, 0x02, 0x08, 0x01)), (e) => isProtocolError(e, 'BAD_STATE'));
  assert.equal(SenderKeyRecord.deserialize(new Uint8Array(0)).current, null);
});

test('secrets stay out of logs: records, states and distribution messages redact themselves', async () => {
  const g = await group(nodeBackend());
  await g.read(await g.send('x'));
  const record = (await g.aliceStore.loadSenderKey(ALICE, g.dist))!;
  const chainKeyHex = toHex(g.skdm.chainKeyUnsafe);
  for (const v of [record, record.current, g.skdm]) {
    assert.throws(() => JSON.stringify(v), (e) => isProtocolError(e, 'INVALID_ARGUMENT'));
    assert.ok(!inspect(v).includes(chainKeyHex.slice(0, 16)));
  }
  assert.equal(inspect(record), `SenderKeyRecord(chain ${g.skdm.chainId} at 1 (ours))`);
  assert.equal(inspect(record.current), `SenderKeyState(chain ${g.skdm.chainId}, iteration 1, 0 stored keys, ours)`);
  assert.equal(inspect(g.skdm), `SenderKeyDistributionMessage(${g.dist.toString()}, chain ${g.skdm.chainId}, iteration 0)`);
  assert.equal(JSON.stringify({ d: g.dist }), `{"d":"${g.dist.toString()}"}`);
});

test('distribution ids: UUID text both ways, any 16 bytes, random ones are version 4', () => {
  const b = nodeBackend();
  const d = DistributionId.parse('B7C1E2D4-5F60-4A1B-9C2D-3E4F5A6B7C8D');
  assert.equal(d.toString(), 'b7c1e2d4-5f60-4a1b-9c2d-3e4f5a6b7c8d');
  assert.ok(DistributionId.fromBytes(d.serialize()).equals(d));
  assert.equal(DistributionId.fromBytes(new Uint8Array(16)).toString(), '00000000-0000-0000-0000-000000000000');
  for (const bad of ['', 'b7c1e2d4-5f60-4a1b-9c2d-3e4f5a6b7c8', 'b7c1e2d45f604a1b9c2d3e4f5a6b7c8d', 'g7c1e2d4-5f60-4a1b-9c2d-3e4f5a6b7c8d', 42]) {
    assert.throws(() => DistributionId.parse(bad as string), (e) => isProtocolError(e, 'INVALID_ARGUMENT'));
  }
  assert.throws(() => DistributionId.fromBytes(new Uint8Array(15)), (e) => isProtocolError(e, 'INVALID_ARGUMENT'));
  for (let i = 0; i < 20; i++) assert.match(DistributionId.random(b).toString(), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
});

test('decoders never throw anything but a ProtocolError on random or mutated bytes', async () => {
  const g = await group(nodeBackend());
  const message = await g.send('fuzz me');
  const skdm = g.skdm.serialize();
  const record = (await g.aliceStore.loadSenderKey(ALICE, g.dist))!.serialize();
  const check = (f: () => unknown): void => {
    try {
      f();
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
    }
  };
  const all = (bytes: Uint8Array): void => {
    check(() => decodeSenderKeyMessage(bytes));
    check(() => SenderKeyDistributionMessage.deserialize(bytes));
    check(() => SenderKeyRecord.deserialize(bytes));
  };
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
      all(bytes);
      const v = bytes.slice();
      if (v.length > 0) v[0] = SENDER_KEY_VERSION_BYTE; // past the version check, into the protobuf
      all(v);
    }),
    { numRuns: 3000 },
  );
  const mutate = (base: Uint8Array) =>
    fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }).map((edits) => {
      const out = base.slice();
      for (const [i, v] of edits) out[i] = v;
      return out;
    });
  fc.assert(fc.property(fc.oneof(mutate(message), mutate(skdm), mutate(record)), (bytes) => all(bytes)), { numRuns: 3000 });
});

test('group decrypt of random or mutated bytes rejects with a ProtocolError and changes nothing', async () => {
  const g = await group(nodeBackend());
  const message = await g.send('target');
  const before = await g.snapshot();
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.uint8Array({ maxLength: 300 }),
        fc.array(fc.tuple(fc.nat(message.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }).map((edits) => {
          const out = message.slice();
          for (const [i, v] of edits) out[i] = v;
          return out;
        }),
      ),
      async (bytes) => {
        if (toHex(bytes) === toHex(message)) return;
        await assert.rejects(g.bob.groupDecrypt(ALICE, bytes), (e) => isProtocolError(e));
      },
    ),
    { numRuns: 1500 },
  );
  assert.equal(await g.snapshot(), before);
  assert.equal(await g.read(message), 'target');
});
