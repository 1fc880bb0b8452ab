// `npm run demo:protocol`: two in-memory parties start a PQXDH session and exchange a few
// messages through the Double Ratchet, printing what travels between them (sizes and types only).
import {
  generateKyberPreKey,
  generatePreKey,
  generateRegistrationId,
  generateSignedPreKey,
  IdentityKeyPair,
  inMemoryStores,
  ProtocolAddress,
  safetyNumber,
  SessionManager,
  utf8Decode,
  utf8Encode,
} from './src/index.ts';
import { nodeBackend } from './src/node.ts';

const backend = nodeBackend();
const now = (): number => Date.now();

function party(name: string) {
  const identity = IdentityKeyPair.generate(backend);
  const stores = inMemoryStores(identity, generateRegistrationId(backend));
  return { name, identity, stores, manager: new SessionManager(backend, stores, { now }) };
}

const alice = party('alice');
const bob = party('bob');

// Bob publishes a bundle (what the server would hold).
const spk = generateSignedPreKey(backend, bob.identity, 1, now());
const kpk = generateKyberPreKey(backend, bob.identity, 1, now());
const opk = generatePreKey(backend, 1);
await bob.stores.signedPreKey.storeSignedPreKey(1, spk);
await bob.stores.kyberPreKey.storeKyberPreKey(1, kpk, true);
await bob.stores.preKey.storePreKey(1, opk);
const bundle = {
  registrationId: await bob.stores.identity.getLocalRegistrationId(),
  deviceId: 1,
  identityKey: bob.identity.publicKey,
  signedPreKeyId: spk.id,
  signedPreKey: spk.publicKey,
  signedPreKeySignature: spk.signature,
  kyberPreKeyId: kpk.id,
  kyberPreKey: kpk.publicKey,
  kyberPreKeySignature: kpk.signature,
  preKeyId: opk.id,
  preKey: opk.publicKey,
};

const toBob = new ProtocolAddress('bob', 1);
const toAlice = new ProtocolAddress('alice', 1);
await alice.manager.processPreKeyBundle(toBob, bundle);

const script: Array<[typeof alice, ProtocolAddress, typeof alice, ProtocolAddress, string]> = [
  [alice, toBob, bob, toAlice, 'Hi Bob, this is end-to-end encrypted.'],
  [bob, toAlice, alice, toBob, 'Hi Alice! Every reply turns the ratchet.'],
  [alice, toBob, bob, toAlice, 'And the server only ever sees ciphertext.'],
];
for (const [from, to, recipient, fromAddr, text] of script) {
  const msg = await from.manager.encrypt(to, utf8Encode(text));
  const { plaintext } = await recipient.manager.decrypt(fromAddr, msg);
  console.log(`${from.name} → ${recipient.name}: ${msg.type} message, ${msg.body.length} bytes on the wire → "${utf8Decode(plaintext)}"`);
}
const sn = safetyNumber(backend, utf8Encode('alice'), alice.identity.publicKey, utf8Encode('bob'), bob.identity.publicKey);
console.log(`safety number: ${sn.displayable.match(/.{5}/g)?.join(' ')}`);
