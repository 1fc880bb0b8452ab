// Interop scenarios beyond a plain conversation, against libsignal-client 0.79.0 in both
// directions and on both of our backends. Each scenario is a script of sends and deliveries that
// records a trace (message types sent, and for each delivery: the plaintext or the kind of
// refusal). The script runs libsignal ↔ libsignal first: that trace is libsignal's own behaviour,
// and every pairing with tacit on either side must produce the same trace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type CiphertextMessage,
  compareScannable,
  type CryptoBackend,
  decodePreKeySignalMessage,
  decodeSignalMessage,
  FINGERPRINT_ITERATIONS,
  IdentityKeyPair,
  isProtocolError,
  MAX_ARCHIVED_STATES,
  MAX_FORWARD_JUMPS,
  MAX_MESSAGE_KEYS,
  MAX_RECEIVER_CHAINS,
  MAX_UNACKNOWLEDGED_SESSION_AGE_MS,
  portableBackend,
  safetyNumber,
  PrivateKey,
  PublicKey,
  utf8Decode,
  utf8Encode,
} from '../src/index.ts';
import { MAX_STABLE_ID_BYTES } from '../src/fingerprint.ts';
import { kdfCkNext } from '../src/kdf.ts';
import { nodeBackend } from '../src/node.ts';
import { type GroupParty, LibsignalGroupParty, TacitGroupParty } from './support/group.ts';
import { LibsignalParty, ls } from './support/libsignal.ts';
import { mulberry32 } from './support/random.ts';
import { type Party, TacitParty } from './support/tacit.ts';

const GROUP = '5d3c2b1a-0f9e-4d8c-b7a6-958473625140';

type Kind = 'duplicate' | 'untrusted' | 'missing-pre-key' | 'invalid' | 'no-session';

/** The kind of a refusal, in terms both implementations share. */
function kindOf(e: unknown): Kind {
  if (isProtocolError(e)) {
    switch (e.code) {
      case 'DUPLICATE':
        return 'duplicate';
      case 'UNTRUSTED_IDENTITY':
        return 'untrusted';
      case 'MISSING_PRE_KEY':
        return 'missing-pre-key';
      case 'NO_SESSION':
        return 'no-session';
      case 'BAD_MAC':
      case 'TOO_FAR_AHEAD':
        return 'invalid';
      default:
        throw e;
    }
  }
  if (e instanceof ls.LibSignalErrorBase) {
    if (e.is(ls.ErrorCode.DuplicatedMessage)) return 'duplicate';
    if (e.is(ls.ErrorCode.UntrustedIdentity)) return 'untrusted';
    if (e.is(ls.ErrorCode.InvalidSession) || /session with .* not found/.test(e.message)) return 'no-session';
    // Our test stores throw "no prekey" / "no signed prekey" / "no kyber prekey" for a missing key.
    if (/no (signed |kyber )?prekey/.test(e.message)) return 'missing-pre-key';
    if (/decryption failed|too far into the future|MAC verification failed/.test(e.message)) return 'invalid';
  }
  throw e;
}

type Maker = (name: string, identity?: SharedIdentity) => Party;

/** An identity key pair in both libraries' types, for two devices of one account. */
interface SharedIdentity {
  readonly ls: ls.IdentityKeyPair;
  readonly tacit: IdentityKeyPair;
}

function sharedIdentity(): SharedIdentity {
  const pair = ls.IdentityKeyPair.generate();
  return {
    ls: pair,
    tacit: new IdentityKeyPair(PublicKey.deserialize(pair.publicKey.serialize()), PrivateKey.deserialize(pair.privateKey.serialize())),
  };
}

const libsignal: Maker = (name, id) => new LibsignalParty(name, id?.ls);
const tacit =
  (backend: () => CryptoBackend): Maker =>
  (name, id) =>
    new TacitParty(name, backend(), id?.tacit);

/** Who plays the initiator (alice) and who the responder (bob). */
interface Pairing {
  readonly name: string;
  readonly alice: Maker;
  readonly bob: Maker;
}

const ORACLE: Pairing = { name: 'libsignal → libsignal', alice: libsignal, bob: libsignal };
const PAIRINGS: Pairing[] = [
  { name: 'tacit(node) → libsignal', alice: tacit(nodeBackend), bob: libsignal },
  { name: 'libsignal → tacit(node)', alice: libsignal, bob: tacit(nodeBackend) },
  { name: 'tacit(portable) → libsignal', alice: tacit(portableBackend), bob: libsignal },
  { name: 'libsignal → tacit(portable)', alice: libsignal, bob: tacit(portableBackend) },
];

const NODE_PAIRINGS = PAIRINGS.filter((p) => !p.name.includes('portable'));

/** A script's view of the world: parties by role, messages by label, and the trace. */
class Script {
  readonly trace: string[] = [];
  readonly #sent = new Map<string, { from: Party; to: Party; msg: CiphertextMessage; text: string }>();
  constructor(readonly pairing: Pairing) {}

  /** An initiator-side party (alice, carol, …) or a responder-side one (bob). */
  alice(name = 'alice', identity?: SharedIdentity): Party {
    return this.pairing.alice(name, identity);
  }
  bob(name = 'bob', identity?: SharedIdentity): Party {
    return this.pairing.bob(name, identity);
  }

  async connect(from: Party, to: Party, how: 'one-time' | 'no-one-time' | 'last-resort' = 'one-time'): Promise<void> {
    const bundle = how === 'last-resort' ? await to.lastResortBundle() : await to.bundle(how === 'one-time');
    await this.try(`${from.name} processes ${to.name}'s bundle`, () => from.processBundle(to.name, bundle));
  }

  /** Encrypt `label` from `from` to `to`; records the message type. */
  async send(from: Party, to: Party, label: string): Promise<CiphertextMessage> {
    const text = `${label} from ${from.name}`;
    const msg = await from.encrypt(to.name, utf8Encode(text));
    this.#sent.set(label, { from, to, msg, text });
    this.trace.push(`${label}: ${msg.type}`);
    return msg;
  }

  /** Send `n` messages labelled `${prefix}0` … */
  async sendMany(from: Party, to: Party, prefix: string, n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      const text = `${prefix}${i} from ${from.name}`;
      const msg = await from.encrypt(to.name, utf8Encode(text));
      this.#sent.set(`${prefix}${i}`, { from, to, msg, text });
    }
  }

  message(label: string): CiphertextMessage {
    const s = this.#sent.get(label);
    if (s === undefined) throw new Error(`no message ${label}`);
    return s.msg;
  }

  /** Deliver `label` to its recipient; records "ok" or the kind of refusal. */
  async deliver(label: string): Promise<void> {
    const s = this.#sent.get(label);
    if (s === undefined) throw new Error(`no message ${label}`);
    try {
      const out = await s.to.decrypt(s.from.name, s.msg);
      assert.equal(utf8Decode(out), s.text, `${this.pairing.name}: ${label} decrypts to what was sent`);
      this.trace.push(`→ ${label}: ok`);
    } catch (e) {
      this.trace.push(`→ ${label}: ${kindOf(e)}`);
    }
  }

  async deliverAll(labels: string[]): Promise<void> {
    for (const l of labels) await this.deliver(l);
  }

  /** Run `f`, recording whether it succeeded or how it was refused. */
  async try(what: string, f: () => Promise<unknown>): Promise<void> {
    try {
      await f();
      this.trace.push(`${what}: ok`);
    } catch (e) {
      this.trace.push(`${what}: ${kindOf(e)}`);
    }
  }

  note(line: string): void {
    this.trace.push(line);
  }
}

/** Both parties send and receive once more; records the types and results. */
async function talk(s: Script, a: Party, b: Party, tag: string): Promise<void> {
  await s.send(a, b, `${tag}.a`);
  await s.deliver(`${tag}.a`);
  await s.send(b, a, `${tag}.b`);
  await s.deliver(`${tag}.b`);
}

/** Run `script` on libsignal alone, then on every pairing; every trace must equal libsignal's. */
function scenario(title: string, script: (s: Script) => Promise<void>, expect?: (trace: string[]) => void, pairings = PAIRINGS): void {
  test(`interop scenario: ${title}`, async () => {
    const oracle = new Script(ORACLE);
    await script(oracle);
    if (process.env.TACIT_TRACE === '1') console.log(title, oracle.trace);
    expect?.(oracle.trace);
    for (const p of pairings) {
      const s = new Script(p);
      const t0 = performance.now();
      await script(s);
      if (process.env.TACIT_TRACE === '1') console.log(p.name, Math.round(performance.now() - t0), 'ms');
      assert.deepEqual(s.trace, oracle.trace, `${p.name} behaves as libsignal does`);
    }
  });
}

const count = (trace: string[], line: string): number => trace.filter((l) => l === line).length;

scenario(
  'simultaneous initiation: both start a session at once, then keep talking',
  async (s) => {
    const a = s.alice();
    const b = s.bob();
    await s.connect(a, b);
    await s.connect(b, a);
    await s.send(a, b, 'a1');
    await s.send(b, a, 'b1');
    await s.deliverAll(['a1', 'b1']);
    // Both send again before either hears more: each side's current session is the one the other
    // started, so these cross, and each side falls back to (and promotes) an archived state.
    await s.send(a, b, 'a2');
    await s.send(b, a, 'b2');
    await s.deliverAll(['b2', 'a2']);
    await s.send(a, b, 'a3');
    await s.deliver('a3');
    for (let i = 0; i < 3; i++) await talk(s, a, b, `t${i}`);
    await s.send(b, a, 'b-last');
    await s.send(a, b, 'a-last');
    await s.deliverAll(['a-last', 'b-last']);
  },
  (trace) => {
    assert.equal(trace.filter((l) => l.endsWith(': ok') && l.startsWith('→')).length, 13, 'every message decrypts');
    assert.deepEqual(trace.slice(-4), ['b-last: whisper', 'a-last: whisper', '→ a-last: ok', '→ b-last: ok']);
  },
);

scenario('simultaneous initiation, one side’s PreKey message is delivered late and twice', async (s) => {
  const a = s.alice();
  const b = s.bob();
  await s.connect(a, b, 'no-one-time');
  await s.connect(b, a, 'no-one-time');
  await s.send(a, b, 'a1');
  await s.send(b, a, 'b1');
  await s.send(b, a, 'b2');
  await s.deliver('a1');
  // b's current session is now a's; b's own started session is archived, unacknowledged.
  await s.send(b, a, 'b3');
  await s.deliverAll(['b3', 'b1', 'b2', 'b1']);
  await talk(s, a, b, 't1');
  await talk(s, b, a, 't2');
});

scenario(
  'a PreKey message delivered twice, and again after the session moved on several ratchet steps',
  async (s) => {
    const a = s.alice();
    const b = s.bob();
    await s.connect(a, b);
    await s.send(a, b, 'p0');
    await s.send(a, b, 'p1');
    await s.send(a, b, 'p2');
    await s.deliverAll(['p0', 'p0']);
    for (let i = 0; i < 4; i++) await talk(s, a, b, `t${i}`);
    await s.deliverAll(['p2', 'p2', 'p0', 'p1']);
    await talk(s, a, b, 'after');
  },
  (trace) => {
    assert.deepEqual(
      trace.filter((l) => l.startsWith('→ p')),
      ['→ p0: ok', '→ p0: duplicate', '→ p2: ok', '→ p2: duplicate', '→ p0: duplicate', '→ p1: ok'],
    );
  },
);

scenario('session reset: the initiator starts over with a new bundle while old messages are in flight both ways', async (s) => {
  const a = s.alice();
  const b = s.bob();
  await s.connect(a, b);
  await talk(s, a, b, 'first');
  await s.send(a, b, 'old-a1');
  await s.send(a, b, 'old-a2');
  await s.send(b, a, 'old-b1');
  // a loses trust in the session (say, a reinstall of the app kept its identity): a new bundle.
  await s.connect(a, b);
  await s.send(a, b, 'new-a1');
  await s.deliver('new-a1');
  await s.send(b, a, 'new-b1');
  // Late messages of the replaced session still decrypt, and revive it as the current one.
  await s.deliverAll(['old-a2', 'old-b1', 'new-b1', 'old-a1']);
  await talk(s, a, b, 'then');
  await talk(s, b, a, 'and');
});

scenario('session reset by the responder: archived, a fresh bundle, old messages still arriving', async (s) => {
  const a = s.alice();
  const b = s.bob();
  await s.connect(a, b);
  await talk(s, a, b, 'first');
  await s.send(a, b, 'old-a1');
  await s.send(b, a, 'old-b1');
  await s.try('b archives its session', () => b.archive(a.name));
  await s.try('b can still send', () => b.encrypt(a.name, utf8Encode('x')));
  await s.note(`b has a session: ${String(await b.hasSession(a.name))}`);
  await s.connect(b, a);
  await s.send(b, a, 'new-b1');
  await s.deliverAll(['old-a1', 'new-b1', 'old-b1']);
  await talk(s, a, b, 'then');
  await talk(s, b, a, 'and');
});

scenario(`at most ${MAX_ARCHIVED_STATES} archived sessions: a late message of the one evicted is refused, of the oldest kept decrypts`, async (s) => {
  const a = s.alice();
  const b = s.bob();
  // MAX_ARCHIVED_STATES + 2 sessions in a row, each answered, each leaving one late message behind.
  const sessions = MAX_ARCHIVED_STATES + 2;
  for (let i = 0; i < sessions; i++) {
    await s.connect(a, b, 'last-resort');
    await s.send(a, b, `s${i}.first`);
    await s.deliver(`s${i}.first`);
    await s.send(b, a, `s${i}.reply`);
    await s.deliver(`s${i}.reply`);
    await s.send(a, b, `s${i}.late`);
  }
  // b holds the newest session and MAX_ARCHIVED_STATES archived ones: s0 is gone.
  await s.deliverAll(['s0.late', 's1.late', 's2.late', `s${sessions - 1}.late`, 's0.late']);
  await talk(s, a, b, 'after');
}, (trace) => assert.deepEqual(trace.filter((l) => l.startsWith('→ s') && l.includes('.late')), [
  '→ s0.late: invalid',
  '→ s1.late: ok',
  '→ s2.late: ok',
  `→ s${MAX_ARCHIVED_STATES + 1}.late: ok`,
  '→ s0.late: invalid',
]),
// Record bookkeeping does not depend on the backend, and the portable one's X25519 makes 42
// session starts slow: node only.
NODE_PAIRINGS);

scenario('out of order across five ratchet steps, and a sixth that drops the oldest chain', async (s) => {
  const a = s.alice();
  const b = s.bob();
  await s.connect(a, b);
  await talk(s, a, b, 'hello');
  // Each round: a sends a chain of 7, b reads only its last (so the chain exists at b), answers,
  // and a reads the answer (so a's next chain is a new DH ratchet step).
  const held: string[] = [];
  for (let round = 0; round <= MAX_RECEIVER_CHAINS; round++) {
    await s.sendMany(a, b, `r${round}.`, 7);
    await s.deliver(`r${round}.6`);
    for (let i = 0; i < 6; i++) held.push(`r${round}.${i}`);
    await s.send(b, a, `ack${round}`);
    await s.deliver(`ack${round}`);
    // After the fifth round, b holds MAX_RECEIVER_CHAINS chains from a (the "hello" chain was the
    // first and is gone): everything held so far still decrypts, newest chain first, backwards.
    if (round === MAX_RECEIVER_CHAINS - 2) {
      s.note('deliver held backwards');
      await s.deliverAll(held.splice(0).reverse());
    }
  }
  // Two more chains later: the oldest held chain (round 3) fell out; round 4's still decrypts.
  s.note('deliver the rest');
  await s.deliverAll(held);
  await talk(s, a, b, 'after');
});

const n = MAX_MESSAGE_KEYS + 2;
scenario('stored skipped keys: exactly MAX_MESSAGE_KEYS kept per chain, the oldest evicted first, across two jumps', async (s) => {
  const a = s.alice();
  const b = s.bob();
  await s.connect(a, b);
  await talk(s, a, b, 'hello');
  await s.sendMany(a, b, 'm', n + 10);
  // A jump over MAX_MESSAGE_KEYS + 1 messages: keys 1 … MAX_MESSAGE_KEYS are kept, key 0 is not.
  await s.deliverAll([`m${n - 1}`, 'm0', 'm1', `m${n - 2}`, 'm2']);
  // 1,997 keys are left (3 … 1,999). A second jump, of 9 in the same chain, stores 9 more and
  // evicts the 6 oldest (3 … 8): 8 is gone, 9 is the oldest kept.
  await s.deliverAll([`m${n + 9}`, 'm8', 'm9', `m${n + 8}`, `m${n}`]);
  await talk(s, a, b, 'after');
},
(trace) =>
  assert.deepEqual(
    trace.filter((l) => /^→ m/.test(l)),
    [`→ m${n - 1}: ok`, '→ m0: duplicate', '→ m1: ok', `→ m${n - 2}: ok`, '→ m2: ok', `→ m${n + 9}: ok`, '→ m8: duplicate', '→ m9: ok', `→ m${n + 8}: ok`, `→ m${n}: ok`],
  ),
// The chain walk is backend-independent code, and libsignal's side dominates the cost: node only.
NODE_PAIRINGS);

scenario('an identity key change is refused both ways until accepted; then the new session works and the old identity is refused', async (s) => {
  const a = s.alice();
  const b = s.bob();
  await s.connect(a, b);
  await talk(s, a, b, 'first');
  await s.send(b, a, 'old-late');
  // b reinstalls: a new identity under the same name.
  const b2 = s.bob();
  await s.connect(a, b2);
  await s.connect(b2, a);
  await s.send(b2, a, 'new-hello');
  await s.deliver('new-hello');
  await talk(s, a, b, 'still');
  await s.try('a accepts the new identity', () => a.trust(b2.name, b2.identityKey));
  await s.deliver('new-hello');
  await s.send(a, b2, 'welcome');
  await s.deliver('welcome');
  // A late message of the old identity's session decrypts from the archive, but that identity is
  // no longer trusted.
  await s.deliver('old-late');
  await talk(s, a, b2, 'new');
});

scenario('signed pre-key and Kyber pre-key rotation with PreKey messages in flight', async (s) => {
  const a = s.alice();
  const b = s.bob();
  const c = s.alice('carol');
  const d = s.alice('dave');
  const b1 = await b.bundle(false);
  await s.try('a processes bundle 1', () => a.processBundle(b.name, b1));
  await s.try('d processes bundle 1', () => d.processBundle(b.name, b1));
  await s.send(a, b, 'a1');
  await s.send(a, b, 'a2');
  await s.send(a, b, 'a3');
  // b rotates: a new signed pre-key and Kyber key; the old ones are kept for a grace period.
  await s.connect(c, b, 'no-one-time');
  await s.send(c, b, 'c1');
  await s.deliverAll(['c1', 'a1']);
  // The grace period ends: the old signed pre-key is deleted. a's session exists already, so its
  // later PreKey messages still decrypt; d, who used the same (one-time) Kyber key as a, cannot start.
  await s.try('b deletes signed pre-key 1', () => b.forgetSignedPreKey(b1.signedPreKeyId));
  await s.send(d, b, 'd1');
  await s.deliverAll(['a3', 'd1', 'a2']);
  await talk(s, a, b, 'a');
  await talk(s, c, b, 'c');
});

scenario('a one-time Kyber key used by two initiators: the second is refused', async (s) => {
  const a = s.alice();
  const b = s.bob();
  const c = s.alice('carol');
  const bundle = await b.bundle(false);
  await s.try('a processes the bundle', () => a.processBundle(b.name, bundle));
  await s.try('c processes the bundle', () => c.processBundle(b.name, bundle));
  await s.send(a, b, 'a1');
  await s.send(c, b, 'c1');
  await s.deliverAll(['a1', 'c1']);
  await s.connect(c, b, 'no-one-time');
  await s.send(c, b, 'c2');
  await s.deliver('c2');
  await talk(s, a, b, 'a');
  await talk(s, c, b, 'c');
});

scenario('the last-resort Kyber key serves several initiators, and one initiator twice', async (s) => {
  const b = s.bob();
  const senders = ['alice', 'carol', 'dave'].map((n) => s.alice(n));
  for (const x of senders) await s.connect(x, b, 'last-resort');
  for (const x of senders) await s.send(x, b, `${x.name}1`);
  for (const x of senders) await s.deliver(`${x.name}1`);
  const [a] = senders as [Party];
  // a starts over on the same last-resort bundle: a second session with the same pre-keys.
  await s.send(a, b, 'a-old');
  await s.connect(a, b, 'last-resort');
  await s.send(a, b, 'a-new');
  await s.deliverAll(['a-new', 'a-old']);
  for (const x of senders) await talk(s, x, b, x.name);
});

scenario('a one-time pre-key handed out twice: the second initiator is refused, then starts over', async (s) => {
  const b = s.bob();
  const a = s.alice();
  const c = s.alice('carol');
  const bundle = await b.bundle(true);
  await s.try('a processes the bundle', () => a.processBundle(b.name, bundle));
  await s.try('c processes the bundle', () => c.processBundle(b.name, bundle));
  await s.send(a, b, 'a1');
  await s.send(c, b, 'c1');
  await s.deliverAll(['a1', 'c1', 'c1']);
  await s.connect(c, b);
  await s.send(c, b, 'c2');
  await s.deliverAll(['c2', 'c1']);
  await talk(s, c, b, 'c');
});

scenario('an unacknowledged session stops being used for sending after 30 days (to the millisecond), and works again once answered', async (s) => {
  const a = s.alice();
  const b = s.bob();
  // Half a second past a whole second: libsignal keeps the start in whole seconds, rounded down.
  a.advance(500);
  await s.connect(a, b);
  await s.send(a, b, 'p1');
  a.advance(MAX_UNACKNOWLEDGED_SESSION_AGE_MS - 500);
  s.note(`at 30 days from the whole second a has a session: ${String(await a.hasSession(b.name))}`);
  await s.send(a, b, 'p2');
  a.advance(1);
  s.note(`a millisecond later: ${String(await a.hasSession(b.name))}`);
  await s.try('a encrypts', () => a.encrypt(b.name, utf8Encode('stale')));
  await s.deliverAll(['p2', 'p1']);
  await s.send(b, a, 'answer');
  await s.deliver('answer');
  s.note(`answered: ${String(await a.hasSession(b.name))}`);
  await talk(s, a, b, 'after');
}, (trace) =>
  assert.deepEqual(
    trace.filter((l) => /^(at 30|a milli|a encrypts|answered)/.test(l)),
    ['at 30 days from the whole second a has a session: true', 'a millisecond later: false', 'a encrypts: no-session', 'answered: true'],
  ),
);

test('our PreKeySignalMessage and SignalMessage parse in libsignal to the same fields and re-serialize to the same bytes', async () => {
  for (const backend of [nodeBackend(), portableBackend()]) {
    for (const withOneTime of [true, false]) {
      const alice = new TacitParty('alice', backend);
      const bob = new LibsignalParty('bob');
      const bundle = await bob.bundle(withOneTime);
      await alice.processBundle('bob', bundle);
      const m = await alice.encrypt('bob', utf8Encode('hi'));
      assert.equal(m.type, 'prekey');
      const ours = decodePreKeySignalMessage(m.body);
      const theirs = ls.PreKeySignalMessage.deserialize(m.body);
      assert.deepEqual(theirs.serialize(), m.body);
      assert.equal(theirs.version(), 4);
      assert.equal(theirs.registrationId(), alice.registrationId);
      assert.equal(theirs.preKeyId(), withOneTime ? bundle.preKeyId : null);
      assert.equal(theirs.signedPreKeyId(), bundle.signedPreKeyId);
      const inner = ls.SignalMessage.deserialize(ours.message.serialized);
      assert.deepEqual(inner.serialize(), ours.message.serialized);
      assert.equal(inner.messageVersion(), 4);
      assert.equal(inner.counter(), 0);
      assert.deepEqual(inner.body(), ours.message.ciphertext);
      assert.deepEqual(inner.pqRatchet(), new Uint8Array(0), 'no SPQR field at our target');
      assert.equal(utf8Decode(await bob.decrypt('alice', m)), 'hi');
      // And the other way: libsignal's answer, a SignalMessage, re-encodes to the same bytes.
      const r = await bob.encrypt('alice', utf8Encode('ho'));
      assert.equal(r.type, 'whisper');
      const decoded = decodeSignalMessage(r.body);
      assert.equal(decoded.counter, 0);
      assert.deepEqual(decoded.ciphertext, ls.SignalMessage.deserialize(r.body).body());
      assert.equal(utf8Decode(await alice.decrypt('bob', r)), 'ho');
      const w = await alice.encrypt('bob', utf8Encode('whisper'));
      assert.equal(w.type, 'whisper');
      assert.deepEqual(ls.SignalMessage.deserialize(w.body).serialize(), w.body);
    }
  }
});

test(`forward jumps to the edge: one more than ${MAX_FORWARD_JUMPS} ahead is refused by libsignal and by tacit; exactly ${MAX_FORWARD_JUMPS} decrypts in tacit`, async () => {
  // Our sending chain is fast-forwarded in the state: libsignal encrypts about 2,000 messages a
  // second, and its walk of 25,000 steps (each copying up to 2,000 stored keys) takes over 15 s, too
  // long for CI. So libsignal shows the refusal one past the edge (its check comes before the
  // walk), and tacit both sides of the edge; libsignal's rule is `jump > MAX_FORWARD_JUMPS`
  // (session_cipher.rs, get_or_create_message_key), the same as ours.
  const b = nodeBackend();
  const alice = new TacitParty('alice', b);
  const bob = new LibsignalParty('bob');
  await alice.processBundle('bob', await bob.bundle(true));
  await bob.decrypt('alice', await alice.encrypt('bob', utf8Encode('hello')));
  await alice.decrypt('bob', await bob.encrypt('alice', utf8Encode('hi')));
  const state = (await alice.stores.session.loadSession(alice.address('bob')))?.current;
  assert.ok(state != null && state.sender !== null);
  assert.equal(utf8Decode(await bob.decrypt('alice', await alice.encrypt('bob', utf8Encode('0')))), '0');
  // bob's receiving chain now waits for counter 1.
  const at1 = state.sender;
  assert.ok(at1 !== null && at1.index === 1);
  const sendAt = (counter: number, text: string): Promise<CiphertextMessage> => {
    let ck = at1.chainKey;
    for (let i = at1.index; i < counter; i++) ck = kdfCkNext(b, ck);
    state.sender = { ...at1, chainKey: ck, index: counter };
    return alice.encrypt('bob', utf8Encode(text));
  };
  const tooFar = await sendAt(1 + MAX_FORWARD_JUMPS + 1, 'too far');
  const before = (await bob.sessions.getSession(bob.address('alice')))?.serialize();
  await assert.rejects(bob.decrypt('alice', tooFar), (e) => kindOf(e) === 'invalid');
  assert.deepEqual((await bob.sessions.getSession(bob.address('alice')))?.serialize(), before, 'libsignal changed nothing');
  const next = await sendAt(1 + MAX_MESSAGE_KEYS, 'within');
  assert.equal(utf8Decode(await bob.decrypt('alice', next)), 'within');
  // And tacit refuses and accepts the same counters from libsignal's point of view: the same
  // fast-forward on a tacit receiver.
  const carol = new TacitParty('carol', b);
  const dave = new TacitParty('dave', b);
  await carol.processBundle('dave', await dave.bundle(true));
  await dave.decrypt('carol', await carol.encrypt('dave', utf8Encode('hello')));
  await carol.decrypt('dave', await dave.encrypt('carol', utf8Encode('hi')));
  const cs = (await carol.stores.session.loadSession(carol.address('dave')))?.current;
  assert.ok(cs != null && cs.sender !== null);
  await dave.decrypt('carol', await carol.encrypt('dave', utf8Encode('0')));
  const c1 = cs.sender;
  assert.ok(c1 !== null);
  const carolAt = (counter: number): Promise<CiphertextMessage> => {
    let ck = c1.chainKey;
    for (let i = c1.index; i < counter; i++) ck = kdfCkNext(b, ck);
    cs.sender = { ...c1, chainKey: ck, index: counter };
    return carol.encrypt('dave', utf8Encode(String(counter)));
  };
  await assert.rejects(dave.decrypt('carol', await carolAt(1 + MAX_FORWARD_JUMPS + 1)), (e) => kindOf(e) === 'invalid');
  assert.equal(utf8Decode(await dave.decrypt('carol', await carolAt(1 + MAX_FORWARD_JUMPS))), String(1 + MAX_FORWARD_JUMPS));
});

test('sender keys: three senders on both implementations, each re-creating its chain with old messages in flight, far ahead and out of order; every receiver agrees', async () => {
  const receivers = [new LibsignalGroupParty(ls, 'libsignal bob'), new TacitGroupParty(nodeBackend()), new TacitGroupParty(portableBackend())];
  const senders: Array<[string, () => GroupParty]> = [
    ['alice', () => new LibsignalGroupParty(ls, 'libsignal alice')],
    ['carol', () => new TacitGroupParty(nodeBackend())],
    ['dave', () => new TacitGroupParty(portableBackend())],
  ];
  const inFlight: Array<{ sender: string; body: Uint8Array; text: string }> = [];
  for (const [name, make] of senders) {
    // Two installs in a row: the second is a new chain id and signing key for the same distribution id.
    for (const install of [1, 2]) {
      const party = make();
      const skdm = await party.createDistribution(name, GROUP);
      for (const r of receivers) await r.processDistribution(name, skdm);
      const n = install === 1 ? 40 : 120;
      for (let i = 0; i < n; i++) {
        const text = `${name}#${install}.${i}`;
        const body = await party.encrypt(name, GROUP, utf8Encode(text));
        if (i < 30 || i >= n - 10) inFlight.push({ sender: name, body, text });
      }
    }
  }
  // Newest first per sender (the far-ahead message of the second chain arrives first), then the
  // rest in a fixed interleaving across senders and chains, then every message once more.
  const order = [...inFlight].reverse();
  const mix = (i: number): number => (i * 7919) % order.length;
  const shuffled = order.map((_, i) => order[mix(i)]!);
  const seen: string[] = [];
  for (const m of [...shuffled, ...shuffled.slice(0, 20)]) {
    const outcomes = await Promise.all(receivers.map(async (r) => r.decrypt(m.sender, m.body)));
    const shown = outcomes.map((o) => ('ok' in o ? `ok:${utf8Decode(o.ok)}` : `error:${o.error}`));
    for (const [i, o] of shown.entries()) assert.equal(o, shown[0], `${receivers[i]!.label} agrees with libsignal on ${m.text}`);
    seen.push(shown[0]!);
  }
  assert.equal(seen.filter((o) => o.startsWith('ok:')).length, inFlight.length, 'every message decrypts once');
  assert.equal(seen.filter((o) => o === 'error:DUPLICATE').length, 20, 'and is a duplicate the second time');
});

/**
 * A seeded random script: sends both ways, deliveries in any order, repeats, session resets from
 * either side (a new bundle, one-time or last-resort), archived sessions. Decisions depend only on
 * the seed and on outcomes that are themselves in the trace, so every pairing runs the same script
 * as long as it agrees with libsignal.
 */
async function randomScript(s: Script, seed: number, ops: number): Promise<void> {
  const rnd = mulberry32(seed);
  const a = s.alice();
  const b = s.bob();
  const parties = [a, b] as const;
  const inFlight: string[] = [];
  const delivered: string[] = [];
  let n = 0;
  await s.connect(a, b);
  for (let op = 0; op < ops; op++) {
    const r = rnd();
    const [from, to] = rnd() < 0.5 ? parties : ([b, a] as const);
    if (r < 0.4) {
      const label = `${from.name[0]}${n++}`;
      try {
        await s.send(from, to, label);
        inFlight.push(label);
      } catch (e) {
        s.note(`${label}: ${kindOf(e)}`);
      }
    } else if (r < 0.8) {
      if (inFlight.length === 0) continue;
      // Mostly the oldest; sometimes any.
      const i = rnd() < 0.6 ? 0 : Math.floor(rnd() * inFlight.length);
      const [label] = inFlight.splice(i, 1) as [string];
      await s.deliver(label);
      delivered.push(label);
    } else if (r < 0.86) {
      if (delivered.length === 0) continue;
      await s.deliver(delivered[Math.floor(rnd() * delivered.length)] as string);
    } else if (r < 0.94) {
      await s.connect(from, to, rnd() < 0.3 ? 'one-time' : 'last-resort');
    } else {
      await s.try(`${from.name} archives`, () => from.archive(to.name));
    }
  }
  for (const label of inFlight) await s.deliver(label);
}

/** Fixed seeds, so the suite is deterministic; TACIT_SCENARIO_SEEDS=from-to searches more. */
const RANDOM_SCRIPT_SEEDS = ((): number[] => {
  const range = /^(\d+)-(\d+)$/.exec(process.env.TACIT_SCENARIO_SEEDS ?? '');
  if (range === null) return [1, 2, 3];
  const out = [];
  for (let i = Number(range[1]); i <= Number(range[2]); i++) out.push(i);
  return out;
})();
const RANDOM_SCRIPT_OPS = 250;

for (const seed of RANDOM_SCRIPT_SEEDS) {
  scenario(`a random script of resets, archives, repeats and reordering (seed ${seed})`, (s) => randomScript(s, seed, RANDOM_SCRIPT_OPS));
}

test('safety numbers equal libsignal’s for edge-case identifiers and keys, and scanned codes compare as in libsignal', () => {
  const ids = ['', 'a', '+14155550123', 'ünïcødé 👋', 'x'.repeat(MAX_STABLE_ID_BYTES)].map(utf8Encode);
  const k1 = ls.IdentityKeyPair.generate().publicKey;
  const k2 = ls.IdentityKeyPair.generate().publicKey;
  const ours = (k: ls.PublicKey): PublicKey => PublicKey.deserialize(k.serialize());
  // The hash is the backend's SHA-512, which other tests compare across backends: the portable
  // one takes two cases here (5,200 iterations each are slow in pure JS).
  for (const [backend, take] of [
    [nodeBackend(), Infinity],
    [portableBackend(), 2],
  ] as const) {
    const cases: Array<[Uint8Array, ls.PublicKey, Uint8Array, ls.PublicKey]> = [
      ...ids.map((id, i): [Uint8Array, ls.PublicKey, Uint8Array, ls.PublicKey] => [id, k1, ids[(i + 1) % ids.length]!, k2]),
      // The same identifier on both sides, and the same key on both sides (a note to self).
      [ids[2]!, k1, ids[2]!, k2],
      [ids[1]!, k1, ids[2]!, k1],
      [ids[2]!, k1, ids[2]!, k1],
    ];
    for (const [lid, lkey, rid, rkey] of cases.slice(0, take)) {
      const theirs = ls.Fingerprint.new(FINGERPRINT_ITERATIONS, 2, lid, lkey, rid, rkey);
      const mine = safetyNumber(backend, lid, ours(lkey), rid, ours(rkey));
      assert.equal(mine.displayable, theirs.displayableFingerprint().toString());
      assert.deepEqual(mine.scannable, theirs.scannableFingerprint().toBuffer());
      // The peer's screen, from libsignal: both compare it alike.
      const peer = ls.Fingerprint.new(FINGERPRINT_ITERATIONS, 2, rid, rkey, lid, lkey).scannableFingerprint();
      assert.equal(compareScannable(mine.scannable, peer.toBuffer()), theirs.scannableFingerprint().compare(peer));
      assert.equal(compareScannable(mine.scannable, peer.toBuffer()), true);
      // A code for another key does not match, in either implementation.
      const other = ls.Fingerprint.new(FINGERPRINT_ITERATIONS, 2, rid, ls.IdentityKeyPair.generate().publicKey, lid, lkey).scannableFingerprint();
      assert.equal(compareScannable(mine.scannable, other.toBuffer()), false);
      assert.equal(theirs.scannableFingerprint().compare(other), false);
    }
  }
});
