import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { clientAddress, parseTrustProxy, trustFunction } from '../src/index.js';
import { errorCode as code, makeDevice, registration, withServer, type Harness } from './helpers.js';

/** Registers a fresh account with the given X-Forwarded-For; returns the status code. */
async function registerVia(h: Harness, forwardedFor: string, name: string): Promise<{ status: number; code?: string }> {
  const r = await h.server.app.inject({
    method: 'POST',
    url: '/v1/accounts',
    headers: { 'x-forwarded-for': forwardedFor },
    remoteAddress: '10.0.0.5',
    payload: registration(name, makeDevice()),
  });
  return r.statusCode === 201 ? { status: r.statusCode } : { status: r.statusCode, code: code(r.body) };
}

test('TACIT_TRUST_PROXY hop count: a forged left-hand X-Forwarded-For entry does not dodge the per-address limit', () =>
  withServer(
    async (h) => {
      // The proxy (10.0.0.5) appends the real client, 203.0.113.9; the client wrote the rest.
      assert.equal((await registerVia(h, '198.51.100.1, 203.0.113.9', 'pat')).status, 201);
      assert.deepEqual(await registerVia(h, '198.51.100.2, 203.0.113.9', 'quin'), { status: 429, code: 'RATE_LIMITED' });
      // Another real client is its own bucket.
      assert.equal((await registerVia(h, '198.51.100.2, 203.0.113.10', 'rue')).status, 201);
    },
    { trustProxy: { hops: 1 }, limits: { registrationBurst: 1 } },
  ));

test('TACIT_TRUST_PROXY address list: hops are believed only from listed proxies', () =>
  withServer(
    async (h) => {
      assert.equal((await registerVia(h, '198.51.100.1, 203.0.113.9', 'sam')).status, 201);
      assert.deepEqual(await registerVia(h, '198.51.100.3, 203.0.113.9', 'tod'), { status: 429, code: 'RATE_LIMITED' });
    },
    { trustProxy: { addresses: ['10.0.0.0/24'] }, limits: { registrationBurst: 1 } },
  ));

test('TACIT_TRUST_PROXY: a peer that is not a listed proxy is the client, whatever its header says', () =>
  withServer(
    async (h) => {
      assert.equal((await registerVia(h, '198.51.100.1', 'uma')).status, 201);
      assert.deepEqual(await registerVia(h, '198.51.100.4', 'vic'), { status: 429, code: 'RATE_LIMITED' });
    },
    { trustProxy: { addresses: ['10.9.0.1'] }, limits: { registrationBurst: 1 } },
  ));

test('clientAddress (WebSocket upgrades) follows the same rule as req.ip', () => {
  const req = (peer: string, xff?: string) => ({ socket: { remoteAddress: peer }, headers: xff === undefined ? {} : { 'x-forwarded-for': xff } }) as unknown as IncomingMessage;
  const none = trustFunction(undefined);
  const one = trustFunction({ hops: 1 });
  const two = trustFunction({ hops: 2 });
  const list = trustFunction({ addresses: ['10.0.0.0/8', '::1'] });
  assert.equal(clientAddress(req('10.0.0.5', '1.1.1.1, 2.2.2.2'), none), '10.0.0.5');
  assert.equal(clientAddress(req('10.0.0.5', '1.1.1.1, 2.2.2.2'), one), '2.2.2.2');
  assert.equal(clientAddress(req('10.0.0.5', '1.1.1.1, 2.2.2.2'), two), '1.1.1.1');
  assert.equal(clientAddress(req('10.0.0.5', '1.1.1.1, 10.0.0.7'), list), '1.1.1.1');
  assert.equal(clientAddress(req('::ffff:10.0.0.5', '1.1.1.1, 2.2.2.2'), list), '2.2.2.2');
  assert.equal(clientAddress(req('192.0.2.1', '1.1.1.1'), list), '192.0.2.1');
  assert.equal(clientAddress(req('::1', '2001:db8::1'), list), '2001:db8::1');
  assert.equal(clientAddress(req('10.0.0.5'), one), '10.0.0.5');
});

test('parseTrustProxy: hop counts and address lists; anything else is refused with a sentence', () => {
  assert.deepEqual(parseTrustProxy('1'), { hops: 1 });
  assert.deepEqual(parseTrustProxy('2'), { hops: 2 });
  assert.deepEqual(parseTrustProxy('10.0.0.5, 10.1.0.0/16,::1'), { addresses: ['10.0.0.5', '10.1.0.0/16', '::1'] });
  for (const bad of ['0', '11', 'true', 'yes', '10.0.0.0/33', '10.0.0.1/8/2', 'proxy.internal', '10.0.0.1,', '']) {
    assert.throws(() => parseTrustProxy(bad), /TACIT_TRUST_PROXY/, bad);
  }
});
