/**
 * Hardening regressions (issue 13): each test is an attack that worked against the server before
 * its fix, run through a real listening server.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { ERRORS, type DeviceCredentials, type MessageFrame, type ServerFrame } from '@tacit/api';
import { addressBudgetKey } from '../src/relay/hub.js';
import { ticketCredential } from '../src/auth.js';
import { tokenHash } from '../src/secrets.js';
import { Client, addDevice, auth, b64, errorCode, makeDevice, register, registration, sendMessage, withServer, type Account, type Harness } from './helpers.js';

/** Opens a WebSocket from a chosen loopback source address; resolves once it is open (or closed). */
async function openFrom(h: Harness, localAddress: string): Promise<{ ws: WebSocket; closed: Promise<number> }> {
  const ws = new WebSocket(h.wsUrl, { localAddress });
  ws.on('error', () => undefined);
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  await Promise.race([once(ws, 'open'), closed]);
  return { ws, closed };
}

/** Authenticates a genuine device by its first frame from `localAddress`; resolves with the first frame it gets back. */
async function genuine(h: Harness, localAddress: string, a: { username: string; deviceId: number; secret: string }): Promise<string> {
  const { ws, closed } = await openFrom(h, localAddress);
  const first = new Promise<string>((resolve) => ws.once('message', (d) => resolve((JSON.parse(d.toString()) as { type: string; code?: string }).code ?? 'ready')));
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'auth', username: a.username, deviceId: a.deviceId, secret: a.secret }));
  const r = await Promise.race([first, closed.then((c) => `closed ${c}`)]);
  ws.close();
  return r;
}

// 13.3: unauthenticated sockets.

test('1,000 sockets that never authenticate do not keep a genuine client out', async () => {
  await serve(async (h) => {
    const a = await register(h);
    const idle: WebSocket[] = [];
    // In batches, as an attacker on one address would open them.
    for (let i = 0; i < 1000; i += 100) {
      const batch = await Promise.all(Array.from({ length: 100 }, () => openFrom(h, '127.0.0.1')));
      for (const b of batch) idle.push(b.ws);
    }
    assert.equal(await genuine(h, '127.0.0.2', a), 'ready');
    assert.ok(h.server.relay.stats.unauthenticated <= h.server.limits.maxUnauthenticatedPerAddress, 'one address holds at most its budget');
    for (const ws of idle) ws.terminate();
  });
});

test('over the node-wide budget the oldest idle socket of the busiest address makes room for a newcomer', async () => {
  await serve(
    async (h) => {
      const a = await register(h);
      const idle = await Promise.all(Array.from({ length: 4 }, () => openFrom(h, '127.0.0.1')));
      // One address over its own budget (4) is refused.
      const over = await openFrom(h, '127.0.0.1');
      assert.equal(await over.closed, ERRORS.UNAVAILABLE.close);
      idle.push(await openFrom(h, '127.0.0.3'));
      // The node's budget (5) is full; a genuine client from a sixth socket still gets in.
      assert.equal(await genuine(h, '127.0.0.2', a), 'ready');
      assert.equal(await idle[0]!.closed, ERRORS.UNAVAILABLE.close, 'the oldest socket of the busiest address was closed');
      for (const s of idle) s.ws.terminate();
      const c = await Client.connect(h.wsUrl, a);
      c.close();
    },
    { limits: { maxUnauthenticatedConnections: 5, maxUnauthenticatedPerAddress: 4 } },
  );
});

test('IPv6 addresses share a budget per /64; IPv4 (also IPv4-mapped) per address', () => {
  assert.equal(addressBudgetKey('2001:db8:1:2:aaaa::1'), addressBudgetKey('2001:db8:1:2:bbbb:cccc:dddd:eeee'));
  assert.notEqual(addressBudgetKey('2001:db8:1:2::1'), addressBudgetKey('2001:db8:1:3::1'));
  assert.equal(addressBudgetKey('::ffff:10.0.0.5'), '10.0.0.5');
  assert.equal(addressBudgetKey('::1'), '0:0:0:0::/64');
  assert.notEqual(addressBudgetKey('10.0.0.5'), addressBudgetKey('10.0.0.6'));
});

// 13.4: tickets.

async function mintTicket(h: Harness, a: DeviceCredentials): Promise<{ status: number; ticket: string }> {
  const r = await h.server.app.inject({ method: 'POST', url: '/v1/ws-ticket', headers: auth(a) });
  return { status: r.statusCode, ticket: r.statusCode === 200 ? (r.json() as { ticket: string }).ticket : '' };
}

/** Opens a socket with a ticket; resolves with its close code, or 0 if it became ready. */
async function redeem(h: Harness, ticket: string): Promise<{ code: number; client: Client }> {
  const c = await Client.open(`${h.wsUrl}?ticket=${ticket}`);
  const r = await c.next((f) => f.type === 'ready').then(
    () => 0,
    () => c.closed.then((x) => x.code),
  );
  return { code: r, client: c };
}

test('a ticket minted before its device was removed does not take over the device that reuses the id', async () => {
  await serve(async (h) => {
    const a = await register(h);
    const old2 = await addDevice(h, a);
    const stale = await mintTicket(h, old2);
    assert.equal(stale.status, 200);
    assert.equal((await h.server.app.inject({ method: 'DELETE', url: `/v1/devices/${old2.deviceId}`, headers: auth(a) })).statusCode, 204);
    const new2 = await addDevice(h, a);
    assert.equal(new2.deviceId, old2.deviceId, 'the device id is reused');
    const live = await Client.connect(h.wsUrl, new2);
    const r = await redeem(h, stale.ticket);
    assert.equal(r.code, ERRORS.UNAUTHORIZED.close);
    // The new device keeps its socket and still works.
    live.send({ type: 'ping', id: 'still-here' });
    await live.next((f) => f.type === 'pong');
    assert.equal(live.isClosed, false);
    live.close();
  });
});

test('a ticket minted before an account reset does not authenticate the re-registered account', async () => {
  await serve(async (h) => {
    const a = await register(h);
    const stale = await mintTicket(h, a);
    assert.notEqual(await h.server.store.removeAccount(a.username), undefined);
    await register(h, { name: a.username });
    assert.equal((await redeem(h, stale.ticket)).code, ERRORS.UNAUTHORIZED.close);
  });
});

test('a ticket is re-checked against the device’s current credentials at redemption (not only purged)', async () => {
  await serve(async (h) => {
    const a = await register(h);
    // A ticket the store still holds, bound to other credentials than the device has now.
    const ticket = 'x'.repeat(43);
    await h.server.store.putTicket(tokenHash(ticket), { device: { username: a.username, deviceId: 1 }, credential: ticketCredential(new Uint8Array(32)) }, Date.now() + 30_000);
    assert.equal((await redeem(h, ticket)).code, ERRORS.UNAUTHORIZED.close);
    const good = await mintTicket(h, a);
    const r = await redeem(h, good.ticket);
    assert.equal(r.code, 0);
    r.client.close();
  });
});

test('minting tickets is rate limited per device', async () => {
  await serve(
    async (h) => {
      const a = await register(h);
      const b = await register(h);
      for (let i = 0; i < 3; i++) assert.equal((await mintTicket(h, a)).status, 200);
      const over = await h.server.app.inject({ method: 'POST', url: '/v1/ws-ticket', headers: auth(a) });
      assert.equal(over.statusCode, 429);
      assert.equal(errorCode(over.body), 'RATE_LIMITED');
      assert.equal((await mintTicket(h, b)).status, 200, 'another device is not limited');
    },
    { limits: { ticketMintBurst: 3 } },
  );
});

// 13.5: HTTP timeouts and connections per address.

/**
 * Raw sockets a test opened: destroyed when its server is about to close, so a failing test (a
 * server that never closed them) cannot keep the server's close waiting for them.
 */
const opened = new Set<Socket>();

/** `withServer`, destroying the test's raw sockets first. */
const serve: typeof withServer = (fn, opts) =>
  withServer(async (h) => {
    try {
      await fn(h);
    } finally {
      for (const s of opened) s.destroy();
      opened.clear();
    }
  }, opts);

/** A raw TCP connection to the server from `localAddress`; `closed` resolves with what the server wrote. */
async function rawSocket(h: Harness, localAddress = '127.0.0.1'): Promise<{ socket: Socket; closed: Promise<string> }> {
  const socket = connect({ host: '127.0.0.1', port: h.port, localAddress });
  opened.add(socket);
  let got = '';
  socket.on('data', (d) => (got += d.toString('latin1')));
  socket.on('error', () => undefined);
  const closed = new Promise<string>((resolve) => socket.on('close', () => resolve(got)));
  await Promise.race([once(socket, 'connect'), closed]);
  return { socket, closed };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const SHORT_HTTP = { httpHeadersTimeoutMs: 300, httpBodyTimeoutMs: 300, httpRequestTimeoutMs: 2000, httpIdleTimeoutMs: 2000, httpKeepAliveTimeoutMs: 300 };

test('half-sent headers, half-sent upgrades and silent connections are closed by the server', async () => {
  await serve(
    async (h) => {
      const half = await rawSocket(h);
      half.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ');
      const upgrade = await rawSocket(h);
      upgrade.socket.write('GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n');
      const silent = await rawSocket(h);
      // A slowloris keeps adding header bytes; bounded, and it stops once the server has closed.
      let open = true;
      void half.closed.then(() => (open = false));
      for (let i = 0; i < 200 && open; i++) {
        half.socket.write('a');
        await sleep(50);
      }
      assert.equal(open, false, 'the server closed a connection whose headers never finished');
      assert.match(await half.closed, /^HTTP\/1\.1 408/);
      assert.match(await upgrade.closed, /^HTTP\/1\.1 408/);
      await silent.closed;
      // The server still answers.
      assert.equal((await fetch(`http://127.0.0.1:${h.port}/healthz`)).status, 200);
    },
    { limits: SHORT_HTTP },
  );
});

test('a body trickled a byte at a time is cut off; an idle kept-alive connection is closed', async () => {
  await serve(
    async (h) => {
      const slow = await rawSocket(h);
      slow.socket.write('POST /v1/accounts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{');
      let open = true;
      void slow.closed.then(() => (open = false));
      for (let i = 0; i < 200 && open; i++) {
        slow.socket.write(' ');
        await sleep(50);
      }
      assert.equal(open, false, 'the server closed a connection whose body never finished');
      assert.match(await slow.closed, /^HTTP\/1\.1 408/);
      // One whole request on a kept-alive connection, then nothing: the server closes it.
      const idle = await rawSocket(h);
      idle.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      assert.match(await idle.closed, /^HTTP\/1\.1 200/);
    },
    { limits: SHORT_HTTP },
  );
});

test('connections per client address are capped; another address is still served', async () => {
  await serve(
    async (h) => {
      const held = [];
      for (let i = 0; i < 8; i++) held.push(await rawSocket(h, '127.0.0.1'));
      const over = await rawSocket(h, '127.0.0.1');
      const verdict = await Promise.race([over.closed, sleep(5000).then(() => 'still open')]);
      assert.equal(verdict, '', 'a connection over the cap is closed on arrival');
      // A WebSocket client from another address connects and authenticates.
      const a = await register(h);
      assert.equal(await genuine(h, '127.0.0.2', a), 'ready');
      for (const s of held) s.socket.destroy();
      await Promise.all(held.map((s) => s.closed));
      // Freed (once the server has seen the closes): the first address is served again.
      let answer = '';
      for (let i = 0; i < 100 && answer === ''; i++) {
        const again = await rawSocket(h, '127.0.0.1');
        again.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
        answer = await again.closed;
        if (answer === '') await sleep(20);
      }
      assert.match(answer, /^HTTP\/1\.1 200/);
    },
    { limits: { maxHttpConnectionsPerAddress: 8 } },
  );
});

// 13.6: flooding.

const answerCode = (f: ServerFrame) => (f.type === 'error' ? f.code : f.type);

test('one sender cannot fill a recipient’s mailbox: a daily quota per recipient device; others still get through', async () => {
  await serve(
    async (h) => {
      const [a, b, c, d] = [await register(h), await register(h), await register(h), await register(h)];
      const ca = await Client.connect(h.wsUrl, a);
      const cd = await Client.connect(h.wsUrl, d);
      for (let i = 0; i < 5; i++) assert.equal(answerCode(await sendMessage(ca, { username: b.username, deviceId: 1 }, `m${i}`)), 'sent');
      const over = await sendMessage(ca, { username: b.username, deviceId: 1 }, 'one too many');
      assert.equal(answerCode(over), 'SEND_QUOTA_EXCEEDED');
      assert.equal(ca.isClosed, false, 'the socket stays open');
      // The same sender to someone else, and someone else to the same recipient, are not limited.
      assert.equal(answerCode(await sendMessage(ca, { username: c.username, deviceId: 1 }, 'hi c')), 'sent');
      assert.equal(answerCode(await sendMessage(cd, { username: b.username, deviceId: 1 }, 'hi b')), 'sent');
      // What b finds: a's five and d's one, nothing of the refused send.
      const cb = await Client.connect(h.wsUrl, b);
      await cb.next((f) => f.type === 'queue-empty');
      const texts = cb.frames.filter((f): f is MessageFrame => f.type === 'message').map((f) => Buffer.from(f.envelope.body, 'base64').toString());
      assert.deepEqual(texts.sort(), ['hi b', 'm0', 'm1', 'm2', 'm3', 'm4']);
      for (const x of [ca, cb, cd]) x.close();
    },
    { limits: { sendsPerRecipientDevicePerDay: 5 } },
  );
});

test('daily quotas per sending account: messages and bytes in all, also through send-multi', async () => {
  await serve(
    async (h) => {
      const a = await register(h);
      const others = [await register(h), await register(h), await register(h), await register(h)];
      const ca = await Client.connect(h.wsUrl, a);
      for (const o of others.slice(0, 3)) assert.equal(answerCode(await sendMessage(ca, { username: o.username, deviceId: 1 }, 'x')), 'sent');
      assert.equal(answerCode(await sendMessage(ca, { username: others[3]!.username, deviceId: 1 }, 'x')), 'SEND_QUOTA_EXCEEDED');
      const id = 'multi';
      ca.send({
        type: 'send-multi',
        id,
        recipients: [{ username: others[3]!.username, devices: [{ deviceId: 1, registrationId: others[3]!.device.keys.registrationId }] }],
        message: { type: 'sender-key', body: b64(Buffer.from('x')) },
      });
      assert.equal(answerCode(await ca.next((f) => (f.type === 'sent-multi' || f.type === 'error') && 'id' in f && f.id === id)), 'SEND_QUOTA_EXCEEDED');
      ca.close();
    },
    { limits: { sendsPerAccountPerDay: 3 } },
  );
  await serve(
    async (h) => {
      const [a, b] = [await register(h), await register(h)];
      const ca = await Client.connect(h.wsUrl, a);
      assert.equal(answerCode(await sendMessage(ca, { username: b.username, deviceId: 1 }, new Uint8Array(600))), 'sent');
      assert.equal(answerCode(await sendMessage(ca, { username: b.username, deviceId: 1 }, new Uint8Array(600))), 'SEND_QUOTA_EXCEEDED');
      // Another account is not limited by a's bytes.
      const cb = await Client.connect(h.wsUrl, b);
      assert.equal(answerCode(await sendMessage(cb, { username: a.username, deviceId: 1 }, new Uint8Array(600))), 'sent');
      ca.close();
      cb.close();
    },
    { limits: { sendBytesPerAccountPerDay: 1000 } },
  );
});

test('a device cannot send to itself; its other devices it can', async () => {
  await serve(async (h) => {
    const a = await register(h);
    const a2 = await addDevice(h, a);
    const ca = await Client.connect(h.wsUrl, a);
    const self = await sendMessage(ca, { username: a.username, deviceId: 1 }, 'to me');
    assert.equal(answerCode(self), 'FORBIDDEN');
    assert.equal(answerCode(await sendMessage(ca, { username: a.username, deviceId: a2.deviceId }, 'to my other device')), 'sent');
    ca.close();
    // Nothing was queued for the sending device.
    const again = await Client.connect(h.wsUrl, a);
    await again.next((f) => f.type === 'queue-empty');
    assert.equal(again.frames.filter((f) => f.type === 'message').length, 0);
    again.close();
  });
});

// 13.8: the rest.

test('the bundle-fetch limit is per requesting account, not per device', async () => {
  await serve(
    async (h) => {
      const a = await register(h);
      const a2 = await addDevice(h, a);
      const b = await register(h, { preKeys: 10 });
      const fetchBundle = (who: DeviceCredentials) => h.server.app.inject({ method: 'GET', url: `/v1/keys/${b.username}`, headers: auth(who) });
      assert.equal((await fetchBundle(a)).statusCode, 200);
      assert.equal((await fetchBundle(a)).statusCode, 200);
      const fromOtherDevice = await fetchBundle(a2);
      assert.equal(fromOtherDevice.statusCode, 429, 'the account’s second device shares its budget');
      assert.equal(errorCode(fromOtherDevice.body), 'RATE_LIMITED');
      const counts = await h.server.app.inject({ method: 'GET', url: '/v1/keys/count', headers: auth(b) });
      assert.equal((counts.json() as { preKeys: number }).preKeys, 8);
    },
    { limits: { bundleFetchBurst: 2 } },
  );
});

test('failed device logins are throttled per address, over HTTP and WebSocket; other addresses are not', async () => {
  await serve(
    async (h) => {
      const a = await register(h);
      const wrong = { ...a, secret: b64(new Uint8Array(32)) };
      const me = (who: DeviceCredentials) => h.server.app.inject({ method: 'GET', url: '/v1/keys/count', headers: auth(who) });
      for (let i = 0; i < 4; i++) assert.equal((await me(wrong)).statusCode, 401);
      // The address has failed too often: even the right secret is not checked now.
      const refused = await me(a);
      assert.equal(refused.statusCode, 429);
      assert.equal(errorCode(refused.body), 'RATE_LIMITED');
      const { ws, closed } = await openFrom(h, '127.0.0.1');
      ws.send(JSON.stringify({ type: 'auth', username: a.username, deviceId: 1, secret: a.secret }));
      assert.equal(await closed, ERRORS.RATE_LIMITED.close);
      // Another address signs in as usual.
      assert.equal(await genuine(h, '127.0.0.2', a), 'ready');
    },
    { limits: { loginFailureBurst: 3, loginFailuresPerMinute: 1 } },
  );
});

test('one-time EC pre-keys (and signed pre-keys) are point-checked at upload; nothing is stored on failure', async () => {
  await serve(async (h) => {
    const a = await register(h, { preKeys: 3 });
    const P = (1n << 255n) - 19n;
    const u = (n: bigint) => {
      const out = new Uint8Array(33);
      out[0] = 0x05;
      for (let i = 0; i < 32; i++) out[1 + i] = Number((n >> BigInt(8 * i)) & 0xffn);
      return b64(out);
    };
    const good = makeDevice({ identity: a.device.identity, preKeys: 2, firstKeyId: 50 }).keys.preKeys;
    for (const bad of [u(0n), u(1n), u(P - 1n), u(P), u(P + 5n), u((1n << 256n) - 1n), u(325606250916557431795983626356110631294008115727848805560023387167927233504n)]) {
      const r = await h.server.app.inject({ method: 'PUT', url: '/v1/keys', headers: auth(a), payload: { preKeys: [good[0]!, { keyId: 99, publicKey: bad }, good[1]!] } });
      assert.equal(r.statusCode, 400, bad);
      assert.equal(errorCode(r.body), 'INVALID_REQUEST');
      assert.match(r.body, /\$\.preKeys\[1\]\.publicKey/);
    }
    const counts = await h.server.app.inject({ method: 'GET', url: '/v1/keys/count', headers: auth(a) });
    assert.equal((counts.json() as { preKeys: number }).preKeys, 3, 'nothing replaced');
    // Registration checks them too.
    const d = makeDevice({ preKeys: 1 });
    d.keys.preKeys[0]!.publicKey = u(0n);
    const reg = await h.server.app.inject({ method: 'POST', url: '/v1/accounts', payload: registration('pointless', d) });
    assert.equal(reg.statusCode, 400);
    assert.equal((await h.server.app.inject({ method: 'GET', url: '/v1/devices/pointless', headers: auth(a) })).statusCode, 404);
  });
});

test('a malformed URL gets the API’s error shape without its path', async () => {
  await serve(async (h) => {
    for (const path of ['/v1/keys/%zz', '/v1/devices/%E0%A4%A', `/v1/keys/${'q'.repeat(500)}`]) {
      const r = await fetch(`http://127.0.0.1:${h.port}${path}`);
      const text = await r.text();
      assert.ok(r.status === 400 || r.status === 404, `${r.status}`);
      const body = JSON.parse(text) as { error: { code: string; message: string } };
      assert.ok(body.error.code === 'INVALID_REQUEST' || body.error.code === 'NOT_FOUND', text);
      assert.doesNotMatch(text, /%zz|%E0|qqqq/i);
    }
  });
});

test('over HTTPS too: half-sent headers are closed by the server', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tacit-harden-tls-'));
  try {
    const cert = join(dir, 'c.crt');
    const key = join(dir, 'c.key');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=tacit test', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    await serve(
      async (h) => {
        const socket = tlsConnect({ host: '127.0.0.1', port: h.port, ca: readFileSync(cert) });
        opened.add(socket);
        socket.on('error', () => undefined);
        let got = '';
        socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
        const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
        await once(socket, 'secureConnect');
        socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ');
        let open = true;
        void closed.then(() => (open = false));
        for (let i = 0; i < 200 && open; i++) {
          socket.write('a');
          await sleep(50);
        }
        assert.equal(open, false, 'the server closed a TLS connection whose headers never finished');
        assert.match(got, /^HTTP\/1\.1 408/);
      },
      { limits: SHORT_HTTP, tls: { cert: readFileSync(cert), key: readFileSync(key) } },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
