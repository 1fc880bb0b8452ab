// Edits, deletions for everyone, reactions, disappearing messages and search end to end: a real
// server process, real `tacit` processes, and the homes' record stores opened afterwards to show
// what each device keeps (not what it prints). A hostile member's forged edit goes through the
// same server from an SDK client in this process.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { openHome, openHomeStore } from '@tacit/client/node';
import type { Action } from '@tacit/client';
import { uncheckedActionSend } from '../../../packages/client/src/chat/testing.ts';
import { PASSPHRASE, ok, serverWithUsers, tacit } from './harness.ts';

let env: Awaited<ReturnType<typeof serverWithUsers>>;

before(async () => {
  env = await serverWithUsers('edits', ['alice', 'bob', 'carol']);
});

after(async () => {
  await env?.remove();
});

const home = (name: string): string => env.homes[name]!;

/** Does any record of a home's store (decrypted) hold `text`? */
async function storeHolds(name: string, text: string): Promise<boolean> {
  const store = await openHomeStore({ home: home(name), passphrase: PASSPHRASE, scryptN: 1024 }, false);
  try {
    const needle = Buffer.from(text, 'utf8');
    return (await store.list('')).some((r) => Buffer.from(r.value).includes(needle));
  } finally {
    await store.close();
  }
}

/** A hostile client: sends an action its own SDK would refuse, through the real server. */
async function forge(name: string, conversation: string, act: Action): Promise<void> {
  const h = await openHome({ home: home(name), passphrase: PASSPHRASE });
  try {
    await h.client.connect();
    const send = uncheckedActionSend.get(h.client);
    assert.ok(send);
    await bounded(send(conversation, act), `${name}'s forged ${act.k}`);
  } finally {
    await h.close();
  }
}

/** A promise from this process's own client, bounded so a failure says what it waited for. */
async function bounded<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), 60_000)))]);
  } finally {
    clearTimeout(timer);
  }
}

const historyOf = async (name: string, conversation: string) => (await ok(home(name), ['history', conversation])).filter((e) => e['event'] === 'history' && e['system'] !== true);

test('group: an edit and a deletion reach every member; a reaction is replaced; a forged edit from a non-author is ignored', async () => {
  const created = (await ok(home('alice'), ['group', 'create', 'Team', 'bob', 'carol'])).find((e) => e['event'] === 'group')!;
  const group = `g:${String(created['id'])}`;
  const typo = (await ok(home('alice'), ['send', '#team', 'teh plan is ready'])).find((e) => e['event'] === 'sent')!;
  const secret = (await ok(home('alice'), ['send', '#team', 'the door code is 4711'])).find((e) => e['event'] === 'sent')!;
  const typoId = String(typo['id']);
  const secretId = String(secret['id']);
  for (const u of ['bob', 'carol']) await ok(home(u), ['recv']);

  // Edit by an 8-character prefix (what history shows), delete by the whole id.
  const edited = await ok(home('alice'), ['edit', '#team', typoId.slice(0, 8), 'the plan is ready']);
  assert.deepEqual(edited.map((e) => [e['event'], e['target']]), [['edited', typoId]]);
  await ok(home('alice'), ['delete', '#team', secretId]);
  for (const u of ['bob', 'carol']) {
    const events = await ok(home(u), ['recv']);
    assert.deepEqual(
      events.filter((e) => e['event'] === 'edited' || e['event'] === 'deleted').map((e) => [e['event'], e['from'], e['target']]),
      [
        ['edited', 'alice', typoId],
        ['deleted', 'alice', secretId],
      ],
    );
  }
  for (const u of ['alice', 'bob', 'carol']) {
    const h = await historyOf(u, '#team');
    assert.deepEqual(
      h.map((e) => [e['text'], e['edited'] !== undefined, e['deleted'] === true]),
      [
        ['the plan is ready', true, false],
        ['', false, true],
      ],
      u,
    );
    assert.deepEqual((h[0]!['versions'] as { text: string }[]).map((v) => v.text), ['teh plan is ready']);
    const human = await tacit(home(u), ['history', '#team']);
    assert.match(human.stdout, /the plan is ready \(edited\).*\n.*\(This message was deleted\)/);
    // The deleted text is in no record of any device.
    assert.equal(await storeHolds(u, 'door code is 4711'), false, `${u}'s store`);
  }

  // Bob reacts, then changes his mind: one reaction per person, replaced everywhere.
  await ok(home('bob'), ['react', '#team', typoId.slice(0, 6), '👍']);
  await ok(home('bob'), ['react', group, typoId, '🎉']);
  const reactions = (await ok(home('carol'), ['recv'])).filter((e) => e['event'] === 'reaction');
  assert.deepEqual(reactions.map((e) => e['emoji']), ['👍', '🎉']);
  await ok(home('alice'), ['recv']);
  for (const u of ['alice', 'carol']) assert.deepEqual((await historyOf(u, '#team'))[0]!['reactions'], [{ from: 'bob', emoji: '🎉' }], u);
  const bad = await tacit(home('bob'), ['--json', 'react', '#team', typoId, 'ok']);
  assert.equal(bad.code, 2, bad.stderr);

  // Carol is hostile: an edit naming alice's message. Nobody applies it.
  await forge('carol', group, { k: 'edit', target: typoId, text: 'forged by carol' });
  await forge('carol', group, { k: 'delete', target: typoId });
  await ok(home('carol'), ['send', '#team', 'marker']);
  for (const u of ['alice', 'bob']) {
    await ok(home(u), ['recv']);
    const h = await historyOf(u, '#team');
    assert.equal(h[0]!['text'], 'the plan is ready', u);
    assert.equal(h[0]!['deleted'], undefined, u);
    assert.equal(h.at(-1)!['text'], 'marker');
  }
  // Not the author, on the command line: refused before anything is sent.
  const notMine = await tacit(home('bob'), ['--json', 'edit', '#team', typoId, 'mine']);
  assert.equal(notMine.code, 2);
  assert.match(notMine.stderr, /only your own messages/);
});

test('disappearing: a 3 second timer set by one side, shown to both; the messages are gone from both stores after it', async () => {
  const set = await ok(home('alice'), ['timer', 'bob', '3s']);
  assert.equal(set[0]!['event'], 'timer-set');
  const seen = await ok(home('bob'), ['recv']);
  assert.ok(seen.some((e) => e['event'] === 'message' && /alice set disappearing messages to 3 seconds/.test(String(e['text']))));
  assert.equal((await ok(home('bob'), ['timer', 'alice']))[0]!['ms'], 3_000);
  await ok(home('alice'), ['send', 'bob', 'this will vanish']);
  await ok(home('bob'), ['send', 'alice', 'so will this reply']);
  // Before reading, bob's copy stays (its clock starts when it is read).
  assert.equal(await storeHolds('bob', 'this will vanish'), true);
  const got = (await ok(home('bob'), ['recv'])).find((e) => e['event'] === 'message');
  assert.equal(got?.['expireTimer'], 3_000);
  await ok(home('alice'), ['recv']);
  // A CLI device deletes when it next runs after the time ran out (a running `chat` does so on time).
  const left = async (): Promise<boolean> => {
    for (const u of ['alice', 'bob']) for (const t of ['this will vanish', 'so will this reply']) if (await storeHolds(u, t)) return true;
    return false;
  };
  for (let i = 0; i < 100 && (await left()); i++) {
    await new Promise((r) => setTimeout(r, 500));
    for (const u of ['alice', 'bob']) await ok(home(u), ['history', u === 'alice' ? 'bob' : 'alice']);
  }
  for (const u of ['alice', 'bob']) {
    assert.equal(await storeHolds(u, 'this will vanish'), false, `${u}'s store`);
    assert.equal(await storeHolds(u, 'so will this reply'), false, `${u}'s store`);
    assert.deepEqual((await ok(home(u), ['search', 'vanish'])).filter((e) => e['event'] === 'found'), []);
  }
  await ok(home('bob'), ['timer', 'alice', 'off']);
  await ok(home('alice'), ['recv']);
  assert.equal((await ok(home('alice'), ['timer', 'bob']))[0]!['ms'], 0);
});

test('search finds a word from last week (sent with a clock a week back), newest first, and not deleted ones', async () => {
  const weekAgo = Date.now() - 7 * 24 * 3600_000;
  const h = await openHome({ home: home('carol'), passphrase: PASSPHRASE, now: () => weekAgo });
  try {
    await h.client.connect();
    await bounded(h.client.send('alice', 'the quarterly figures are in the shared folder'), 'carol\'s message from last week');
  } finally {
    await h.close();
  }
  await ok(home('carol'), ['send', 'alice', 'quarterly review moved to Friday']);
  await ok(home('alice'), ['recv']);
  const found = (await ok(home('alice'), ['search', 'Quarterly'])).filter((e) => e['event'] === 'found');
  assert.deepEqual(found.map((e) => e['text']), ['quarterly review moved to Friday', 'the quarterly figures are in the shared folder']);
  assert.ok(Math.abs(Number(found[1]!['sentAt']) - weekAgo) < 1_000);
  assert.deepEqual((await ok(home('alice'), ['search', 'figures', 'folder'])).filter((e) => e['event'] === 'found').length, 1);
  const human = await tacit(home('alice'), ['search', 'figures']);
  assert.match(human.stdout, /carol: the quarterly figures are in the shared folder/);
  const none = await tacit(home('alice'), ['search', 'nonexistentword']);
  assert.equal(none.code, 0);
  assert.match(none.stderr, /nothing found/);
  assert.equal((await tacit(home('alice'), ['search'])).code, 2);

  // An edit: the old word is no longer found, the new one is.
  const friday = String(found[0]!['id']);
  await ok(home('carol'), ['edit', 'alice', friday.slice(0, 8), 'quarterly review moved to Monday']);
  await ok(home('alice'), ['recv']);
  assert.deepEqual((await ok(home('alice'), ['search', 'friday'])).filter((e) => e['event'] === 'found'), []);
  assert.deepEqual((await ok(home('alice'), ['search', 'mon', 'review'])).filter((e) => e['event'] === 'found').map((e) => e['text']), ['quarterly review moved to Monday']);

  // The index is in the home's store, and its keys (stored in the clear) show no word.
  const keysOf = async (): Promise<string[]> => {
    const store = await openHomeStore({ home: home('alice'), passphrase: PASSPHRASE, scryptN: 1024 }, false);
    try {
      return (await store.list('')).map((r) => r.key);
    } finally {
      await store.close();
    }
  };
  const keys = await keysOf();
  assert.ok(keys.some((k) => k.startsWith('sx/')));
  for (const word of ['quarterly', 'figures', 'monday', 'review']) assert.ok(!keys.some((k) => k.toLowerCase().includes(word)), word);

  // A home of the previous store format (2: no index): `tacit search` upgrades it, finds the same.
  const store = await openHomeStore({ home: home('alice'), passphrase: PASSPHRASE, scryptN: 1024 }, false);
  try {
    const drop = (await store.list('sx/')).map((r) => r.key);
    await store.commit([{ key: 'meta/format', value: Buffer.from(JSON.stringify({ v: 2 })) }], [...drop, 'meta/search']);
  } finally {
    await store.close();
  }
  assert.ok(!(await keysOf()).some((k) => k.startsWith('sx/')));
  const upgraded = (await ok(home('alice'), ['search', 'quarterly'])).filter((e) => e['event'] === 'found');
  assert.deepEqual(upgraded.map((e) => e['text']), ['quarterly review moved to Monday', 'the quarterly figures are in the shared folder']);
  const after = await keysOf();
  assert.ok(after.includes('meta/search') && after.some((k) => k.startsWith('sx/')), 'the index was built');
});
