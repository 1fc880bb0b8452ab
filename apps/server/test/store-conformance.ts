/**
 * One conformance suite for every Store adapter. Each adapter's test file calls `storeConformance`
 * with a factory giving a fresh, empty store.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Address, DeviceKeys, NewDevice, NewMessage, Store } from '../src/index.js';

const rb = (n: number) => new Uint8Array(randomBytes(n));
const key = (id: number, n = 33) => ({ keyId: id, publicKey: rb(n), signature: rb(64) });

function keys(pre = 0, kyber = 0): DeviceKeys {
  return {
    signedPreKey: key(1),
    kyberLastResortKey: key(1000, 1569),
    preKeys: Array.from({ length: pre }, (_, i) => ({ keyId: i + 1, publicKey: rb(33) })),
    kyberPreKeys: Array.from({ length: kyber }, (_, i) => key(i + 1, 1569)),
  };
}

function device(pre = 0, kyber = 0): NewDevice {
  return { registrationId: 42, secretSalt: rb(16), secretHash: rb(32), keys: keys(pre, kyber) };
}

const msg = (to: Address, from: Address, text: string, t = 1000, ttl = 1_000_000): NewMessage => ({
  to,
  from,
  kind: 2,
  body: new TextEncoder().encode(text),
  timestamp: t,
  expiresAt: t + ttl,
});

const acct = (username: string) => ({ username, identityKey: rb(33), createdAt: 1 });

export function storeConformance(name: string, make: () => Promise<Store>): void {
  const run = (title: string, fn: (s: Store) => Promise<void>) =>
    test(`${name}: ${title}`, async () => {
      const s = await make();
      try {
        await fn(s);
      } finally {
        await s.close();
      }
    });

  run('accounts: create, taken, read back', async (s) => {
    const d = device();
    assert.equal(await s.createAccount(acct('ann'), d, null), 'ok');
    assert.equal(await s.createAccount(acct('ann'), device(), null), 'USERNAME_TAKEN');
    assert.equal(await s.countAccounts(), 1);
    const auth = await s.getDeviceAuth({ username: 'ann', deviceId: 1 });
    assert.deepEqual(auth && { ...auth, secretSalt: [...auth.secretSalt], secretHash: [...auth.secretHash] }, {
      registrationId: 42,
      secretSalt: [...d.secretSalt],
      secretHash: [...d.secretHash],
    });
    assert.equal(await s.getDeviceAuth({ username: 'ann', deviceId: 2 }), undefined);
    const info = await s.getAccount('ann');
    assert.deepEqual(info?.devices, [{ deviceId: 1, registrationId: 42 }]);
    assert.equal(await s.getAccount('nobody'), undefined);
  });

  run('invites: single use, expiry, not consumed by a failed registration', async (s) => {
    const h1 = rb(32);
    await s.createInvite(h1, 0, 100);
    assert.equal(await s.createAccount(acct('a1'), device(), { hash: rb(32), now: 10 }), 'INVITE_INVALID');
    await s.createAccount(acct('taken'), device(), null);
    assert.equal(await s.createAccount(acct('taken'), device(), { hash: h1, now: 10 }), 'USERNAME_TAKEN');
    assert.equal(await s.createAccount(acct('a1'), device(), { hash: h1, now: 10 }), 'ok');
    assert.equal(await s.createAccount(acct('a2'), device(), { hash: h1, now: 10 }), 'INVITE_INVALID');
    const h2 = rb(32);
    await s.createInvite(h2, 0, 100);
    assert.equal(await s.createAccount(acct('a3'), device(), { hash: h2, now: 100 }), 'INVITE_INVALID');
    assert.equal(await s.getAccount('a3'), undefined);
  });

  run('devices: lowest free id, limits, removal drops keys and queue', async (s) => {
    await s.createAccount(acct('bo'), device(), null);
    assert.equal(await s.addDevice('bo', device(), 3, 127), 2);
    assert.equal(await s.addDevice('bo', device(), 3, 127), 3);
    assert.equal(await s.addDevice('bo', device(), 3, 127), 'TOO_MANY_DEVICES');
    assert.equal(await s.addDevice('nobody', device(), 3, 127), 'NOT_FOUND');
    const d2 = { username: 'bo', deviceId: 2 };
    const [r] = await s.writeBatch([msg(d2, { username: 'bo', deviceId: 1 }, 'x')], [], 10);
    assert.ok(r?.ok);
    assert.equal(await s.removeDevice(d2), true);
    assert.equal(await s.removeDevice(d2), false);
    assert.equal(await s.getDeviceAuth(d2), undefined);
    assert.deepEqual(await s.fetchQueue(d2, 0, 10, 0), []);
    assert.equal(await s.addDevice('bo', device(), 3, 127), 2);
    assert.deepEqual(await s.fetchQueue(d2, 0, 10, 0), [], 'a re-added device id starts with an empty queue');
  });

  run('accounts: removal takes devices, keys and queues; mail the account sent stays; the name is free', async (s) => {
    await s.createAccount(acct('hal'), device(3, 2), null);
    assert.equal(await s.addDevice('hal', device(1, 0), 3, 127), 2);
    await s.createAccount(acct('ivy'), device(2, 2), null);
    const hal1 = { username: 'hal', deviceId: 1 };
    const hal2 = { username: 'hal', deviceId: 2 };
    const ivy = { username: 'ivy', deviceId: 1 };
    const sent = await s.writeBatch(
      [msg(hal1, ivy, 'to hal 1'), msg(hal1, ivy, 'to hal 1 again'), msg(hal2, ivy, 'to hal 2'), msg(ivy, hal1, 'from hal'), msg(ivy, hal2, 'from hal 2')],
      [],
      10,
    );
    assert.ok(sent.every((r) => r.ok));
    const oldIdentity = (await s.getAccount('hal'))!.identityKey;

    assert.deepEqual(await s.removeAccount('hal'), { devices: 2, preKeys: 4, kyberPreKeys: 2, messages: 3 });
    assert.equal(await s.removeAccount('hal'), undefined);
    assert.equal(await s.removeAccount('nobody'), undefined);
    assert.equal(await s.getAccount('hal'), undefined);
    assert.equal(await s.getDeviceAuth(hal1), undefined);
    assert.equal(await s.getDeviceAuth(hal2), undefined);
    assert.equal(await s.takeBundles('hal'), undefined);
    assert.deepEqual(await s.keyCounts(hal1), { preKeys: 0, kyberPreKeys: 0 });
    assert.equal(await s.countAccounts(), 1);
    // Sends to the removed devices are refused, not queued.
    assert.deepEqual(await s.writeBatch([msg(hal1, ivy, 'late')], [], 10), [{ ok: false, code: 'NOT_FOUND' }]);
    // What hal sent before removal is still ivy's to read.
    const ivyQueue = await s.fetchQueue(ivy, 0, 10, 0);
    assert.deepEqual(ivyQueue.map((m) => new TextDecoder().decode(m.body)), ['from hal', 'from hal 2']);
    // The other account is untouched.
    assert.deepEqual(await s.keyCounts(ivy), { preKeys: 2, kyberPreKeys: 2 });

    // Registered again with a new identity: same addresses, empty queues, only the new keys.
    const again = acct('hal');
    assert.equal(await s.createAccount(again, device(1, 1), null), 'ok');
    assert.notDeepEqual([...again.identityKey], [...oldIdentity]);
    assert.deepEqual([...(await s.getAccount('hal'))!.identityKey], [...again.identityKey]);
    assert.deepEqual((await s.getAccount('hal'))!.devices.map((d) => d.deviceId), [1]);
    assert.deepEqual(await s.fetchQueue(hal1, 0, 10, 0), []);
    assert.deepEqual(await s.keyCounts(hal1), { preKeys: 1, kyberPreKeys: 1 });
    assert.equal(await s.addDevice('hal', device(), 3, 127), 2);
    assert.deepEqual(await s.fetchQueue(hal2, 0, 10, 0), []);
    // The new device's mailbox counts from zero: a cap of 2 admits exactly 2.
    const capped = await s.writeBatch([msg(hal1, ivy, 'n1'), msg(hal1, ivy, 'n2'), msg(hal1, ivy, 'n3')], [], 2);
    assert.deepEqual(capped.map((r) => (r.ok ? 'ok' : r.code)), ['ok', 'ok', 'MAILBOX_FULL']);
  });

  run('keys: replace, count, take once, last resort', async (s) => {
    const d = device(3, 2);
    await s.createAccount(acct('cy'), d, null);
    const me = { username: 'cy', deviceId: 1 };
    assert.deepEqual(await s.keyCounts(me), { preKeys: 3, kyberPreKeys: 2 });
    const b1 = await s.takeBundles('cy');
    assert.equal(b1?.devices.length, 1);
    assert.equal(b1?.devices[0]?.preKey?.keyId, 1);
    assert.equal(b1?.devices[0]?.kyberPreKey.keyId, 1);
    assert.equal(b1?.devices[0]?.kyberPreKeyIsLastResort, false);
    assert.deepEqual([...b1!.devices[0]!.signedPreKey.publicKey], [...d.keys.signedPreKey.publicKey]);
    await s.takeBundles('cy', 1);
    const b3 = await s.takeBundles('cy', 1);
    assert.equal(b3?.devices[0]?.preKey?.keyId, 3);
    assert.equal(b3?.devices[0]?.kyberPreKeyIsLastResort, true);
    assert.equal(b3?.devices[0]?.kyberPreKey.keyId, 1000);
    assert.equal((await s.takeBundles('cy'))?.devices[0]?.preKey, undefined);
    assert.deepEqual((await s.takeBundles('cy', 2))?.devices, []);
    assert.equal(await s.takeBundles('nobody'), undefined);
    const k = keys(5, 4);
    assert.equal(await s.replaceKeys(me, { preKeys: k.preKeys, kyberPreKeys: k.kyberPreKeys, signedPreKey: key(7) }), true);
    assert.deepEqual(await s.keyCounts(me), { preKeys: 5, kyberPreKeys: 4 });
    assert.equal((await s.takeBundles('cy'))?.devices[0]?.signedPreKey.keyId, 7);
    assert.equal(await s.replaceKeys({ username: 'cy', deviceId: 9 }, { preKeys: [] }), false);
  });

  run('keys: concurrent takes never hand out a key twice', async (s) => {
    await s.createAccount(acct('di'), device(20, 20), null);
    const all = await Promise.all(Array.from({ length: 50 }, () => s.takeBundles('di')));
    const ec = all.map((b) => b?.devices[0]?.preKey?.keyId).filter((x) => x !== undefined);
    const ky = all.filter((b) => !b?.devices[0]?.kyberPreKeyIsLastResort).map((b) => b?.devices[0]?.kyberPreKey.keyId);
    assert.equal(ec.length, 20);
    assert.equal(new Set(ec).size, 20);
    assert.equal(ky.length, 20);
    assert.equal(new Set(ky).size, 20);
  });

  run('messages: ordered ids, fetch pages, acks delete only the own device\'s rows, caps, expiry', async (s) => {
    await s.createAccount(acct('ed'), device(), null);
    await s.createAccount(acct('flo'), device(), null);
    const ed = { username: 'ed', deviceId: 1 };
    const flo = { username: 'flo', deviceId: 1 };
    const r = await s.writeBatch(
      [msg(flo, ed, 'a'), msg(flo, ed, 'b'), msg({ username: 'ghost', deviceId: 1 }, ed, 'x'), msg(flo, ed, 'c'), msg(ed, flo, 'to ed')],
      [],
      3,
    );
    assert.deepEqual(r.map((x) => (x.ok ? 'ok' : x.code)), ['ok', 'ok', 'NOT_FOUND', 'ok', 'ok']);
    const ids = r.flatMap((x) => (x.ok ? [x.id] : []));
    assert.ok(ids[0]! < ids[1]! && ids[1]! < ids[2]!);
    const full = await s.writeBatch([msg(flo, ed, 'd')], [], 3);
    assert.deepEqual(full, [{ ok: false, code: 'MAILBOX_FULL' }]);
    const page1 = await s.fetchQueue(flo, 0, 2, 0);
    assert.deepEqual(page1.map((m) => new TextDecoder().decode(m.body)), ['a', 'b']);
    assert.deepEqual(page1[0]!.from, ed);
    assert.equal(page1[0]!.kind, 2);
    assert.equal(page1[0]!.timestamp, 1000);
    const page2 = await s.fetchQueue(flo, page1[1]!.id, 2, 0);
    assert.deepEqual(page2.map((m) => new TextDecoder().decode(m.body)), ['c']);
    // ed acking flo's message id does nothing; flo acking it deletes it.
    await s.writeBatch([], [{ to: ed, id: ids[0]! }], 3);
    assert.equal((await s.fetchQueue(flo, 0, 10, 0)).length, 3);
    await s.writeBatch([msg(flo, ed, 'd')], [{ to: flo, id: ids[0]! }, { to: flo, id: ids[0]! }], 3);
    assert.deepEqual((await s.fetchQueue(flo, 0, 10, 0)).map((m) => new TextDecoder().decode(m.body)), ['b', 'c', 'd']);
    // Expiry: filtered at fetch time, deleted by expire().
    await s.writeBatch([msg(ed, flo, 'short', 5000, 10)], [], 10);
    assert.equal((await s.fetchQueue(ed, 0, 10, 5009)).length, 2);
    assert.equal((await s.fetchQueue(ed, 0, 10, 5010)).length, 1);
    assert.equal(await s.expire(5010), 1);
    assert.equal((await s.fetchQueue(ed, 0, 10, 0)).length, 1);
  });

  run('messages: an expected registration id that is not the device\'s is refused (STALE_DEVICE), nothing stored', async (s) => {
    await s.createAccount(acct('gus'), device(), null);
    await s.createAccount(acct('hana'), device(), null);
    const gus = { username: 'gus', deviceId: 1 };
    const hana = { username: 'hana', deviceId: 1 };
    const r = await s.writeBatch(
      [
        { ...msg(hana, gus, 'matching'), expectedRegistrationId: 42 },
        { ...msg(hana, gus, 'stale'), expectedRegistrationId: 43 },
        msg(hana, gus, 'unchecked'),
        { ...msg({ username: 'ghost', deviceId: 1 }, gus, 'x'), expectedRegistrationId: 42 },
      ],
      [],
      10,
    );
    assert.deepEqual(r.map((x) => (x.ok ? 'ok' : x.code)), ['ok', 'STALE_DEVICE', 'ok', 'NOT_FOUND']);
    assert.deepEqual((await s.fetchQueue(hana, 0, 10, 0)).map((m) => new TextDecoder().decode(m.body)), ['matching', 'unchecked']);
  });

  run('messages: bodies round-trip byte for byte', async (s) => {
    await s.createAccount(acct('gil'), device(), null);
    const to = { username: 'gil', deviceId: 1 };
    const body = rb(96 * 1024);
    await s.writeBatch([{ ...msg(to, to, ''), body, kind: 3 }], [], 10);
    const [m] = await s.fetchQueue(to, 0, 1, 0);
    assert.equal(m?.kind, 3);
    assert.deepEqual(Buffer.from(m!.body), Buffer.from(body));
  });

  run('tickets: single use, expiry', async (s) => {
    const h = rb(32);
    const who = { username: 'hu', deviceId: 2 };
    await s.putTicket(h, who, 100);
    assert.deepEqual(await s.takeTicket(h, 50), who);
    assert.equal(await s.takeTicket(h, 50), undefined);
    const h2 = rb(32);
    await s.putTicket(h2, who, 100);
    assert.equal(await s.takeTicket(h2, 100), undefined);
    assert.equal(await s.takeTicket(rb(32), 0), undefined);
  });
}
