import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  ERRORS,
  ERROR_CODES,
  authorizationHeader,
  base64DecodedLength,
  errorCodeForClose,
  fromBase64,
  parseAuthorizationHeader,
  parseJson,
  toBase64,
  validateClientFrame,
  validateRegisterRequest,
  validateServerFrame,
  validateUploadKeysRequest,
  MAX_ACK_IDS,
  MAX_DEVICE_ID,
  MAX_FANOUT_DEVICES,
  MAX_SENT_BATCH,
  MAX_KEYS_PER_LIST,
  MAX_MESSAGE_BYTES,
} from '../src/index.js';

const b64 = (n: number, first?: number) => {
  const b = new Uint8Array(n).fill(7);
  if (first !== undefined) b[0] = first;
  return toBase64(b);
};

test('base64 round-trips and matches Buffer', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      const s = toBase64(bytes);
      assert.equal(s, Buffer.from(bytes).toString('base64'));
      assert.deepEqual(fromBase64(s), bytes);
      assert.equal(base64DecodedLength(s), bytes.length);
    }),
  );
});

test('base64 decoding is strict and never throws', () => {
  for (const bad of ['A', 'AB', 'ABC', 'AB=C', '====', 'AB\n=', 'QQ', 'QR==', 'QUI=x', 'QUJ=', 'Zg= ']) {
    assert.equal(fromBase64(bad), undefined, bad);
  }
  fc.assert(fc.property(fc.string({ maxLength: 50 }), (s) => void fromBase64(s)));
});

test('error table: close codes unique and map back', () => {
  const closes = ERROR_CODES.map((c) => ERRORS[c].close);
  assert.equal(new Set(closes).size, closes.length);
  for (const c of ERROR_CODES) assert.equal(errorCodeForClose(ERRORS[c].close), c);
});

test('authorization header round-trips and folds case', () => {
  const secret = b64(32);
  const h = authorizationHeader({ username: 'Alice', deviceId: 3, secret });
  assert.deepEqual(parseAuthorizationHeader(h), { username: 'alice', deviceId: 3, secret });
  assert.equal(parseAuthorizationHeader(undefined), undefined);
  assert.equal(parseAuthorizationHeader('Bearer x'), undefined);
  assert.equal(parseAuthorizationHeader('Basic ' + toBase64(new TextEncoder().encode(`alice.0:${secret}`))), undefined);
  assert.equal(parseAuthorizationHeader('Basic ' + toBase64(new TextEncoder().encode(`alice.1:${b64(16)}`))), undefined);
});

function validRegistration(): Record<string, unknown> {
  return {
    username: 'Alice_1',
    deviceId: 1,
    registrationId: 1234,
    identityKey: b64(33, 5),
    signedPreKey: { keyId: 1, publicKey: b64(33, 5), signature: b64(64) },
    kyberLastResortKey: { keyId: 2, publicKey: b64(1569, 8), signature: b64(64) },
    preKeys: [{ keyId: 1, publicKey: b64(33, 5) }],
    kyberPreKeys: [{ keyId: 3, publicKey: b64(1569, 8), signature: b64(64) }],
    secret: b64(32),
    inviteCode: 'abc-DEF_1',
  };
}

test('registration validator accepts a valid request and folds the username', () => {
  const r = validateRegisterRequest(validRegistration());
  assert.ok(r.ok);
  assert.equal(r.value.username, 'alice_1');
});

test('registration validator rejects each kind of bad field with its path', () => {
  const cases: [string, (r: Record<string, unknown>) => void, string][] = [
    ['short name', (r) => (r.username = 'ab'), '$.username'],
    ['bad chars', (r) => (r.username = 'al.ice'), '$.username'],
    ['starts with digit', (r) => (r.username = '1alice'), '$.username'],
    ['device 2', (r) => (r.deviceId = 2), '$.deviceId'],
    ['float regid', (r) => (r.registrationId = 1.5), '$.registrationId'],
    ['identity wrong type byte', (r) => (r.identityKey = b64(33, 6)), '$.identityKey'],
    ['identity short', (r) => (r.identityKey = b64(32, 5)), '$.identityKey'],
    ['kyber wrong type', (r) => ((r.kyberLastResortKey as Record<string, unknown>).publicKey = b64(1569, 5)), '$.kyberLastResortKey.publicKey'],
    ['signature short', (r) => ((r.signedPreKey as Record<string, unknown>).signature = b64(63)), '$.signedPreKey.signature'],
    ['secret short', (r) => (r.secret = b64(31)), '$.secret'],
    ['secret not base64', (r) => (r.secret = '!'.repeat(44)), '$.secret'],
    ['unknown field', (r) => (r.admin = true), '$.admin'],
    ['missing field', (r) => delete r.identityKey, '$.identityKey'],
    ['too many keys', (r) => (r.preKeys = Array.from({ length: MAX_KEYS_PER_LIST + 1 }, (_, i) => ({ keyId: i, publicKey: b64(33, 5) }))), '$.preKeys'],
    ['duplicate key id', (r) => (r.preKeys = [{ keyId: 1, publicKey: b64(33, 5) }, { keyId: 1, publicKey: b64(33, 5) }]), '$.preKeys[1].keyId'],
    ['negative key id', (r) => (r.preKeys = [{ keyId: -1, publicKey: b64(33, 5) }]), '$.preKeys[0].keyId'],
    ['bad invite', (r) => (r.inviteCode = 'a b'), '$.inviteCode'],
  ];
  for (const [name, mutate, path] of cases) {
    const req = validRegistration();
    mutate(req);
    const r = validateRegisterRequest(req);
    assert.equal(r.ok, false, name);
    if (!r.ok) assert.equal(r.path, path, name);
  }
  for (const v of [null, 1, 'x', [], Object.create({ a: 1 })]) assert.equal(validateRegisterRequest(v).ok, false);
});

test('upload keys needs at least one field', () => {
  assert.equal(validateUploadKeysRequest({}).ok, false);
  assert.equal(validateUploadKeysRequest({ preKeys: [] }).ok, true);
});

test('client frames', () => {
  const send = { type: 'send', id: 'c1', to: { username: 'bob', deviceId: 1 }, message: { type: 'whisper', body: b64(10) } };
  assert.ok(validateClientFrame(send).ok);
  assert.ok(validateClientFrame({ type: 'ping' }).ok);
  assert.ok(validateClientFrame({ type: 'ack', id: '17' }).ok);
  assert.ok(validateClientFrame({ type: 'auth', username: 'bob', deviceId: 1, secret: b64(32) }).ok);
  assert.equal(validateClientFrame({ type: 'nope' }).ok, false);
  assert.equal(validateClientFrame({ type: 'ack', id: 17 }).ok, false);
  assert.equal(validateClientFrame({ ...send, message: { type: 'whisper', body: b64(MAX_MESSAGE_BYTES + 1) } }).ok, false);
  assert.ok(validateClientFrame({ ...send, message: { type: 'prekey', body: b64(MAX_MESSAGE_BYTES) } }).ok);
  assert.equal(validateClientFrame({ ...send, to: { username: 'bob', deviceId: 0 } }).ok, false);
  assert.equal(parseJson('{').ok, false);
  fc.assert(fc.property(fc.jsonValue(), (v) => void validateClientFrame(v)));
});

test('batched frames: auth batched, ack ids (1..MAX_ACK_IDS, distinct), sent-batch (1..MAX_SENT_BATCH)', () => {
  const auth = { type: 'auth', username: 'bob', deviceId: 1, secret: b64(32) };
  assert.ok(validateClientFrame({ ...auth, batched: true }).ok);
  for (const v of [false, 1, 'true', null, {}]) assert.equal(validateClientFrame({ ...auth, batched: v }).ok, false, JSON.stringify(v));
  const ids = (n: number) => Array.from({ length: n }, (_, i) => String(i + 1));
  assert.ok(validateClientFrame({ type: 'ack', ids: ids(1) }).ok);
  assert.ok(validateClientFrame({ type: 'ack', ids: ids(MAX_ACK_IDS) }).ok);
  assert.equal(validateClientFrame({ type: 'ack', ids: ids(MAX_ACK_IDS + 1) }).ok, false);
  assert.equal(validateClientFrame({ type: 'ack', ids: [] }).ok, false);
  const dup = validateClientFrame({ type: 'ack', ids: ['4', '5', '4'] });
  assert.ok(!dup.ok && dup.path === '$.ids[2]');
  assert.equal(validateClientFrame({ type: 'ack', id: '1', ids: ['2'] }).ok, false);
  assert.equal(validateClientFrame({ type: 'ack', ids: [1] }).ok, false);
  assert.equal(validateClientFrame({ type: 'ack', ids: ['a b'] }).ok, false);
  assert.equal(validateClientFrame({ type: 'ack' }).ok, false);
  const entry = (i: number) => ({ id: `c${i}`, serverId: String(i), timestamp: i });
  assert.ok(validateServerFrame({ type: 'sent-batch', sent: [entry(1), entry(2)] }).ok);
  assert.ok(validateServerFrame({ type: 'sent-batch', sent: Array.from({ length: MAX_SENT_BATCH }, (_, i) => entry(i)) }).ok);
  assert.equal(validateServerFrame({ type: 'sent-batch', sent: Array.from({ length: MAX_SENT_BATCH + 1 }, (_, i) => entry(i)) }).ok, false);
  assert.equal(validateServerFrame({ type: 'sent-batch', sent: [] }).ok, false);
  assert.equal(validateServerFrame({ type: 'sent-batch', sent: [{ ...entry(1), timestamp: -1 }] }).ok, false);
  assert.equal(validateServerFrame({ type: 'sent-batch', sent: [{ id: 'c1', serverId: '1' }] }).ok, false);
  assert.equal(validateServerFrame({ type: 'sent', sent: [entry(1)] }).ok, false);
  fc.assert(fc.property(fc.record({ type: fc.constant('ack'), ids: fc.array(fc.jsonValue(), { maxLength: 300 }) }), (v) => void validateClientFrame(v)));
  fc.assert(fc.property(fc.record({ type: fc.constant('sent-batch'), sent: fc.jsonValue() }), (v) => void validateServerFrame(v)));
});

test('send-multi: a shared message or one per device, each account and device once', () => {
  const shared = { type: 'sender-key', body: b64(40) };
  const own = (n: number) => ({ type: 'whisper', body: b64(n) });
  const group = {
    type: 'send-multi',
    id: 'g1',
    recipients: [
      { username: 'bob', devices: [{ deviceId: 1, registrationId: 7 }, { deviceId: 2, registrationId: 8 }] },
      { username: 'Carol', devices: [{ deviceId: 1, registrationId: 9 }] },
    ],
    message: shared,
  };
  const r = validateClientFrame(group);
  assert.ok(r.ok);
  assert.equal(r.ok && r.value.type === 'send-multi' && r.value.recipients[1]?.username, 'carol', 'usernames fold');
  const pairwise = { type: 'send-multi', id: 'p1', recipients: [{ username: 'bob', devices: [{ deviceId: 1, registrationId: 7, message: own(10) }, { deviceId: 2, registrationId: 8, message: { type: 'prekey', body: b64(10) } }] }] };
  assert.ok(validateClientFrame(pairwise).ok);
  const bad: Array<[string, unknown]> = [
    ['both forms', { ...group, recipients: [{ username: 'bob', devices: [{ deviceId: 1, registrationId: 7, message: own(3) }] }] }],
    ['neither form', { ...pairwise, recipients: [{ username: 'bob', devices: [{ deviceId: 1, registrationId: 7 }] }] }],
    ['mixed devices', { ...pairwise, recipients: [{ username: 'bob', devices: [{ deviceId: 1, registrationId: 7, message: own(3) }, { deviceId: 2, registrationId: 8 }] }] }],
    ['an account twice', { ...group, recipients: [group.recipients[0], { ...group.recipients[0], username: 'BOB' }] }],
    ['a device twice', { ...group, recipients: [{ username: 'bob', devices: [{ deviceId: 1, registrationId: 7 }, { deviceId: 1, registrationId: 7 }] }] }],
    ['no registration id', { ...group, recipients: [{ username: 'bob', devices: [{ deviceId: 1 }] }] }],
    ['no devices', { ...group, recipients: [{ username: 'bob', devices: [] }] }],
    ['no recipients', { ...group, recipients: [] }],
    ['too many accounts', { ...group, recipients: Array.from({ length: MAX_FANOUT_DEVICES + 1 }, (_, i) => ({ username: `u${i}`, devices: [{ deviceId: 1, registrationId: 1 }] })) }],
    ['a body over the limit', { ...group, message: { type: 'sender-key', body: b64(MAX_MESSAGE_BYTES + 1) } }],
    ['an unknown type', { ...group, message: { type: 'plaintext', body: b64(3) } }],
    ['an unknown property', { ...group, priority: 1 }],
  ];
  for (const [why, f] of bad) assert.equal(validateClientFrame(f).ok, false, why);
  fc.assert(fc.property(fc.jsonValue(), (v) => void validateClientFrame({ type: 'send-multi', id: 'x', recipients: v, message: shared })));
});

test('send-multi, compact recipient list: [username, deviceIds, registrationIds(, messages)] per account, strictly checked', () => {
  const shared = { type: 'sender-key', body: b64(40) };
  const own = (n: number) => ({ type: 'whisper', body: b64(n) });
  const group = { type: 'send-multi', id: 'g1', to: [['bob', [1, 2], [7, 8]], ['Carol', [1], [9]]], message: shared };
  const r = validateClientFrame(group);
  // The same frame as the original spelling (what the server works with), usernames folded.
  const long = validateClientFrame({
    type: 'send-multi',
    id: 'g1',
    recipients: [
      { username: 'bob', devices: [{ deviceId: 1, registrationId: 7 }, { deviceId: 2, registrationId: 8 }] },
      { username: 'carol', devices: [{ deviceId: 1, registrationId: 9 }] },
    ],
    message: shared,
  });
  assert.ok(r.ok && long.ok);
  assert.deepEqual(r, long);
  const pairwise = { type: 'send-multi', id: 'p1', to: [['bob', [1, 2], [7, 8], [own(10), { type: 'prekey', body: b64(10) }]]] };
  const p = validateClientFrame(pairwise);
  assert.ok(p.ok && p.value.type === 'send-multi');
  assert.deepEqual(p.value.recipients[0]?.devices[1], { deviceId: 2, registrationId: 8, message: { type: 'prekey', body: b64(10) } });
  const manyDevices = Array.from({ length: MAX_DEVICE_ID + 1 }, (_, i) => i + 1);
  const bad: Array<[string, unknown, string]> = [
    ['both spellings', { ...group, recipients: [{ username: 'bob', devices: [{ deviceId: 1, registrationId: 7 }] }] }, '$.recipients'],
    ['shared and own messages', { ...group, to: [['bob', [1], [7], [own(3)]]] }, '$.to[0]'],
    ['neither', { ...pairwise, to: [['bob', [1], [7]]] }, '$.to[0]'],
    ['fewer registration ids', { ...group, to: [['bob', [1, 2], [7]]] }, '$.to[0][2]'],
    ['more registration ids', { ...group, to: [['bob', [1], [7, 8]]] }, '$.to[0][2]'],
    ['fewer messages', { ...pairwise, to: [['bob', [1, 2], [7, 8], [own(3)]]] }, '$.to[0][3]'],
    ['an account twice (case folded)', { ...group, to: [['bob', [1], [7]], ['BOB', [2], [8]]] }, '$.to[1][0]'],
    ['a device twice', { ...group, to: [['bob', [1, 1], [7, 7]]] }, '$.to[0][1][1]'],
    ['no devices', { ...group, to: [['bob', [], []]] }, '$.to[0][1]'],
    ['no accounts', { ...group, to: [] }, '$.to'],
    ['too many accounts', { ...group, to: Array.from({ length: MAX_FANOUT_DEVICES + 1 }, (_, i) => [`u${i}`, [1], [1]]) }, '$.to'],
    ['too many devices in an account', { ...group, to: [['bob', manyDevices, manyDevices]] }, '$.to[0][1]'],
    ['device id 0', { ...group, to: [['bob', [0], [7]]] }, '$.to[0][1][0]'],
    ['device id past the limit', { ...group, to: [['bob', [MAX_DEVICE_ID + 1], [7]]] }, '$.to[0][1][0]'],
    ['registration id 0', { ...group, to: [['bob', [1], [0]]] }, '$.to[0][2][0]'],
    ['a fractional id', { ...group, to: [['bob', [1.5], [7]]] }, '$.to[0][1][0]'],
    ['a string id', { ...group, to: [['bob', ['1'], [7]]] }, '$.to[0][1][0]'],
    ['a bad username', { ...group, to: [['1bob', [1], [7]]] }, '$.to[0][0]'],
    ['an entry as an object', { ...group, to: [{ username: 'bob', devices: [1] }] }, '$.to[0]'],
    ['an entry of 2 items', { ...group, to: [['bob', [1]]] }, '$.to[0]'],
    ['an entry of 5 items', { ...pairwise, to: [['bob', [1], [7], [own(3)], 'x']] }, '$.to[0]'],
    ['a message of another type', { ...pairwise, to: [['bob', [1], [7], [{ type: 'plaintext', body: b64(3) }]]] }, '$.to[0][3][0].type'],
    ['a body over the limit', { ...pairwise, to: [['bob', [1], [7], [own(MAX_MESSAGE_BYTES + 1)]]] }, '$.to[0][3][0].body'],
    ['to as an object', { ...group, to: { bob: [1] } }, '$.to'],
    ['an unknown property', { ...group, priority: 1 }, '$.priority'],
  ];
  for (const [why, f, path] of bad) {
    const c = validateClientFrame(f);
    assert.equal(c.ok, false, why);
    assert.equal(!c.ok && c.path, path, why);
  }
  // Total on anything: never throws, whatever `to` holds.
  fc.assert(fc.property(fc.jsonValue(), (v) => void validateClientFrame({ type: 'send-multi', id: 'x', to: v, message: shared })));
  fc.assert(fc.property(fc.array(fc.tuple(fc.jsonValue(), fc.jsonValue(), fc.jsonValue(), fc.jsonValue()), { maxLength: 4 }), (v) => void validateClientFrame({ type: 'send-multi', id: 'x', to: v })));
});

test('server frames', () => {
  assert.ok(validateServerFrame({ type: 'sent-multi', id: 'g1', timestamp: 1, stored: 3 }).ok);
  assert.ok(validateServerFrame({ type: 'sent-multi', id: 'g1', timestamp: 1, stored: 1, mailboxFull: [{ username: 'bob', deviceId: 2 }] }).ok);
  assert.ok(
    validateServerFrame({ type: 'error', code: 'MISMATCHED_DEVICES', message: 'x', id: 'g1', accounts: [{ username: 'bob', missing: [2], extra: [], stale: [] }] }).ok,
  );
  assert.equal(validateServerFrame({ type: 'error', code: 'MISMATCHED_DEVICES', message: 'x', id: 'g1', accounts: [{ username: 'bob', missing: [2] }] }).ok, false);
  assert.ok(validateServerFrame({ type: 'message', envelope: { id: '6', type: 'sender-key', body: b64(3), source: { username: 'ann', deviceId: 2 }, timestamp: 9 } }).ok);
  assert.ok(validateServerFrame({ type: 'queue-empty' }).ok);
  assert.ok(validateServerFrame({ type: 'sent', id: 'c1', serverId: '5', timestamp: 1 }).ok);
  assert.ok(validateServerFrame({ type: 'message', envelope: { id: '5', type: 'prekey', body: b64(3), source: { username: 'ann', deviceId: 2 }, timestamp: 9 } }).ok);
  assert.ok(validateServerFrame({ type: 'error', code: 'RATE_LIMITED', message: 'x', id: 'c1' }).ok);
  assert.equal(validateServerFrame({ type: 'weird' }).ok, false);
});
