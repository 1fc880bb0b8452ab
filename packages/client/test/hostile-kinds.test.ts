// Hostile plaintexts of the newer message kinds (transcripts, typing, group keys), through a real
// client behind a fake relay (a real `ws` server on loopback). The senders are sessions made from
// the keys bob uploaded: contacts under their own identity keys, and bob's "other device" under
// bob's own identity key (read from his store), as a broken or hostile linked device would be.
// Each bad message is acknowledged and refused or bounded; the store stays readable.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fromBase64, toBase64 } from '@tacit/api';
import {
  DistributionId,
  GroupCipher,
  IdentityKeyPair,
  InMemorySenderKeyStore,
  KyberPublicKey,
  ProtocolAddress,
  PublicKey,
  SessionManager,
  generateRegistrationId,
  inMemoryStores,
} from '@tacit/protocol';
import { nodeBackend } from '@tacit/protocol/node';
import { MAX_HELD_READS, MAX_HELD_READS_PER_CONVERSATION, MAX_READ_SYNC_ENTRIES, MemoryRecordStore, TacitClient, encodeBlockSync, encodeEnvelope, encodeMuteSync, encodeGroupPayload, encodeReadSync, encodeTyping, type Envelope } from '../src/index.ts';
import { wsSocketFactory } from '../src/node.ts';
import { accountCodec } from '../src/account.ts';
import { PREFIX } from '../src/keys.ts';
import { MAX_SENDER_KEYS_PER_DEVICE } from '../src/group/sender-keys.ts';
import { MAX_HELD_ACTIONS, MAX_HELD_ACTIONS_PER_SENDER } from '../src/chat/edits.ts';
import { fakeRelay, type FakeRelay } from './support/fake-relay.ts';
import { mulberry32 } from '../../protocol/test/support/random.ts';

const backend = nodeBackend();
const bobAddr = new ProtocolAddress('bob', 1);

function b(s: string): Uint8Array {
  const out = fromBase64(s);
  assert.ok(out);
  return out;
}

async function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 3_000; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

interface Sender {
  /** Encrypts `plaintext` to bob over this sender's session and pushes it; resolves once bob acknowledged it. */
  send(plaintext: Uint8Array): Promise<void>;
  /** Pushes a group (sender-key) message as this sender; resolves once acknowledged. */
  sendGroup(body: Uint8Array): Promise<void>;
}

/** Bob (a real client) behind a fake relay, and a way to make senders with sessions to him. */
async function bobBehindFakeRelay(): Promise<{ relay: FakeRelay; bob: TacitClient; store: MemoryRecordStore; undecryptable: string[]; sender: (username: string, deviceId: number, identity?: IdentityKeyPair) => Promise<Sender>; ownIdentity: IdentityKeyPair }> {
  const relay = await fakeRelay();
  const store = new MemoryRecordStore();
  const bob = await TacitClient.register(
    { store, backend, connect: wsSocketFactory, fetch: relay.fetch, backoff: { baseMs: 10, maxMs: 50 } },
    { server: `http://127.0.0.1:${relay.port}`, username: 'bob' },
  );
  const undecryptable: string[] = [];
  bob.on('undecryptable', (e) => undecryptable.push(`${e.from}/${e.fromDevice}:${e.reason}`));
  const reg = relay.registration();
  assert.ok(reg);
  const stored = await store.get(PREFIX.account);
  assert.ok(stored);
  const ownIdentity = IdentityKeyPair.deserialize(b(accountCodec.decode(stored).identityKeyPair));
  await bob.connect(10_000);
  await until(() => relay.socket() !== undefined, 'bob connected');
  let serial = 0;
  const push = async (type: string, body: Uint8Array, username: string, deviceId: number): Promise<void> => {
    const id = `h${++serial}`;
    relay.socket()!.send(JSON.stringify({ type: 'message', envelope: { id, type, body: toBase64(body), source: { username, deviceId }, timestamp: 1 } }));
    await until(() => relay.acks.includes(id), `the ack of ${id}`);
  };
  const sender = async (username: string, deviceId: number, identity = IdentityKeyPair.generate(backend)): Promise<Sender> => {
    const s = new SessionManager(backend, inMemoryStores(identity, generateRegistrationId(backend)), { now: () => Date.now() });
    // The last-resort Kyber key and no one-time EC key: any number of senders can start sessions.
    await s.processPreKeyBundle(bobAddr, {
      registrationId: reg.registrationId,
      deviceId: 1,
      identityKey: PublicKey.deserialize(b(reg.identityKey)),
      signedPreKeyId: reg.signedPreKey.keyId,
      signedPreKey: PublicKey.deserialize(b(reg.signedPreKey.publicKey)),
      signedPreKeySignature: b(reg.signedPreKey.signature),
      kyberPreKeyId: reg.kyberLastResortKey.keyId,
      kyberPreKey: KyberPublicKey.deserialize(b(reg.kyberLastResortKey.publicKey)),
      kyberPreKeySignature: b(reg.kyberLastResortKey.signature),
    });
    return {
      send: async (plaintext) => {
        const ct = await s.encrypt(bobAddr, plaintext);
        await push(ct.type, ct.body, username, deviceId);
      },
      sendGroup: (body) => push('sender-key', body, username, deviceId),
    };
  };
  return { relay, bob, store, undecryptable, sender, ownIdentity };
}

const envelope = (e: Omit<Envelope, 'v'>): Uint8Array => encodeEnvelope({ v: 1, ...e });

test('transcripts from our own other device: a name longer than a username, or a time past what a Date holds, is refused; the store stays readable', async () => {
  const { relay, bob, undecryptable, sender, ownIdentity } = await bobBehindFakeRelay();
  try {
    const laptop = await sender('bob', 2, ownIdentity);
    const alice = await sender('alice', 1);
    // A valid name pattern, but 40 characters: no account can have it.
    await laptop.send(envelope({ id: 't1', text: 'to a name too long', sentAt: 1_700_000_000_000, sentTo: 'a'.repeat(40) }));
    // A disappearing message "sent" at the end of the safe integers: its deletion time would leave them.
    await laptop.send(envelope({ id: 't2', text: 'from the far future', sentAt: Number.MAX_SAFE_INTEGER - 5, sentTo: 'alice', exp: 60_000 }));
    await alice.send(envelope({ id: 'a1', text: 'a date no Date holds', sentAt: 9_000_000_000_000_000 }));
    await laptop.send(envelope({ id: 't3', text: 'genuine transcript', sentAt: 1_700_000_000_000, sentTo: 'alice' }));
    await alice.send(envelope({ id: 'a2', text: 'genuine message', sentAt: 1_700_000_000_001 }));
    await until(async () => (await bob.history('alice')).length === 2, 'the genuine ones');
    assert.deepEqual((await bob.history('alice')).map((m) => `${m.direction} ${m.text}`), ['out genuine transcript', 'in genuine message']);
    assert.deepEqual((await bob.conversations()).map((c) => c.id), ['u:alice']);
    assert.deepEqual(undecryptable.sort(), ['alice/1:BAD_ENVELOPE', 'bob/2:BAD_ENVELOPE', 'bob/2:BAD_ENVELOPE']);
  } finally {
    await bob.close();
    await relay.close();
  }
});

test('typing indicators: a contact\'s for a group it is not in, or ours from another device, show nothing; a genuine one shows', async () => {
  const { relay, bob, sender, ownIdentity } = await bobBehindFakeRelay();
  try {
    const alice = await sender('alice', 1);
    const laptop = await sender('bob', 2, ownIdentity);
    const typing: string[] = [];
    bob.on('typing', (e) => typing.push(`${e.conversation} ${e.from} ${e.typing}`));
    const group = 'ab'.repeat(16);
    await alice.send(encodeTyping({ typing: 'started', group }));
    await laptop.send(encodeTyping({ typing: 'started' }));
    await alice.send(encodeTyping({ typing: 'started' }));
    await until(() => typing.length > 0, 'the genuine indicator');
    assert.deepEqual(typing, ['u:alice alice true']);
    assert.deepEqual(await bob.history('alice'), [], 'no indicator is stored as a message');
  } finally {
    await bob.close();
    await relay.close();
  }
});

test('own-device lists (chat/own-list.ts): a mute or block sync older than the list held changes nothing; a newer one replaces it', async () => {
  const { relay, bob, sender, ownIdentity } = await bobBehindFakeRelay();
  try {
    const laptop = await sender('bob', 2, ownIdentity);
    const until1 = await bob.mute('alice', 'always');
    await bob.block('mallory');
    const events: string[] = [];
    bob.on('mute', (e) => events.push(`mute ${Object.keys(e.mutes).join(',')}`));
    bob.on('block', (e) => events.push(`block ${e.blocked.join(',')}`));
    // Crossed syncs: lists from before bob's changes arrive after them.
    await laptop.send(encodeMuteSync({ mutes: {}, at: 1 }));
    await laptop.send(encodeBlockSync({ users: [], at: 1 }));
    assert.deepEqual(await bob.mutes(), { 'u:alice': until1 });
    assert.deepEqual(await bob.blocked(), ['mallory']);
    const later = Date.now() + 60_000;
    await laptop.send(encodeMuteSync({ mutes: { 'u:carol': later }, at: later }));
    await laptop.send(encodeBlockSync({ users: ['dave'], at: later }));
    assert.deepEqual(await bob.mutes(), { 'u:carol': later });
    assert.deepEqual(await bob.blocked(), ['dave']);
    assert.deepEqual(events, ['mute u:carol', 'block dave']);
  } finally {
    await bob.close();
    await relay.close();
  }
});

test(`a member handing over sender key after sender key: at most ${MAX_SENDER_KEYS_PER_DEVICE} are kept per member device; the newest still reads`, async () => {
  const { relay, bob, store, undecryptable, sender } = await bobBehindFakeRelay();
  try {
    const alice = await sender('alice', 1);
    const group = 'cd'.repeat(16);
    await alice.send(
      encodeGroupPayload({
        grp: 'state',
        state: {
          id: group,
          title: { v: 'Team', rev: 1, by: 'alice' },
          members: { alice: { in: true, admin: true, rev: 1, by: 'alice' }, bob: { in: true, admin: false, rev: 1, by: 'alice' } },
        },
      }),
    );
    await until(async () => (await bob.groups()).length === 1, 'bob is in the group');
    const cipher = new GroupCipher(backend, new InMemorySenderKeyStore());
    const aliceAddr = new ProtocolAddress('alice', 1);
    const ids: DistributionId[] = [];
    for (let i = 0; i < MAX_SENDER_KEYS_PER_DEVICE + 12; i++) {
      const id = DistributionId.random(backend);
      ids.push(id);
      const skdm = await cipher.createSenderKeyDistributionMessage(aliceAddr, id);
      await alice.send(encodeGroupPayload({ grp: 'key', group, skdm: skdm.serialize() }));
    }
    assert.equal((await store.list(PREFIX.senderKey)).length, MAX_SENDER_KEYS_PER_DEVICE);
    assert.equal((await store.list(PREFIX.senderKeyGroup)).length, MAX_SENDER_KEYS_PER_DEVICE);
    const text = (id: string, t: string) => encodeGroupPayload({ grp: 'text', group, id, text: t, sentAt: 1_700_000_000_000 });
    // Under the newest key: read. Under the first (deleted): refused, nothing stored.
    await alice.sendGroup(await cipher.groupEncrypt(aliceAddr, ids[ids.length - 1]!, text('g2', 'newest key')));
    await alice.sendGroup(await cipher.groupEncrypt(aliceAddr, ids[0]!, text('g1', 'oldest key')));
    await until(async () => (await bob.history(`g:${group}`)).some((m) => m.text === 'newest key'), 'the message under the newest key');
    assert.deepEqual((await bob.history(`g:${group}`)).filter((m) => !m.system).map((m) => m.text), ['newest key']);
    assert.ok(undecryptable.some((u) => u.startsWith('alice/1:')), undecryptable.join(', '));
  } finally {
    await bob.close();
    await relay.close();
  }
});


test(`a contact flooding early edits and deletions: only its own oldest go past ${MAX_HELD_ACTIONS_PER_SENDER}; another contact's held edit stays and applies`, async () => {
  const { relay, bob, store, sender } = await bobBehindFakeRelay();
  try {
    const alice = await sender('alice', 1);
    const mallory = await sender('mallory', 1);
    const sentAt = 1_700_000_000_000;
    // Alice's edit comes before its message (held), then mallory's flood, more than all held actions together.
    await alice.send(envelope({ id: 'e1', text: '', sentAt: sentAt + 1, act: { k: 'edit', target: 'm1', text: 'fixed' } }));
    for (let i = 0; i < MAX_HELD_ACTIONS + 8; i++) await mallory.send(envelope({ id: `d${i}`, text: '', sentAt, act: { k: 'delete', target: `gone${i}` } }));
    assert.equal((await store.list(PREFIX.heldAction)).length, MAX_HELD_ACTIONS_PER_SENDER + 1);
    await alice.send(envelope({ id: 'm1', text: 'fxied', sentAt }));
    await until(async () => (await bob.history('alice')).length === 1, 'alice\'s message');
    const [m] = await bob.history('alice');
    assert.equal(m?.text, 'fixed');
    assert.deepEqual(m?.versions?.map((v) => v.text), ['fxied']);
  } finally {
    await bob.close();
    await relay.close();
  }
});


test(`read syncs that come before their message are held (${MAX_HELD_READS_PER_CONVERSATION} per conversation, ${MAX_HELD_READS} in all) and applied when it comes, after a restart too; a flood in one conversation leaves the others`, async () => {
  const { relay, bob: first, store, sender, ownIdentity } = await bobBehindFakeRelay();
  let bob = first;
  try {
    const laptop = await sender('bob', 2, ownIdentity);
    const alice = await sender('alice', 1);
    const carol = await sender('carol', 1);
    const sentAt = 1_700_000_000_000;
    const readAt = Date.now() - 60_000;
    // Our laptop read alice's a1 and carol's c1 before they reach this device.
    await laptop.send(encodeReadSync([{ from: 'alice', id: 'a1', at: readAt }, { from: 'carol', id: 'c1', at: readAt }]));
    assert.equal((await store.list(PREFIX.heldRead)).length, 2);
    // A broken or hostile linked device floods one conversation with reads of messages nobody sent.
    const batch = (from: (i: number) => string, tag: string) => encodeReadSync(Array.from({ length: MAX_READ_SYNC_ENTRIES }, (_, i) => ({ from: from(i), id: `${tag}${i}`, at: readAt })));
    for (let round = 0; round < 3; round++) await laptop.send(batch(() => 'mallory', `r${round}x`));
    assert.equal((await store.list(PREFIX.heldRead)).length, MAX_HELD_READS_PER_CONVERSATION + 2, 'the flood evicted only its own oldest');
    const syncs: string[] = [];
    bob.on('read-sync', (e) => syncs.push(`${e.conversation}:${e.count}:${e.fromDevice}`));
    await alice.send(envelope({ id: 'a0', text: 'before', sentAt }));
    await alice.send(envelope({ id: 'a1', text: 'read on the laptop', sentAt: sentAt + 1 }));
    await alice.send(envelope({ id: 'a2', text: 'after', sentAt: sentAt + 2 }));
    assert.deepEqual((await bob.history('alice')).map((m) => `${m.text}:${String(m.read)}`), ['before:true', 'read on the laptop:true', 'after:false']);
    assert.equal((await bob.conversations()).find((c) => c.id === 'u:alice')?.unread, 1);
    assert.deepEqual(syncs, ['u:alice:2:2']);
    assert.equal((await store.list(PREFIX.heldRead)).length, MAX_HELD_READS_PER_CONVERSATION + 1, 'applied entries are gone');
    // A restart keeps what is held: carol's message, arriving afterwards, is read.
    await bob.close();
    bob = await TacitClient.open({ store: store.reopen(), backend, connect: wsSocketFactory, fetch: relay.fetch, backoff: { baseMs: 10, maxMs: 50 } });
    const before = relay.connections();
    await bob.connect(10_000);
    await until(() => relay.connections() > before, 'bob reconnected');
    await carol.send(envelope({ id: 'c1', text: 'read before the restart', sentAt }));
    assert.deepEqual((await bob.history('carol')).map((m) => `${m.text}:${String(m.read)}`), ['read before the restart:true']);
    // Across conversations the total holds: the oldest of all go first; nothing breaks.
    for (let round = 0; round * MAX_READ_SYNC_ENTRIES <= MAX_HELD_READS; round++) await laptop.send(batch((i) => `u${round}x${i}`, 'z'));
    assert.equal((await store.reopen().list(PREFIX.heldRead)).length, MAX_HELD_READS);
    await alice.send(envelope({ id: 'a3', text: 'still arriving', sentAt: sentAt + 3 }));
    assert.equal((await bob.history('alice')).at(-1)?.text, 'still arriving');
  } finally {
    await bob.close();
    await relay.close();
  }
});

/** Values a hostile sender puts where another belongs, by the kind of value they replace. */
const HOSTILE_STRINGS = ['', 'constructor', '__proto__', 'toString', 'a'.repeat(40), 'x'.repeat(70), 'ab'.repeat(16), 'bob', 'alice', '\u202e', 'edit', 'react', 'timer'];
const HOSTILE_NUMBERS = [-1, 0, 1.5, 2 ** 53, 9e15, Number.MAX_SAFE_INTEGER, 1e308, 1_000, 60_000];
const HOSTILE_OTHERS: unknown[] = [null, true, [], {}, ['constructor'], { constructor: 1 }, JSON.parse('{"__proto__":{"k":"edit"}}')];

function hostileValue(like: unknown, r: () => number): unknown {
  const pool: readonly unknown[] = r() < 0.2 ? HOSTILE_OTHERS : typeof like === 'string' ? HOSTILE_STRINGS : typeof like === 'number' ? HOSTILE_NUMBERS : HOSTILE_OTHERS;
  return pool[Math.floor(r() * pool.length)];
}

/** A JSON value with one of its leaves (or, now and then, an inner object) replaced, chosen by `r`. */
function mutateJson(v: unknown, r: () => number, top = true): unknown {
  if (typeof v !== 'object' || v === null || (!top && r() < 0.1)) return hostileValue(v, r);
  const keys = Object.keys(v);
  if (keys.length === 0) return v;
  const k = keys[Math.floor(r() * keys.length)]!;
  const copy: Record<string, unknown> = Array.isArray(v) ? ([...v] as unknown as Record<string, unknown>) : { ...(v as Record<string, unknown>) };
  copy[k] = mutateJson((v as Record<string, unknown>)[k], r, false);
  return copy;
}

/** Padded like every plaintext (chat/padding.ts): JSON, 0x80, zeros to a multiple of 160. */
function padded(o: unknown): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(o));
  const out = new Uint8Array((Math.floor(json.length / 160) + 1) * 160);
  out.set(json);
  out[json.length] = 0x80;
  return out;
}

const FUZZ_SEED = process.env['TACIT_TEST_SEED'] !== undefined ? Number(process.env['TACIT_TEST_SEED']) : 0x5eed;
const FUZZ_MESSAGES = 300;

test(`${FUZZ_MESSAGES} mutated plaintexts of every kind, from a contact and from our own other device (seed ${FUZZ_SEED}): all acknowledged, nothing corrupt, every view still reads`, async () => {
  const { relay, bob, sender, ownIdentity } = await bobBehindFakeRelay();
  const corrupt: string[] = [];
  bob.on('state-corrupt', (e) => corrupt.push(e.message));
  // What became of the messages: applied ('message', 'outgoing') or refused (the reason).
  const reasons: Record<string, number> = {};
  const count = (what: string) => (reasons[what] = (reasons[what] ?? 0) + 1);
  bob.on('undecryptable', (e) => count(e.reason));
  bob.on('message', () => count('message'));
  bob.on('outgoing', () => count('outgoing'));
  try {
    const alice = await sender('alice', 1);
    const laptop = await sender('bob', 2, ownIdentity);
    const group = 'ef'.repeat(16);
    // Genuine messages first, so actions and receipts have targets.
    await alice.send(envelope({ id: 'a0', text: 'hello bob', sentAt: 1_700_000_000_000, exp: 60_000 }));
    await laptop.send(envelope({ id: 'b0', text: 'hello alice', sentAt: 1_700_000_000_000, sentTo: 'alice' }));
    await alice.send(padded({ v: 1, grp: 'state', state: { id: group, title: { v: 'Team', rev: 1, by: 'alice' }, members: { alice: { in: true, admin: true, rev: 1, by: 'alice' }, bob: { in: true, admin: false, rev: 1, by: 'alice' } } } }));
    const at = 1_700_000_000_500;
    const seeds: { from: 'alice' | 'laptop'; o: unknown }[] = [
      { from: 'alice', o: { v: 1, id: 'a1', text: 'hi', sentAt: at, exp: 60_000 } },
      { from: 'alice', o: { v: 1, id: 'a2', text: '', sentAt: at, act: { k: 'edit', target: 'a0', text: 'edited' } } },
      { from: 'alice', o: { v: 1, id: 'a3', text: '', sentAt: at, act: { k: 'delete', target: 'a0' } } },
      { from: 'alice', o: { v: 1, id: 'a4', text: '', sentAt: at, act: { k: 'react', author: 'bob', target: 'b0', emoji: '🙂' } } },
      { from: 'alice', o: { v: 1, id: 'a5', text: '', sentAt: at, act: { k: 'timer', ms: 60_000 } } },
      { from: 'alice', o: { v: 1, rcpt: 'read', ids: ['b0', 'a0'] } },
      { from: 'alice', o: { v: 1, rcpt: 'delivered', ids: ['b0'], group } },
      { from: 'alice', o: { v: 1, typing: 'started', group } },
      { from: 'alice', o: { v: 1, grp: 'state', state: { id: group, title: { v: 'Renamed', rev: 2, by: 'alice' }, members: { alice: { in: true, admin: true, rev: 1, by: 'alice' }, bob: { in: true, admin: false, rev: 2, by: 'alice' } } } } },
      { from: 'laptop', o: { v: 1, id: 'b1', text: 'mine', sentAt: at, sentTo: 'alice', exp: 60_000 } },
      { from: 'laptop', o: { v: 1, id: 'b2', text: '', sentAt: at, sentTo: 'alice', act: { k: 'react', author: 'alice', target: 'a0', emoji: '🙂' } } },
      { from: 'laptop', o: { v: 1, readSync: [{ from: 'alice', id: 'a0', at }, { from: 'alice', id: 'a1', at, group }] } },
      { from: 'laptop', o: { v: 1, blockSync: { users: ['carol'], at } } },
      { from: 'alice', o: { v: 1, blockSync: { users: ['carol'], at } } },
      { from: 'laptop', o: { v: 1, muteSync: { mutes: { 'u:alice': at + 3600_000, [`g:${group}`]: Number.MAX_SAFE_INTEGER }, at } } },
      { from: 'alice', o: { v: 1, muteSync: { mutes: { 'u:alice': at + 3600_000 }, at } } },
    ];
    const r = mulberry32(FUZZ_SEED);
    for (let i = 0; i < FUZZ_MESSAGES; i++) {
      const s = seeds[Math.floor(r() * seeds.length)]!;
      let o = s.o;
      for (let k = 1 + Math.floor(r() * 2); k > 0; k--) o = mutateJson(o, r);
      // Each send waits for bob's acknowledgement: nothing is left for a later retry.
      await (s.from === 'alice' ? alice : laptop).send(padded(o));
    }
    // The mix reaches both outcomes: some mutations are applied (stored or acted on), most refused.
    assert.ok((reasons['message'] ?? 0) + (reasons['outgoing'] ?? 0) > 2 && (reasons['BAD_ENVELOPE'] ?? 0) > 0, JSON.stringify(reasons));
    assert.deepEqual(corrupt, []);
    for (const c of await bob.conversations()) await bob.history(c.id);
    await bob.unread();
    await bob.search('hello');
    await bob.groups();
    await bob.contacts();
    await bob.mutes();
    // Still receiving (a mutated block sync from our laptop may have blocked alice: undone first).
    if ((await bob.blocked()).includes('alice')) await bob.unblock('alice');
    await alice.send(envelope({ id: 'last', text: 'still here', sentAt: 1_700_000_001_000 }));
    await until(async () => (await bob.history('alice')).some((m) => m.text === 'still here'), 'the last message');
  } finally {
    await bob.close();
    await relay.close();
  }
});
