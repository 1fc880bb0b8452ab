// ClientOptions.keyGenerator: pre-key refills and rotations made by a generator (the web client's
// key worker), through a real server: the ids are the client's, what comes back is checked before
// anything is stored, the private keys are committed before the upload, and a crash between the
// two loses nothing.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeBackend } from '@tacit/protocol/node';
import { authorizationHeader, toBase64, type BundleResponse, type DeviceCredentials, type KeyCountResponse, type UploadKeysRequest } from '@tacit/api';
import { IdentityKeyPair } from '@tacit/protocol';
import {
  MemoryRecordStore,
  ONE_TIME_KEY_BATCH,
  REFILL_THRESHOLD,
  SIGNED_PRE_KEY_ROTATION_MS,
  TacitClient,
  isClientError,
  makeKeys,
  type ClientOptions,
  type EncodedKeys,
  type FetchLike,
  type KeyGenerator,
  type KeyRequest,
} from '../src/index.ts';
import { wsSocketFactory } from '../src/node.ts';
import { KEY_STATE_KEY, keyStateCodec, KYBER_KEYS_PER_REQUEST, loadKyberPreKey, loadPreKey, loadSignedPreKey, UPLOAD_KEY, UPLOAD_PROGRESS_KEY, uploadCodec } from '../src/prekeys.ts';
import { Txn } from '../src/txn.ts';
import { ServerProcess } from './support/server-process.js';

const backend = nodeBackend();
let server: ServerProcess;
let drainer: DeviceCredentials;
let n = 0;
const open: TacitClient[] = [];

before(async () => {
  // The tests take one-time keys from the server by fetching bundles, more than the default burst.
  server = await ServerProcess.start({ TACIT_BUNDLE_FETCH_BURST: '1000', TACIT_REGISTRATION_BURST: '100' });
  drainer = await server.register();
});
after(async () => {
  for (const c of open) await c.close().catch(() => undefined);
  await server?.stop();
});

const nodeFetch: FetchLike = async (url, init) => {
  const r = await fetch(url, init);
  return { status: r.status, text: () => r.text() };
};

/** A generator as the web client's: the request and the keys cross a structured clone. */
function recordingGenerator(): { gen: KeyGenerator; requests: KeyRequest[] } {
  const requests: KeyRequest[] = [];
  const gen: KeyGenerator = async (identity, request, now) => {
    requests.push(structuredClone(request));
    const id = IdentityKeyPair.deserialize(structuredClone(identity.serialize()));
    return structuredClone(makeKeys(backend, id, structuredClone(request), now));
  };
  return { gen, requests };
}

async function register(name: string, o: Partial<ClientOptions> = {}): Promise<{ client: TacitClient; store: MemoryRecordStore }> {
  const store = new MemoryRecordStore();
  const client = await TacitClient.register({ store, backend, connect: wsSocketFactory, fetch: nodeFetch, backoff: { baseMs: 10, maxMs: 50 }, ...o }, { server: server.url, username: `${name}${++n}k${process.pid}` });
  open.push(client);
  return { client, store };
}

async function get<T>(path: string, who: DeviceCredentials): Promise<T> {
  const r = await fetch(`${server.url}${path}`, { headers: { authorization: authorizationHeader(who) } });
  assert.equal(r.status, 200, path);
  return (await r.json()) as T;
}

/** Takes one-time keys of `username` from the server until fewer than REFILL_THRESHOLD are left. */
async function drain(username: string): Promise<void> {
  for (let i = 0; i < ONE_TIME_KEY_BATCH - REFILL_THRESHOLD + 1; i++) await get<BundleResponse>(`/v1/keys/${username}`, drainer);
}

const count = (c: DeviceCredentials) => get<KeyCountResponse>('/v1/keys/count', c);
/** The client's own credentials, as its HTTP API uses them (from its account record). */
async function credentials(store: MemoryRecordStore, client: TacitClient): Promise<DeviceCredentials> {
  const account = JSON.parse(new TextDecoder().decode((await store.reopen().get('account'))!)) as { secret: string };
  return { username: client.username, deviceId: client.deviceId, secret: account.secret };
}

const b64 = (u: Uint8Array) => toBase64(u);

async function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 2_000; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('a refill made by the generator: the client chose the ids, the server holds the new keys, their private halves are stored, and a session starts on them', async () => {
  const { gen, requests } = recordingGenerator();
  const { client: alice, store } = await register('alice', { keyGenerator: gen });
  // Registered with a first part of the Kyber keys and added the rest: the server holds all.
  assert.deepEqual(await count(await credentials(store, alice)), { preKeys: ONE_TIME_KEY_BATCH, kyberPreKeys: ONE_TIME_KEY_BATCH });
  await drain(alice.username);
  await alice.maintainKeys();
  assert.equal(requests.length, 1, 'one request');
  const req = requests[0]!;
  // Registration took EC ids 1..100 and Kyber ids 1 (last resort) and 2..101: the refill goes on from there.
  assert.deepEqual(req.preKeyIds, Array.from({ length: ONE_TIME_KEY_BATCH }, (_, i) => ONE_TIME_KEY_BATCH + 1 + i));
  assert.deepEqual(req.kyberPreKeyIds, Array.from({ length: ONE_TIME_KEY_BATCH }, (_, i) => ONE_TIME_KEY_BATCH + 2 + i));
  assert.equal(req.signedPreKeyId, undefined, 'no rotation due');
  assert.equal(req.lastResortId, undefined);
  assert.deepEqual(await count(await credentials(store, alice)), { preKeys: ONE_TIME_KEY_BATCH, kyberPreKeys: ONE_TIME_KEY_BATCH });
  // A bundle now hands out refilled keys, and the client holds their private halves.
  const b = (await get<BundleResponse>(`/v1/keys/${alice.username}`, drainer)).devices[0]!;
  assert.ok(req.preKeyIds.includes(b.preKey!.keyId) && req.kyberPreKeyIds.includes(b.kyberPreKey.keyId));
  const t = new Txn(store.reopen());
  assert.equal(b64((await loadPreKey(t, b.preKey!.keyId))!.publicKey.serialize()), b.preKey!.publicKey);
  assert.equal(b64((await loadKyberPreKey(t, b.kyberPreKey.keyId))!.publicKey.serialize()), b.kyberPreKey.publicKey);
  assert.equal(await store.reopen().get(UPLOAD_KEY), undefined, 'the planned upload was sent and forgotten');
  // A real session on a refilled key: bob writes, alice reads.
  const { client: bob } = await register('bob');
  await bob.connect();
  await alice.connect();
  await bob.send(alice.username, 'on a refilled key');
  await until(async () => (await alice.history(bob.username)).some((m) => m.text === 'on a refilled key'), 'alice reads bob');
});

test('a rotation made by the generator: a new signed pre-key and last-resort key with the next ids, signed by the identity (the server verified them)', async () => {
  const clock = { now: Date.now() };
  const { gen, requests } = recordingGenerator();
  const { client, store } = await register('carol', { keyGenerator: gen, now: () => clock.now });
  clock.now += SIGNED_PRE_KEY_ROTATION_MS;
  await client.maintainKeys();
  assert.deepEqual(requests, [{ preKeyIds: [], kyberPreKeyIds: [], signedPreKeyId: 2, lastResortId: ONE_TIME_KEY_BATCH + 2 }]);
  const t = new Txn(store.reopen());
  const state = (await t.read(keyStateCodec, KEY_STATE_KEY))!;
  assert.equal(state.currentSignedPreKeyId, 2);
  assert.equal(state.currentLastResortKyberId, ONE_TIME_KEY_BATCH + 2);
  const b = (await get<BundleResponse>(`/v1/keys/${client.username}/1`, drainer)).devices[0]!;
  assert.equal(b.signedPreKey.keyId, 2);
  assert.equal(b64((await loadSignedPreKey(t, 2))!.publicKey.serialize()), b.signedPreKey.publicKey);
});

test('hostile generator output is refused (INVALID_ARGUMENT): nothing stored, nothing uploaded, and the next run plans the same ids', async () => {
  const hostile: ((k: EncodedKeys, r: KeyRequest) => unknown)[] = [
    () => null,
    (k) => ({ ...k, preKeys: k.preKeys.slice(1) }), // one short
    (k) => ({ ...k, preKeys: [...k.preKeys.slice(1), k.preKeys[0]] }), // ids out of order
    (k) => ({ ...k, kyberPreKeys: k.kyberPreKeys.map((x, i) => (i === 5 ? { ...x, wire: { ...x.wire, keyId: 1 } } : x)) }), // the last resort's id
    (k) => ({ ...k, kyberPreKeys: k.kyberPreKeys.map((x, i) => (i === 7 ? { ...x, record: new Uint8Array(0) } : x)) }),
    (k) => ({ ...k, kyberPreKeys: k.kyberPreKeys.map((x, i) => (i === 9 ? { ...x, wire: { ...x.wire, signature: 'AAAA' } } : x)) }),
    (k) => ({ ...k, preKeys: k.preKeys.map((x) => ({ ...x, wire: { ...x.wire, publicKey: b64(new Uint8Array(33)) } })) }), // not a curve key's encoding
    (k, r) => ({ ...k, signedPreKey: makeKeys(backend, IdentityKeyPair.generate(backend), { ...r, signedPreKeyId: 2 }, 0).signedPreKey }), // not asked for
  ];
  let which = 0;
  const asked: KeyRequest[] = [];
  const gen: KeyGenerator = async (identity, request, now) => {
    asked.push(request);
    const k = makeKeys(backend, identity, request, now);
    return (which < hostile.length ? hostile[which]!(k, request) : k) as EncodedKeys;
  };
  const { client, store } = await register('dave', { keyGenerator: gen });
  const creds = await credentials(store, client);
  await drain(client.username);
  const before = (await count(creds)).preKeys;
  const stateBefore = await store.reopen().get(KEY_STATE_KEY);
  for (which = 0; which < hostile.length; which++) {
    await assert.rejects(client.maintainKeys(), (e: unknown) => isClientError(e) && e.code === 'INVALID_ARGUMENT', `hostile answer ${which}`);
    assert.deepEqual(await store.reopen().get(KEY_STATE_KEY), stateBefore, `answer ${which}: bookkeeping unchanged`);
    assert.equal(await store.reopen().get(UPLOAD_KEY), undefined, `answer ${which}: no upload planned`);
    assert.equal(await loadPreKey(new Txn(store.reopen()), ONE_TIME_KEY_BATCH + 1), undefined, `answer ${which}: no key stored`);
    assert.equal((await count(creds)).preKeys, before, `answer ${which}: nothing uploaded`);
  }
  // An honest answer then: the same ids as every refused attempt, and the refill goes through.
  await client.maintainKeys();
  assert.equal(asked.length, hostile.length + 1);
  assert.ok(asked.every((r) => JSON.stringify(r) === JSON.stringify(asked[0])), 'the same request each time');
  assert.equal(asked[0]!.preKeyIds[0], ONE_TIME_KEY_BATCH + 1);
  assert.equal((await count(creds)).preKeys, ONE_TIME_KEY_BATCH);
});

test('a crash between the commit and the upload, and in the middle of it: the keys were stored before any part left, and the next run sends only the parts the server did not accept', async () => {
  const { gen, requests } = recordingGenerator();
  // Fail the second added part (after the replacing PUT and one add were accepted), once.
  let failAdd: number | undefined = 2;
  const sent: { method: string; kyber: number[] }[] = [];
  let storedAtFirst: boolean[] | undefined;
  let store!: MemoryRecordStore;
  let adds = 0;
  const fetchOrCrash: FetchLike = async (url, init) => {
    const path = new URL(url).pathname;
    if ((init.method === 'PUT' && path === '/v1/keys') || (init.method === 'POST' && path === '/v1/keys/one-time')) {
      const body = JSON.parse(init.body!) as UploadKeysRequest;
      if (init.method === 'PUT' && storedAtFirst === undefined) {
        // Every key of the whole refill already has its private half in the store.
        const t = new Txn(store.reopen());
        const pending = (await t.read(uploadCodec, UPLOAD_KEY))!;
        storedAtFirst = await Promise.all([...pending.preKeys!.map((k) => loadPreKey(t, k.keyId)), ...pending.kyberPreKeys!.map((k) => loadKyberPreKey(t, k.keyId))]).then((rs) => rs.map((r) => r !== undefined));
      }
      if (init.method === 'POST' && ++adds === failAdd) {
        failAdd = undefined;
        throw new Error('the page closed');
      }
      sent.push({ method: init.method, kyber: (body.kyberPreKeys ?? []).map((k) => k.keyId) });
    }
    return nodeFetch(url, init);
  };
  const reg = await register('erin', { keyGenerator: gen });
  store = reg.store;
  const creds = await credentials(store, reg.client);
  await reg.client.close();
  const first = await TacitClient.open({ store: store.reopen(), backend, connect: wsSocketFactory, fetch: fetchOrCrash, keyGenerator: gen });
  open.push(first);
  await drain(first.username);
  await assert.rejects(first.maintainKeys());
  assert.equal(storedAtFirst?.length, 2 * ONE_TIME_KEY_BATCH);
  assert.ok(storedAtFirst.every(Boolean), 'private keys committed before the first part left');
  assert.deepEqual(sent.map((x) => [x.method, x.kyber.length]), [['PUT', KYBER_KEYS_PER_REQUEST], ['POST', KYBER_KEYS_PER_REQUEST]], 'the replacing part and one added part were accepted');
  await first.close();
  // The next run (a reload of the page): the planned upload goes on from the failed part.
  const again = await TacitClient.open({ store: store.reopen(), backend, connect: wsSocketFactory, fetch: fetchOrCrash, keyGenerator: gen });
  open.push(again);
  await again.maintainKeys();
  assert.equal(requests.length, 1, 'no keys made again');
  assert.deepEqual(sent.slice(2).map((x) => x.method), ['POST', 'POST'], 'no second replacing upload');
  const kyberSent = sent.flatMap((x) => x.kyber);
  assert.deepEqual(kyberSent, requests[0]!.kyberPreKeyIds, 'every refilled Kyber key sent once, in order');
  assert.deepEqual(await count(creds), { preKeys: ONE_TIME_KEY_BATCH, kyberPreKeys: ONE_TIME_KEY_BATCH });
  assert.equal(await store.reopen().get(UPLOAD_KEY), undefined);
  assert.equal(await store.reopen().get(UPLOAD_PROGRESS_KEY), undefined);
  const b = (await get<BundleResponse>(`/v1/keys/${again.username}`, drainer)).devices[0]!;
  assert.equal(b64((await loadPreKey(new Txn(store.reopen()), b.preKey!.keyId))!.publicKey.serialize()), b.preKey!.publicKey);
});
