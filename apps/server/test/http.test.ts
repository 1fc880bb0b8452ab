import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { authorizationHeader, toBase64, MAX_KEYS_PER_LIST, MAX_ONE_TIME_KEYS_HELD, type BundleResponse, type ErrorBody } from '@tacit/api';
import { buildServer, SqliteStore } from '../src/index.js';
import { auth, b64, errorCode as code, makeDevice, register, registration, signedKyber, start, withServer } from './helpers.js';

test('GET /healthz', () =>
  withServer(async (h) => {
    const r = await h.server.app.inject({ method: 'GET', url: '/healthz' });
    assert.equal(r.statusCode, 200);
    assert.deepEqual(r.json(), { ok: true });
    // And over a real socket.
    const f = await fetch(`http://127.0.0.1:${h.port}/healthz`);
    assert.equal(f.status, 200);
  }));

test('unknown route → 404 NOT_FOUND', () =>
  withServer(async (h) => {
    const r = await h.server.app.inject({ method: 'GET', url: '/v1/nope' });
    assert.equal(r.statusCode, 404);
    assert.equal(code(r.body), 'NOT_FOUND');
  }));

test('registration: success, case-insensitive uniqueness, reserved names', () =>
  withServer(async (h) => {
    const d = makeDevice({ preKeys: 2, kyberPreKeys: 2 });
    const r = await h.server.app.inject({ method: 'POST', url: '/v1/accounts', payload: registration('Carol', d) });
    assert.equal(r.statusCode, 201);
    assert.deepEqual(r.json(), { username: 'carol', deviceId: 1 });
    const again = await h.server.app.inject({ method: 'POST', url: '/v1/accounts', payload: registration('CAROL', makeDevice()) });
    assert.equal(again.statusCode, 409);
    assert.equal(code(again.body), 'USERNAME_TAKEN');
    const reserved = await h.server.app.inject({ method: 'POST', url: '/v1/accounts', payload: registration('count', makeDevice()) });
    assert.equal(reserved.statusCode, 409);
    // The first account still authenticates with its secret.
    const c = await h.server.app.inject({ method: 'GET', url: '/v1/keys/count', headers: auth({ username: 'carol', deviceId: 1, secret: d.secret }) });
    assert.deepEqual(c.json(), { preKeys: 2, kyberPreKeys: 2 });
  }));

test('registration: validation errors are 400 INVALID_REQUEST naming the field; nothing is stored', () =>
  withServer(async (h) => {
    const d = makeDevice();
    const bad: [string, (r: Record<string, unknown>) => void][] = [
      ['$.username', (r) => (r.username = 'x')],
      ['$.username', (r) => (r.username = 'bad name')],
      ['$.deviceId', (r) => (r.deviceId = 2)],
      ['$.identityKey', (r) => (r.identityKey = b64(randomBytes(33)).replace(/^./, 'A'))],
      ['$.secret', (r) => (r.secret = b64(randomBytes(16)))],
      ['$.preKeys', (r) => (r.preKeys = Array.from({ length: MAX_KEYS_PER_LIST + 1 }, (_, i) => ({ keyId: i, publicKey: r.identityKey })))],
      ['$.registrationId', (r) => (r.registrationId = '7')],
      ['$.extra', (r) => (r.extra = 1)],
    ];
    for (const [path, mutate] of bad) {
      const body = registration('dave', d) as unknown as Record<string, unknown>;
      mutate(body);
      const r = await h.server.app.inject({ method: 'POST', url: '/v1/accounts', payload: body });
      assert.equal(r.statusCode, 400, path);
      const e = (r.json() as ErrorBody).error;
      assert.equal(e.code, 'INVALID_REQUEST');
      assert.ok(e.message.startsWith(path), `${path}: ${e.message}`);
    }
    for (const payload of ['{', '[]', 'null', '"x"']) {
      const r = await h.server.app.inject({ method: 'POST', url: '/v1/accounts', payload, headers: { 'content-type': 'application/json' } });
      assert.equal(r.statusCode, 400);
      assert.equal(code(r.body), 'INVALID_REQUEST');
    }
    const text = await h.server.app.inject({ method: 'POST', url: '/v1/accounts', payload: 'hello', headers: { 'content-type': 'text/plain' } });
    assert.equal(text.statusCode, 400);
    assert.equal(await h.server.store.countAccounts(), 0);
  }));

test('registration: every signature is verified (422 BAD_SIGNATURE)', () =>
  withServer(async (h) => {
    const other = makeDevice();
    const cases: [string, (r: ReturnType<typeof registration>) => void][] = [
      ['$.signedPreKey', (r) => (r.signedPreKey = other.keys.signedPreKey)],
      ['$.kyberLastResortKey', (r) => (r.kyberLastResortKey = other.keys.kyberLastResortKey)],
      ['$.kyberPreKeys[1]', (r) => (r.kyberPreKeys[1] = { ...signedKyber(other.identity, 99) })],
      ['$.signedPreKey', (r) => (r.signedPreKey = { ...r.signedPreKey, keyId: r.signedPreKey.keyId, signature: b64(new Uint8Array(64)) })],
    ];
    for (const [path, mutate] of cases) {
      const d = makeDevice({ kyberPreKeys: 3 });
      const body = registration('erin', d);
      mutate(body);
      const r = await h.server.app.inject({ method: 'POST', url: '/v1/accounts', payload: body });
      assert.equal(r.statusCode, 422, path);
      const e = (r.json() as ErrorBody).error;
      assert.equal(e.code, 'BAD_SIGNATURE');
      assert.ok(e.message.startsWith(path), e.message);
    }
    assert.equal(await h.server.store.countAccounts(), 0);
  }));

test('registration by invite: required, single use, unknown refused', async () => {
  const h = await start({ registration: 'invite' });
  try {
    const noCode = await h.server.app.inject({ method: 'POST', url: '/v1/accounts', payload: registration('fay', makeDevice()) });
    assert.equal(noCode.statusCode, 403);
    assert.equal(code(noCode.body), 'INVITE_INVALID');
    const wrong = await h.server.app.inject({ method: 'POST', url: '/v1/accounts', payload: registration('fay', makeDevice(), 'nope') });
    assert.equal(code(wrong.body), 'INVITE_INVALID');
    const invite = await h.server.createInvite();
    const ok = await h.server.app.inject({ method: 'POST', url: '/v1/accounts', payload: registration('fay', makeDevice(), invite) });
    assert.equal(ok.statusCode, 201);
    const reused = await h.server.app.inject({ method: 'POST', url: '/v1/accounts', payload: registration('gus', makeDevice(), invite) });
    assert.equal(reused.statusCode, 403);
    // A taken username does not burn the invite.
    const invite2 = await h.server.createInvite();
    const taken = await h.server.app.inject({ method: 'POST', url: '/v1/accounts', payload: registration('FAY', makeDevice(), invite2) });
    assert.equal(code(taken.body), 'USERNAME_TAKEN');
    const ok2 = await h.server.app.inject({ method: 'POST', url: '/v1/accounts', payload: registration('gus', makeDevice(), invite2) });
    assert.equal(ok2.statusCode, 201);
  } finally {
    await h.close();
  }
});

test('invites expire', async () => {
  let now = 1_000_000;
  const h = await start({ registration: 'invite', now: () => now, limits: { inviteTtlMs: 1000 } });
  try {
    const invite = await h.server.createInvite();
    now += 1001;
    const r = await h.server.app.inject({ method: 'POST', url: '/v1/accounts', payload: registration('hal', makeDevice(), invite) });
    assert.equal(code(r.body), 'INVITE_INVALID');
  } finally {
    await h.close();
  }
});

test('registration rate limit per IP (429 RATE_LIMITED)', () =>
  withServer(
    async (h) => {
      for (let i = 0; i < 2; i++) await register(h);
      const r = await h.server.app.inject({ method: 'POST', url: '/v1/accounts', payload: registration('ivy', makeDevice()) });
      assert.equal(r.statusCode, 429);
      assert.equal(code(r.body), 'RATE_LIMITED');
    },
    { limits: { registrationBurst: 2 } },
  ));

test('request body over the limit → 413 PAYLOAD_TOO_LARGE', () =>
  withServer(
    async (h) => {
      const r = await h.server.app.inject({ method: 'POST', url: '/v1/accounts', payload: registration('jay', makeDevice({ kyberPreKeys: 5 })) });
      assert.equal(r.statusCode, 413);
      assert.equal(code(r.body), 'PAYLOAD_TOO_LARGE');
    },
    { limits: { maxRequestBodyBytes: 4096 } },
  ));

test('authentication: missing, malformed, wrong secret, wrong device, unknown user → 401', () =>
  withServer(async (h) => {
    const a = await register(h);
    const b = await register(h);
    const tries: Record<string, string | undefined>[] = [
      {},
      { authorization: 'Basic !!!' },
      { authorization: 'Bearer ' + a.secret },
      { authorization: authorizationHeader({ ...a, secret: b.secret }) },
      { authorization: authorizationHeader({ ...a, deviceId: 2 }) },
      { authorization: authorizationHeader({ ...a, username: 'nobody' }) },
      { authorization: 'Basic ' + toBase64(new TextEncoder().encode(`${a.username}:${a.secret}`)) },
    ];
    for (const url of ['/v1/keys/count', `/v1/keys/${b.username}`, `/v1/devices/${b.username}`]) {
      for (const headers of tries) {
        const r = await h.server.app.inject({ method: 'GET', url, headers: headers as Record<string, string> });
        assert.equal(r.statusCode, 401, `${url} ${JSON.stringify(headers)}`);
        assert.equal(code(r.body), 'UNAUTHORIZED');
      }
    }
    for (const [method, url] of [['PUT', '/v1/keys'], ['POST', '/v1/ws-ticket'], ['POST', '/v1/devices'], ['DELETE', '/v1/devices/1']] as const) {
      const r = await h.server.app.inject({ method, url, headers: { authorization: authorizationHeader({ ...a, secret: b.secret }) }, payload: {} });
      assert.equal(r.statusCode, 401, url);
    }
  }));

test('keys: upload replaces one-time keys of the authenticated device only; counts are per device', () =>
  withServer(async (h) => {
    const a = await register(h, { preKeys: 5, kyberPreKeys: 5 });
    const b = await register(h, { preKeys: 3, kyberPreKeys: 1 });
    const fresh = makeDevice({ identity: a.device.identity, preKeys: 7, kyberPreKeys: 2, firstKeyId: 100 });
    const up = await h.server.app.inject({ method: 'PUT', url: '/v1/keys', headers: auth(a), payload: { preKeys: fresh.keys.preKeys, kyberPreKeys: fresh.keys.kyberPreKeys } });
    assert.equal(up.statusCode, 204);
    const ca = await h.server.app.inject({ method: 'GET', url: '/v1/keys/count', headers: auth(a) });
    assert.deepEqual(ca.json(), { preKeys: 7, kyberPreKeys: 2 });
    const cb = await h.server.app.inject({ method: 'GET', url: '/v1/keys/count', headers: auth(b) });
    assert.deepEqual(cb.json(), { preKeys: 3, kyberPreKeys: 1 });
    // New signed pre-key and last-resort key are served in bundles.
    const up2 = await h.server.app.inject({ method: 'PUT', url: '/v1/keys', headers: auth(a), payload: { signedPreKey: fresh.keys.signedPreKey, kyberLastResortKey: fresh.keys.kyberLastResortKey } });
    assert.equal(up2.statusCode, 204);
    const bundle = (await h.server.app.inject({ method: 'GET', url: `/v1/keys/${a.username}/1`, headers: auth(b) })).json() as BundleResponse;
    assert.deepEqual(bundle.devices[0]!.signedPreKey, fresh.keys.signedPreKey);
    assert.equal(bundle.devices[0]!.preKey?.keyId, 100);
  }));

test('keys: upload validation and signatures', () =>
  withServer(async (h) => {
    const a = await register(h, { preKeys: 1 });
    const other = makeDevice({ kyberPreKeys: 1 });
    const empty = await h.server.app.inject({ method: 'PUT', url: '/v1/keys', headers: auth(a), payload: {} });
    assert.equal(empty.statusCode, 400);
    const dup = await h.server.app.inject({
      method: 'PUT',
      url: '/v1/keys',
      headers: auth(a),
      payload: { preKeys: [a.device.keys.preKeys[0], a.device.keys.preKeys[0]] },
    });
    assert.equal(dup.statusCode, 400);
    // Signed by someone else's identity key.
    for (const payload of [{ signedPreKey: other.keys.signedPreKey }, { kyberLastResortKey: other.keys.kyberLastResortKey }, { kyberPreKeys: other.keys.kyberPreKeys }]) {
      const r = await h.server.app.inject({ method: 'PUT', url: '/v1/keys', headers: auth(a), payload });
      assert.equal(r.statusCode, 422);
      assert.equal(code(r.body), 'BAD_SIGNATURE');
    }
    const c = await h.server.app.inject({ method: 'GET', url: '/v1/keys/count', headers: auth(a) });
    assert.deepEqual(c.json(), { preKeys: 1, kyberPreKeys: 0 });
  }));

test('keys: POST /v1/keys/one-time adds to the stock of the authenticated device; validated, signatures verified, bounded by MAX_ONE_TIME_KEYS_HELD', () =>
  withServer(async (h) => {
    const a = await register(h, { preKeys: 2, kyberPreKeys: 2 });
    const count = async () => (await h.server.app.inject({ method: 'GET', url: '/v1/keys/count', headers: auth(a) })).json() as unknown;
    const add = (payload: unknown) => h.server.app.inject({ method: 'POST', url: '/v1/keys/one-time', headers: auth(a), payload: payload as Record<string, unknown> });
    const more = makeDevice({ identity: a.device.identity, preKeys: MAX_KEYS_PER_LIST, kyberPreKeys: 3, firstKeyId: 100 });
    assert.equal((await add({ kyberPreKeys: more.keys.kyberPreKeys })).statusCode, 204);
    assert.deepEqual(await count(), { preKeys: 2, kyberPreKeys: 5 });
    // The same part again (a retry): nothing more.
    assert.equal((await add({ kyberPreKeys: more.keys.kyberPreKeys })).statusCode, 204);
    assert.deepEqual(await count(), { preKeys: 2, kyberPreKeys: 5 });
    // Refused, nothing added: empty, a signed key (those are replaced, PUT /v1/keys), duplicate ids, another identity's signature.
    for (const payload of [{}, { preKeys: [] }, { signedPreKey: more.keys.signedPreKey }, { preKeys: [more.keys.preKeys[0], more.keys.preKeys[0]] }]) {
      const r = await add(payload);
      assert.equal(r.statusCode, 400, JSON.stringify(Object.keys(payload)));
      assert.equal(code(r.body), 'INVALID_REQUEST');
    }
    const bad = await add({ kyberPreKeys: makeDevice({ kyberPreKeys: 1, firstKeyId: 900 }).keys.kyberPreKeys });
    assert.equal(bad.statusCode, 422);
    assert.equal(code(bad.body), 'BAD_SIGNATURE');
    assert.deepEqual(await count(), { preKeys: 2, kyberPreKeys: 5 });
    // Up to the bound, then TOO_MANY_KEYS with nothing added.
    assert.equal((await add({ preKeys: more.keys.preKeys })).statusCode, 204);
    const next = makeDevice({ identity: a.device.identity, preKeys: MAX_ONE_TIME_KEYS_HELD - 2 - MAX_KEYS_PER_LIST + 1, firstKeyId: 300 });
    const full = await add({ preKeys: next.keys.preKeys });
    assert.equal(full.statusCode, 409);
    assert.equal(code(full.body), 'TOO_MANY_KEYS');
    assert.deepEqual(await count(), { preKeys: 2 + MAX_KEYS_PER_LIST, kyberPreKeys: 5 });
    const unauth = await h.server.app.inject({ method: 'POST', url: '/v1/keys/one-time', payload: { preKeys: next.keys.preKeys.slice(0, 1) } });
    assert.equal(unauth.statusCode, 401);
  }));

test('bundles: one-time keys handed out once, then without EC pre-key and with the last-resort Kyber key', () =>
  withServer(
    async (h) => {
      const a = await register(h, { preKeys: 2, kyberPreKeys: 1 });
      const b = await register(h);
      const get = async () => (await h.server.app.inject({ method: 'GET', url: `/v1/keys/${a.username.toUpperCase()}`, headers: auth(b) })).json() as BundleResponse;
      const first = await get();
      assert.equal(first.username, a.username);
      assert.equal(first.identityKey, b64(a.device.identity.publicKey.serialize()));
      const d1 = first.devices[0]!;
      assert.equal(d1.deviceId, 1);
      assert.equal(d1.registrationId, a.device.keys.registrationId);
      assert.deepEqual(d1.preKey, a.device.keys.preKeys[0]);
      assert.deepEqual(d1.kyberPreKey, a.device.keys.kyberPreKeys[0]);
      assert.equal(d1.kyberPreKeyIsLastResort, false);
      const second = (await get()).devices[0]!;
      assert.deepEqual(second.preKey, a.device.keys.preKeys[1]);
      assert.equal(second.kyberPreKeyIsLastResort, true);
      assert.deepEqual(second.kyberPreKey, a.device.keys.kyberLastResortKey);
      const third = (await get()).devices[0]!;
      assert.equal(third.preKey, undefined);
      const counts = await h.server.app.inject({ method: 'GET', url: '/v1/keys/count', headers: auth(a) });
      assert.deepEqual(counts.json(), { preKeys: 0, kyberPreKeys: 0 });
      const missing = await h.server.app.inject({ method: 'GET', url: '/v1/keys/nobody', headers: auth(b) });
      assert.equal(missing.statusCode, 404);
      const noDevice = await h.server.app.inject({ method: 'GET', url: `/v1/keys/${a.username}/9`, headers: auth(b) });
      assert.equal(noDevice.statusCode, 404);
      const badDevice = await h.server.app.inject({ method: 'GET', url: `/v1/keys/${a.username}/x`, headers: auth(b) });
      assert.equal(badDevice.statusCode, 400);
      const badName = await h.server.app.inject({ method: 'GET', url: `/v1/keys/a.b`, headers: auth(b) });
      assert.equal(badName.statusCode, 400);
    },
    { limits: { bundleFetchBurst: 100 } },
  ));

test('bundles: 50 parallel fetches of 20 one-time keys give 20 distinct keys and 30 without', () =>
  withServer(
    async (h) => {
      const a = await register(h, { preKeys: 20, kyberPreKeys: 20 });
      const requesters = await Promise.all([register(h), register(h), register(h)]);
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          fetch(`http://127.0.0.1:${h.port}/v1/keys/${a.username}`, { headers: auth(requesters[i % 3]!) }).then((r) => r.json() as Promise<BundleResponse>),
        ),
      );
      const ec = results.map((r) => r.devices[0]!.preKey?.keyId).filter((x) => x !== undefined);
      const kyber = results.filter((r) => !r.devices[0]!.kyberPreKeyIsLastResort).map((r) => r.devices[0]!.kyberPreKey.keyId);
      assert.equal(ec.length, 20);
      assert.equal(new Set(ec).size, 20);
      assert.equal(kyber.length, 20);
      assert.equal(new Set(kyber).size, 20);
      assert.equal(results.filter((r) => r.devices[0]!.preKey === undefined).length, 30);
      assert.equal(results.filter((r) => r.devices[0]!.kyberPreKeyIsLastResort).length, 30);
    },
    { limits: { bundleFetchBurst: 50, registrationBurst: 100 } },
  ));

test('bundles: rate limited per (requester, target)', () =>
  withServer(
    async (h) => {
      const a = await register(h);
      const b = await register(h);
      const c = await register(h);
      const get = (who: typeof a, target: string) => h.server.app.inject({ method: 'GET', url: `/v1/keys/${target}`, headers: auth(who) });
      for (let i = 0; i < 3; i++) assert.equal((await get(b, a.username)).statusCode, 200);
      const limited = await get(b, a.username);
      assert.equal(limited.statusCode, 429);
      assert.equal(code(limited.body), 'RATE_LIMITED');
      // Another target, and another requester, are unaffected.
      assert.equal((await get(b, c.username)).statusCode, 200);
      assert.equal((await get(c, a.username)).statusCode, 200);
    },
    { limits: { bundleFetchBurst: 3 } },
  ));

test('devices: add, list, use, remove; limits', () =>
  withServer(
    async (h) => {
      const a = await register(h, { preKeys: 1 });
      const b = await register(h);
      const d2 = makeDevice({ identity: a.device.identity, preKeys: 1 });
      const add = await h.server.app.inject({ method: 'POST', url: '/v1/devices', headers: auth(a), payload: { ...d2.keys, secret: d2.secret } });
      assert.equal(add.statusCode, 201);
      assert.deepEqual(add.json(), { username: a.username, deviceId: 2 });
      const a2 = { username: a.username, deviceId: 2, secret: d2.secret };
      const counts = await h.server.app.inject({ method: 'GET', url: '/v1/keys/count', headers: auth(a2) });
      assert.deepEqual(counts.json(), { preKeys: 1, kyberPreKeys: 0 });
      const list = await h.server.app.inject({ method: 'GET', url: `/v1/devices/${a.username}`, headers: auth(b) });
      assert.deepEqual(list.json(), {
        username: a.username,
        identityKey: b64(a.device.identity.publicKey.serialize()),
        devices: [
          { deviceId: 1, registrationId: a.device.keys.registrationId },
          { deviceId: 2, registrationId: d2.keys.registrationId },
        ],
      });
      const bundle = (await h.server.app.inject({ method: 'GET', url: `/v1/keys/${a.username}`, headers: auth(b) })).json() as BundleResponse;
      assert.deepEqual(bundle.devices.map((d) => d.deviceId), [1, 2]);
      // A device signed by a different identity is refused.
      const stranger = makeDevice();
      const bad = await h.server.app.inject({ method: 'POST', url: '/v1/devices', headers: auth(a), payload: { ...stranger.keys, secret: stranger.secret } });
      assert.equal(bad.statusCode, 422);
      // Limit: 2 devices.
      const d3 = makeDevice({ identity: a.device.identity });
      const tooMany = await h.server.app.inject({ method: 'POST', url: '/v1/devices', headers: auth(a), payload: { ...d3.keys, secret: d3.secret } });
      assert.equal(tooMany.statusCode, 409);
      assert.equal(code(tooMany.body), 'TOO_MANY_DEVICES');
      // b cannot remove a's device (it removes only within its own account: b has no device 2).
      const notMine = await h.server.app.inject({ method: 'DELETE', url: '/v1/devices/2', headers: auth(b) });
      assert.equal(notMine.statusCode, 404);
      const del = await h.server.app.inject({ method: 'DELETE', url: '/v1/devices/2', headers: auth(a) });
      assert.equal(del.statusCode, 204);
      const gone = await h.server.app.inject({ method: 'GET', url: '/v1/keys/count', headers: auth(a2) });
      assert.equal(gone.statusCode, 401);
      const badId = await h.server.app.inject({ method: 'DELETE', url: '/v1/devices/0', headers: auth(a) });
      assert.equal(badId.statusCode, 400);
      // A device may remove itself with its own credentials (signing out); it frees its place.
      const d3b = makeDevice({ identity: a.device.identity });
      const add3 = await h.server.app.inject({ method: 'POST', url: '/v1/devices', headers: auth(a), payload: { ...d3b.keys, secret: d3b.secret } });
      assert.equal(add3.statusCode, 201);
      const a3 = { username: a.username, deviceId: (add3.json() as { deviceId: number }).deviceId, secret: d3b.secret };
      const self = await h.server.app.inject({ method: 'DELETE', url: `/v1/devices/${a3.deviceId}`, headers: auth(a3) });
      assert.equal(self.statusCode, 204);
      assert.equal((await h.server.app.inject({ method: 'GET', url: '/v1/keys/count', headers: auth(a3) })).statusCode, 401);
      const after = await h.server.app.inject({ method: 'GET', url: `/v1/devices/${a.username}`, headers: auth(b) });
      assert.deepEqual((after.json() as { devices: { deviceId: number }[] }).devices.map((d) => d.deviceId), [1]);
      // The last device is never removed (an old or hostile client may ask): 409 LAST_DEVICE, it still works.
      const last = await h.server.app.inject({ method: 'DELETE', url: '/v1/devices/1', headers: auth(a) });
      assert.equal(last.statusCode, 409);
      assert.equal(code(last.body), 'LAST_DEVICE');
      assert.equal((await h.server.app.inject({ method: 'GET', url: '/v1/keys/count', headers: auth(a) })).statusCode, 200);
    },
    { limits: { maxDevicesPerAccount: 2, bundleFetchBurst: 100 } },
  ));

test('tickets: issued to an authenticated device, single use (see relay tests)', () =>
  withServer(async (h) => {
    const a = await register(h);
    // With a JSON content type and no body, or `{}`, too.
    for (const payload of ['', '{}']) {
      const r = await h.server.app.inject({ method: 'POST', url: '/v1/ws-ticket', headers: { ...auth(a), 'content-type': 'application/json' }, payload });
      assert.equal(r.statusCode, 200, JSON.stringify(payload));
    }
    const r = await h.server.app.inject({ method: 'POST', url: '/v1/ws-ticket', headers: auth(a) });
    assert.equal(r.statusCode, 200);
    const t = r.json() as { ticket: string; expiresAt: number };
    assert.match(t.ticket, /^[A-Za-z0-9_-]{43}$/);
    assert.ok(t.expiresAt > Date.now());
  }));

test('request logs carry no secret, ticket, key or Authorization header', async () => {
  const lines: string[] = [];
  const store = new SqliteStore({ path: ':memory:' });
  const server = await buildServer({ store, registration: 'open', logger: { level: 'info', stream: { write: (l: string) => void lines.push(l) } } });
  try {
    const d = makeDevice({ preKeys: 1 });
    await server.app.inject({ method: 'POST', url: '/v1/accounts', payload: registration('kim', d) });
    await server.app.inject({ method: 'GET', url: '/v1/keys/count', headers: auth({ username: 'kim', deviceId: 1, secret: d.secret }) });
    const t = await server.app.inject({ method: 'POST', url: '/v1/ws-ticket', headers: auth({ username: 'kim', deviceId: 1, secret: d.secret }) });
    const ticket = (t.json() as { ticket: string }).ticket;
    const log = lines.join('');
    assert.ok(log.includes('/v1/ws-ticket'), 'requests are logged');
    for (const secret of [d.secret, ticket, d.keys.preKeys[0]!.publicKey, authorizationHeader({ username: 'kim', deviceId: 1, secret: d.secret })]) {
      assert.ok(!log.includes(secret));
    }
  } finally {
    await server.close();
  }
});

test('request logs name the route pattern, never a path that names a user', async () => {
  const lines: string[] = [];
  const store = new SqliteStore({ path: ':memory:' });
  const server = await buildServer({ store, registration: 'open', logger: { level: 'info', stream: { write: (l: string) => void lines.push(l) } } });
  try {
    const d = makeDevice();
    await server.app.inject({ method: 'POST', url: '/v1/accounts', payload: registration('zelda', d) });
    const who = auth({ username: 'zelda', deviceId: 1, secret: d.secret });
    assert.equal((await server.app.inject({ method: 'GET', url: '/v1/keys/zelda/1', headers: who })).statusCode, 200);
    assert.equal((await server.app.inject({ method: 'GET', url: '/v1/devices/zelda', headers: who })).statusCode, 200);
    assert.equal((await server.app.inject({ method: 'GET', url: '/v1/no/such/route/zelda?ticket=zelda' })).statusCode, 404);
    const requests = lines.map((l) => JSON.parse(l) as { msg: string; req?: { method: string; route: string } }).filter((l) => l.msg === 'incoming request');
    assert.deepEqual(
      requests.map((l) => `${l.req?.method} ${l.req?.route}`),
      ['POST /v1/accounts', 'GET /v1/keys/:username/:deviceId', 'GET /v1/devices/:target', 'GET (no route)'],
    );
    assert.ok(!lines.join('').includes('zelda'), 'no log line names the user');
  } finally {
    await server.close();
  }
});
