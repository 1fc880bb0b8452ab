// Every decoder of untrusted bytes in protocol, api and client, as fuzz targets with valid seeds.
// Add a target here when you add a decoder.
import * as api from '@tacit/api';
import {
  decodePreKeySignalMessage,
  decodeSenderKeyMessage,
  DistributionId,
  GroupCipher,
  InMemorySenderKeyStore,
  SenderKeyDistributionMessage,
  SenderKeyRecord,
  decodeSignalMessage,
  generateKyberPreKey,
  generatePreKey,
  generateRegistrationId,
  generateSignedPreKey,
  IdentityKeyPair,
  inMemoryStores,
  isProtocolError,
  KyberPreKeyRecord,
  KyberPublicKey,
  PreKeyRecord,
  PrivateKey,
  ProtocolAddress,
  PublicKey,
  SessionManager,
  SessionRecord,
  SignedPreKeyRecord,
  toBase64,
  utf8Encode,
  type CryptoBackend,
} from '@tacit/protocol';
import { nodeBackend } from '@tacit/protocol/node';
import { decodeEnvelope, readEnvelope, encodeEnvelope, isClientError, parseSendMultiAnswer, decodeGroupPayload, encodeGroupPayload, decodeReceipt, encodeReceipt, decodeReadSync, encodeReadSync, decodeBlockSync, encodeBlockSync, decodeMuteSync, encodeMuteSync, decodeTyping, encodeTyping } from '../../src/index.ts';
import { RESPONSE_VALIDATORS } from '../../src/http.ts';
import { decodeState, STATE_VERSION, type StateData } from '../../src/legacy-state.ts';
import { accountCodec } from '../../src/account.ts';
import { countersCodec, emptyCounters } from '../../src/core.ts';
import { contactCodec } from '../../src/directory.ts';
import { conversationCodec, messageCodec } from '../../src/history.ts';
import { ciphertextCodec } from '../../src/outbox.ts';
import { keyStateCodec, preKeyCodec } from '../../src/prekeys.ts';
import type { RecordCodec } from '../../src/record-codec.ts';
import { heldCodec, identityCodec } from '../../src/trust.ts';
import type { FuzzTarget } from './fuzz.ts';
import { decodeAction } from '../../src/chat/actions.ts';
import { heldActionCodec } from '../../src/chat/edits.ts';
import { heldReadCodec } from '../../src/chat/read-sync.ts';
import { seqCodec } from '../../src/history.ts';

const isProtocol = (e: unknown): boolean => isProtocolError(e);

/** Real protocol artefacts: a session with a PreKey message, a whisper message, records. */
async function protocolSeeds(b: CryptoBackend) {
  const aliceId = IdentityKeyPair.generate(b);
  const bobId = IdentityKeyPair.generate(b);
  const alice = new SessionManager(b, inMemoryStores(aliceId, generateRegistrationId(b)), { now: () => 1_700_000_000_000 });
  const bobStores = inMemoryStores(bobId, generateRegistrationId(b));
  const bob = new SessionManager(b, bobStores, { now: () => 1_700_000_000_000 });
  const spk = generateSignedPreKey(b, bobId, 1, 1_700_000_000_000);
  const kpk = generateKyberPreKey(b, bobId, 2, 1_700_000_000_000);
  const pk = generatePreKey(b, 3);
  await bobStores.signedPreKey.storeSignedPreKey(1, spk);
  await bobStores.kyberPreKey.storeKyberPreKey(2, kpk);
  await bobStores.preKey.storePreKey(3, pk);
  const bobAddr = new ProtocolAddress('bob', 1);
  const aliceAddr = new ProtocolAddress('alice', 1);
  await alice.processPreKeyBundle(bobAddr, {
    registrationId: 7,
    deviceId: 1,
    identityKey: bobId.publicKey,
    signedPreKeyId: 1,
    signedPreKey: spk.publicKey,
    signedPreKeySignature: spk.signature,
    kyberPreKeyId: 2,
    kyberPreKey: kpk.publicKey,
    kyberPreKeySignature: kpk.signature,
    preKeyId: 3,
    preKey: pk.publicKey,
  });
  const first = await alice.encrypt(bobAddr, utf8Encode('hello'));
  await bob.decrypt(aliceAddr, first);
  const reply = await bob.encrypt(aliceAddr, utf8Encode('hi'));
  await alice.decrypt(bobAddr, reply);
  const skipped = await alice.encrypt(bobAddr, utf8Encode('late'));
  await bob.decrypt(aliceAddr, await alice.encrypt(bobAddr, utf8Encode('on time')));
  void skipped; // bob's record now holds a skipped key
  const record = (await bobStores.session.loadSession(aliceAddr)) as SessionRecord;
  // Sender keys (groups): a distribution message, two group messages, the record.
  const senderKeys = new InMemorySenderKeyStore();
  const group = new GroupCipher(b, senderKeys);
  const distributionId = DistributionId.random(b);
  const distribution = await group.createSenderKeyDistributionMessage(aliceAddr, distributionId);
  const groupMessages = [await group.groupEncrypt(aliceAddr, distributionId, utf8Encode('to all')), await group.groupEncrypt(aliceAddr, distributionId, utf8Encode('again'))];
  const senderKeyRecord = (await senderKeys.loadSenderKey(aliceAddr, distributionId)) as SenderKeyRecord;
  return {
    senderKeyDistribution: distribution.serialize(),
    groupMessages,
    senderKeyRecord: senderKeyRecord.serialize(),
    prekeyMessage: first.body,
    whisperMessages: [reply.body, skipped.body],
    sessionRecord: record.serialize(),
    preKeyRecord: pk.serialize(),
    signedPreKeyRecord: spk.serialize(),
    kyberPreKeyRecord: kpk.serialize(),
    publicKey: aliceId.publicKey.serialize(),
    privateKey: aliceId.privateKey.serialize(),
    kyberPublicKey: kpk.publicKey.serialize(),
  };
}

const B64_33 = toBase64(new Uint8Array([5, ...new Array<number>(32).fill(9)]));
const SIG = toBase64(new Uint8Array(64).fill(3));
const KYBER = toBase64(new Uint8Array([8, ...new Array<number>(1568).fill(1)]));
const SECRET = toBase64(new Uint8Array(32).fill(0x41));

function stateSeed(): StateData {
  return {
    v: STATE_VERSION,
    account: { server: 'http://127.0.0.1:8080', username: 'bob', deviceId: 1, registrationId: 7, secret: SECRET, identityKeyPair: '', createdAt: 1, registered: true },
    preKeys: {},
    nextPreKeyId: 1,
    signedPreKeys: {},
    currentSignedPreKeyId: 1,
    nextSignedPreKeyId: 2,
    kyberPreKeys: {},
    currentLastResortKyberId: 1,
    nextKyberPreKeyId: 2,
    sessions: { 'alice.1': 'AAAA' },
    identities: { alice: B64_33 },
    pendingIdentities: {},
    contacts: {},
    messages: [],
    outbox: [],
    seenServerIds: ['1'],
    seenMessageIds: [],
    quarantine: [],
    pendingUpload: null,
  };
}

/** A record of the client's local store: bytes in, its codec's decode; damage is STATE_CORRUPT. */
function recordTarget<V>(name: string, codec: RecordCodec<V>, seed: V): FuzzTarget {
  return {
    name: `client: ${name} record`,
    input: 'bytes',
    json: !(seed as { blob?: unknown }).blob,
    seeds: [codec.encode(seed)],
    decode: (b) => codec.decode(b as Uint8Array),
    expected: (e) => isClientError(e) && e.code === 'STATE_CORRUPT',
  };
}

/** A JSON target: text in, parsed with the API's parser, then validated (as the server and SDK do). */
function jsonTarget(name: string, validator: (v: unknown) => unknown, seeds: unknown[]): FuzzTarget {
  return {
    name,
    input: 'text',
    json: true,
    seeds: seeds.map((s) => JSON.stringify(s)),
    decode: (text) => {
      const p = api.parseJson(text as string);
      return p.ok ? validator(p.value) : p;
    },
  };
}

export async function fuzzTargets(): Promise<FuzzTarget[]> {
  const p = await protocolSeeds(nodeBackend());
  const envelope = { id: '17', type: 'whisper', body: toBase64(p.whisperMessages[0]!), source: { username: 'alice', deviceId: 1 }, timestamp: 1_700_000_000_000 };
  const register = {
    username: 'alice',
    deviceId: 1,
    registrationId: 1234,
    identityKey: B64_33,
    signedPreKey: { keyId: 1, publicKey: B64_33, signature: SIG },
    kyberLastResortKey: { keyId: 1, publicKey: KYBER, signature: SIG },
    preKeys: [{ keyId: 1, publicKey: B64_33 }],
    kyberPreKeys: [{ keyId: 2, publicKey: KYBER, signature: SIG }],
    secret: SECRET,
    inviteCode: 'k3J9x0QeU2',
  };
  const { username: _u, deviceId: _d, inviteCode: _i, identityKey: _k, ...addDevice } = register;
  const bundleDevice = {
    deviceId: 1,
    registrationId: 777,
    signedPreKey: { keyId: 1, publicKey: B64_33, signature: SIG },
    kyberPreKey: { keyId: 5, publicKey: KYBER, signature: SIG },
    kyberPreKeyIsLastResort: false,
    preKey: { keyId: 9, publicKey: B64_33 },
  };

  return [
    // ---- protocol ----
    { name: 'protocol: decodeSignalMessage', input: 'bytes', seeds: p.whisperMessages, decode: (b) => decodeSignalMessage(b as Uint8Array), expected: isProtocol },
    { name: 'protocol: decodePreKeySignalMessage', input: 'bytes', seeds: [p.prekeyMessage], decode: (b) => decodePreKeySignalMessage(b as Uint8Array), expected: isProtocol },
    { name: 'protocol: SessionRecord.deserialize', input: 'bytes', json: true, seeds: [p.sessionRecord], decode: (b) => SessionRecord.deserialize(b as Uint8Array), expected: isProtocol },
    { name: 'protocol: PreKeyRecord.deserialize', input: 'bytes', json: true, seeds: [p.preKeyRecord], decode: (b) => PreKeyRecord.deserialize(b as Uint8Array), expected: isProtocol },
    { name: 'protocol: SignedPreKeyRecord.deserialize', input: 'bytes', json: true, seeds: [p.signedPreKeyRecord], decode: (b) => SignedPreKeyRecord.deserialize(b as Uint8Array), expected: isProtocol },
    { name: 'protocol: KyberPreKeyRecord.deserialize', input: 'bytes', json: true, seeds: [p.kyberPreKeyRecord], decode: (b) => KyberPreKeyRecord.deserialize(b as Uint8Array), expected: isProtocol },
    { name: 'protocol: decodeSenderKeyMessage', input: 'bytes', seeds: p.groupMessages, decode: (b) => decodeSenderKeyMessage(b as Uint8Array), expected: isProtocol },
    {
      name: 'protocol: SenderKeyDistributionMessage',
      input: 'bytes',
      seeds: [p.senderKeyDistribution],
      decode: (b) => SenderKeyDistributionMessage.deserialize(b as Uint8Array),
      expected: isProtocol,
    },
    { name: 'protocol: SenderKeyRecord.deserialize', input: 'bytes', seeds: [p.senderKeyRecord], decode: (b) => SenderKeyRecord.deserialize(b as Uint8Array), expected: isProtocol },
    { name: 'protocol: PublicKey.deserialize', input: 'bytes', seeds: [p.publicKey], decode: (b) => PublicKey.deserialize(b as Uint8Array), expected: isProtocol },
    { name: 'protocol: PrivateKey.deserialize', input: 'bytes', seeds: [p.privateKey], decode: (b) => PrivateKey.deserialize(b as Uint8Array), expected: isProtocol },
    { name: 'protocol: KyberPublicKey.deserialize', input: 'bytes', seeds: [p.kyberPublicKey], decode: (b) => KyberPublicKey.deserialize(b as Uint8Array), expected: isProtocol },
    // ---- api: what the server reads ----
    jsonTarget('api: validateClientFrame', api.validateClientFrame, [
      { type: 'auth', username: 'alice', deviceId: 1, secret: SECRET },
      { type: 'send', id: 'c-17', to: { username: 'bob', deviceId: 1, registrationId: 777 }, message: { type: 'whisper', body: toBase64(p.whisperMessages[0]!) } },
      { type: 'ack', id: '17' },
      { type: 'ping', id: 'p1' },
      {
        type: 'send-multi',
        id: 'g-3',
        recipients: [{ username: 'bob', devices: [{ deviceId: 1, registrationId: 777 }, { deviceId: 2, registrationId: 778 }] }],
        message: { type: 'sender-key', body: toBase64(p.groupMessages[0]!) },
      },
      {
        type: 'send-multi',
        id: 'p-4',
        recipients: [{ username: 'bob', devices: [{ deviceId: 1, registrationId: 777, message: { type: 'whisper', body: toBase64(p.whisperMessages[0]!) } }] }],
      },
      // The compact recipient list: shared message, and per-device messages.
      { type: 'send-multi', id: 'g-5', to: [['bob', [1, 2], [777, 778]], ['carol', [1], [9]]], message: { type: 'sender-key', body: toBase64(p.groupMessages[0]!) } },
      { type: 'send-multi', id: 'p-6', to: [['bob', [1], [777], [{ type: 'whisper', body: toBase64(p.whisperMessages[0]!) }]]] },
    ]),
    jsonTarget('api: validateRegisterRequest', api.validateRegisterRequest, [register]),
    jsonTarget('api: validateAddDeviceRequest', api.validateAddDeviceRequest, [addDevice]),
    jsonTarget('api: validateUploadKeysRequest', api.validateUploadKeysRequest, [
      { preKeys: register.preKeys },
      { signedPreKey: register.signedPreKey, kyberLastResortKey: register.kyberLastResortKey, kyberPreKeys: register.kyberPreKeys },
    ]),
    {
      name: 'api: parseAuthorizationHeader',
      input: 'text',
      seeds: [api.authorizationHeader({ username: 'alice', deviceId: 1, secret: SECRET })],
      decode: (t) => api.parseAuthorizationHeader(t as string),
    },
    { name: 'api: fromBase64', input: 'text', seeds: [B64_33, SIG, 'QQ=='], decode: (t) => api.fromBase64(t as string) },
    { name: 'api: base64DecodedLength', input: 'text', seeds: [B64_33, 'QQ=='], decode: (t) => (api.base64DecodedLength(t as string) >= 0 ? 1 : undefined) },
    // ---- api and client: what the SDK reads from the server ----
    jsonTarget('api: validateServerFrame', api.validateServerFrame, [
      { type: 'ready', username: 'bob', deviceId: 1 },
      { type: 'message', envelope },
      { type: 'sent', id: 'c-17', serverId: '18', timestamp: 1 },
      { type: 'queue-empty' },
      { type: 'pong', id: 'p1' },
      { type: 'error', code: 'RATE_LIMITED', message: 'slow down', id: 'c-17' },
      { type: 'sent-multi', id: 'g-3', timestamp: 1, stored: 2, mailboxFull: [{ username: 'bob', deviceId: 3 }] },
      { type: 'error', code: 'MISMATCHED_DEVICES', message: 'x', id: 'g-3', accounts: [{ username: 'bob', missing: [3], extra: [4], stale: [] }] },
    ]),
    {
      name: 'client: parseSendMultiAnswer',
      input: 'text',
      seeds: ['{"type":"sent-multi","id":"g-3","timestamp":1,"stored":2}', '{"type":"error","code":"STALE_DEVICE","message":"x","id":"g-3","accounts":[{"username":"bob","missing":[],"extra":[],"stale":[2]}]}'],
      // A refusal is a decoded answer too (its `ok` is the server's verdict, not the parser's).
      decode: (t) => (parseSendMultiAnswer(t as string, 'g-3') === undefined ? undefined : 1),
    },
    // Attachments: requests the server reads, answers the SDK reads, the upload offset header.
    jsonTarget('api: validateCreateAttachmentRequest', api.validateCreateAttachmentRequest, [{ length: 557 }]),
    jsonTarget('api: validateCreateAttachmentResponse', api.validateCreateAttachmentResponse, [{ id: 'ab'.repeat(24), expiresAt: 1_700_000_000_000 }]),
    jsonTarget('api: validateAttachmentUploadStatus', api.validateAttachmentUploadStatus, [{ length: 70_000, received: 65_552, expiresAt: 1_700_000_000_000 }]),
    jsonTarget('api: validateAttachmentLimitsResponse', api.validateAttachmentLimitsResponse, [{ maxBytes: 104_857_600, quotaBytes: 1_073_741_824, usedBytes: 0, ttlMs: 2_592_000_000 }]),
    { name: 'api: parseUploadOffset', input: 'text', seeds: ['0', '65552', '104857600'], decode: (t) => api.parseUploadOffset(t as string) },
    jsonTarget('client: bundle response', RESPONSE_VALIDATORS.bundle, [{ username: 'bob', identityKey: B64_33, devices: [bundleDevice] }]),
    jsonTarget('client: device list response', RESPONSE_VALIDATORS.deviceList, [{ username: 'bob', identityKey: B64_33, devices: [{ deviceId: 1, registrationId: 7 }] }]),
    jsonTarget('client: key count response', RESPONSE_VALIDATORS.keyCount, [{ preKeys: 3, kyberPreKeys: 4 }]),
    jsonTarget('client: register response', RESPONSE_VALIDATORS.register, [{ username: 'bob', deviceId: 2 }]),
    jsonTarget('client: error response', RESPONSE_VALIDATORS.error, [{ error: { code: 'NOT_FOUND', message: 'no such user' } }]),
    // ---- client: what a contact sends (inside the encryption) and what is read from disk ----
    {
      name: 'client: decodeEnvelope',
      input: 'bytes',
      seeds: [encodeEnvelope({ v: 1, id: '0123456789abcdef', text: 'hello \u202e world', sentAt: 1_700_000_000_000 })],
      decode: (b) => decodeEnvelope(b as Uint8Array),
    },
    {
      // Group control messages (pairwise) and group texts (inside a SenderKeyMessage).
      name: 'client: decodeGroupPayload',
      input: 'bytes',
      seeds: [
        encodeGroupPayload({
          grp: 'state',
          state: {
            id: '0123456789abcdef0123456789abcdef',
            title: { v: 'Launch', rev: 2, by: 'alice' },
            members: { alice: { in: true, admin: true, rev: 1, by: 'alice' }, bob: { in: false, admin: false, rev: 2, by: 'alice' } },
          },
        }),
        encodeGroupPayload({ grp: 'key', group: '0123456789abcdef0123456789abcdef', skdm: new Uint8Array(90).fill(0x33) }),
        encodeGroupPayload({ grp: 'text', group: '0123456789abcdef0123456789abcdef', id: 'ab12', text: 'hi all', sentAt: 1_700_000_000_000 }),
        encodeGroupPayload({ grp: 'text', group: '0123456789abcdef0123456789abcdef', id: 'ab13', text: 'vanishing', sentAt: 1_700_000_000_000, exp: 3_600_000 }),
        encodeGroupPayload({ grp: 'text', group: '0123456789abcdef0123456789abcdef', id: 'ab14', text: '', sentAt: 1_700_000_000_000, act: { k: 'react', author: 'bob', target: 'ab12', emoji: '👍🏽' } }),
        encodeGroupPayload({ grp: 'text', group: '0123456789abcdef0123456789abcdef', id: 'ab15', text: '', sentAt: 1_700_000_000_000, act: { k: 'timer', ms: 30_000 } }),
      ],
      decode: (b) => decodeGroupPayload(b as Uint8Array),
    },
    {
      // Delivery and read receipts (chat/receipts.ts), over a pairwise session.
      name: 'client: decodeReceipt',
      input: 'bytes',
      seeds: [
        encodeReceipt({ kind: 'delivered', ids: ['0123456789abcdef0123456789abcdef'] }),
        encodeReceipt({ kind: 'read', ids: ['a', 'b', 'c'], group: '0123456789abcdef0123456789abcdef' }),
      ],
      decode: (b) => decodeReceipt(b as Uint8Array),
    },
    {
      // Read state from another device of our own account (chat/read-sync.ts).
      name: 'client: decodeReadSync',
      input: 'bytes',
      seeds: [
        encodeReadSync([{ from: 'bob', id: '0123456789abcdef0123456789abcdef', at: 1_700_000_000_000 }]),
        encodeReadSync([
          { from: 'carol', id: 'a', at: 0, group: '0123456789abcdef0123456789abcdef' },
          { from: 'dave', id: 'b', at: 1_700_000_000_001 },
        ]),
      ],
      decode: (b) => decodeReadSync(b as Uint8Array),
    },
    {
      // The block list from another device of our own account (chat/block.ts).
      name: 'client: decodeBlockSync',
      input: 'bytes',
      seeds: [encodeBlockSync({ users: ['bob', 'carol'], at: 1_700_000_000_000 }), encodeBlockSync({ users: [], at: 0 })],
      decode: (b) => decodeBlockSync(b as Uint8Array),
    },
    {
      // The muted conversations from another device of our own account (chat/mute.ts).
      name: 'client: decodeMuteSync',
      input: 'bytes',
      seeds: [encodeMuteSync({ mutes: { 'u:bob': 1_700_000_360_000, 'g:0123456789abcdef0123456789abcdef': Number.MAX_SAFE_INTEGER }, at: 1_700_000_000_000 }), encodeMuteSync({ mutes: {}, at: 0 })],
      decode: (b) => decodeMuteSync(b as Uint8Array),
    },
    {
      // Edits, deletions, reactions, timers (chat/actions.ts) and a message's own timer.
      name: 'client: decodeEnvelope with an action or a timer',
      input: 'bytes',
      seeds: [
        encodeEnvelope({ v: 1, id: '0123456789abcdef', text: '', sentAt: 1_700_000_000_000, act: { k: 'edit', target: 'fedcba9876543210', text: 'fixed \u202e typo' } }),
        encodeEnvelope({ v: 1, id: '0123456789abcdee', text: '', sentAt: 1_700_000_000_000, act: { k: 'delete', target: 'fedcba9876543210' } }),
        encodeEnvelope({ v: 1, id: '0123456789abcded', text: '', sentAt: 1_700_000_000_000, act: { k: 'react', author: 'alice', target: 'fedcba9876543210', emoji: '👨‍👩‍👧‍👦' } }),
        encodeEnvelope({ v: 1, id: '0123456789abcdec', text: 'bye soon', sentAt: 1_700_000_000_000, exp: 5_000 }),
      ],
      decode: (b) => decodeEnvelope(b as Uint8Array),
    },
    {
      name: 'client: decodeAction',
      input: 'text',
      json: true,
      seeds: [
        JSON.stringify({ k: 'edit', target: 'ab12', text: 'new text' }),
        JSON.stringify({ k: 'delete', target: 'ab12' }),
        JSON.stringify({ k: 'react', author: 'bob', target: 'ab12', emoji: '🇫🇷' }),
        JSON.stringify({ k: 'timer', ms: 86_400_000 }),
      ],
      decode: (t) => {
        const p = api.parseJson(t as string);
        return p.ok ? decodeAction(p.value) : p;
      },
    },
    {
      // Typing indicators (chat/typing.ts), over a pairwise session, ephemeral.
      name: 'client: decodeTyping',
      input: 'bytes',
      seeds: [encodeTyping({ typing: 'started' }), encodeTyping({ typing: 'stopped', group: '0123456789abcdef0123456789abcdef' })],
      decode: (b) => decodeTyping(b as Uint8Array),
    },
    {
      name: 'client: readEnvelope with a file pointer',
      input: 'bytes',
      seeds: [
        encodeEnvelope({
          v: 1,
          id: '0123456789abcdef',
          text: 'caption',
          sentAt: 1_700_000_000_000,
          file: { id: 'ab'.repeat(24), key: new Uint8Array(32).fill(7), digest: new Uint8Array(32).fill(9), size: 1234, name: 'a.jpg', type: 'image/jpeg', thumbnail: new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 1]), width: 640, height: 480 },
        }),
      ],
      decode: (b) => readEnvelope(b as Uint8Array),
    },
    // The records of the local store: damage is STATE_CORRUPT, nothing else.
    recordTarget('message', messageCodec, { meta: { d: 'out', id: 'ab12', from: 'bob', dev: 1, sentAt: 5, st: 'failed', err: { code: 'SERVER', message: 'no', serverCode: 'X' }, to: { '1': 's1' }, pend: 0, att: 1 }, blob: utf8Encode('hi \u0001 there') }),
    recordTarget('conversation', conversationCodec, { id: 'u:bob', createdAt: 1, read: 2, unread: 3, last: 4, lastAt: 5, count: 6, bytes: 7, dropped: 0, droppedUnread: 0, timer: 60_000 }),
    recordTarget('edited message', messageCodec, {
      meta: { d: 'in', id: 'ab12', from: 'bob', dev: 1, sentAt: 5, ed: 9, old: [{ text: 'teh', at: 5 }], rx: { alice: ['👍', 7], carol: ['', 8] }, exp: 60_000, xat: 70_000 },
      blob: utf8Encode('the'),
    }),
    recordTarget('action carrier', messageCodec, { meta: { d: 'out', id: 'ab13', from: 'bob', dev: 1, sentAt: 5, st: 'queued', act: { k: 'delete', target: 'ab12' } }, blob: new Uint8Array(0) }),
    recordTarget('held edit or reaction', heldActionCodec, { meta: { conversation: 'u:bob', actor: 'bob', at: 5, heldAt: 6, act: { k: 'edit', target: 'ab12', text: 'x' } }, blob: new Uint8Array(0) }),
    recordTarget('held read', heldReadCodec, { meta: { conversation: 'u:bob', at: 5, fromDevice: 2, heldAt: 6 }, blob: new Uint8Array(0) }),
    recordTarget('message index', seqCodec, { c: 'u:bob', s: 17 }),
    recordTarget('outgoing ciphertext', ciphertextCodec, { meta: { clientId: 'c1', conversation: 'u:bob', msg: 3, messageId: 'ab', to: 'bob', deviceId: 1, registrationId: 9, type: 'whisper', createdAt: 1 }, blob: new Uint8Array([0x44, 1, 2]) }),
    recordTarget('held message', heldCodec, { meta: { serverId: 's1', from: 'bob', fromDevice: 1, type: 'prekey', serverTimestamp: 1, receivedAt: 2 }, blob: new Uint8Array([1]) }),
    recordTarget('identity', identityCodec, { username: 'bob', trusted: B64_33, pending: { key: B64_33, seenAt: 3 } }),
    recordTarget('contact', contactCodec, { username: 'bob', devices: [{ deviceId: 1, registrationId: 7 }], addedAt: 1 }),
    recordTarget('account', accountCodec, { server: 'http://127.0.0.1:8080', username: 'bob', deviceId: 1, registrationId: 7, secret: SECRET, identityKeyPair: B64_33, createdAt: 1, registered: true }),
    recordTarget('counters', countersCodec, emptyCounters()),
    recordTarget('pre-key bookkeeping', keyStateCodec, { nextPreKeyId: 1, currentSignedPreKeyId: 1, nextSignedPreKeyId: 2, currentLastResortKyberId: 1, nextKyberPreKeyId: 2 }),
    recordTarget('one-time pre-key', preKeyCodec, { meta: { createdAt: 1, retiredAt: 2 }, blob: new Uint8Array(40) }),
    {
      name: 'client: decodeState',
      input: 'bytes',
      json: true,
      seeds: [utf8Encode(JSON.stringify(stateSeed()))],
      decode: (b) => decodeState(b as Uint8Array),
      expected: (e) => isClientError(e) && e.code === 'STATE_CORRUPT',
    },
  ];
}
