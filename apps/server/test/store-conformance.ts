/**
 * One conformance suite for every Store adapter. Each adapter's test file calls `storeConformance`
 * with a factory giving a fresh, empty store.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { fanoutDigest, RESEND_MEMORY_PER_DEVICE, RESEND_WINDOW_MS, sendDigest, type Address, type DeviceKeys, type NewDevice, type NewFanout, type NewMessage, type Store } from '../src/index.js';

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

  run('admins: the first account is one, later ones are not; setAdmin names and revokes', async (s) => {
    assert.equal(await s.createAccount(acct('first'), device(), null), 'ok');
    assert.equal(await s.createAccount(acct('second'), device(), null), 'ok');
    assert.equal((await s.getAccount('first'))?.admin, true);
    assert.equal((await s.getAccount('second'))?.admin, false);
    assert.equal(await s.setAdmin('second', true), true);
    assert.equal((await s.getAccount('second'))?.admin, true);
    assert.equal(await s.setAdmin('first', false), true);
    assert.equal((await s.getAccount('first'))?.admin, false);
    assert.equal(await s.setAdmin('nobody', true), false);
    // A removed account takes its role with it; the name registered again is not an admin.
    await s.removeAccount('second');
    assert.equal(await s.createAccount(acct('second'), device(), null), 'ok');
    assert.equal((await s.getAccount('second'))?.admin, false);
  });

  run('admins: of concurrent first registrations exactly one becomes admin', async (s) => {
    const names = ['c1', 'c2', 'c3', 'c4', 'c5', 'c6'];
    const results = await Promise.all(names.map((n) => s.createAccount(acct(n), device(), null)));
    assert.deepEqual(results, names.map(() => 'ok'));
    const admins = (await Promise.all(names.map((n) => s.getAccount(n)))).filter((a) => a?.admin === true);
    assert.equal(admins.length, 1);
  });

  run('accounts: listed by username with devices, cut at the limit', async (s) => {
    assert.deepEqual(await s.listAccounts(10), { accounts: [], truncated: false });
    await s.createAccount({ ...acct('zed'), createdAt: 5 }, device(), null);
    await s.createAccount({ ...acct('amy'), createdAt: 7 }, { ...device(), registrationId: 7 }, null);
    assert.equal(await s.addDevice('amy', { ...device(), registrationId: 9 }, 3, 127), 2);
    await s.createAccount(acct('max'), device(), null);
    const all = await s.listAccounts(10);
    assert.equal(all.truncated, false);
    assert.deepEqual(all.accounts, [
      { username: 'amy', admin: false, createdAt: 7, devices: [{ deviceId: 1, registrationId: 7 }, { deviceId: 2, registrationId: 9 }] },
      { username: 'max', admin: false, createdAt: 1, devices: [{ deviceId: 1, registrationId: 42 }] },
      { username: 'zed', admin: true, createdAt: 5, devices: [{ deviceId: 1, registrationId: 42 }] },
    ]);
    const cut = await s.listAccounts(2);
    assert.equal(cut.truncated, true);
    assert.deepEqual(cut.accounts.map((a) => a.username), ['amy', 'max']);
    assert.equal((await s.listAccounts(3)).truncated, false);
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
    assert.equal(await s.removeDevice(d2), 'removed');
    assert.equal(await s.removeDevice(d2), 'NOT_FOUND');
    assert.equal(await s.removeDevice({ username: 'nobody', deviceId: 1 }), 'NOT_FOUND');
    assert.equal(await s.getDeviceAuth(d2), undefined);
    assert.deepEqual(await s.fetchQueue(d2, 0, 10, 0), []);
    assert.equal(await s.addDevice('bo', device(), 3, 127), 2);
    assert.deepEqual(await s.fetchQueue(d2, 0, 10, 0), [], 'a re-added device id starts with an empty queue');
  });

  run('devices: the last device is never removed, not even by two removals at once', async (s) => {
    await s.createAccount(acct('solo'), device(), null);
    const d1 = { username: 'solo', deviceId: 1 };
    const [m] = await s.writeBatch([msg(d1, { username: 'bo', deviceId: 1 }, 'kept')], [], 10);
    assert.ok(m?.ok);
    assert.equal(await s.removeDevice(d1), 'LAST_DEVICE');
    assert.ok(await s.getDeviceAuth(d1), 'the device still authenticates');
    assert.equal((await s.fetchQueue(d1, 0, 10, 0)).length, 1, 'its queue is untouched');
    // Device 1 can be removed while another is left; then the other is the last.
    assert.equal(await s.addDevice('solo', device(), 6, 127), 2);
    assert.equal(await s.removeDevice(d1), 'removed');
    assert.equal(await s.removeDevice({ username: 'solo', deviceId: 2 }), 'LAST_DEVICE');
    // Two devices removed at the same moment (each by the other, or both by a third party): one stays.
    for (let round = 0; round < 5; round++) {
      assert.equal(typeof (await s.addDevice('solo', device(), 6, 127)), 'number');
      const left = (await s.listDevices('solo'))?.map((d) => d.deviceId) ?? [];
      assert.equal(left.length, 2, `round ${round}`);
      const results = await Promise.all(left.map((deviceId) => s.removeDevice({ username: 'solo', deviceId })));
      assert.deepEqual([...results].sort(), ['LAST_DEVICE', 'removed'], `round ${round}`);
      assert.equal((await s.listDevices('solo'))?.length, 1, `round ${round}: one device left`);
    }
    // With three devices, three removals at once leave exactly one.
    await s.addDevice('solo', device(), 6, 127);
    await s.addDevice('solo', device(), 6, 127);
    const three = (await s.listDevices('solo'))?.map((d) => d.deviceId) ?? [];
    assert.equal(three.length, 3);
    const results = await Promise.all(three.map((deviceId) => s.removeDevice({ username: 'solo', deviceId })));
    assert.deepEqual([...results].sort(), ['LAST_DEVICE', 'removed', 'removed']);
    assert.equal((await s.listDevices('solo'))?.length, 1);
  });

  run('devices: listed with names, creation and last-seen times; removal takes the row', async (s) => {
    await s.createAccount({ ...acct('liv'), createdAt: 11 }, { ...device(), name: '', createdAt: 11 }, null);
    assert.equal(await s.addDevice('liv', { ...device(), registrationId: 77, name: 'laptop', createdAt: 20 }, 3, 127), 2);
    assert.equal(await s.listDevices('nobody'), undefined);
    assert.deepEqual(await s.listDevices('liv'), [
      { deviceId: 1, registrationId: 42, name: '', createdAt: 11, lastSeenAt: 0 },
      { deviceId: 2, registrationId: 77, name: 'laptop', createdAt: 20, lastSeenAt: 0 },
    ]);
    await s.touchDevice({ username: 'liv', deviceId: 2 }, 500);
    await s.touchDevice({ username: 'liv', deviceId: 2 }, 400); // never moves back
    await s.touchDevice({ username: 'liv', deviceId: 9 }, 600); // no such device: nothing
    assert.deepEqual((await s.listDevices('liv'))?.map((d) => d.lastSeenAt), [0, 500]);
    assert.equal(await s.removeDevice({ username: 'liv', deviceId: 2 }), 'removed');
    assert.deepEqual((await s.listDevices('liv'))?.map((d) => d.deviceId), [1]);
    // A device made without a name or time (before device_info) is listed with the account's time.
    assert.equal(await s.addDevice('liv', device(), 3, 127), 2);
    assert.deepEqual((await s.listDevices('liv'))?.[1], { deviceId: 2, registrationId: 42, name: '', createdAt: 0, lastSeenAt: 0 });
    await s.removeAccount('liv');
    assert.equal(await s.listDevices('liv'), undefined);
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

  run('keys: add one-time keys in parts, a retried part changes nothing, the bound refuses all of an add', async (s) => {
    await s.createAccount(acct('cal'), device(2, 1), null);
    const me = { username: 'cal', deviceId: 1 };
    const k = keys(6, 6);
    assert.equal(await s.addOneTimeKeys(me, { preKeys: k.preKeys.slice(2, 4), kyberPreKeys: k.kyberPreKeys.slice(1, 4) }, 10), 'added');
    assert.deepEqual(await s.keyCounts(me), { preKeys: 4, kyberPreKeys: 4 });
    // The same part again: ids already held are replaced, not added twice.
    assert.equal(await s.addOneTimeKeys(me, { preKeys: k.preKeys.slice(2, 4), kyberPreKeys: k.kyberPreKeys.slice(1, 4) }, 10), 'added');
    assert.deepEqual(await s.keyCounts(me), { preKeys: 4, kyberPreKeys: 4 });
    // Only one kind.
    assert.equal(await s.addOneTimeKeys(me, { kyberPreKeys: k.kyberPreKeys.slice(4, 6) }, 10), 'added');
    assert.deepEqual(await s.keyCounts(me), { preKeys: 4, kyberPreKeys: 6 });
    // Over the bound for one kind: nothing of the add stays, of either kind.
    assert.equal(await s.addOneTimeKeys(me, { preKeys: k.preKeys.slice(4, 6), kyberPreKeys: keys(0, 9).kyberPreKeys.map((x) => ({ ...x, keyId: x.keyId + 100 })) }, 10), 'full');
    assert.deepEqual(await s.keyCounts(me), { preKeys: 4, kyberPreKeys: 6 });
    assert.equal(await s.addOneTimeKeys(me, { preKeys: k.preKeys.slice(4, 6) }, 6), 'added', 'up to the bound exactly');
    // Bundles hand each out once, in id order, then the last resort; the added Kyber key 2 is the added one.
    const taken: (number | undefined)[] = [];
    for (let i = 0; i < 7; i++) taken.push((await s.takeBundles('cal'))?.devices[0]?.preKey?.keyId);
    assert.deepEqual(taken, [1, 2, 3, 4, 5, 6, undefined]);
    assert.deepEqual(await s.keyCounts(me), { preKeys: 0, kyberPreKeys: 0 });
    // A replacing upload clears what was added.
    assert.equal(await s.addOneTimeKeys(me, { preKeys: k.preKeys.slice(0, 3) }, 10), 'added');
    assert.equal(await s.replaceKeys(me, { preKeys: k.preKeys.slice(5, 6) }), true);
    assert.deepEqual(await s.keyCounts(me), { preKeys: 1, kyberPreKeys: 0 });
    assert.equal(await s.addOneTimeKeys({ username: 'cal', deviceId: 9 }, { preKeys: k.preKeys.slice(0, 1) }, 10), 'unknown');
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
    assert.equal(await s.countQueued(), 4, 'queue depth over every device (GET /metrics)');
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
    // flo: b, c, d; ed: "to ed" (a acknowledged, "short" expired).
    assert.equal(await s.countQueued(), 4);
  });

  run('resends: the same send from the same device is answered with the stored copy and stored once; bounded by window and ring', async (s) => {
    await s.createAccount(acct('rex'), device(), null);
    await s.createAccount(acct('rio'), device(), null);
    const rex = { username: 'rex', deviceId: 1 };
    const rio = { username: 'rio', deviceId: 1 };
    const once = (m: NewMessage): NewMessage => ({ ...m, digest: sendDigest(m.to, m.kind, m.body) });
    const bodies = async () => (await s.fetchQueue(rio, 0, 10_000, 0)).map((m) => new TextDecoder().decode(m.body));
    const [first] = await s.writeBatch([once(msg(rio, rex, 'hello', 1000))], [], 10_000);
    assert.ok(first?.ok && first.resent === undefined);
    // Sent again (later, in a batch with a new message): the first copy's id and time, nothing stored.
    const again = await s.writeBatch([once(msg(rio, rex, 'hello', 2000)), once(msg(rio, rex, 'next', 2000))], [], 10_000);
    assert.deepEqual(again[0], { ok: true, id: first.id, resent: 1000 });
    assert.ok(again[1]?.ok && again[1].resent === undefined && again[1].id > first.id);
    assert.deepEqual(await bodies(), ['hello', 'next']);
    // Still recognised after its recipient acknowledged (deleted) it.
    await s.writeBatch([], [{ to: rio, id: first.id }], 10_000);
    assert.deepEqual((await s.writeBatch([once(msg(rio, rex, 'hello', 3000))], [], 10_000))[0], { ok: true, id: first.id, resent: 1000 });
    // Not a resend: the same bytes from another device, or to another device, or without a digest.
    assert.ok((await s.writeBatch([once(msg(rio, rio, 'hello', 3000))], [], 10_000))[0]?.ok);
    const other = (await s.writeBatch([once(msg(rex, rex, 'hello', 3000)), msg(rio, rex, 'hello', 3000)], [], 10_000)).map((r) => r.ok && r.resent);
    assert.deepEqual(other, [undefined, undefined]);
    assert.deepEqual(await bodies(), ['next', 'hello', 'hello']);
    // Window: past RESEND_WINDOW_MS after the first copy, the same bytes are stored again.
    const late = await s.writeBatch([once(msg(rio, rex, 'next', 2000 + RESEND_WINDOW_MS))], [], 10_000);
    assert.ok(late[0]?.ok && late[0].resent === undefined);
    // Ring: after RESEND_MEMORY_PER_DEVICE later sends from rex, 'ring' is forgotten; one fewer, it is not.
    const t = 3 * RESEND_WINDOW_MS;
    const [ring] = await s.writeBatch([once(msg(rio, rex, 'ring', t))], [], 1_000_000);
    const fill = (n: number, from: number) => Array.from({ length: n }, (_, i) => once(msg(rex, rex, `f${from + i}`, t)));
    await s.writeBatch(fill(RESEND_MEMORY_PER_DEVICE - 1, 0), [], 1_000_000);
    assert.deepEqual((await s.writeBatch([once(msg(rio, rex, 'ring', t))], [], 1_000_000))[0], { ok: true, id: ring!.ok ? ring!.id : -1, resent: t });
    await s.writeBatch(fill(1, RESEND_MEMORY_PER_DEVICE), [], 1_000_000);
    const forgotten = await s.writeBatch([once(msg(rio, rex, 'ring', t))], [], 1_000_000);
    assert.ok(forgotten[0]?.ok && forgotten[0].resent === undefined);
    // The sweep deletes remembered sends older than the window (the first 'hello' is gone then).
    await s.expire(1001 + RESEND_WINDOW_MS);
    const swept = await s.writeBatch([once(msg(rio, rex, 'hello', 1500))], [], 10_000);
    assert.ok(swept[0]?.ok && swept[0].resent === undefined);
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

  // ---- multi-recipient sends (fanout.ts) ----

  /** An account with `n` devices (registration ids 42, 43, …), device ids 1..n. */
  const account = async (s: Store, username: string, n: number): Promise<void> => {
    assert.equal(await s.createAccount(acct(username), { ...device(), registrationId: 42 }, null), 'ok');
    for (let i = 2; i <= n; i++) assert.equal(await s.addDevice(username, { ...device(), registrationId: 40 + i }, 10, 127), i);
  };
  const regOf = (deviceId: number) => (deviceId === 1 ? 42 : 40 + deviceId);
  const shared = (body: Uint8Array, recipients: { username: string; ids: number[]; regs?: Record<number, number> }[], from: Address): NewFanout => ({
    from,
    recipients: recipients.map((r) => ({
      username: r.username,
      devices: r.ids.map((deviceId) => ({ deviceId, registrationId: r.regs?.[deviceId] ?? regOf(deviceId), kind: 7 as const, body })),
    })),
    timestamp: 5000,
    expiresAt: 5000 + 1_000_000,
  });
  const queueLengths = async (s: Store, addrs: Address[]) => Promise.all(addrs.map(async (a) => (await s.fetchQueue(a, 0, 100, 0)).length));

  run('fan-out: one shared body reaches every named device, in one commit, ids in commit order', async (s) => {
    await account(s, 'fa', 1);
    await account(s, 'fb', 3);
    await account(s, 'fc', 1);
    const from = { username: 'fa', deviceId: 1 };
    const before = await s.writeBatch([msg({ username: 'fb', deviceId: 2 }, from, 'before')], [], 10);
    const body = rb(300);
    const r = await s.writeFanout(shared(body, [{ username: 'fb', ids: [1, 2, 3] }, { username: 'fc', ids: [1] }], from), 10);
    assert.ok(r.ok);
    assert.deepEqual(r.mailboxFull, []);
    const ids = r.stored.flat().map((c) => c?.id ?? null);
    assert.equal(ids.length, 4);
    assert.ok(before[0]?.ok && ids.every((id) => id !== null && id > (before[0] as { id: number }).id));
    const after = await s.writeBatch([msg({ username: 'fb', deviceId: 2 }, from, 'after')], [], 10);
    assert.ok(after[0]?.ok && after[0].id > Math.max(...(ids as number[])));
    for (const [i, to] of [{ username: 'fb', deviceId: 1 }, { username: 'fb', deviceId: 2 }, { username: 'fb', deviceId: 3 }, { username: 'fc', deviceId: 1 }].entries()) {
      const q = await s.fetchQueue(to, 0, 10, 0);
      const m = q.find((x) => x.id === ids[i]);
      assert.ok(m, `device ${to.username}.${to.deviceId} got it`);
      assert.equal(m.kind, 7);
      assert.deepEqual(m.from, from);
      assert.equal(m.timestamp, 5000);
      assert.deepEqual(Buffer.from(m.body), Buffer.from(body));
    }
    assert.deepEqual((await s.fetchQueue({ username: 'fb', deviceId: 2 }, 0, 10, 0)).map((m) => m.body.length), [6, 300, 5]);
    // A store that reports `after` (the id before the copy in its queue) reports it right.
    const copy = r.stored[0]?.[1];
    if (copy?.after !== undefined) assert.equal(copy.after, (before[0] as { id: number }).id);
    const first = r.stored[1]?.[0];
    if (first?.after !== undefined) assert.equal(first.after, 0);
  });

  run('fan-out: per-device bodies and kinds are stored as given', async (s) => {
    await account(s, 'pa', 1);
    await account(s, 'pb', 2);
    const from = { username: 'pa', deviceId: 1 };
    const b1 = rb(40);
    const b2 = rb(50);
    const r = await s.writeFanout(
      {
        from,
        recipients: [{ username: 'pb', devices: [{ deviceId: 2, registrationId: 42, kind: 2, body: b2 }, { deviceId: 1, registrationId: 42, kind: 3, body: b1 }] }],
        timestamp: 1,
        expiresAt: 1e12,
      },
      10,
    );
    assert.ok(r.ok);
    const [m1] = await s.fetchQueue({ username: 'pb', deviceId: 1 }, 0, 10, 0);
    const [m2] = await s.fetchQueue({ username: 'pb', deviceId: 2 }, 0, 10, 0);
    assert.deepEqual([m1?.kind, Buffer.from(m1!.body).equals(b1), m2?.kind, Buffer.from(m2!.body).equals(b2)], [3, true, 2, true]);
    assert.deepEqual(r.stored.map((copies) => copies.map((c) => c?.id)), [[m2!.id, m1!.id]]);
  });

  run('fan-out resends: the same fan-out again is answered as stored, not stored again; another one is stored', async (s) => {
    await account(s, 'ra', 1);
    await account(s, 'rb', 2);
    await account(s, 'rc', 1);
    const from = { username: 'ra', deviceId: 1 };
    const targets = [{ username: 'rb', deviceId: 1 }, { username: 'rb', deviceId: 2 }, { username: 'rc', deviceId: 1 }];
    const withDigest = (f: NewFanout, timestamp: number): NewFanout => ({ ...f, timestamp, digest: fanoutDigest(f) });
    const body = rb(64);
    const f = shared(body, [{ username: 'rb', ids: [1, 2] }, { username: 'rc', ids: [1] }], from);
    const first = await s.writeFanout(withDigest(f, 5000), 10);
    assert.ok(first.ok && first.resent === undefined);
    assert.deepEqual(await queueLengths(s, targets), [1, 1, 1]);
    // The same frame later (its answer was lost), with a fresh copy of the body: recognised, even
    // after a device was added (no check runs for a recognised resend, as for single sends).
    await s.addDevice('rc', { ...device(), registrationId: 77 }, 10, 127);
    const again = await s.writeFanout(withDigest(shared(body.slice(), [{ username: 'rb', ids: [1, 2] }, { username: 'rc', ids: [1] }], from), 6000), 10);
    assert.deepEqual(again, { ok: true, stored: [[null, null], [null]], mailboxFull: [], resent: { timestamp: 5000, stored: 3 } });
    assert.deepEqual(await queueLengths(s, targets), [1, 1, 1], 'nothing stored again');
    // Another sender device's identical fan-out, another body, another device list, or after the
    // window: written (and here refused or stored by the usual rules).
    const other = await s.writeFanout(withDigest(shared(rb(64), [{ username: 'rb', ids: [1, 2] }], from), 6000), 10);
    assert.ok(other.ok && other.resent === undefined);
    const changed = await s.writeFanout(withDigest(shared(body, [{ username: 'rb', ids: [1, 2] }, { username: 'rc', ids: [1, 2], regs: { 2: 77 } }], from), 6000), 10);
    assert.ok(changed.ok && changed.resent === undefined);
    const late = await s.writeFanout(withDigest(f, 5000 + RESEND_WINDOW_MS + 1), 10);
    assert.ok(!late.ok && late.code === 'MISMATCHED_DEVICES', 'past the window it is a new send, checked as one');
    assert.deepEqual(await queueLengths(s, [...targets, { username: 'rc', deviceId: 2 }]), [3, 3, 2, 1]);
    // A fan-out that stored nothing (every mailbox full) is not remembered: its resend is written.
    await account(s, 'rd', 1);
    const full = shared(rb(8), [{ username: 'rd', ids: [1] }], from);
    const none = await s.writeFanout(withDigest(full, 7000), 0);
    assert.ok(none.ok && none.mailboxFull.length === 1 && none.resent === undefined);
    const retried = await s.writeFanout(withDigest(full, 7001), 10);
    assert.ok(retried.ok && retried.resent === undefined && retried.stored[0]?.[0] !== null);
  });

  run('fan-out: unknown accounts first, then stale devices, then missing/extra; nothing stored', async (s) => {
    await account(s, 'ma', 1);
    await account(s, 'mb', 3);
    await account(s, 'mc', 2);
    const from = { username: 'ma', deviceId: 1 };
    const targets = [
      { username: 'mb', deviceId: 1 },
      { username: 'mb', deviceId: 2 },
      { username: 'mb', deviceId: 3 },
      { username: 'mc', deviceId: 1 },
      { username: 'mc', deviceId: 2 },
    ];
    const body = rb(10);
    const refuse = async (f: NewFanout, code: string, accounts: unknown) => {
      const r = await s.writeFanout(f, 10);
      assert.deepEqual(r, { ok: false, code, accounts });
      assert.deepEqual(await queueLengths(s, targets), [0, 0, 0, 0, 0], 'nothing stored');
    };
    // An unknown account wins over everything else.
    await refuse(
      shared(body, [{ username: 'mb', ids: [1], regs: { 1: 7 } }, { username: 'nobody', ids: [2, 1] }], from),
      'NOT_FOUND',
      [{ username: 'nobody', missing: [], extra: [1, 2], stale: [] }],
    );
    // Stale (a registration id that is not the device's) wins over missing and extra.
    await refuse(
      shared(body, [{ username: 'mb', ids: [3, 1, 9], regs: { 3: 7, 1: 8 } }, { username: 'mc', ids: [1] }], from),
      'STALE_DEVICE',
      [{ username: 'mb', missing: [], extra: [], stale: [1, 3] }],
    );
    await refuse(
      shared(body, [{ username: 'mb', ids: [3, 1, 9] }, { username: 'mc', ids: [1] }], from),
      'MISMATCHED_DEVICES',
      [
        { username: 'mb', missing: [2], extra: [9], stale: [] },
        { username: 'mc', missing: [2], extra: [], stale: [] },
      ],
    );
    const ok = await s.writeFanout(shared(body, [{ username: 'mb', ids: [1, 2, 3] }, { username: 'mc', ids: [2, 1] }], from), 10);
    assert.ok(ok.ok);
    assert.deepEqual(await queueLengths(s, targets), [1, 1, 1, 1, 1]);
  });

  run('fan-out: to your own account, the sending device is left out (and extra if named)', async (s) => {
    await account(s, 'sa', 3);
    await account(s, 'sb', 1);
    const from = { username: 'sa', deviceId: 2 };
    const body = rb(10);
    assert.deepEqual(await s.writeFanout(shared(body, [{ username: 'sa', ids: [1, 2, 3] }, { username: 'sb', ids: [1] }], from), 10), {
      ok: false,
      code: 'MISMATCHED_DEVICES',
      accounts: [{ username: 'sa', missing: [], extra: [2], stale: [] }],
    });
    assert.deepEqual(await s.writeFanout(shared(body, [{ username: 'sa', ids: [3] }], from), 10), {
      ok: false,
      code: 'MISMATCHED_DEVICES',
      accounts: [{ username: 'sa', missing: [1], extra: [], stale: [] }],
    });
    const r = await s.writeFanout(shared(body, [{ username: 'sb', ids: [1] }, { username: 'sa', ids: [3, 1] }], from), 10);
    assert.ok(r.ok);
    assert.deepEqual(await queueLengths(s, [{ username: 'sa', deviceId: 1 }, { username: 'sa', deviceId: 2 }, { username: 'sa', deviceId: 3 }, { username: 'sb', deviceId: 1 }]), [1, 0, 1, 1]);
  });

  run('fan-out: a full mailbox skips that device only, and says so', async (s) => {
    await account(s, 'qa', 1);
    await account(s, 'qb', 2);
    const from = { username: 'qa', deviceId: 1 };
    const full = { username: 'qb', deviceId: 2 };
    await s.writeBatch([msg(full, from, '1'), msg(full, from, '2')], [], 2);
    const r = await s.writeFanout(shared(rb(10), [{ username: 'qb', ids: [1, 2] }], from), 2);
    assert.ok(r.ok);
    assert.deepEqual(r.mailboxFull, [full]);
    assert.equal(r.stored[0]?.[1], null);
    assert.equal(typeof r.stored[0]?.[0]?.id, 'number');
    assert.deepEqual(await queueLengths(s, [{ username: 'qb', deviceId: 1 }, full]), [1, 2]);
    // The queue-length bookkeeping counts fan-out rows too.
    const again = await s.writeFanout(shared(rb(10), [{ username: 'qb', ids: [1, 2] }], from), 2);
    assert.ok(again.ok);
    const third = await s.writeFanout(shared(rb(10), [{ username: 'qb', ids: [1, 2] }], from), 2);
    assert.ok(third.ok);
    assert.deepEqual(third.mailboxFull, [{ username: 'qb', deviceId: 1 }, full]);
    assert.deepEqual((await s.writeBatch([msg({ username: 'qb', deviceId: 1 }, from, 'x')], [], 2)).map((x) => (x.ok ? 'ok' : x.code)), ['MAILBOX_FULL']);
  });

  run('tickets: single use, expiry, bound to a credential', async (s) => {
    const h = rb(32);
    const who = { username: 'hu', deviceId: 2 };
    const credential = rb(32);
    await s.putTicket(h, { device: who, credential }, 100);
    assert.deepEqual(await s.takeTicket(h, 50), { device: who, credential });
    assert.equal(await s.takeTicket(h, 50), undefined);
    const h2 = rb(32);
    await s.putTicket(h2, { device: who, credential }, 100);
    assert.equal(await s.takeTicket(h2, 100), undefined);
    assert.equal(await s.takeTicket(rb(32), 0), undefined);
  });

  run('tickets: removing a device or an account deletes its tickets, no others', async (s) => {
    assert.equal(await s.createAccount(acct('tix'), device(), null), 'ok');
    assert.equal(await s.addDevice('tix', device(), 10, 127), 2);
    assert.equal(await s.createAccount(acct('tox'), device(), null), 'ok');
    const put = async (username: string, deviceId: number) => {
      const h = rb(32);
      await s.putTicket(h, { device: { username, deviceId }, credential: rb(32) }, 100);
      return h;
    };
    const [t1, t2a, t2b, other] = [await put('tix', 1), await put('tix', 2), await put('tix', 2), await put('tox', 1)];
    assert.equal(await s.removeDevice({ username: 'tix', deviceId: 2 }), 'removed');
    assert.equal(await s.takeTicket(t2a, 50), undefined);
    assert.equal(await s.takeTicket(t2b, 50), undefined);
    const t1b = await put('tix', 1);
    assert.notEqual(await s.removeAccount('tix'), undefined);
    assert.equal(await s.takeTicket(t1, 50), undefined);
    assert.equal(await s.takeTicket(t1b, 50), undefined);
    assert.deepEqual((await s.takeTicket(other, 50))?.device, { username: 'tox', deviceId: 1 });
  });
}
