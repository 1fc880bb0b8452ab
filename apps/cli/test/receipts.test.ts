// Receipts end to end: a real server process and real `tacit` processes. A message goes from sent
// (✓) to delivered (✓✓, the recipient's device stored it) to read (the recipient printed it),
// pairwise and per member of a group; `--json` says so in `receipt` events and in `history`;
// read receipts turned off send none. The browser takes part in apps/web/test/receipts.browser.ts.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ok, recv, serverWithUsers, tacit } from './harness.ts';

let env: Awaited<ReturnType<typeof serverWithUsers>>;
before(async () => {
  env = await serverWithUsers('receipts', ['alice', 'bob', 'carol']);
});
after(async () => {
  await env?.remove();
});

const h = (name: string): string => env.homes[name]!;
const outgoing = async (name: string, conversation: string): Promise<Record<string, unknown>[]> =>
  (await ok(h(name), ['history', conversation])).filter((e) => e['event'] === 'history' && e['direction'] === 'out' && e['system'] !== true);

test('pairwise: sent, then delivered when bob\u2019s device stored it, then read when bob printed it; receipt events', async () => {
  const sent = (await ok(h('alice'), ['send', 'bob', 'hello bob'])).find((e) => e['event'] === 'sent')!;
  assert.equal((await outgoing('alice', 'bob'))[0]?.['delivery'], 'sent');
  // Bob's device stores it without showing it (`group list` catches up first): delivered.
  await ok(h('bob'), ['group', 'list']);
  const first = await ok(h('alice'), ['recv']);
  const delivered = first.filter((e) => e['event'] === 'receipt');
  assert.deepEqual(delivered.map((e) => [e['from'], e['kind'], e['ids']]), [['bob', 'delivered', [sent['id']]]]);
  // A receipt is never a message.
  assert.equal(first.filter((e) => e['event'] === 'message').length, 0);
  let mine = (await outgoing('alice', 'bob'))[0]!;
  assert.equal(mine['delivery'], 'delivered');
  assert.equal(typeof (mine['receipts'] as Record<string, { delivered?: number }>)['bob']?.delivered, 'number');
  assert.match((await tacit(h('alice'), ['history', 'bob'])).stdout, /you: hello bob  ✓✓ delivered\n/);

  // Bob prints it: read.
  assert.deepEqual(await recv(h('bob')), ['alice: hello bob']);
  const second = await ok(h('alice'), ['recv']);
  assert.deepEqual(second.filter((e) => e['event'] === 'receipt').map((e) => [e['from'], e['kind']]), [['bob', 'read']]);
  mine = (await outgoing('alice', 'bob'))[0]!;
  assert.equal(mine['delivery'], 'read');
  assert.match((await tacit(h('alice'), ['history', 'bob'])).stdout, /you: hello bob  ✓✓ read\n/);
  // Bob's history has only the message; alice's nothing from bob.
  assert.deepEqual((await ok(h('bob'), ['history', 'alice'])).map((e) => e['text']), ['hello bob']);
  assert.equal((await ok(h('alice'), ['history', 'bob'])).length, 1);
});

test('a group: receipts per member; read once everyone read it', async () => {
  const g = (await ok(h('alice'), ['group', 'create', 'Crew', 'bob', 'carol'])).find((e) => e['event'] === 'group')!;
  await recv(h('bob'));
  await recv(h('carol'));
  await ok(h('alice'), ['send', '#crew', 'crew hello']);
  assert.deepEqual(await recv(h('bob')), ['alice: crew hello']);
  // Carol's device stores it without printing it.
  await ok(h('carol'), ['group', 'list']);
  await ok(h('alice'), ['recv']);
  let mine = (await outgoing('alice', '#crew'))[0]!;
  assert.equal(mine['delivery'], 'delivered');
  const receipts = mine['receipts'] as Record<string, { delivered?: number; read?: number }>;
  assert.equal(typeof receipts['bob']?.read, 'number');
  assert.equal(typeof receipts['carol']?.delivered, 'number');
  assert.equal(receipts['carol']?.read, undefined);
  assert.match((await tacit(h('alice'), ['history', '#crew'])).stdout, /you: crew hello  ✓✓ delivered \(read by bob; delivered to carol\)\n/);
  assert.deepEqual(await recv(h('carol')), ['alice: crew hello']);
  await ok(h('alice'), ['recv']);
  mine = (await outgoing('alice', `g:${String(g['id'])}`))[0]!;
  assert.equal(mine['delivery'], 'read');
});

test('read receipts off: bob sends none; alice, with them off, sees none', async () => {
  const set = await ok(h('bob'), ['settings', 'read-receipts', 'off']);
  assert.deepEqual(set.map((e) => [e['readReceipts'], e['typingIndicators']]), [[false, true]]);
  const bad = await tacit(h('bob'), ['settings', 'read-receipts', 'maybe']);
  assert.equal(bad.code, 2);
  await ok(h('alice'), ['send', 'bob', 'quietly']);
  assert.deepEqual(await recv(h('bob')), ['alice: quietly']);
  const events = await ok(h('alice'), ['recv']);
  assert.deepEqual(events.filter((e) => e['event'] === 'receipt').map((e) => e['kind']), ['delivered']);
  assert.equal((await outgoing('alice', 'bob')).at(-1)?.['delivery'], 'delivered');

  // Bob on again, alice off: bob's read receipt arrives but alice does not see it.
  await ok(h('bob'), ['settings', 'read-receipts', 'on']);
  await ok(h('alice'), ['settings', 'read-receipts', 'off']);
  await ok(h('alice'), ['send', 'bob', 'unseen read']);
  assert.deepEqual(await recv(h('bob')), ['alice: unseen read']);
  await ok(h('alice'), ['recv']);
  const last = (await outgoing('alice', 'bob')).at(-1)!;
  assert.equal(last['delivery'], 'delivered');
  // And the earlier read message no longer shows as read either, while the setting is off.
  assert.equal((await outgoing('alice', 'bob'))[0]?.['delivery'], 'delivered');
  const human = await tacit(h('alice'), ['settings']);
  assert.match(human.stdout, /read-receipts\s+off\ntyping\s+on/);
});
