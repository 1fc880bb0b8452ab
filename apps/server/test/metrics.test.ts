/**
 * GET /metrics: Prometheus text that parses, with the counts of what happened (connections,
 * sends, deliveries, queue depth, store latency, refusals by code) and no usernames; readable
 * from loopback only (unproxied), or with the configured bearer token.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, register, sendMessage, withServer, type Harness } from './helpers.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A strict parser of the text format: every line a comment of a known kind or one sample. */
function parse(text: string): { samples: Sample[]; types: Map<string, string> } {
  assert.ok(text.endsWith('\n'), 'ends with a newline');
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.slice(0, -1).split('\n')) {
    if (line.startsWith('# HELP ')) {
      assert.match(line, /^# HELP [a-z_]+ \S.*$/);
      continue;
    }
    if (line.startsWith('# TYPE ')) {
      const m = /^# TYPE ([a-z_]+) (counter|gauge|histogram)$/.exec(line);
      assert.ok(m, line);
      assert.ok(!types.has(m[1]!), `one TYPE per metric: ${line}`);
      types.set(m[1]!, m[2]!);
      continue;
    }
    const m = /^([a-z_]+)(?:\{((?:[a-z_]+="[^"\\\n]*",?)*)\})? (-?[0-9.e+]+|\+Inf)$/.exec(line);
    assert.ok(m, `a sample line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').split(',').filter((x) => x !== '')) {
      const [k, v] = l.split('=');
      labels[k!] = v!.slice(1, -1);
    }
    const value = Number(m[3]);
    assert.ok(Number.isFinite(value), line);
    const family = m[1]!.replace(/_(bucket|sum|count)$/, '');
    assert.ok(types.has(m[1]!) || types.get(family) === 'histogram', `sample after its TYPE: ${line}`);
    samples.push({ name: m[1]!, labels, value });
  }
  return { samples, types };
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

async function scrape(h: Harness, headers: Record<string, string> = {}): Promise<{ status: number; type: string | null; body: string }> {
  const r = await fetch(`http://127.0.0.1:${h.port}/metrics`, { headers });
  return { status: r.status, type: r.headers.get('content-type'), body: await r.text() };
}

test('GET /metrics: connections, sends, deliveries, queue depth, store latency and refusals, in Prometheus text; no usernames', () =>
  withServer(async (h) => {
    const a = await register(h, { name: 'metrics_alice' });
    const b = await register(h, { name: 'metrics_bob' });
    const ca = await Client.connect(h.wsUrl, a);
    for (let i = 0; i < 3; i++) assert.equal((await sendMessage(ca, { username: b.username, deviceId: 1 }, `m${i}`)).type, 'sent');
    // Refusals: a send to a device that does not exist, a socket with wrong credentials, an unknown route.
    assert.equal((await sendMessage(ca, { username: b.username, deviceId: 9 }, 'nobody')).type, 'error');
    const bad = await Client.open(h.wsUrl);
    bad.send({ type: 'auth', username: a.username, deviceId: 1, secret: 'A'.repeat(43) + '=' });
    await bad.closed;
    assert.equal((await fetch(`http://127.0.0.1:${h.port}/v1/nothing-here`)).status, 404);

    let r = await scrape(h);
    assert.equal(r.status, 200);
    assert.match(r.type ?? '', /^text\/plain; version=0\.0\.4/);
    let m = parse(r.body);
    assert.equal(m.types.get('tacit_sends_total'), 'counter');
    assert.equal(m.types.get('tacit_store_seconds'), 'histogram');
    assert.equal(value(m.samples, 'tacit_connections', { state: 'authenticated' }), 1);
    assert.equal(value(m.samples, 'tacit_sends_total'), 3);
    assert.equal(value(m.samples, 'tacit_deliveries_total'), 0);
    assert.equal(value(m.samples, 'tacit_queue_depth'), 3);
    assert.equal(value(m.samples, 'tacit_refusals_total', { transport: 'ws', code: 'NOT_FOUND' }), 1);
    assert.equal(value(m.samples, 'tacit_refusals_total', { transport: 'ws', code: 'UNAUTHORIZED' }), 1);
    assert.equal(value(m.samples, 'tacit_refusals_total', { transport: 'http', code: 'NOT_FOUND' }), 1);
    // The batch writes were timed: a histogram whose +Inf bucket equals its count, buckets non-decreasing.
    const writes = value(m.samples, 'tacit_store_seconds_count', { op: 'writeBatch' });
    assert.ok(writes !== undefined && writes >= 1, 'writeBatch timed');
    const buckets = m.samples.filter((s) => s.name === 'tacit_store_seconds_bucket' && s.labels['op'] === 'writeBatch');
    assert.equal(buckets.at(-1)!.labels['le'], '+Inf');
    assert.equal(buckets.at(-1)!.value, writes);
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]!.value >= buckets[i - 1]!.value);
    assert.doesNotMatch(r.body, /metrics_alice|metrics_bob/, 'no usernames');

    // Bob connects, takes the three and acknowledges them.
    const cb = await Client.connect(h.wsUrl, b);
    await cb.next((f) => f.type === 'queue-empty');
    for (const f of cb.frames) if (f.type === 'message') cb.send({ type: 'ack', id: f.envelope.id });
    cb.send({ type: 'ping', id: 'barrier' });
    await cb.next((f) => f.type === 'pong');
    // The queue depth is cached for a few seconds; a fresh server view needs its own scrape after that,
    // so check the counters that move at once.
    r = await scrape(h);
    m = parse(r.body);
    assert.equal(value(m.samples, 'tacit_deliveries_total'), 3);
    assert.equal(value(m.samples, 'tacit_connections', { state: 'authenticated' }), 2);
    assert.doesNotMatch(r.body, /metrics_alice|metrics_bob/, 'no usernames');
    ca.close();
    cb.close();
  }));

test('GET /metrics is refused (403) from another address and through a proxy; without a token, loopback only', () =>
  withServer(async (h) => {
    const inject = (remoteAddress: string, headers: Record<string, string> = {}) => h.server.app.inject({ method: 'GET', url: '/metrics', remoteAddress, headers });
    assert.equal((await inject('127.0.0.1')).statusCode, 200);
    assert.equal((await inject('::1')).statusCode, 200);
    const far = await inject('192.0.2.7');
    assert.equal(far.statusCode, 403);
    assert.equal((far.json() as { error: { code: string } }).error.code, 'FORBIDDEN');
    assert.equal((await inject('127.0.0.1', { 'x-forwarded-for': '198.51.100.1' })).statusCode, 403, 'a proxy on this machine does not make it local');
    assert.equal((await inject('127.0.0.1', { forwarded: 'for=198.51.100.1' })).statusCode, 403);
  }));

test('GET /metrics with TACIT_METRICS_TOKEN: the bearer token from any address, nothing without it', () =>
  withServer(
    async (h) => {
      const inject = (headers: Record<string, string>) => h.server.app.inject({ method: 'GET', url: '/metrics', remoteAddress: '192.0.2.7', headers });
      assert.equal((await inject({ authorization: 'Bearer metrics-token-0123456789' })).statusCode, 200);
      assert.equal((await inject({ authorization: 'Bearer metrics-token-0123456788' })).statusCode, 403);
      assert.equal((await inject({ authorization: 'Bearer metrics-token-012345678' })).statusCode, 403);
      assert.equal((await inject({})).statusCode, 403);
      // With a token, loopback alone is not enough either.
      assert.equal((await h.server.app.inject({ method: 'GET', url: '/metrics', remoteAddress: '127.0.0.1' })).statusCode, 403);
    },
    { metricsToken: 'metrics-token-0123456789' },
  ));
