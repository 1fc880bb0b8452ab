// A device of a fresh account driven through the protocol directly (its own sessions, a raw
// WebSocket), as a hostile client would be: it can send any plaintext to any device.
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { nodeBackend } from '@tacit/protocol/node';
import { fromBase64, toBase64, type RegisterRequest } from '@tacit/api';
import { IdentityKeyPair, KyberPublicKey, ProtocolAddress, PublicKey, SessionManager, generateKyberPreKey, generateRegistrationId, generateSignedPreKey, inMemoryStores } from '@tacit/protocol';
import { HttpApi, relayUrl } from '../../src/index.ts';

const backend = nodeBackend();

/** A device of a fresh account driven through the protocol directly, as a hostile client would be. */
export async function rawDevice(server: { url: string }, username: string): Promise<{ username: string; send: (to: string, deviceId: number, plaintext: Uint8Array) => Promise<void>; close: () => void }> {
  const identity = IdentityKeyPair.generate(backend);
  const registrationId = generateRegistrationId(backend);
  const spk = generateSignedPreKey(backend, identity, 1, 0);
  const kyber = generateKyberPreKey(backend, identity, 1, 0);
  const secret = toBase64(backend.randomBytes(32));
  const req: RegisterRequest = {
    username,
    deviceId: 1,
    registrationId,
    identityKey: toBase64(identity.publicKey.serialize()),
    signedPreKey: { keyId: 1, publicKey: toBase64(spk.keyPair.publicKey.serialize()), signature: toBase64(spk.signature) },
    kyberLastResortKey: { keyId: 1, publicKey: toBase64(kyber.keyPair.publicKey.serialize()), signature: toBase64(kyber.signature) },
    preKeys: [],
    kyberPreKeys: [],
    secret,
  };
  const http = new HttpApi(server.url);
  await http.register(req);
  http.setCredentials({ username, deviceId: 1, secret });
  const sessions = new SessionManager(backend, inMemoryStores(identity, registrationId), { now: () => Date.now() });
  const ws = new WebSocket(relayUrl(server.url));
  await new Promise<void>((res, rej) => {
    ws.once('open', () => res());
    ws.once('error', rej);
  });
  let serial = 0;
  const answers = new Map<string, (ok: boolean) => void>();
  let closed = false;
  let ready: () => void = () => undefined;
  const isReady = new Promise<void>((res) => (ready = res));
  ws.on('message', (d) => {
    const f = JSON.parse(d.toString()) as { type: string; id?: string };
    if (f.type === 'ready') ready();
    if ((f.type === 'sent' || f.type === 'error') && f.id !== undefined) answers.get(f.id)?.(f.type === 'sent');
  });
  // A closed socket answers every waiting send with a failure instead of leaving the test hanging.
  ws.on('close', () => {
    closed = true;
    ready();
    for (const answer of answers.values()) answer(false);
  });
  ws.send(JSON.stringify({ type: 'auth', username, deviceId: 1, secret }));
  // Sends go only after the server said `ready`: a send racing the credential check is refused.
  await isReady;
  assert.equal(closed, false, 'the hostile client authenticated');
  return {
    username,
    async send(to, deviceId, plaintext) {
      const addr = new ProtocolAddress(to, deviceId);
      if (!(await sessions.hasSession?.(addr))) {
        const b = await http.bundle(to, deviceId);
        const d = b.devices[0]!;
        const k = (x: string) => fromBase64(x)!;
        await sessions.processPreKeyBundle(addr, {
          registrationId: d.registrationId,
          deviceId,
          identityKey: PublicKey.deserialize(k(b.identityKey)),
          signedPreKeyId: d.signedPreKey.keyId,
          signedPreKey: PublicKey.deserialize(k(d.signedPreKey.publicKey)),
          signedPreKeySignature: k(d.signedPreKey.signature),
          kyberPreKeyId: d.kyberPreKey.keyId,
          kyberPreKey: KyberPublicKey.deserialize(k(d.kyberPreKey.publicKey)),
          kyberPreKeySignature: k(d.kyberPreKey.signature),
          ...(d.preKey ? { preKeyId: d.preKey.keyId, preKey: PublicKey.deserialize(k(d.preKey.publicKey)) } : {}),
        });
      }
      const ct = await sessions.encrypt(addr, plaintext);
      const id = `r${++serial}`;
      assert.equal(closed, false, 'the hostile client is still connected');
      const stored = new Promise<boolean>((res) => answers.set(id, res));
      ws.send(JSON.stringify({ type: 'send', id, to: { username: to, deviceId }, message: { type: ct.type, body: toBase64(ct.body) } }));
      assert.equal(await stored, true);
    },
    close: () => ws.close(),
  };
}
