// Several devices per account through a real server process: linking (provisioning cipher, link
// token, registration), "sent" transcripts shown in the right conversation, sending to every
// device of a contact and of our own account, device-list repair after a device was linked while
// the sender kept an old list, removal (and a device removing itself: signing out), and the refusals (forged transcript, a foreign identity
// under our name, a link message that fails its MAC).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeBackend } from '@tacit/protocol/node';
import {
  decryptProvisioning,
  encodeEnvelope,
  encryptProvisioning,
  generateProvisioningKeyPair,
  isClientError,
  MemoryRecordStore,
  parseLinkCode,
  TacitClient,
  type FetchLike,
  type HistoryMessage,
} from '../src/index.ts';
import { wsSocketFactory } from '../src/node.ts';
import { ServerProcess } from './support/server-process.js';
import { rawDevice } from './support/raw-device.ts';

const backend = nodeBackend();
let server: ServerProcess;
let n = 0;
const open: TacitClient[] = [];

before(async () => {
  // Each test registers and links several devices from one address.
  server = await ServerProcess.start({ TACIT_REGISTRATION_BURST: '100', TACIT_REGISTRATION_PER_HOUR: '1000' });
});
after(async () => {
  for (const c of open) await c.close().catch(() => undefined);
  await server?.stop();
});

const opts = () => ({ store: new MemoryRecordStore(), backend, connect: wsSocketFactory, backoff: { baseMs: 10, maxMs: 50 } });

async function register(name: string): Promise<TacitClient> {
  const c = await TacitClient.register(opts(), { server: server.url, username: `${name}${++n}x${process.pid}` });
  open.push(c);
  await c.connect();
  return c;
}

/** Links a new device to `existing`'s account; resolves with the new device's client. */
async function link(existing: TacitClient, name: string, fetch?: FetchLike): Promise<TacitClient> {
  let added: Promise<{ deviceId: number | undefined }> | undefined;
  const linked = TacitClient.link({ ...opts(), ...(fetch ? { fetch } : {}) }, { server: server.url, name, onCode: (code) => (added = existing.linkDevice(code)) });
  const c = await linked;
  open.push(c);
  assert.equal((await added!).deviceId, c.deviceId);
  await c.connect();
  return c;
}

async function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 2_000; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

const lines = (h: HistoryMessage[]) => h.map((m) => `${m.direction} ${m.from}: ${m.text}`);

test('provisioning cipher: round trip; a flipped bit, another key or a truncated envelope fail with PROVISIONING_FAILED', () => {
  const kp = generateProvisioningKeyPair(backend);
  const msg = new TextEncoder().encode('hello new device');
  const env = encryptProvisioning(backend, kp.publicKey, msg);
  assert.deepEqual(decryptProvisioning(backend, kp, env), msg);
  for (let i = 0; i < env.length; i += 7) {
    const bad = env.slice();
    bad[i]! ^= 0x01;
    assert.throws(() => decryptProvisioning(backend, kp, bad), (e: unknown) => isClientError(e) && e.code === 'PROVISIONING_FAILED');
  }
  assert.throws(() => decryptProvisioning(backend, generateProvisioningKeyPair(backend), env), (e: unknown) => isClientError(e) && e.code === 'PROVISIONING_FAILED');
  assert.throws(() => decryptProvisioning(backend, kp, env.subarray(0, 40)), (e: unknown) => isClientError(e) && e.code === 'PROVISIONING_FAILED');
  assert.throws(() => parseLinkCode('tacit-link:abc'), (e: unknown) => isClientError(e) && e.code === 'INVALID_ARGUMENT');
});

test('two devices: link, Bob reaches both, Alice sends from one and the other shows it as hers in the conversation with Bob', async () => {
  const alice = await register('alice');
  const bob = await register('bob');
  await alice.send(bob.username, 'before linking');
  await until(async () => (await bob.history(alice.username)).length === 1, 'bob has the first message');
  const laptop = await link(alice, 'laptop');
  assert.equal(laptop.username, alice.username);
  assert.equal(laptop.deviceId, 2);
  assert.deepEqual(laptop.identityKey, alice.identityKey);
  // The contact list came along; old history did not.
  assert.deepEqual((await laptop.contacts()).map((c) => c.username), [bob.username]);
  assert.deepEqual(await laptop.history(bob.username), []);
  const devices = await alice.devices();
  assert.deepEqual(devices.map((d) => [d.deviceId, d.name, d.current]), [[1, '', true], [2, 'laptop', false]]);

  await bob.send(alice.username, 'hi both');
  for (const c of [alice, laptop]) await until(async () => (await c.history(bob.username)).some((m) => m.text === 'hi both'), `device ${c.deviceId} has bob's message`);
  await alice.send(bob.username, 'from the terminal');
  await until(async () => (await laptop.history(bob.username)).some((m) => m.text === 'from the terminal'), 'the laptop has the transcript');
  const onLaptop = await laptop.history(bob.username);
  assert.deepEqual(lines(onLaptop), [`in ${bob.username}: hi both`, `out ${alice.username}: from the terminal`]);
  assert.equal(onLaptop[1]!.state, 'sent');
  assert.equal(onLaptop[1]!.fromDevice, 1);
  // And the other way: the laptop writes, the terminal shows it as its own.
  await laptop.send(bob.username, 'from the laptop');
  await until(async () => (await alice.history(bob.username)).some((m) => m.text === 'from the laptop'), 'the terminal has the transcript');
  await until(async () => (await bob.history(alice.username)).length === 4, 'bob has all four');
  // Bob sees one conversation with Alice, every message once.
  assert.deepEqual((await bob.conversations()).map((c) => c.id), [`u:${alice.username}`]);
  assert.deepEqual(lines(await bob.history(alice.username)).map((l) => l.split(': ')[1]), ['before linking', 'hi both', 'from the terminal', 'from the laptop']);
  assert.deepEqual((await alice.history(bob.username)).filter((m) => m.direction === 'out').map((m) => m.text), ['before linking', 'from the terminal', 'from the laptop']);
});

test('a third device linked while Bob keeps an old device list: his next send reaches all three after one repair, nothing lost or doubled', async () => {
  const alice = await register('alice');
  const bob = await register('bob');
  const second = await link(alice, 'second');
  await bob.send(alice.username, 'one');
  for (const c of [alice, second]) await until(async () => (await c.history(bob.username)).length === 1, 'both have one');
  // Bob's client caches Alice's device list (DEVICE_LIST_TTL_MS); a third device appears meanwhile.
  const third = await link(alice, 'third');
  const r = await bob.send(alice.username, 'two');
  assert.equal(r.serverIds.length, 3);
  for (const c of [alice, second, third]) await until(async () => (await c.history(bob.username)).some((m) => m.text === 'two'), `device ${c.deviceId} has "two"`);
  await new Promise((res) => setTimeout(res, 200));
  assert.deepEqual((await alice.history(bob.username)).map((m) => m.text), ['one', 'two']);
  assert.deepEqual((await second.history(bob.username)).map((m) => m.text), ['one', 'two']);
  assert.deepEqual((await third.history(bob.username)).map((m) => m.text), ['two']);
  const msg = (await bob.history(alice.username)).at(-1)!;
  assert.equal(msg.state, 'sent');
});

test('groups with a member on two devices: the other device learns the group, shows our group messages as ours, and gets the members\' messages', async () => {
  const alice = await register('alice');
  const bob = await register('bob');
  const laptop = await link(alice, 'laptop');
  const g = await alice.createGroup('Plans', [bob.username]);
  await until(async () => (await laptop.groups()).length === 1 && (await bob.groups()).length === 1, 'the laptop and bob learn of the group');
  await alice.send(g.conversation, 'from the terminal');
  await until(async () => (await laptop.history(g.conversation)).some((m) => m.text === 'from the terminal'), 'the laptop has our group message');
  const mine = (await laptop.history(g.conversation)).find((m) => m.text === 'from the terminal')!;
  assert.equal(mine.direction, 'out');
  assert.equal(mine.from, alice.username);
  await bob.send(g.conversation, 'from bob');
  for (const c of [alice, laptop]) await until(async () => (await c.history(g.conversation)).some((m) => m.text === 'from bob'), `device ${c.deviceId} has bob's group message`);
  await laptop.send(g.conversation, 'from the laptop');
  await until(async () => (await bob.history(g.conversation)).some((m) => m.text === 'from the laptop'), 'bob has the laptop\'s group message');
  await until(async () => (await alice.history(g.conversation)).some((m) => m.text === 'from the laptop' && m.direction === 'out'), 'the terminal shows the laptop\'s group message as ours');
  const texts = (await bob.history(g.conversation)).filter((m) => !m.system).map((m) => m.text);
  assert.deepEqual(texts, ['from the terminal', 'from bob', 'from the laptop']);
});

test('removing a device: its next request is refused and later messages do not reach it', async () => {
  const alice = await register('alice');
  const bob = await register('bob');
  const old = await link(alice, 'old phone');
  await alice.removeDevice(old.deviceId);
  await assert.rejects(old.devices(), (e: unknown) => isClientError(e) && e.code === 'SERVER' && e.serverCode === 'UNAUTHORIZED');
  await assert.rejects(alice.removeDevice(alice.deviceId), (e: unknown) => isClientError(e) && e.code === 'INVALID_ARGUMENT');
  const r = await bob.send(alice.username, 'after removal');
  assert.equal(r.serverIds.length, 1);
  assert.deepEqual((await alice.devices()).map((d) => d.deviceId), [1]);
});

test('unlinkThisDevice: a linked device removes itself; the only device is kept', async () => {
  const alice = await register('alice');
  const bob = await register('bob');
  const laptop = await link(alice, 'laptop');
  assert.deepEqual(await laptop.unlinkThisDevice(), { kind: 'unlinked', otherDevices: 1 });
  await assert.rejects(laptop.devices(), (e: unknown) => isClientError(e) && e.code === 'SERVER' && e.serverCode === 'UNAUTHORIZED');
  assert.deepEqual((await alice.devices()).map((d) => d.deviceId), [1]);
  assert.equal((await bob.send(alice.username, 'after sign-out')).serverIds.length, 1);
  // The account's only device: nothing is removed, the account stays.
  assert.deepEqual(await alice.unlinkThisDevice(), { kind: 'only-device' });
  assert.deepEqual((await alice.devices()).map((d) => d.deviceId), [1]);
  // Removed from elsewhere first: nothing left to do.
  const phone = await link(alice, 'phone');
  await alice.removeDevice(phone.deviceId);
  assert.deepEqual(await phone.unlinkThisDevice(), { kind: 'already-removed' });
  await laptop.close();
  await assert.rejects(laptop.unlinkThisDevice(), (e: unknown) => isClientError(e) && e.code === 'CLOSED');
});

test('the last device stays: two devices signing out at once leave one (the server refuses the second, LAST_DEVICE, which is only-device)', async () => {
  const alice = await register('alice');
  // The laptop's DELETE waits at a gate, so its own check (two devices) is stale when the server sees it.
  let asked!: () => void;
  const deleteAsked = new Promise<void>((r) => (asked = r));
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const gated: FetchLike = async (url, init) => {
    if (init.method === 'DELETE') {
      asked();
      await gate;
    }
    return fetch(url, init);
  };
  const laptop = await link(alice, 'laptop', gated);
  const laptopOut = laptop.unlinkThisDevice();
  await deleteAsked;
  assert.deepEqual(await alice.unlinkThisDevice(), { kind: 'unlinked', otherDevices: 1 });
  release();
  assert.deepEqual(await laptopOut, { kind: 'only-device' }, 'the server refused removing the last device');
  assert.deepEqual((await laptop.devices()).map((d) => d.deviceId), [laptop.deviceId]);
});

test('refusals: a forged transcript from Bob (a hostile client of a real account) is refused, nothing is stored', async () => {
  const alice = await register('alice');
  const laptop = await link(alice, 'laptop');
  const events: string[] = [];
  alice.on('undecryptable', (e) => events.push(`${e.from}:${e.reason}`));
  const bob = await rawDevice(server, `mallory${++n}x${process.pid}`);
  const carol = await register('carol');
  // Bob starts a session with Alice's first device and sends an envelope that claims to be Alice's
  // own "sent to carol" transcript.
  await bob.send(alice.username, 1, encodeEnvelope({ v: 1, id: 'f1', text: 'I said this, not alice', sentAt: 1, sentTo: carol.username }));
  await bob.send(alice.username, 1, encodeEnvelope({ v: 1, id: 'f2', text: 'an honest hello', sentAt: 2 }));
  await until(async () => (await alice.history(bob.username)).length === 1, 'the honest message arrives');
  assert.deepEqual(events, [`${bob.username}:FORGED_TRANSCRIPT`]);
  assert.deepEqual(await alice.history(carol.username), []);
  assert.deepEqual((await alice.history(bob.username)).map((m) => `${m.direction} ${m.text}`), ['in an honest hello']);
  await laptop.close();
  bob.close();
});
