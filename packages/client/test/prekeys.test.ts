import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import type { AddKeysRequest, RegisterRequest, UploadKeysRequest } from '@tacit/api';
import { nodeBackend } from '@tacit/protocol/node';
import {
  KeyedLock,
  MemoryRecordStore,
  ONE_TIME_KEY_BATCH,
  REFILL_THRESHOLD,
  RETIRED_KEY_GRACE_MS,
  SIGNED_PRE_KEY_ROTATION_MS,
  TacitClient,
  type FetchLike,
  type SocketFactory,
} from '../src/index.ts';
import { preKeyCodec, preKeyKey, signedPreKeyCodec, signedPreKeyKey } from '../src/prekeys.ts';
import { checkEncodedInitialKeys, encodeInitialKeys, generateInitialKeys, MAX_KEY_RECORD_BYTES, type InitialKeyGenerator } from '../src/index.ts';
import { KEYS_PER_STEP, KYBER_KEYS_PER_REQUEST, loadKyberPreKey, loadPreKey, loadSignedPreKey } from '../src/prekeys.ts';
import { Txn } from '../src/txn.ts';
import { IdentityKeyPair, PublicKey, verifyPreKeySignature } from '@tacit/protocol';
const unb64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));
const b64 = (u: Uint8Array): string => Buffer.from(u).toString('base64');

const DAY = 24 * 60 * 60 * 1000;
const noSocket: SocketFactory = () => {
  throw new Error('no relay in this test');
};

/** A key directory double: records uploads, answers counts. */
function fakeDirectory() {
  const d = {
    registration: undefined as RegisterRequest | undefined,
    uploads: [] as UploadKeysRequest[],
    /** POST /v1/keys/one-time bodies, in order. */
    adds: [] as AddKeysRequest[],
    counts: { preKeys: ONE_TIME_KEY_BATCH, kyberPreKeys: ONE_TIME_KEY_BATCH },
    failUploads: false,
    fetch: (async (url, init) => {
      const path = new URL(url).pathname;
      const reply = (status: number, body?: unknown) => ({ status, text: async () => (body === undefined ? '' : JSON.stringify(body)) });
      if (init.method === 'POST' && path === '/v1/accounts') {
        d.registration = JSON.parse(init.body ?? '') as RegisterRequest;
        return reply(201, { username: d.registration.username, deviceId: 1 });
      }
      if (path === '/v1/keys/count') return reply(200, d.counts);
      if (init.method === 'POST' && path === '/v1/keys/one-time') {
        if (d.failUploads) return reply(503, { error: { code: 'UNAVAILABLE', message: 'down' } });
        d.adds.push(JSON.parse(init.body ?? '') as AddKeysRequest);
        return reply(204);
      }
      if (init.method === 'PUT' && path === '/v1/keys') {
        if (d.failUploads) return reply(503, { error: { code: 'UNAVAILABLE', message: 'down' } });
        d.uploads.push(JSON.parse(init.body ?? '') as UploadKeysRequest);
        return reply(204);
      }
      return reply(404, { error: { code: 'NOT_FOUND', message: 'no' } });
    }) as FetchLike,
  };
  return d;
}

async function setup(clock: { now: number }) {
  const dir = fakeDirectory();
  const store = new MemoryRecordStore();
  const client = await TacitClient.register(
    { store, backend: nodeBackend(), connect: noSocket, fetch: dir.fetch, now: () => clock.now },
    { server: 'http://127.0.0.1:1', username: 'Bob' },
  );
  return { dir, store, client };
}

test('registration uploads an identity, a signed pre-key, a Kyber last-resort key and 100 + 100 one-time keys', async () => {
  const { dir, client } = await setup({ now: 1_000 * DAY });
  const r = dir.registration!;
  assert.equal(r.username, 'bob');
  assert.equal(r.deviceId, 1);
  assert.equal(r.preKeys.length, ONE_TIME_KEY_BATCH);
  // The Kyber one-time keys in parts: the first with registration, the rest added, each part a request.
  assert.equal(r.kyberPreKeys.length, KYBER_KEYS_PER_REQUEST);
  assert.deepEqual(dir.adds.map((a) => [a.preKeys, a.kyberPreKeys?.length]), Array.from({ length: ONE_TIME_KEY_BATCH / KYBER_KEYS_PER_REQUEST - 1 }, () => [undefined, KYBER_KEYS_PER_REQUEST]));
  const kyber = [...r.kyberPreKeys, ...dir.adds.flatMap((a) => a.kyberPreKeys!)];
  assert.deepEqual(kyber.map((k) => k.keyId), Array.from({ length: ONE_TIME_KEY_BATCH }, (_, i) => i + 2), 'every Kyber key once, in order');
  assert.equal(new Set([...kyber.map((k) => k.keyId), r.kyberLastResortKey.keyId]).size, ONE_TIME_KEY_BATCH + 1, 'Kyber ids are distinct');
  assert.equal(client.username, 'bob');
  // The secret goes to the server once; the client's own printout never shows it.
  assert.equal(inspect(client), 'TacitClient { username: "bob", deviceId: 1, server: "http://127.0.0.1:1", messages: 0, outbox: 0 }');
  assert.throws(() => JSON.stringify(client));
  await client.close();
});

test('initial keys made elsewhere (the web key worker): encoded, checked, registered with', async () => {
  const backend = nodeBackend();
  const now = 1_000 * DAY;
  let asked: { identity: IdentityKeyPair | undefined; now: number } | undefined;
  let made: IdentityKeyPair | undefined;
  // A generator as the web client's: it makes the identity of a new account too, and the keys
  // cross a structured clone.
  const initialKeys: InitialKeyGenerator = async (identity, at) => {
    asked = { identity, now: at };
    made = IdentityKeyPair.deserialize(structuredClone((identity ?? IdentityKeyPair.generate(backend)).serialize()));
    const keys = encodeInitialKeys(generateInitialKeys(backend, made, at));
    return { identity: IdentityKeyPair.deserialize(structuredClone(made.serialize())), keys: await checkEncodedInitialKeys(structuredClone(keys)) };
  };
  const dir = fakeDirectory();
  const store = new MemoryRecordStore();
  const client = await TacitClient.register({ store, backend, connect: noSocket, fetch: dir.fetch, now: () => now, initialKeys }, { server: 'http://127.0.0.1:1', username: 'carol' });
  assert.deepEqual(asked, { identity: undefined, now }, 'a new account: the generator makes the identity');
  assert.deepEqual(client.identityKey, made!.publicKey.serialize(), 'and the account has it');
  const r = dir.registration!;
  assert.deepEqual(r.preKeys.map((k) => k.keyId), Array.from({ length: ONE_TIME_KEY_BATCH }, (_, i) => i + 1));
  assert.deepEqual([...r.kyberPreKeys, ...dir.adds.flatMap((a) => a.kyberPreKeys!)].map((k) => k.keyId), Array.from({ length: ONE_TIME_KEY_BATCH }, (_, i) => i + 2));
  // Every uploaded signature is by the account's identity (what the server checks) ...
  const id = PublicKey.deserialize(unb64(r.identityKey));
  for (const k of [r.signedPreKey, r.kyberLastResortKey, ...r.kyberPreKeys]) assert.ok(verifyPreKeySignature(backend, id, unb64(k.publicKey), unb64(k.signature)));
  // ... and the stored records hold the private halves of the uploaded keys.
  const t = new Txn(store);
  const spk = await loadSignedPreKey(t, 1);
  assert.equal(b64(spk!.publicKey.serialize()), r.signedPreKey.publicKey);
  const pk = await loadPreKey(t, 100);
  assert.equal(b64(pk!.publicKey.serialize()), r.preKeys[99]!.publicKey);
  const kpk = await loadKyberPreKey(t, 101);
  assert.equal(b64(kpk!.publicKey.serialize()), dir.adds.at(-1)!.kyberPreKeys!.at(-1)!.publicKey);
  await client.close();

  // What checkEncodedInitialKeys refuses, as INVALID_ARGUMENT.
  const good = encodeInitialKeys(generateInitialKeys(backend, IdentityKeyPair.generate(backend), now));
  let pauses = 0;
  assert.equal((await checkEncodedInitialKeys(good, async () => void pauses++)).preKeys.length, ONE_TIME_KEY_BATCH);
  assert.equal(pauses, (2 * ONE_TIME_KEY_BATCH) / KEYS_PER_STEP, 'the check pauses every KEYS_PER_STEP keys');
  const refused = (v: unknown) => assert.rejects(checkEncodedInitialKeys(v), (e: { code?: string }) => e.code === 'INVALID_ARGUMENT');
  for (const v of [null, 'keys', 7, [], {}]) await refused(v);
  await refused({ ...good, preKeys: good.preKeys.slice(1) });
  await refused({ ...good, kyberPreKeys: [...good.kyberPreKeys, good.kyberPreKeys[0]!] });
  await refused({ ...good, preKeys: [...good.preKeys.slice(1), good.preKeys[0]!] }); // ids out of order
  await refused({ ...good, kyberPreKeys: [good.lastResort, ...good.kyberPreKeys.slice(1)] }); // id 1 where 2 belongs
  await refused({ ...good, signedPreKey: good.preKeys[0] }); // a one-time key has no signature
  await refused({ ...good, lastResort: { ...good.lastResort, record: new Uint8Array(0) } });
  await refused({ ...good, lastResort: { ...good.lastResort, record: new Uint8Array(MAX_KEY_RECORD_BYTES + 1) } });
  await refused({ ...good, lastResort: { ...good.lastResort, record: 'AAAA' } });
  await refused({ ...good, signedPreKey: { ...good.signedPreKey, wire: { ...good.signedPreKey.wire, signature: 'AAAA' } } });
  await refused({ ...good, preKeys: good.preKeys.map((k) => ({ ...k, extra: 1, wire: { ...k.wire, more: 1 } })) });
  await refused({ ...good, signedPreKey: undefined });
});

test('refill: only the kinds below the threshold are replaced, with a full batch', async () => {
  const clock = { now: 1_000 * DAY };
  const { dir, client } = await setup(clock);
  await client.maintainKeys();
  assert.equal(dir.uploads.length, 0, 'nothing due right after registration');
  dir.counts = { preKeys: REFILL_THRESHOLD - 1, kyberPreKeys: REFILL_THRESHOLD };
  await client.maintainKeys();
  assert.equal(dir.uploads.length, 1);
  const u = dir.uploads[0]!;
  assert.equal(u.preKeys?.length, ONE_TIME_KEY_BATCH);
  assert.equal(u.kyberPreKeys, undefined);
  assert.equal(u.signedPreKey, undefined);
  const reg = dir.registration!;
  const oldIds = new Set(reg.preKeys.map((k) => k.keyId));
  assert.ok(u.preKeys!.every((k) => !oldIds.has(k.keyId)), 'new ids');
  dir.counts = { preKeys: 100, kyberPreKeys: 0 };
  const addsBefore = dir.adds.length;
  await client.maintainKeys();
  // A full Kyber batch: the first part replaces, the rest is added.
  assert.equal(dir.uploads[1]!.kyberPreKeys?.length, KYBER_KEYS_PER_REQUEST);
  assert.equal(dir.uploads[1]!.preKeys, undefined);
  assert.equal(dir.uploads[1]!.kyberPreKeys!.length + dir.adds.slice(addsBefore).reduce((n, a) => n + a.kyberPreKeys!.length, 0), ONE_TIME_KEY_BATCH);
  await client.close();
});

test('rotation: after 7 days a new signed pre-key and last-resort key; a failed upload is retried', async () => {
  const clock = { now: 1_000 * DAY };
  const { dir, client } = await setup(clock);
  clock.now += SIGNED_PRE_KEY_ROTATION_MS - 1;
  await client.maintainKeys();
  assert.equal(dir.uploads.length, 0);
  clock.now += 1;
  dir.failUploads = true;
  await assert.rejects(client.maintainKeys());
  dir.failUploads = false;
  await client.maintainKeys();
  assert.equal(dir.uploads.length, 1, 'the planned upload is sent once the server is back');
  const u = dir.uploads[0]!;
  assert.ok(u.signedPreKey && u.kyberLastResortKey);
  assert.notEqual(u.signedPreKey.keyId, dir.registration!.signedPreKey.keyId);
  assert.notEqual(u.kyberLastResortKey.keyId, dir.registration!.kyberLastResortKey.keyId);
  await client.maintainKeys();
  assert.equal(dir.uploads.length, 1, 'not rotated again');
  await client.close();
});

test('retired private keys stay for the grace period, then go', async () => {
  const clock = { now: 1_000 * DAY };
  const { dir, store, client } = await setup(clock);
  // The records are read from a second handle on the same store (the client closes its own).
  const records = store.reopen();
  const spk = async (id: number) => {
    const b = await records.get(signedPreKeyKey(id));
    return b === undefined ? undefined : signedPreKeyCodec.decode(b).meta;
  };
  const pk = async (id: number) => {
    const b = await records.get(preKeyKey(id));
    return b === undefined ? undefined : preKeyCodec.decode(b).meta;
  };
  const firstSpk = dir.registration!.signedPreKey.keyId;
  const firstPk = dir.registration!.preKeys[0]!.keyId;
  clock.now += SIGNED_PRE_KEY_ROTATION_MS;
  dir.counts = { preKeys: 0, kyberPreKeys: 100 };
  await client.maintainKeys();
  assert.ok((await spk(firstSpk))?.retiredAt !== undefined, 'old signed pre-key kept, marked retired');
  assert.ok((await pk(firstPk))?.retiredAt !== undefined, 'replaced one-time keys kept, marked retired');
  dir.counts = { preKeys: 100, kyberPreKeys: 100 };
  clock.now += RETIRED_KEY_GRACE_MS + 1;
  await client.maintainKeys();
  assert.equal(await spk(firstSpk), undefined, 'dropped after the grace period');
  assert.equal(await pk(firstPk), undefined);
  await client.close();
});

test('KeyedLock: one job per key at a time in call order; different keys run concurrently', async () => {
  const lock = new KeyedLock();
  const log: string[] = [];
  const gate: Record<string, () => void> = {};
  const job = (key: string, name: string) =>
    lock.run(key, async () => {
      log.push(`start ${name}`);
      await new Promise<void>((r) => (gate[name] = r));
      log.push(`end ${name}`);
    });
  const a1 = job('a', 'a1');
  const a2 = job('a', 'a2');
  const b1 = job('b', 'b1');
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(log, ['start a1', 'start b1']);
  gate['b1']!();
  await b1;
  gate['a1']!();
  await a1;
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(log, ['start a1', 'start b1', 'end b1', 'end a1', 'start a2']);
  gate['a2']!();
  await a2;
  const failing = lock.run('a', async () => {
    throw new Error('x');
  });
  await assert.rejects(failing);
  assert.equal(await lock.run('a', async () => 7), 7, 'a failure does not block the key');
});
