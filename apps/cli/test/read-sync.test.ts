// Read state between two `tacit` homes of one account, and a running `tacit chat` that deletes
// disappearing messages on time, through a real server process. What one device showed is read
// on the other (`history --json` read flags, `contacts` unread count, a `read-sync` event; `recv`
// has nothing new to print), both ways; a disappearing message read on one device has its timer
// started on the other; the chat process removes a read disappearing message from its store while
// it runs (the store is opened beside it and inspected, not the screen).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { openHomeStore } from '@tacit/client/node';
import { ChatProcess, PASSPHRASE, ok, recv, serverWithUsers } from './harness.ts';

let env: Awaited<ReturnType<typeof serverWithUsers>>;
let laptop: string;

before(async () => {
  env = await serverWithUsers('readsync', ['alice', 'bob', 'carol']);
  laptop = join(env.dir, 'alice-laptop');
});
after(async () => {
  await env?.remove();
});

const home = (name: string): string => env.homes[name]!;

/** Does any record of a home's store (decrypted) hold `text`? Opened beside a running process. */
async function storeHolds(h: string, text: string): Promise<boolean> {
  const store = await openHomeStore({ home: h, passphrase: PASSPHRASE, scryptN: 1024 }, false);
  try {
    const needle = Buffer.from(text, 'utf8');
    return (await store.list('')).some((r) => Buffer.from(r.value).includes(needle));
  } finally {
    await store.close();
  }
}

const historyOf = async (h: string, who: string) => (await ok(h, ['history', who])).filter((e) => e['event'] === 'history' && e['system'] !== true);
const unreadOf = async (h: string, who: string) => (await ok(h, ['contacts'])).find((e) => e['username'] === who)?.['unread'];

test('read on one terminal, read on the other: history, unread and recv agree, both ways; a disappearing timer starts on both', async () => {
  const alice = home('alice');
  const bob = home('bob');
  const link = new ChatProcess(laptop, '', [], ['link', '--server', env.server.url, '--name', 'laptop']);
  await link.waitFor(() => link.count('link-code') === 1, 'the link code');
  const code = String(link.events.find((e) => e['event'] === 'link-code')!['code']);
  await ok(alice, ['devices', 'add', code]);
  await link.waitFor(() => link.count('linked') === 1, 'linked');
  assert.equal(await link.end(), 0);
  // Sessions between the two devices (each one's transcript to the other).
  await ok(alice, ['send', 'bob', 'hello from the terminal']);
  await ok(laptop, ['send', 'bob', 'hello from the laptop']);
  await recv(alice);
  await recv(laptop);
  await recv(bob);

  // Bob writes; the laptop shows it; the terminal learns it was read and has nothing new to show.
  await ok(bob, ['send', 'alice', 'read this anywhere']);
  assert.deepEqual(await recv(laptop), ['bob: read this anywhere']);
  const onTerminal = await ok(alice, ['recv']);
  assert.deepEqual(onTerminal.filter((e) => e['event'] === 'message'), [], 'nothing new to print: it was read on the laptop');
  assert.deepEqual(onTerminal.filter((e) => e['event'] === 'read-sync').map((e) => [e['conversation'], e['count'], e['fromDevice']]), [['u:bob', 1, 2]]);
  const h = (await historyOf(alice, 'bob')).find((e) => e['text'] === 'read this anywhere')!;
  assert.equal(h['read'], true);
  assert.equal(await unreadOf(alice, 'bob'), 0);

  // The other way: the terminal reads, the laptop learns it.
  await ok(bob, ['send', 'alice', 'and this one']);
  assert.deepEqual(await recv(alice), ['bob: and this one']);
  const onLaptop = await ok(laptop, ['recv']);
  assert.deepEqual(onLaptop.filter((e) => e['event'] === 'message'), []);
  assert.equal((await historyOf(laptop, 'bob')).find((e) => e['text'] === 'and this one')?.['read'], true);
  assert.equal(await unreadOf(laptop, 'bob'), 0);

  // Disappearing: read on the terminal, the laptop's timer starts then (it would wait for its own read otherwise).
  await ok(bob, ['timer', 'alice', '1h']);
  await ok(bob, ['send', 'alice', 'gone in an hour']);
  const before = Date.now();
  await recv(alice);
  const onTheTerminal = (await historyOf(alice, 'bob')).find((e) => e['text'] === 'gone in an hour')!;
  assert.equal(typeof onTheTerminal['expiresAt'], 'number');
  await recv(laptop);
  const onTheLaptop = (await historyOf(laptop, 'bob')).find((e) => e['text'] === 'gone in an hour')!;
  assert.equal(onTheLaptop['read'], true);
  assert.equal(onTheLaptop['expiresAt'], onTheTerminal['expiresAt'], 'the clock started when the terminal read it');
  assert.ok(Number(onTheLaptop['expiresAt']) >= before + 3_600_000);
  await ok(bob, ['timer', 'alice', 'off']);
  await recv(alice);
  await recv(laptop);
});

test('a running tacit chat deletes a read disappearing message from its store on time, and says so', async () => {
  const carol = home('carol');
  const bob = home('bob');
  await ok(bob, ['send', 'carol', 'hi carol']);
  await recv(carol);
  await ok(bob, ['timer', 'carol', '2s']);
  const chat = new ChatProcess(carol, 'bob');
  try {
    await chat.waitFor(() => chat.count('chat-ready') === 1, 'chat ready');
    await chat.waitFor(() => chat.events.some((e) => e['event'] === 'message' && /disappearing messages to 2 seconds/.test(String(e['text']))), 'the timer change');
    const sent = (await ok(bob, ['send', 'carol', 'vanishing while you watch'])).find((e) => e['event'] === 'sent')!;
    await chat.waitFor(() => chat.received().includes('vanishing while you watch'), 'the message is shown (read)');
    await chat.waitFor(() => chat.events.some((e) => e['event'] === 'disappeared' && (e['ids'] as string[]).includes(String(sent['id']))), 'the chat swept it');
    // Still running: the record is gone from the store the chat process holds open.
    assert.equal(await storeHolds(carol, 'vanishing while you watch'), false);
    assert.equal(await storeHolds(carol, 'hi carol'), true);
  } finally {
    assert.equal(await chat.end(), 0);
  }
});
