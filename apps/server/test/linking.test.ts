/**
 * Linking devices through a real server (HTTP in-process, provisioning channel over a real
 * socket): link tokens, the provisioning relay, registration with a token, the device list,
 * removal, and hostile input (expired, reused or guessed tokens, a channel nobody listens on,
 * keys of another identity). Every refusal changes nothing.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import WebSocket from 'ws';
import type { DevicesResponse, LinkTokenResponse, ProvisioningFrame } from '@tacit/api';
import { auth, b64, Client, errorCode, makeDevice, register, withServer, type Harness, type TestDevice } from './helpers.js';

function linkBody(token: string, identityKey: string, d: TestDevice, name = 'laptop') {
  return { token, identityKey, name, secret: d.secret, ...d.keys };
}

/** Opens a provisioning channel; resolves with its address and a way to await the next frame. */
async function channel(h: Harness): Promise<{ ws: WebSocket; address: string; next: () => Promise<ProvisioningFrame>; closed: Promise<number> }> {
  const ws = new WebSocket(`ws://127.0.0.1:${h.port}/v1/provisioning`);
  const frames: ProvisioningFrame[] = [];
  const waiters: ((f: ProvisioningFrame) => void)[] = [];
  ws.on('message', (d) => {
    const f = JSON.parse(d.toString()) as ProvisioningFrame;
    const w = waiters.shift();
    if (w) w(f);
    else frames.push(f);
  });
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  ws.on('error', () => undefined);
  const next = () => new Promise<ProvisioningFrame>((resolve) => (frames.length > 0 ? resolve(frames.shift()!) : waiters.push(resolve)));
  const first = await next();
  assert.equal(first.type, 'address');
  return { ws, address: (first as { address: string }).address, next, closed };
}

test('linking: token, provisioning relay, registration under the account, device list, removal', () =>
  withServer(async (h) => {
    const a = await register(h, { preKeys: 1 });
    const idk = b64(a.device.identity.publicKey.serialize());
    // The new device listens; the existing one gets a token and sends the (opaque) message.
    const ch = await channel(h);
    const tok = await h.server.app.inject({ method: 'POST', url: '/v1/devices/link-token', headers: auth(a) });
    assert.equal(tok.statusCode, 200);
    const { token } = tok.json() as LinkTokenResponse;
    const blob = b64(new Uint8Array([1, 2, 3, 4]));
    const put = await h.server.app.inject({ method: 'PUT', url: `/v1/provisioning/${ch.address}`, headers: auth(a), payload: { body: blob } });
    assert.equal(put.statusCode, 204);
    assert.deepEqual(await ch.next(), { type: 'provision', body: blob });
    assert.equal(await ch.closed, 1000);
    // The channel is gone: a second message finds nobody.
    const again = await h.server.app.inject({ method: 'PUT', url: `/v1/provisioning/${ch.address}`, headers: auth(a), payload: { body: blob } });
    assert.equal(again.statusCode, 404);

    const d2 = makeDevice({ identity: a.device.identity, preKeys: 1 });
    // Keys signed by another identity: refused before the token is spent.
    const stranger = makeDevice({ preKeys: 1 });
    const wrong = await h.server.app.inject({ method: 'POST', url: '/v1/devices/link', payload: linkBody(token, idk, stranger) });
    assert.equal(wrong.statusCode, 422);
    assert.equal(errorCode(wrong.body), 'BAD_SIGNATURE');
    const linked = await h.server.app.inject({ method: 'POST', url: '/v1/devices/link', payload: linkBody(token, idk, d2) });
    assert.equal(linked.statusCode, 201, linked.body);
    assert.deepEqual(linked.json(), { username: a.username, deviceId: 2 });
    // Reused token.
    const d3 = makeDevice({ identity: a.device.identity });
    const reused = await h.server.app.inject({ method: 'POST', url: '/v1/devices/link', payload: linkBody(token, idk, d3) });
    assert.equal(reused.statusCode, 403);
    assert.equal(errorCode(reused.body), 'LINK_TOKEN_INVALID');

    const a2 = { username: a.username, deviceId: 2, secret: d2.secret };
    // The new device connects; the owner's list shows both, with the name and a last-seen day.
    const c2 = await Client.connect(h.wsUrl, a2);
    const list = (await h.server.app.inject({ method: 'GET', url: '/v1/devices', headers: auth(a2) })).json() as DevicesResponse;
    assert.deepEqual(list.devices.map((d) => [d.deviceId, d.registrationId, d.name]), [
      [1, a.device.keys.registrationId, ''],
      [2, d2.keys.registrationId, 'laptop'],
    ]);
    assert.ok(list.devices[1]!.createdAt > 0);
    let seen = 0;
    for (let i = 0; i < 200 && seen === 0; i++) {
      seen = ((await h.server.app.inject({ method: 'GET', url: '/v1/devices', headers: auth(a2) })).json() as DevicesResponse).devices[1]!.lastSeenAt;
      if (seen === 0) await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(seen % 86_400_000, 0, 'last seen is kept to the day');
    assert.ok(seen > 0);

    // Removal from device 1: the socket of device 2 closes, its credentials are refused at once.
    const del = await h.server.app.inject({ method: 'DELETE', url: '/v1/devices/2', headers: auth(a) });
    assert.equal(del.statusCode, 204);
    assert.equal((await c2.closed).code, 4401);
    const after = await h.server.app.inject({ method: 'GET', url: '/v1/devices', headers: auth(a2) });
    assert.equal(after.statusCode, 401);
    assert.deepEqual(((await h.server.app.inject({ method: 'GET', url: '/v1/devices', headers: auth(a) })).json() as DevicesResponse).devices.map((d) => d.deviceId), [1]);
  }));

test('linking: hostile input is refused with a clear error and changes nothing', () =>
  withServer(
    async (h) => {
      const a = await register(h);
      const b = await register(h);
      const idk = b64(a.device.identity.publicKey.serialize());
      const devices = async () => ((await h.server.app.inject({ method: 'GET', url: '/v1/devices', headers: auth(a) })).json() as DevicesResponse).devices.length;
      const d = makeDevice({ identity: a.device.identity });
      // A guessed token.
      const guessed = await h.server.app.inject({ method: 'POST', url: '/v1/devices/link', payload: linkBody('A'.repeat(43), idk, d) });
      assert.equal(errorCode(guessed.body), 'LINK_TOKEN_INVALID');
      // A malformed one.
      const malformed = await h.server.app.inject({ method: 'POST', url: '/v1/devices/link', payload: linkBody('not a token!', idk, d) });
      assert.equal(malformed.statusCode, 400);
      // A WebSocket ticket is not a link token.
      const ticket = (await h.server.app.inject({ method: 'POST', url: '/v1/ws-ticket', headers: auth(a) })).json() as { ticket: string };
      const asTicket = await h.server.app.inject({ method: 'POST', url: '/v1/devices/link', payload: linkBody(ticket.ticket, idk, d) });
      assert.equal(errorCode(asTicket.body), 'LINK_TOKEN_INVALID');
      // Another account's token does not add a device to this account: the keys must be the token account's.
      const bt = ((await h.server.app.inject({ method: 'POST', url: '/v1/devices/link-token', headers: auth(b) })).json() as LinkTokenResponse).token;
      const crossed = await h.server.app.inject({ method: 'POST', url: '/v1/devices/link', payload: linkBody(bt, idk, d) });
      assert.equal(errorCode(crossed.body), 'BAD_SIGNATURE');
      // An expired token (the server's clock moves past its lifetime).
      const at = ((await h.server.app.inject({ method: 'POST', url: '/v1/devices/link-token', headers: auth(a) })).json() as LinkTokenResponse).token;
      now += 60_000 + 1;
      const expired = await h.server.app.inject({ method: 'POST', url: '/v1/devices/link', payload: linkBody(at, idk, d) });
      assert.equal(errorCode(expired.body), 'LINK_TOKEN_INVALID');
      // A channel nobody listens on; a malformed address; an unauthenticated sender; an oversized body.
      const nobody = await h.server.app.inject({ method: 'PUT', url: `/v1/provisioning/${'B'.repeat(22)}`, headers: auth(a), payload: { body: 'AQID' } });
      assert.equal(nobody.statusCode, 404);
      assert.match(nobody.body, /no device is waiting/);
      const badAddress = await h.server.app.inject({ method: 'PUT', url: '/v1/provisioning/a.b', headers: auth(a), payload: { body: 'AQID' } });
      assert.equal(badAddress.statusCode, 400);
      const ch = await channel(h);
      const anon = await h.server.app.inject({ method: 'PUT', url: `/v1/provisioning/${ch.address}`, payload: { body: 'AQID' } });
      assert.equal(anon.statusCode, 401);
      const huge = await h.server.app.inject({ method: 'PUT', url: `/v1/provisioning/${ch.address}`, headers: auth(a), payload: { body: b64(new Uint8Array(64 * 1024 + 1)) } });
      assert.equal(huge.statusCode, 400);
      // The channel is still there for the real message; a frame from the listening side closes it.
      ch.ws.send('{"type":"hello"}');
      assert.equal(await ch.closed, 4400);
      // A token whose device was removed since is useless.
      const d2 = makeDevice({ identity: a.device.identity });
      const t1 = ((await h.server.app.inject({ method: 'POST', url: '/v1/devices/link-token', headers: auth(a) })).json() as LinkTokenResponse).token;
      assert.equal((await h.server.app.inject({ method: 'POST', url: '/v1/devices/link', payload: linkBody(t1, idk, d2) })).statusCode, 201);
      const a2 = { username: a.username, deviceId: 2, secret: d2.secret };
      const t2 = ((await h.server.app.inject({ method: 'POST', url: '/v1/devices/link-token', headers: auth(a2) })).json() as LinkTokenResponse).token;
      assert.equal((await h.server.app.inject({ method: 'DELETE', url: '/v1/devices/2', headers: auth(a) })).statusCode, 204);
      const orphan = await h.server.app.inject({ method: 'POST', url: '/v1/devices/link', payload: linkBody(t2, idk, makeDevice({ identity: a.device.identity })) });
      assert.equal(errorCode(orphan.body), 'LINK_TOKEN_INVALID');
      assert.equal(await devices(), 1);
      // The limit: MAX_DEVICES_PER_ACCOUNT (2 here).
      for (const expect of [201, 409]) {
        const t = ((await h.server.app.inject({ method: 'POST', url: '/v1/devices/link-token', headers: auth(a) })).json() as LinkTokenResponse).token;
        const r = await h.server.app.inject({ method: 'POST', url: '/v1/devices/link', payload: linkBody(t, idk, makeDevice({ identity: a.device.identity })) });
        assert.equal(r.statusCode, expect, r.body);
      }
      assert.equal(await devices(), 2);
    },
    { limits: { maxDevicesPerAccount: 2, linkTokenTtlMs: 60_000 }, now: () => now },
  ));

let now = Date.now();

test('provisioning channels: at most MAX_PROVISIONING_CHANNELS_PER_ADDRESS per client address', () =>
  withServer(async (h) => {
    const open = await Promise.all([1, 2, 3, 4].map(() => channel(h)));
    const fifth = new WebSocket(`ws://127.0.0.1:${h.port}/v1/provisioning`);
    fifth.on('error', () => undefined);
    const [, res] = (await once(fifth, 'unexpected-response')) as [unknown, { statusCode: number }];
    assert.equal(res.statusCode, 429);
    fifth.terminate();
    for (const c of open) c.ws.close();
    await Promise.all(open.map((c) => c.closed));
    // Closed channels free their places.
    (await channel(h)).ws.close();
  }));

test('pairwise sends that name their device list get the send-multi rules (missing, extra, stale; own account without the sender)', () =>
  withServer(async (h) => {
    const a = await register(h);
    const b = await register(h);
    const idk = b64(a.device.identity.publicKey.serialize());
    const d2 = makeDevice({ identity: a.device.identity });
    const t = ((await h.server.app.inject({ method: 'POST', url: '/v1/devices/link-token', headers: auth(a) })).json() as LinkTokenResponse).token;
    assert.equal((await h.server.app.inject({ method: 'POST', url: '/v1/devices/link', payload: linkBody(t, idk, d2) })).statusCode, 201);
    const cb = await Client.connect(h.wsUrl, b);
    const ca = await Client.connect(h.wsUrl, a);
    let n = 0;
    const send = async (c: Client, to: { username: string; deviceId: number; registrationId?: number }, devices: number[]) => {
      const id = `s${++n}`;
      c.send({ type: 'send', id, to, message: { type: 'whisper', body: 'AQID' }, devices });
      return c.next((f) => (f.type === 'sent' || f.type === 'error') && f.id === id);
    };
    const missing = await send(cb, { username: a.username, deviceId: 1 }, [1]);
    assert.deepEqual(missing, { type: 'error', code: 'MISMATCHED_DEVICES', message: 'the device list does not match the account', id: 's1', accounts: [{ username: a.username, missing: [2], extra: [], stale: [] }] });
    const extra = await send(cb, { username: a.username, deviceId: 1 }, [1, 2, 3]);
    assert.deepEqual(extra.type === 'error' && extra.accounts, [{ username: a.username, missing: [], extra: [3], stale: [] }]);
    const stale = await send(cb, { username: a.username, deviceId: 2, registrationId: d2.keys.registrationId + 1 }, [1, 2]);
    assert.equal(stale.type === 'error' && stale.code, 'STALE_DEVICE');
    assert.equal((await send(cb, { username: a.username, deviceId: 1 }, [1, 2])).type, 'sent');
    assert.equal((await send(cb, { username: a.username, deviceId: 2, registrationId: d2.keys.registrationId }, [1, 2])).type, 'sent');
    // Own account: the sending device is not in its own list.
    const self = await send(ca, { username: a.username, deviceId: 2 }, [1, 2]);
    assert.deepEqual(self.type === 'error' && self.accounts, [{ username: a.username, missing: [], extra: [1], stale: [] }]);
    assert.equal((await send(ca, { username: a.username, deviceId: 2 }, [2])).type, 'sent');
    // Malformed lists close nothing but are refused as invalid frames: a list without the target.
    const bad = await Client.connect(h.wsUrl, b);
    bad.send({ type: 'send', id: 'x', to: { username: a.username, deviceId: 1 }, message: { type: 'whisper', body: 'AQID' }, devices: [2] });
    assert.equal((await bad.closed).code, 4400);
    // Exactly the three accepted sends were stored: device 1 got one, device 2 two.
    const c2 = await Client.connect(h.wsUrl, { username: a.username, deviceId: 2, secret: d2.secret });
    await c2.next((f) => f.type === 'queue-empty');
    assert.equal(c2.frames.filter((f) => f.type === 'message').length, 2);
    for (const c of [ca, cb, c2]) c.ws.close();
  }));
