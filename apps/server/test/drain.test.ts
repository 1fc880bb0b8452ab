/**
 * Graceful shutdown (SIGTERM → server.close()): the node stops accepting, writes and answers
 * everything it received, and closes sockets with RECONNECT_ELSEWHERE; /healthz says 503 from the
 * moment it drains, so a load balancer stops sending it clients.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ERRORS } from '@tacit/api';
import { SqliteStore } from '../src/index.js';
import { Client, register, start } from './helpers.js';

test('drain: every send the node received is stored and answered before its socket closes with RECONNECT_ELSEWHERE; then it accepts nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tacit-drain-'));
  try {
    const path = join(dir, 'tacit.db');
    const h = await start({ store: new SqliteStore({ path }) });
    const a = await register(h);
    const b = await register(h);
    const ca = await Client.connect(h.wsUrl, a);
    const N = 200;
    for (let i = 0; i < N; i++) ca.send({ type: 'send', id: `d${i}`, to: { username: b.username, deviceId: 1 }, message: { type: 'whisper', body: Buffer.from(`m${i}`).toString('base64') } });
    await ca.next((f) => f.type === 'sent');

    h.server.relay.drain();
    const health = await h.server.app.inject({ method: 'GET', url: '/healthz' });
    assert.equal(health.statusCode, 503);
    assert.equal((health.json() as { error: { code: string } }).error.code, 'UNAVAILABLE');

    await h.close();
    const closed = await ca.closed;
    assert.equal(closed.code, ERRORS.RECONNECT_ELSEWHERE.close);
    assert.equal(closed.reason, 'RECONNECT_ELSEWHERE');
    const answered = ca.frames.filter((f) => f.type === 'sent').length;
    assert.ok(answered >= 1 && answered <= N);
    assert.equal(ca.frames.filter((f) => f.type === 'error' && 'id' in f && f.id !== undefined).length, 0, 'no send was refused');

    // What was answered is exactly what is stored: nothing answered and lost, nothing stored unanswered.
    const s = new SqliteStore({ path });
    const queued = await s.fetchQueue({ username: b.username, deviceId: 1 }, 0, N + 1, 0);
    await s.close();
    assert.equal(queued.length, answered);
    assert.deepEqual(
      queued.map((m) => Buffer.from(m.body).toString()),
      Array.from({ length: answered }, (_, i) => `m${i}`),
    );

    // The port no longer accepts connections.
    await assert.rejects(Client.open(h.wsUrl));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
