// The SDK's multi-recipient send helpers on their own (through a real server: apps/server/test/fanout-suite.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_FANOUT_BYTES, MAX_FANOUT_DEVICES, MAX_FRAME_BYTES, validateClientFrame } from '@tacit/api';
import { buildSendMulti, isClientError, parseSendMultiAnswer } from '../src/index.ts';

const body = (n: number) => new Uint8Array(n).fill(1);
const devices = (n: number) => Array.from({ length: n }, (_, i) => ({ deviceId: 1 + (i % 127), registrationId: 5 }));
const invalid = (e: unknown) => isClientError(e) && e.code === 'INVALID_ARGUMENT';

test('buildSendMulti: the frame the server expects, or INVALID_ARGUMENT before anything is sent', () => {
  const f = buildSendMulti('x1', [{ username: 'Bob', devices: [{ deviceId: 2, registrationId: 9 }] }], { type: 'sender-key', body: body(3) });
  // The compact recipient list: [username, deviceIds, registrationIds(, messages)] per account.
  assert.deepEqual(f, { type: 'send-multi', id: 'x1', to: [['Bob', [2], [9]]], message: { type: 'sender-key', body: 'AQEB' } });
  // It reads, on the server's validator, as the original spelling does.
  const old = { type: 'send-multi', id: 'x1', recipients: [{ username: 'Bob', devices: [{ deviceId: 2, registrationId: 9 }] }], message: { type: 'sender-key', body: 'AQEB' } };
  assert.deepEqual(validateClientFrame(f), validateClientFrame(old));
  const own = buildSendMulti('x2', [{ username: 'bob', devices: [{ deviceId: 1, registrationId: 9, message: { type: 'prekey', body: body(1) } }, { deviceId: 3, registrationId: 4, message: { type: 'whisper', body: body(2) } }] }]);
  assert.deepEqual(own.to, [['bob', [1, 3], [9, 4], [{ type: 'prekey', body: 'AQ==' }, { type: 'whisper', body: 'AQE=' }]]]);
  const ownChecked = validateClientFrame(own);
  assert.ok(ownChecked.ok && ownChecked.value.type === 'send-multi');
  assert.deepEqual(ownChecked.value.recipients[0]?.devices[1], { deviceId: 3, registrationId: 4, message: { type: 'whisper', body: 'AQE=' } });
  const accounts = (n: number) => Array.from({ length: Math.ceil(n / 100) }, (_, a) => ({ username: `user${a}`, devices: devices(Math.min(100, n - a * 100)) }));
  assert.equal(buildSendMulti('x3', accounts(MAX_FANOUT_DEVICES), { type: 'sender-key', body: body(10) }).to.length, 3);
  assert.throws(() => buildSendMulti('x4', accounts(MAX_FANOUT_DEVICES + 1), { type: 'sender-key', body: body(10) }), invalid);
  assert.throws(() => buildSendMulti('x5', accounts(200), { type: 'sender-key', body: body(Math.floor(MAX_FANOUT_BYTES / 200) + 1) }), invalid);
  // Within the byte budget but not within one frame.
  assert.throws(() => buildSendMulti('x6', [{ username: 'bob', devices: devices(2).map((d) => ({ ...d, message: { type: 'whisper' as const, body: body(MAX_FRAME_BYTES / 2) } })) }]), invalid);
  // Contract violations: both forms, a device twice, a bad username.
  assert.throws(() => buildSendMulti('x7', [{ username: 'bob', devices: [{ deviceId: 1, registrationId: 1, message: { type: 'whisper', body: body(1) } }] }], { type: 'sender-key', body: body(1) }), invalid);
  assert.throws(() => buildSendMulti('x8', [{ username: 'bob', devices: [{ deviceId: 1, registrationId: 1 }, { deviceId: 1, registrationId: 1 }] }], { type: 'sender-key', body: body(1) }), invalid);
  assert.throws(() => buildSendMulti('x9', [{ username: '1bob', devices: [{ deviceId: 1, registrationId: 1 }] }], { type: 'sender-key', body: body(1) }), invalid);
  // Some devices of an account with their own message, some without.
  assert.throws(() => buildSendMulti('x10', [{ username: 'bob', devices: [{ deviceId: 1, registrationId: 1, message: { type: 'whisper', body: body(1) } }, { deviceId: 2, registrationId: 1 }] }]), invalid);
});

test('parseSendMultiAnswer: only the answer to this id, validated', () => {
  assert.deepEqual(parseSendMultiAnswer('{"type":"sent-multi","id":"a","timestamp":5,"stored":2}', 'a'), { ok: true, timestamp: 5, stored: 2, mailboxFull: [] });
  assert.deepEqual(parseSendMultiAnswer('{"type":"error","code":"STALE_DEVICE","message":"m","id":"a","accounts":[{"username":"bob","missing":[],"extra":[],"stale":[3]}]}', 'a'), {
    ok: false,
    code: 'STALE_DEVICE',
    message: 'm',
    accounts: [{ username: 'bob', missing: [], extra: [], stale: [3] }],
  });
  assert.deepEqual(parseSendMultiAnswer('{"type":"error","code":"RATE_LIMITED","message":"m","id":"a"}', 'a'), { ok: false, code: 'RATE_LIMITED', message: 'm', accounts: [] });
  for (const other of ['{"type":"sent-multi","id":"b","timestamp":5,"stored":2}', '{"type":"sent","id":"a","serverId":"1","timestamp":1}', '{', '{"type":"sent-multi","id":"a","stored":-1,"timestamp":1}']) {
    assert.equal(parseSendMultiAnswer(other, 'a'), undefined, other);
  }
});
