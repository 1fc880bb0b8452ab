/**
 * End to end through a real server with real Signal sessions (@tacit/protocol): the plaintext
 * marker arrives at the recipient, and appears nowhere in the database files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  IdentityKeyPair,
  KyberPublicKey,
  ProtocolAddress,
  PublicKey,
  SessionManager,
  generateKyberPreKey,
  generatePreKey,
  generateRegistrationId,
  generateSignedPreKey,
  inMemoryStores,
} from '@tacit/protocol';
import type { BundleResponse, MessageFrame, SentFrame } from '@tacit/api';
import { buildServer, SqliteStore } from '../src/index.js';
import { auth, b64, backend, Client } from './helpers.js';

const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));

async function newUser(server: Awaited<ReturnType<typeof buildServer>>, username: string) {
  const identity = IdentityKeyPair.generate(backend);
  const registrationId = generateRegistrationId(backend);
  const stores = inMemoryStores(identity, registrationId);
  const spk = generateSignedPreKey(backend, identity, 1, Date.now());
  const kyberLr = generateKyberPreKey(backend, identity, 1, Date.now());
  const pre = generatePreKey(backend, 1);
  await stores.signedPreKey.storeSignedPreKey(1, spk);
  await stores.kyberPreKey.storeKyberPreKey(1, kyberLr, true);
  await stores.preKey.storePreKey(1, pre);
  const secret = b64(randomBytes(32));
  const res = await server.app.inject({
    method: 'POST',
    url: '/v1/accounts',
    payload: {
      username,
      deviceId: 1,
      registrationId,
      identityKey: b64(identity.publicKey.serialize()),
      signedPreKey: { keyId: 1, publicKey: b64(spk.keyPair.publicKey.serialize()), signature: b64(spk.signature) },
      kyberLastResortKey: { keyId: 1, publicKey: b64(kyberLr.keyPair.publicKey.serialize()), signature: b64(kyberLr.signature) },
      preKeys: [{ keyId: 1, publicKey: b64(pre.keyPair.publicKey.serialize()) }],
      kyberPreKeys: [],
      secret,
    },
  });
  assert.equal(res.statusCode, 201, res.body);
  return { creds: { username, deviceId: 1, secret }, sessions: new SessionManager(backend, stores, { now: Date.now }) };
}

test('the database holds ciphertext only: a plaintext marker is delivered but never stored', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tacit-plain-'));
  const lines: string[] = [];
  const server = await buildServer({
    store: new SqliteStore({ path: join(dir, 'tacit.db') }),
    registration: 'open',
    logger: { level: 'trace', stream: { write: (l: string) => void lines.push(l) } },
  });
  try {
    const port = await server.listen(0, '127.0.0.1');
    const url = `ws://127.0.0.1:${port}/v1/ws`;
    const alice = await newUser(server, 'alice');
    const bob = await newUser(server, 'bob');
    const marker = `MARKER-${randomBytes(8).toString('hex')}`;

    // Alice fetches Bob's bundle, starts a session, encrypts the marker.
    const br = await server.app.inject({ method: 'GET', url: '/v1/keys/bob', headers: auth(alice.creds) });
    const bundle = br.json() as BundleResponse;
    const d = bundle.devices[0]!;
    const bobAddr = new ProtocolAddress('bob', 1);
    await alice.sessions.processPreKeyBundle(bobAddr, {
      registrationId: d.registrationId,
      deviceId: d.deviceId,
      identityKey: PublicKey.deserialize(bytes(bundle.identityKey)),
      signedPreKeyId: d.signedPreKey.keyId,
      signedPreKey: PublicKey.deserialize(bytes(d.signedPreKey.publicKey)),
      signedPreKeySignature: bytes(d.signedPreKey.signature),
      kyberPreKeyId: d.kyberPreKey.keyId,
      kyberPreKey: KyberPublicKey.deserialize(bytes(d.kyberPreKey.publicKey)),
      kyberPreKeySignature: bytes(d.kyberPreKey.signature),
      preKeyId: d.preKey?.keyId,
      preKey: d.preKey ? PublicKey.deserialize(bytes(d.preKey.publicKey)) : undefined,
    });
    const ct = await alice.sessions.encrypt(bobAddr, new TextEncoder().encode(marker));

    const ca = await Client.connect(url, alice.creds);
    ca.send({ type: 'send', id: 'm1', to: { username: 'bob', deviceId: 1 }, message: { type: ct.type, body: b64(ct.body) } });
    const sent = await ca.next<SentFrame>((f) => f.type === 'sent');
    ca.close();

    // Stored and acknowledged, not yet delivered: search every database file.
    const files = readdirSync(dir).map((f) => readFileSync(join(dir, f)));
    const all = Buffer.concat(files);
    assert.ok(all.includes(Buffer.from(ct.body)), 'the ciphertext itself is in the database files (the search can find things)');
    for (const needle of [marker, Buffer.from(marker).toString('base64'), Buffer.from(marker).toString('hex')]) {
      assert.equal(all.includes(Buffer.from(needle)), false, `found ${needle.slice(0, 8)}… in the database`);
    }

    // Bob receives and decrypts it.
    const cb = await Client.connect(url, bob.creds);
    const m = await cb.next<MessageFrame>((f) => f.type === 'message');
    assert.equal(m.envelope.id, sent.serverId);
    const pt = await bob.sessions.decrypt(new ProtocolAddress('alice', 1), { type: m.envelope.type as 'whisper' | 'prekey', body: bytes(m.envelope.body) });
    assert.equal(new TextDecoder().decode(pt.plaintext), marker);
    cb.send({ type: 'ack', id: m.envelope.id });
    cb.close();

    const log = lines.join('');
    assert.ok(log.length > 0);
    for (const needle of [marker, b64(ct.body), alice.creds.secret, bob.creds.secret]) assert.equal(log.includes(needle), false);
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
