// A session we started and never heard back on is not used for sending after 30 days
// (MAX_UNACKNOWLEDGED_SESSION_AGE_MS, libsignal's rule): the next send fetches a fresh bundle and
// goes through, through a real server process. Before, the directory still counted the stale
// session as usable, encrypt refused it with NO_SESSION, and every send to that contact failed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_UNACKNOWLEDGED_SESSION_AGE_MS } from '@tacit/protocol';
import { serverDevices, until } from './support/devices.ts';

const { register } = serverDevices();

test('a session unanswered for 30 days is replaced by a fresh one on the next send', async () => {
  const clock = { t: Date.now() };
  const alice = await register('alice', undefined, () => clock.t);
  const bob = await register('bob');
  const b = bob.client.username;
  // bob is away: nothing he could answer with (a receipt, a reply) reaches alice.
  await bob.client.close();
  await alice.client.send(b, 'one');
  clock.t += MAX_UNACKNOWLEDGED_SESSION_AGE_MS + 1000;
  const r = await alice.client.send(b, 'two');
  assert.equal(r.to, b);
  assert.ok(r.serverIds.length > 0, 'the server took the message');
  await until(async () => (await alice.client.history(b)).length === 2, 'both sends are in alice’s history');
});
