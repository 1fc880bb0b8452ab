// Upgrade in place: homes written by the release before record storage (fixtures made by that
// release, test/fixtures/legacy-v1) open with today's code and are converted on first open,
// nothing lost; the old file goes only after the conversion committed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Envelope } from '@tacit/api';
import { portableBackend } from '@tacit/protocol';
import { nodeBackend } from '@tacit/protocol/node';
import { MemoryRecordStore, TacitClient, UNCONFIRMED_NOTE, isClientError, upgradeLegacyState, type HistoryMessage } from '../src/index.ts';
import { LEGACY_STATE_FILE, SealedFile, SqliteRecordStore, STATE_DB, openHomeStore } from '../src/node.ts';
import { MemoryServer } from './support/memory-server.ts';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'legacy-v1');
const PASSPHRASE = 'legacy fixture passphrase';
const backend = nodeBackend();
const texts = (list: HistoryMessage[]): string[] => list.map((m) => `${m.direction}:${m.text}${m.direction === 'out' ? `:${m.state}` : m.read ? ':read' : ':unread'}`);

async function home(...fixtures: string[]): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tacit-upgrade-'));
  for (const f of fixtures) await copyFile(join(FIXTURES, f), join(dir, LEGACY_STATE_FILE));
  return dir;
}

async function until(cond: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 1_000; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** The account facts of a fixture, read with the old format's reader. */
async function legacyAccount(fixture: string): Promise<{ identityKey: string; registrationId: number }> {
  const { state } = await SealedFile.open(join(FIXTURES, fixture), PASSPHRASE);
  const a = JSON.parse(new TextDecoder().decode(state)).account as { identityKeyPair: string; registrationId: number };
  const pair = Buffer.from(a.identityKeyPair, 'base64');
  // IdentityKeyPair.serialize(): the public key (33 bytes) is what the directory shows.
  const { IdentityKeyPair } = await import('@tacit/protocol');
  return { identityKey: Buffer.from(IdentityKeyPair.deserialize(new Uint8Array(pair)).publicKey.serialize()).toString('base64'), registrationId: a.registrationId };
}

test('a CLI home of the previous release: wrong passphrase writes nothing; the right one converts it, nothing lost', async () => {
  const aliceHome = await home('alice.state.sealed');
  const bobHome = await home('bob.state.sealed');
  const server = new MemoryServer();
  const clients: TacitClient[] = [];
  try {
    // A wrong passphrase is refused before anything is written.
    await assert.rejects(openHomeStore({ home: aliceHome, passphrase: 'wrong' }, false), (e) => isClientError(e) && e.code === 'WRONG_PASSPHRASE');
    assert.deepEqual(await readdir(aliceHome), [LEGACY_STATE_FILE]);

    const aliceStore = await openHomeStore({ home: aliceHome, passphrase: PASSPHRASE }, false);
    assert.equal(existsSync(join(aliceHome, LEGACY_STATE_FILE)), false, 'the old file is gone after the conversion');
    assert.equal((await stat(join(aliceHome, STATE_DB))).mode & 0o777, 0o600);
    const alice = await TacitClient.open({ store: aliceStore, backend, connect: server.factory, fetch: server.fetch });
    clients.push(alice);
    assert.equal(alice.username, 'alice');
    assert.deepEqual(texts(await alice.history('bob')), ['in:hello alice 1:read', 'in:second message with ünïcödé and "quotes"\n:unread']);
    assert.deepEqual(texts(await alice.history('carol')), ['in:hi from carol (web):unread']);
    assert.deepEqual((await alice.conversations()).map((c) => [c.contact, c.unread]).sort(), [['bob', 1], ['carol', 1]]);
    assert.deepEqual((await alice.contacts()).map((c) => [c.username, c.known]), [['bob', true], ['carol', true]]);

    // bob's home holds one ciphertext the server never confirmed: resent unchanged.
    const aliceFacts = await legacyAccount('alice.state.sealed');
    server.directory.set('alice', { username: 'alice', identityKey: aliceFacts.identityKey, devices: [{ deviceId: 1, registrationId: aliceFacts.registrationId }] });
    const bobStore = await openHomeStore({ home: bobHome, passphrase: PASSPHRASE }, false);
    const bob = await TacitClient.open({ store: bobStore, backend, connect: server.factory, fetch: server.fetch });
    clients.push(bob);
    assert.equal(bob.outboxSize, 1);
    assert.deepEqual(texts(await bob.history('alice')), ['in:hello bob:unread']);
    await bob.connect();
    await until(async () => bob.outboxSize === 0, "bob's old outbox entry sent");
    // And bob writes again on his converted session.
    const r = await bob.send('alice', 'after the upgrade');
    assert.equal(r.serverIds.length, 1);
    assert.deepEqual(texts(await bob.history('alice')), ['in:hello bob:unread', 'out:after the upgrade:sent']);

    // alice: what bob sent while she was away (pushed by the old server, never acknowledged),
    // then the resent ciphertext and the new message: her converted sessions decrypt them all.
    const pending = JSON.parse(await readFile(join(FIXTURES, 'alice.pending-envelopes.json'), 'utf8')) as Envelope[];
    server.mailboxes.set('alice.1', [...pending, ...(server.mailboxes.get('alice.1') ?? [])]);
    await alice.connect();
    await alice.waitDrained();
    assert.deepEqual(
      (await alice.unread()).map((m) => m.text),
      ['second message with ünïcödé and "quotes"\n', 'hi from carol (web)', 'while away 1', 'while away 2', 'while away 3', 'queued while the server was down', 'after the upgrade'],
    );
    assert.equal(server.mailboxes.get('alice.1')!.length, 0, 'all acknowledged');
  } finally {
    for (const c of clients) await c.close();
    await rm(aliceHome, { recursive: true, force: true });
    await rm(bobHome, { recursive: true, force: true });
  }
});

test('an upgrade interrupted before its commit runs again; one interrupted after it only removes the old file', async () => {
  const dir = await home('alice.state.sealed');
  try {
    // Interrupted before the commit: the new database exists but holds no records.
    const empty = await SqliteRecordStore.open(join(dir, STATE_DB), PASSPHRASE, { create: true, scryptN: 1024 });
    await empty.close();
    let store = await openHomeStore({ home: dir, passphrase: PASSPHRASE }, false);
    let c = await TacitClient.open({ store, backend, connect: new MemoryServer().factory });
    assert.equal((await c.history('bob')).length, 2);
    await c.close();
    // Interrupted after the commit: the old file is still there next to a converted database.
    await copyFile(join(FIXTURES, 'alice.state.sealed'), join(dir, LEGACY_STATE_FILE));
    store = await openHomeStore({ home: dir, passphrase: PASSPHRASE }, false);
    c = await TacitClient.open({ store, backend, connect: new MemoryServer().factory });
    assert.equal((await c.history('bob')).length, 2, 'converted once, not twice');
    assert.equal(existsSync(join(dir, LEGACY_STATE_FILE)), false);
    await c.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a browser profile of the previous release: state and journal become one history', async () => {
  const fixture = JSON.parse(await readFile(join(FIXTURES, 'web-carol.json'), 'utf8')) as { clientState: string; journal: string };
  const store = new MemoryRecordStore();
  const enc = new TextEncoder();
  await upgradeLegacyState(store, portableBackend(), { state: enc.encode(fixture.clientState), journal: enc.encode(fixture.journal) }, Date.now());
  await assert.rejects(upgradeLegacyState(store, portableBackend(), { state: enc.encode(fixture.clientState) }, Date.now()), (e) => isClientError(e) && e.code === 'STATE_CORRUPT', 'never into a store that holds records');
  const carol = await TacitClient.open({ store, backend: portableBackend(), connect: new MemoryServer().factory });
  try {
    assert.equal(carol.username, 'carol');
    // Journal messages (2023) come before the received ones (from the fixture's run).
    assert.deepEqual(texts(await carol.history('alice')), [
      'out:hello alice (sent):sent',
      'out:this one failed:failed',
      'out:page closed while sending:failed',
      'in:hello carol:read',
    ]);
    const failed = (await carol.history('alice'))[2]!;
    assert.equal(failed.error?.message, UNCONFIRMED_NOTE);
    assert.deepEqual(texts(await carol.history('dave')), ['out:still sending:failed']);
    assert.deepEqual(texts(await carol.history('bob')), ['in:bob to carol:unread']);
    assert.deepEqual((await carol.conversations()).map((c) => c.contact).sort(), ['alice', 'bob', 'dave']);
  } finally {
    await carol.close();
  }
});

test('a damaged legacy state is STATE_CORRUPT, and the store stays empty', async () => {
  const store = new MemoryRecordStore();
  for (const bad of ['not json', '{"v":2}', '{"v":1}', JSON.stringify({ v: 1, account: {}, preKeys: {}, signedPreKeys: {}, kyberPreKeys: {}, sessions: {}, identities: {}, pendingIdentities: {}, contacts: {}, messages: [], outbox: [], seenServerIds: [], seenMessageIds: [], quarantine: [] })]) {
    await assert.rejects(upgradeLegacyState(store, backend, { state: new TextEncoder().encode(bad) }, 0), (e) => isClientError(e) && e.code === 'STATE_CORRUPT', bad.slice(0, 20));
  }
  assert.equal(store.size, 0);
});
