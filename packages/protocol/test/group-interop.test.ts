// Sender keys against Signal's own libsignal-client, 0.79.0 and 0.103.0 (the newest), in both
// directions and on both tacit backends. Most tests are differential: the same deliveries go to a
// tacit receiver and a libsignal receiver, and every outcome (plaintext, or which error) must match.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { ed25519 } from '@noble/curves/ed25519.js';
import {
  type CryptoBackend,
  decodeSenderKeyMessage,
  DistributionId,
  MAX_FORWARD_JUMPS,
  MAX_SENDER_KEY_STATES,
  PrivateKey,
  ProtocolAddress,
  PublicKey,
  portableBackend,
  SenderKeyDistributionMessage,
  SenderKeyRecord,
  toHex,
  utf8Decode,
  utf8Encode,
} from '../src/index.ts';
import { nodeBackend } from '../src/node.ts';
import { encodeSenderKeyMessage, verifySenderKeyMessage } from '../src/sender-key-message.ts';
import { senderChainKeyNext } from '../src/sender-key.ts';
import { MAX_MESSAGE_KEYS } from '../src/state.ts';
import { type GroupParty, LibsignalGroupParty, LIBSIGNALS, type Outcome, TacitGroupParty } from './support/group.ts';
import { mulberry32, testSeed } from './support/random.ts';

const BACKENDS: CryptoBackend[] = [nodeBackend(), portableBackend()];
const DIST = 'b7c1e2d4-5f60-4a1b-9c2d-3e4f5a6b7c8d';

function show(o: Outcome): string {
  return 'ok' in o ? `ok:${toHex(o.ok)}` : `error:${o.error}`;
}

/** Deliver `body` to every receiver; all outcomes must agree. Returns the common outcome. */
async function deliver(receivers: GroupParty[], sender: string, body: Uint8Array): Promise<string> {
  const outcomes = await Promise.all(receivers.map(async (r) => [r.label, show(await r.decrypt(sender, body))] as const));
  const first = outcomes[0]?.[1] as string;
  for (const [label, o] of outcomes) assert.equal(o, first, `${label} disagrees with ${outcomes[0]?.[0]}`);
  return first;
}

const ok = (text: string): string => `ok:${toHex(utf8Encode(text))}`;

/** A seeded delivery schedule: every message once, shuffled within a window, some repeated. */
function schedule(n: number, seed: number): { order: number[]; duplicates: number } {
  const rand = mulberry32(seed);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < n; i++) {
    const j = Math.min(n - 1, i + Math.floor(rand() * 40));
    [order[i], order[j]] = [order[j] as number, order[i] as number];
  }
  let duplicates = 0;
  const out: number[] = [];
  for (const i of order) {
    out.push(i);
    if (rand() < 0.1 && out.length > 1) {
      out.push(out[Math.floor(rand() * out.length)] as number);
      duplicates++;
    }
  }
  return { order: out, duplicates };
}

for (const { version, ls } of LIBSIGNALS) {
  const libsignal = (label: string): LibsignalGroupParty => new LibsignalGroupParty(ls, `libsignal ${version} ${label}`);

  test(`libsignal-client ${version} is the version installed`, () => {
    const require = createRequire(import.meta.url);
    const name = version === '0.79.0' ? '@signalapp/libsignal-client' : 'libsignal-client-0103';
    assert.equal((require(`${name}/package.json`) as { version: string }).version, version);
  });

  for (const backend of BACKENDS) {
    test(`${version} sends, tacit (${backend.name}) reads: reordered, duplicated, all outcomes as libsignal's`, async () => {
      const seed = testSeed();
      const alice = libsignal('alice');
      const tacit = new TacitGroupParty(backend);
      const oracle = libsignal('bob');
      const skdm = await alice.createDistribution('alice', DIST);
      await tacit.processDistribution('alice', skdm);
      await oracle.processDistribution('alice', skdm);
      const n = backend.name === 'node' ? 300 : 100;
      const sent: Uint8Array[] = [];
      for (let i = 0; i < n; i++) sent.push(await alice.encrypt('alice', DIST, utf8Encode(`message ${i}`)));
      const { order, duplicates } = schedule(n, seed);
      const seen = new Set<number>();
      let dupErrors = 0;
      for (const i of order) {
        const o = await deliver([tacit, oracle], 'alice', sent[i] as Uint8Array);
        if (seen.has(i)) {
          assert.equal(o, 'error:DUPLICATE', `seed=${seed}`);
          dupErrors++;
        } else assert.equal(o, ok(`message ${i}`), `seed=${seed}`);
        seen.add(i);
      }
      assert.equal(dupErrors, duplicates);
      assert.equal(seen.size, n);
    });

    test(`tacit (${backend.name}) sends, ${version} reads: reordered, duplicated, all outcomes as tacit's`, async () => {
      const seed = testSeed();
      const alice = new TacitGroupParty(backend);
      const receiver = libsignal('bob');
      const tacitReceiver = new TacitGroupParty(backend);
      const skdm = await alice.createDistribution('alice', DIST);
      await receiver.processDistribution('alice', skdm);
      await tacitReceiver.processDistribution('alice', skdm);
      const n = backend.name === 'node' ? 200 : 60;
      const sent: Uint8Array[] = [];
      for (let i = 0; i < n; i++) sent.push(await alice.encrypt('alice', DIST, utf8Encode(`message ${i}`)));
      const { order } = schedule(n, seed);
      const seen = new Set<number>();
      for (const i of order) {
        const o = await deliver([receiver, tacitReceiver], 'alice', sent[i] as Uint8Array);
        assert.equal(o, seen.has(i) ? 'error:DUPLICATE' : ok(`message ${i}`), `seed=${seed}`);
        seen.add(i);
      }
    });
  }

  test(`${version}: distribution and group messages are byte-for-byte libsignal's`, () => {
    const b = nodeBackend();
    for (let i = 0; i < 10; i++) {
      const dist = DistributionId.random(b);
      const chainId = (i * 0x1357_9bdf) >>> 1;
      const iteration = i === 0 ? 0 : i * 4099;
      const chainKey = b.randomBytes(32);
      const signing = ls.PrivateKey.generate();
      const theirs = ls.SenderKeyDistributionMessage._new(3, dist.toString(), chainId, iteration, chainKey, signing.getPublicKey());
      const ours = SenderKeyDistributionMessage.create({ distributionId: dist, chainId, iteration, chainKey, signingKey: PublicKey.deserialize(signing.getPublicKey().serialize()) });
      assert.deepEqual(ours.serialize(), theirs.serialize());
      const back = SenderKeyDistributionMessage.deserialize(theirs.serialize());
      assert.ok(back.distributionId.equals(dist));
      assert.equal(back.chainId, chainId);
      assert.equal(back.iteration, iteration);
      assert.deepEqual(back.chainKeyUnsafe, chainKey);

      // A group message: signatures are randomized, so compare everything before the signature
      // and check each side's signature with the other's verifier.
      const ciphertext = b.randomBytes(16 * (1 + i));
      const theirM = ls.SenderKeyMessage._new(3, dist.toString(), chainId, iteration, ciphertext, signing).serialize();
      const ourM = encodeSenderKeyMessage(b, PrivateKey.deserialize(signing.serialize()), { distributionId: dist, chainId, iteration, ciphertext }).serialized;
      assert.deepEqual(ourM.subarray(0, ourM.length - 64), theirM.subarray(0, theirM.length - 64));
      assert.ok(ls.SenderKeyMessage.deserialize(ourM).verifySignature(signing.getPublicKey()));
      const decoded = decodeSenderKeyMessage(theirM);
      assert.ok(verifySenderKeyMessage(b, decoded, PublicKey.deserialize(signing.getPublicKey().serialize())));
      assert.deepEqual([decoded.chainId, decoded.iteration, toHex(decoded.ciphertext)], [chainId, iteration, toHex(ciphertext)]);
    }
  });

  test(`${version}: sender key records read both ways and re-encode to the same bytes`, async () => {
    const b = nodeBackend();
    // libsignal's sending record (with its private signing key) runs in tacit, and back.
    const alice = libsignal('alice');
    const reader = libsignal('bob');
    await reader.processDistribution('alice', await alice.createDistribution('alice', DIST));
    const skipped = [];
    for (let i = 0; i < 5; i++) skipped.push(await alice.encrypt('alice', DIST, utf8Encode(`early ${i}`)));
    await reader.decrypt('alice', await alice.encrypt('alice', DIST, utf8Encode('jump')));
    for (const [key, bytes] of [...alice.records, ...reader.records]) {
      assert.equal(toHex(SenderKeyRecord.deserialize(bytes).serialize()), toHex(bytes), `record ${key}`);
    }
    const tacit = new TacitGroupParty(b);
    const aliceAddr = new ProtocolAddress('alice', 1);
    const dist = DistributionId.parse(DIST);
    // tacit continues alice's chain with libsignal's record ...
    await tacit.store.storeSenderKey(aliceAddr, dist, SenderKeyRecord.deserialize(alice.records.get(`alice.1/${DIST}`) as Uint8Array));
    const next = await tacit.encrypt('alice', DIST, utf8Encode('from tacit, as alice'));
    assert.equal(await deliver([reader], 'alice', next), ok('from tacit, as alice'));
    // ... and reads bob's receiving record, skipped keys included.
    const bob = new TacitGroupParty(b);
    await bob.store.storeSenderKey(aliceAddr, dist, SenderKeyRecord.deserialize(reader.records.get(`alice.1/${DIST}`) as Uint8Array));
    assert.equal(await deliver([bob], 'alice', skipped[3] as Uint8Array), ok('early 3'));
    // A tacit record after the same steps reads in libsignal and re-encodes byte for byte.
    const bobRecord = (await bob.store.loadSenderKey(aliceAddr, dist)) as SenderKeyRecord;
    const lsRecord = ls.SenderKeyRecord.deserialize(bobRecord.serialize());
    assert.equal(toHex(lsRecord.serialize()), toHex(bobRecord.serialize()));
    const carol = libsignal('carol');
    carol.records.set(`alice.1/${DIST}`, lsRecord.serialize());
    assert.equal(await deliver([carol], 'alice', skipped[3] as Uint8Array), 'error:DUPLICATE');
    assert.equal(await deliver([carol], 'alice', skipped[4] as Uint8Array), ok('early 4'));
  });

  test(`${version}: forward jumps and stored keys follow the same limits on both sides`, async () => {
    const b = nodeBackend();
    // libsignal sends MAX_FORWARD_JUMPS + 2 messages (natively cheap); tacit and libsignal read.
    const alice = libsignal('alice');
    const skdm = await alice.createDistribution('alice', DIST);
    const sent: Uint8Array[] = [];
    for (let i = 0; i <= MAX_FORWARD_JUMPS + 1; i++) sent.push(await alice.encrypt('alice', DIST, utf8Encode(String(i))));
    const tacit = new TacitGroupParty(b);
    const oracle = libsignal('bob');
    await tacit.processDistribution('alice', skdm);
    await oracle.processDistribution('alice', skdm);
    const at = (i: number): Uint8Array => sent[i] as Uint8Array;
    const before = await tacit.snapshot('alice', DIST);
    assert.equal(await deliver([tacit, oracle], 'alice', at(MAX_FORWARD_JUMPS + 1)), 'error:TOO_FAR_AHEAD');
    assert.equal(await tacit.snapshot('alice', DIST), before, 'a refused jump changes nothing');
    assert.equal(await deliver([tacit, oracle], 'alice', at(MAX_FORWARD_JUMPS)), ok(String(MAX_FORWARD_JUMPS)));
    // Only the newest MAX_MESSAGE_KEYS skipped keys are kept.
    const oldestKept = MAX_FORWARD_JUMPS - MAX_MESSAGE_KEYS;
    assert.equal(await deliver([tacit, oracle], 'alice', at(oldestKept - 1)), 'error:DUPLICATE');
    assert.equal(await deliver([tacit, oracle], 'alice', at(0)), 'error:DUPLICATE');
    assert.equal(await deliver([tacit, oracle], 'alice', at(oldestKept)), ok(String(oldestKept)));
    assert.equal(await deliver([tacit, oracle], 'alice', at(MAX_FORWARD_JUMPS - 1)), ok(String(MAX_FORWARD_JUMPS - 1)));
    assert.equal(await deliver([tacit, oracle], 'alice', at(MAX_FORWARD_JUMPS + 1)), ok(String(MAX_FORWARD_JUMPS + 1)));
    assert.equal(await deliver([tacit, oracle], 'alice', at(oldestKept + 1)), ok(String(oldestKept + 1)));

    // tacit sends from far along its chain (stepped directly: 25,000 signatures would only test
    // the signer); libsignal reads exactly MAX_FORWARD_JUMPS ahead and refuses one more.
    const sender = new TacitGroupParty(b);
    const senderSkdm = await sender.createDistribution('alice', DIST);
    const readers = [libsignal('carol'), new TacitGroupParty(b)];
    for (const r of readers) await r.processDistribution('alice', senderSkdm);
    const addr = new ProtocolAddress('alice', 1);
    const dist = DistributionId.parse(DIST);
    const advance = async (n: number): Promise<void> => {
      const record = (await sender.store.loadSenderKey(addr, dist)) as SenderKeyRecord;
      const s = record.current!;
      for (let i = 0; i < n; i++) s.chainKey = senderChainKeyNext(b, s.chainKey);
      s.iteration += n;
      await sender.store.storeSenderKey(addr, dist, record);
    };
    await advance(MAX_FORWARD_JUMPS + 1);
    const tooFar = await sender.encrypt('alice', DIST, utf8Encode('too far'));
    assert.equal(decodeSenderKeyMessage(tooFar).iteration, MAX_FORWARD_JUMPS + 1);
    assert.equal(await deliver(readers, 'alice', tooFar), 'error:TOO_FAR_AHEAD');
    const fresh = [libsignal('dave'), new TacitGroupParty(b)];
    for (const r of fresh) await r.processDistribution('alice', senderSkdm);
    await advance(MAX_FORWARD_JUMPS - 1); // iteration 2 × MAX_FORWARD_JUMPS + 1
    const farther = await sender.encrypt('alice', DIST, utf8Encode('farther'));
    assert.equal(await deliver(readers, 'alice', farther), 'error:TOO_FAR_AHEAD');
    // A reader that starts at iteration 1 reads `tooFar` exactly MAX_FORWARD_JUMPS ahead, then `farther`.
    const stepped = [libsignal('erin'), new TacitGroupParty(b)];
    const first = SenderKeyDistributionMessage.deserialize(senderSkdm);
    const later = SenderKeyDistributionMessage.create({
      distributionId: dist,
      chainId: first.chainId,
      iteration: 1,
      chainKey: senderChainKeyNext(b, first.chainKeyUnsafe),
      signingKey: first.signingKey,
    });
    for (const r of stepped) await r.processDistribution('alice', later.serialize());
    assert.equal(await deliver(stepped, 'alice', tooFar), ok('too far'));
    assert.equal(await deliver(stepped, 'alice', farther), ok('farther'));
    assert.equal(await deliver(fresh, 'alice', farther), 'error:TOO_FAR_AHEAD');
  });

  test(`${version}: at most ${MAX_SENDER_KEY_STATES} sender key states per sender and distribution id`, async () => {
    const receivers = [libsignal('bob'), new TacitGroupParty(nodeBackend()), new TacitGroupParty(portableBackend())];
    const chains: Array<{ message: Uint8Array; text: string }> = [];
    // alice re-creates her sender key (a reinstall: a new chain id and signing key) six times.
    for (let i = 0; i <= MAX_SENDER_KEY_STATES; i++) {
      const alice = i % 2 === 0 ? libsignal(`alice#${i}`) : new TacitGroupParty(nodeBackend());
      const skdm = await alice.createDistribution('alice', DIST);
      for (const r of receivers) await r.processDistribution('alice', skdm);
      const text = `chain ${i}`;
      chains.push({ message: await alice.encrypt('alice', DIST, utf8Encode(text)), text });
    }
    assert.equal(await deliver(receivers, 'alice', chains[0]!.message), 'error:NO_SENDER_KEY');
    for (const c of chains.slice(1)) assert.equal(await deliver(receivers, 'alice', c.message), ok(c.text));
  });

  test(`${version}: a repeated distribution message does not rewind; a late joiner cannot read the past`, async () => {
    for (const sender of [libsignal('alice'), new TacitGroupParty(nodeBackend())]) {
      const receivers = [libsignal('bob'), new TacitGroupParty(nodeBackend())];
      const first = await sender.createDistribution('alice', DIST);
      for (const r of receivers) await r.processDistribution('alice', first);
      const m = [];
      for (let i = 0; i < 6; i++) m.push(await sender.encrypt('alice', DIST, utf8Encode(`m${i}`)));
      for (let i = 0; i < 4; i++) assert.equal(await deliver(receivers, 'alice', m[i]!), ok(`m${i}`));
      for (const r of receivers) await r.processDistribution('alice', first);
      assert.equal(await deliver(receivers, 'alice', m[2]!), 'error:DUPLICATE');
      // A member who joins now gets the chain where it stands: iteration 6.
      const late = await sender.createDistribution('alice', DIST);
      assert.equal(SenderKeyDistributionMessage.deserialize(late).iteration, 6);
      const joiners = [libsignal('carol'), new TacitGroupParty(nodeBackend())];
      for (const r of joiners) await r.processDistribution('alice', late);
      assert.equal(await deliver(joiners, 'alice', m[5]!), 'error:DUPLICATE');
      const after = await sender.encrypt('alice', DIST, utf8Encode('welcome'));
      assert.equal(await deliver(joiners, 'alice', after), ok('welcome'));
      assert.equal(await deliver(receivers, 'alice', m[5]!), ok('m5'));
      assert.equal(await deliver(receivers, 'alice', after), ok('welcome'));
    }
  });

  test(`${version}: every flipped bit of a group message is refused alike and changes nothing`, async () => {
    for (const [sender, backend] of [
      [libsignal('alice'), nodeBackend()],
      [new TacitGroupParty(nodeBackend()), portableBackend()],
    ] as const) {
      const tacit = new TacitGroupParty(backend);
      const oracle = libsignal('bob');
      const skdm = await sender.createDistribution('alice', DIST);
      await tacit.processDistribution('alice', skdm);
      await oracle.processDistribution('alice', skdm);
      const m = await sender.encrypt('alice', DIST, utf8Encode('the plan'));
      const before = await tacit.snapshot('alice', DIST);
      const codes = new Set<string>();
      // Every bit on the node backend; every 7th on the (slower) portable one.
      const step = backend.name === 'node' ? 1 : 7;
      for (let i = 0; i < m.length * 8; i += step) {
        const body = m.slice();
        body[i >> 3] = (body[i >> 3] as number) ^ (1 << (i & 7));
        const o = await deliver([tacit, oracle], 'alice', body);
        assert.ok(o.startsWith('error:'), `bit ${i} accepted`);
        codes.add(o);
      }
      assert.ok(codes.has('error:BAD_SIGNATURE') && codes.has('error:BAD_VERSION'), [...codes].join(' '));
      assert.equal(await tacit.snapshot('alice', DIST), before);
      assert.equal(await deliver([tacit, oracle], 'alice', m), ok('the plan'));
      // Truncations and extensions too.
      for (let n = 0; n < m.length; n++) assert.ok((await deliver([tacit, oracle], 'alice', m.subarray(0, n))).startsWith('error:'));
      const longer = new Uint8Array(m.length + 1);
      longer.set(m);
      assert.ok((await deliver([tacit, oracle], 'alice', longer)).startsWith('error:'));
    }
  });

  test(`${version}: natively signed group messages (a sender key from an Ed25519 seed) verify in libsignal; seeded and unseeded records run on both sides`, async () => {
    const b = nodeBackend();
    const aliceAddr = new ProtocolAddress('alice', 1);
    const dist = DistributionId.parse(DIST);
    const alice = new TacitGroupParty(b);
    const receivers: GroupParty[] = [libsignal('bob'), new TacitGroupParty(portableBackend())];
    const skdm = await alice.createDistribution('alice', DIST);
    for (const r of receivers) await r.processDistribution('alice', skdm);
    const record = (await alice.store.loadSenderKey(aliceAddr, dist)) as SenderKeyRecord;
    const seed = record.current?.signingSeed;
    assert.ok(seed instanceof Uint8Array, 'a new sender key keeps its seed');
    for (let i = 0; i < 20; i++) {
      const m = await alice.encrypt('alice', DIST, utf8Encode(`native ${i}`));
      // The signature is the seed's RFC 8032 signature (so node:crypto made it) ...
      assert.equal(toHex(m.subarray(m.length - 64)), toHex(ed25519.sign(m.subarray(0, m.length - 64), seed)));
      // ... and libsignal (and tacit's pure verifier) accept it.
      assert.equal(await deliver(receivers, 'alice', m), ok(`native ${i}`));
      assert.ok(ls.SenderKeyMessage.deserialize(m).verifySignature(ls.PublicKey.deserialize(SenderKeyDistributionMessage.deserialize(skdm).signingKey.serialize())));
    }
    // Tampered signatures (R, s, the sign bit, s + L) are refused by both.
    const m = await alice.encrypt('alice', DIST, utf8Encode('tamper'));
    const sigAt = m.length - 64;
    for (const [what, at, mask] of [['R', sigAt, 0x01], ['s', sigAt + 40, 0x10], ['sign bit', m.length - 1, 0x80]] as const) {
      const bad = m.slice();
      bad[at] = (bad[at] as number) ^ mask;
      assert.equal(await deliver(receivers, 'alice', bad), 'error:BAD_SIGNATURE', what);
    }
    assert.equal(await deliver(receivers, 'alice', m), ok('tamper'));
    // The seeded record reads in libsignal (the extra field is skipped), which continues the chain
    // with XEdDSA from the private key; tacit reads that.
    const lsAlice = libsignal('alice');
    lsAlice.records.set(`alice.1/${DIST}`, ls.SenderKeyRecord.deserialize(((await alice.store.loadSenderKey(aliceAddr, dist)) as SenderKeyRecord).serialize()).serialize());
    assert.equal(await deliver(receivers, 'alice', await lsAlice.encrypt('alice', DIST, utf8Encode('from libsignal'))), ok('from libsignal'));
    // libsignal's record (no seed) back in tacit: signed by XEdDSA on @noble, read by libsignal.
    const back = new TacitGroupParty(b);
    const lsRecord = SenderKeyRecord.deserialize(lsAlice.records.get(`alice.1/${DIST}`) as Uint8Array);
    assert.equal(lsRecord.current?.signingSeed, null);
    await back.store.storeSenderKey(aliceAddr, dist, lsRecord);
    const unseeded = await back.encrypt('alice', DIST, utf8Encode('no seed'));
    assert.notEqual(toHex(unseeded.subarray(unseeded.length - 64)), toHex(ed25519.sign(unseeded.subarray(0, unseeded.length - 64), seed)));
    assert.equal(await deliver(receivers, 'alice', unseeded), ok('no seed'));
  });

  test(`${version}: a message signed by another key, or for another distribution id, is refused alike`, async () => {
    const alice = libsignal('alice');
    const receivers = [libsignal('bob'), new TacitGroupParty(nodeBackend())];
    const skdm = SenderKeyDistributionMessage.deserialize(await alice.createDistribution('alice', DIST));
    for (const r of receivers) await r.processDistribution('alice', skdm.serialize());
    const good = decodeSenderKeyMessage(await alice.encrypt('alice', DIST, utf8Encode('x')));
    const mallory = ls.PrivateKey.generate();
    const forged = ls.SenderKeyMessage._new(3, DIST, good.chainId, good.iteration, good.ciphertext, mallory).serialize();
    assert.equal(await deliver(receivers, 'alice', forged), 'error:BAD_SIGNATURE');
    const elsewhere = ls.SenderKeyMessage._new(3, 'b7c1e2d4-5f60-4a1b-9c2d-000000000000', good.chainId, good.iteration, good.ciphertext, mallory).serialize();
    assert.equal(await deliver(receivers, 'alice', elsewhere), 'error:NO_SENDER_KEY');
    assert.equal(await deliver(receivers, 'bob', good.serialized), 'error:NO_SENDER_KEY', 'sender keys are per sender address');
    assert.equal(await deliver(receivers, 'alice', good.serialized), ok('x'));
    assert.equal(utf8Decode(utf8Encode('x')), 'x');
  });
}
