// Admins (the first account; others named by the operator), their routes, and the team directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MAX_INVITES_PER_REQUEST,
  ROUTES,
  validateAccountsResponse,
  validateDirectoryResponse,
  validateInvitesResponse,
  validateMeResponse,
  validateResetAccountResponse,
} from '@tacit/api';
import { auth, Client, errorCode as code, makeDevice, register, registration, withServer, type Account, type Harness } from './helpers.js';

const get = (h: Harness, url: string, who?: Account) => h.server.app.inject({ method: 'GET', url, ...(who ? { headers: auth(who) } : {}) });
const post = (h: Harness, url: string, who: Account | undefined, payload?: unknown) =>
  h.server.app.inject({ method: 'POST', url, ...(who ? { headers: auth(who) } : {}), ...(payload !== undefined ? { payload: payload as object } : {}) });

function valid<T>(validator: (v: unknown) => { ok: true; value: T } | { ok: false; path: string; reason: string }, body: string): T {
  const r = validator(JSON.parse(body));
  assert.ok(r.ok, r.ok ? '' : `${r.path}: ${r.reason}`);
  return r.value;
}

test('the first account is an admin, later ones are not; GET /v1/me says so; admin routes refuse others', () =>
  withServer(async (h) => {
    const ada = await register(h, { name: 'ada' });
    const bob = await register(h, { name: 'bob' });
    assert.deepEqual(valid(validateMeResponse, (await get(h, ROUTES.me, ada)).body), { username: 'ada', deviceId: 1, admin: true, directory: false });
    assert.deepEqual(valid(validateMeResponse, (await get(h, ROUTES.me, bob)).body), { username: 'bob', deviceId: 1, admin: false, directory: false });
    for (const [method, url] of [
      ['POST', ROUTES.adminInvites],
      ['GET', ROUTES.adminAccounts],
      ['POST', ROUTES.adminReset('ada')],
    ] as const) {
      const r = await h.server.app.inject({ method, url, headers: auth(bob) });
      assert.equal(r.statusCode, 403, `${method} ${url}`);
      assert.equal(code(r.body), 'FORBIDDEN');
      const anon = await h.server.app.inject({ method, url });
      assert.equal(anon.statusCode, 401);
    }
    // Named by the operator (the same store call the `admin` command makes): now bob may.
    assert.equal(await h.server.store.setAdmin('bob', true), true);
    assert.equal((await get(h, ROUTES.adminAccounts, bob)).statusCode, 200);
  }));

test('admins create invite codes that register accounts, once each; the count is bounded', () =>
  withServer(
    async (h) => {
      const first = await h.server.createInvite();
      const adaDevice = makeDevice();
      assert.equal((await h.server.app.inject({ method: 'POST', url: ROUTES.accounts, payload: registration('ada', adaDevice, first) })).statusCode, 201);
      const ada: Account = { username: 'ada', deviceId: 1, secret: adaDevice.secret, device: adaDevice };

      const one = await post(h, ROUTES.adminInvites, ada);
      assert.equal(one.statusCode, 201);
      assert.equal(valid(validateInvitesResponse, one.body).invites.length, 1, 'one by default');
      const three = await post(h, ROUTES.adminInvites, ada, { count: 3 });
      const invites = valid(validateInvitesResponse, three.body).invites;
      assert.equal(invites.length, 3);
      assert.equal(new Set(invites.map((i) => i.code)).size, 3);
      for (const i of invites) assert.ok(i.expiresAt > Date.now());
      for (const bad of [{ count: 0 }, { count: MAX_INVITES_PER_REQUEST + 1 }, { count: 'two' }, { other: 1 }]) {
        const r = await post(h, ROUTES.adminInvites, ada, bad);
        assert.equal(r.statusCode, 400, JSON.stringify(bad));
        assert.equal(code(r.body), 'INVALID_REQUEST');
      }
      const use = (name: string, c: string) => h.server.app.inject({ method: 'POST', url: ROUTES.accounts, payload: registration(name, makeDevice(), c) });
      assert.equal((await use('carl', invites[0]!.code)).statusCode, 201);
      const again = await use('dora', invites[0]!.code);
      assert.equal(again.statusCode, 403, 'single use');
      assert.equal(code(again.body), 'INVITE_INVALID');
      assert.equal((await use('dora', invites[1]!.code)).statusCode, 201);
    },
    { registration: 'invite' },
  ));

test('admins list accounts with their devices', () =>
  withServer(async (h) => {
    const ada = await register(h, { name: 'ada' });
    await register(h, { name: 'bob' });
    const r = valid(validateAccountsResponse, (await get(h, ROUTES.adminAccounts, ada)).body);
    assert.equal(r.truncated, false);
    assert.deepEqual(
      r.accounts.map((a) => [a.username, a.admin, a.devices.map((d) => d.deviceId)]),
      [
        ['ada', true, [1]],
        ['bob', false, [1]],
      ],
    );
    assert.ok(r.accounts.every((a) => a.createdAt > 0 && a.devices[0]!.registrationId > 0));
  }));

test('an admin resets an account: as reset-account does, plus its open socket closes at once; not one\'s own', () =>
  withServer(async (h) => {
    const ada = await register(h, { name: 'ada' });
    const bob = await register(h, { name: 'bob', preKeys: 3, kyberPreKeys: 2 });
    const socket = await Client.connect(h.wsUrl, bob);
    const r = await post(h, ROUTES.adminReset('BOB'), ada);
    assert.equal(r.statusCode, 200, r.body);
    const reset = valid(validateResetAccountResponse, r.body);
    assert.deepEqual(reset.removed, { devices: 1, preKeys: 3, kyberPreKeys: 2, messages: 0 });
    assert.equal(reset.username, 'bob');
    assert.equal((await socket.closed).code, 4401, 'closed by the reset, not by a later heartbeat');
    assert.equal((await get(h, ROUTES.keyCount, bob)).statusCode, 401, 'the old secret no longer works');
    // The name is free for the invite the reset returned (open registration ignores it; the
    // invite route is covered above), and bob is an ordinary account again.
    const again = await h.server.app.inject({ method: 'POST', url: ROUTES.accounts, payload: registration('bob', makeDevice(), reset.invite.code) });
    assert.equal(again.statusCode, 201);
    assert.equal((await h.server.store.getAccount('bob'))?.admin, false);

    const self = await post(h, ROUTES.adminReset('ada'), ada);
    assert.equal(self.statusCode, 403);
    assert.equal(code(self.body), 'FORBIDDEN');
    const nobody = await post(h, ROUTES.adminReset('nobody'), ada);
    assert.equal(nobody.statusCode, 404);
    const bad = await post(h, '/v1/admin/accounts/no%20such!/reset', ada);
    assert.equal(bad.statusCode, 400);
  }));

test('directory: on by default for invite-only servers, off for open ones unless enabled; lists usernames sorted', async () => {
  await withServer(
    async (h) => {
      const accounts: Account[] = [];
      for (const name of ['zoe', 'amy']) {
        const c = await h.server.createInvite();
        const device = makeDevice();
        assert.equal((await h.server.app.inject({ method: 'POST', url: ROUTES.accounts, payload: registration(name, device, c) })).statusCode, 201);
        accounts.push({ username: name, deviceId: 1, secret: device.secret, device });
      }
      // Any signed-in device may read it (admin or not); nobody else.
      for (const who of accounts) {
        assert.deepEqual(valid(validateDirectoryResponse, (await get(h, ROUTES.directory, who)).body), { usernames: ['amy', 'zoe'], truncated: false });
      }
      assert.equal((await get(h, ROUTES.directory)).statusCode, 401);
    },
    { registration: 'invite' },
  );
  await withServer(async (h) => {
    const amy = await register(h, { name: 'amy' });
    const r = await get(h, ROUTES.directory, amy);
    assert.equal(r.statusCode, 403);
    assert.equal(code(r.body), 'FORBIDDEN');
  });
  await withServer(
    async (h) => {
      const zoe = await register(h, { name: 'zoe' });
      await register(h, { name: 'amy' });
      assert.deepEqual(valid(validateDirectoryResponse, (await get(h, ROUTES.directory, zoe)).body), { usernames: ['amy', 'zoe'], truncated: false });
      assert.equal(valid(validateMeResponse, (await get(h, ROUTES.me, zoe)).body).directory, true);
    },
    { directory: true },
  );
});
