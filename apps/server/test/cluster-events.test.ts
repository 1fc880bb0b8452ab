// The cluster channel's decoder (cluster.ts) against garbled events, without Redis: a fake
// subscriber hands one node's events, mutated by a seeded fuzzer, to another. Nothing throws, and
// whatever reaches the handlers makes a `message` frame the client's own validator accepts (the
// relay writes those fields into frames as they are). cluster-ephemeral.test.ts does the same
// for hand-written events through a real Redis.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import { validateServerFrame } from '@tacit/api';
import { RedisCluster, type RemoteEphemeral, type RemoteMessage } from '../src/cluster.js';
import { messageFrameText } from '../src/relay/delivery.js';
import { mulberry32 } from '../../../packages/protocol/test/support/random.ts';

const SEED = process.env['TACIT_TEST_SEED'] !== undefined ? Number(process.env['TACIT_TEST_SEED']) : 0x7ac17;
const ROUNDS = 4_000;

class FakeRedis extends EventEmitter {
  readonly published: Buffer[] = [];
  async publish(_channel: string, message: Buffer): Promise<number> {
    this.published.push(message);
    return 1;
  }
  async subscribe(): Promise<void> {}
  async unsubscribe(): Promise<void> {}
}

const asRedis = (r: FakeRedis): Redis => r as unknown as Redis;

/** Replacements that keep an event parseable but put a wrong value in one place. */
const SWAPS = ['-1', '-0', '0', '1.5', '1e300', '9007199254740993', 'null', 'true', '"x"', '[]', '{}', '"__proto__"', '"toString"', '"a\\"b"', '"\\u0000"'];

function mutate(text: string, r: () => number): string {
  const at = Math.floor(r() * text.length);
  switch (Math.floor(r() * 5)) {
    case 0: {
      // A number (or a string) in the event replaced by something else.
      const tokens = [...text.matchAll(/-?\d+(\.\d+)?|"[^"]*"/g)];
      const tok = tokens[Math.floor(r() * tokens.length)];
      if (tok === undefined) return text;
      return text.slice(0, tok.index) + SWAPS[Math.floor(r() * SWAPS.length)]! + text.slice(tok.index + tok[0].length);
    }
    case 1:
      return text.slice(0, at) + text.slice(at + 1 + Math.floor(r() * 8));
    case 2:
      return text.slice(0, at) + String.fromCharCode(Math.floor(r() * 256)) + text.slice(at);
    case 3: {
      // A number negated.
      const nums = [...text.matchAll(/\d+/g)];
      const n = nums[Math.floor(r() * nums.length)];
      return n === undefined ? text : text.slice(0, n.index) + '-' + text.slice(n.index);
    }
    default:
      return text.slice(0, at);
  }
}

test(`cluster events: ${ROUNDS} garbled events (seed ${SEED}) never throw, and what passes makes frames the client accepts`, async () => {
  // Node A publishes real events; node B decodes them (and their mutations).
  const pubA = new FakeRedis();
  const a = new RedisCluster(asRedis(pubA), asRedis(new FakeRedis()), 't:');
  const subB = new FakeRedis();
  const b = new RedisCluster(asRedis(new FakeRedis()), asRedis(subB), 't:');
  const delivered: RemoteMessage[] = [];
  const ephemeral: RemoteEphemeral[] = [];
  await b.start({ onDeliver: (_keys, m) => delivered.push(...m), onConnected: () => undefined, onEphemeral: (m) => ephemeral.push(...m) });
  const from = { username: 'alice', deviceId: 2 };
  a.publishDeliver(['bob.1', 'carol.3'], [
    { key: 'bob.1', id: 41, after: 40, kind: 2, from, timestamp: 1_700_000_000_000, bodyB64: 'AAEC' },
    { key: 'carol.3', id: 7, after: 0, kind: 3, from, timestamp: 1_700_000_000_001, bodyB64: 'ZGVm' },
  ]);
  a.publishConnected('bob.1');
  a.publishEphemeral([{ key: 'bob.1', type: 'sender-key', from, timestamp: 1_700_000_000_002, bodyB64: 'eHl6' }]);
  const seeds = pubA.published.map((x) => x.toString('latin1'));
  assert.equal(seeds.length, 3);
  const channel = Buffer.from('t:events');

  const r = mulberry32(SEED);
  for (let i = 0; i < ROUNDS; i++) {
    let text = seeds[i % seeds.length]!;
    for (let k = 1 + Math.floor(r() * 3); k > 0; k--) text = mutate(text, r);
    // Node ids are random per node: an event naming A's id is A's, whoever decodes it.
    assert.doesNotThrow(() => subB.emit('messageBuffer', channel, Buffer.from(text, 'latin1')), text);
  }
  // The unmutated events arrive whole.
  for (const s of seeds) subB.emit('messageBuffer', channel, Buffer.from(s, 'latin1'));
  assert.ok(delivered.some((m) => m.id === 41 && m.bodyB64 === 'AAEC'));
  assert.ok(ephemeral.some((m) => m.bodyB64 === 'eHl6'));

  for (const m of delivered) {
    const frame = validateServerFrame(JSON.parse(messageFrameText(m, m.bodyB64)));
    assert.ok(frame.ok, `a delivered message the client would refuse: ${JSON.stringify(m)}`);
    assert.ok(m.id >= 1 && m.after >= 0, `a message id no store makes: ${JSON.stringify(m)}`);
  }
  for (const m of ephemeral) {
    const frame = validateServerFrame({ type: 'message', envelope: { id: 'e1', type: m.type, body: m.bodyB64, source: m.from, timestamp: m.timestamp, ephemeral: true } });
    assert.ok(frame.ok, `an ephemeral message the client would refuse: ${JSON.stringify(m)}`);
  }
  await b.close();
  await a.close();
});
