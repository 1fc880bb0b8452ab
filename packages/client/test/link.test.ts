// The new device's side of linking (link.ts) against hostile or broken input, with no server: a
// fake provisioning channel hands TacitClient.link a crafted link message, encrypted to the code
// it showed as a real linking device would.
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toBase64 } from '@tacit/api';
import { IdentityKeyPair } from '@tacit/protocol';
import { nodeBackend } from '@tacit/protocol/node';
import { encodeProvisioningMessage, encryptProvisioning, isClientError, MemoryRecordStore, parseLinkCode, TacitClient, type ProvisioningMessage, type SocketFactory } from '../src/index.ts';

const backend = nodeBackend();

/** A provisioning channel that shows an address, then sends `message()` encrypted to the code's key. */
function fakeChannel(message: () => ProvisioningMessage): { connect: SocketFactory; onCode: (code: string) => void } {
  let deliver: ((text: string) => void) | undefined;
  const connect: SocketFactory = (_url, handlers) => {
    deliver = (text) => handlers.message(text);
    setImmediate(() => {
      handlers.open();
      handlers.message(JSON.stringify({ type: 'address', address: 'chan1', expiresAt: Date.now() + 60_000 }));
    });
    return { send: () => undefined, close: () => undefined };
  };
  const onCode = (code: string): void => {
    const body = encryptProvisioning(backend, parseLinkCode(code).publicKey, encodeProvisioningMessage(message()));
    setImmediate(() => deliver?.(JSON.stringify({ type: 'provision', body: toBase64(body) })));
  };
  return { connect, onCode };
}

test('a link message whose contact identity key is not a curve public key (wrong type byte, non-canonical) is refused with PROVISIONING_FAILED', async () => {
  const identity = IdentityKeyPair.generate(backend);
  const good = toBase64(IdentityKeyPair.generate(backend).publicKey.serialize());
  // p = 2^255 - 19, little-endian: a u-coordinate no canonical key has.
  const p = new Uint8Array(32).fill(0xff);
  p[0] = 0xed;
  p[31] = 0x7f;
  const wrongType = new Uint8Array(33).fill(0x09);
  wrongType[0] = 0x06;
  for (const bad of [toBase64(wrongType), toBase64(Uint8Array.of(0x05, ...p))]) {
    const { connect, onCode } = fakeChannel(() => ({
      v: 1,
      username: 'alice',
      identityKeyPair: toBase64(identity.serialize()),
      token: 'tok',
      contacts: [{ username: 'bob', identityKey: good }, { username: 'carol', identityKey: bad }],
      groups: [],
    }));
    const store = new MemoryRecordStore();
    await assert.rejects(
      TacitClient.link({ store, backend, connect, fetch: () => Promise.reject(new Error('no server here')) }, { server: 'http://tacit.test', name: 'laptop', onCode }),
      (e: unknown) => isClientError(e) && e.code === 'PROVISIONING_FAILED' && /contacts/.test(e.message),
    );
    assert.deepEqual(await store.list(''), [], 'nothing is stored');
  }
});

/** Bound on the child below (it exits in well under a second when nothing is left armed). */
const CHILD_EXIT_WAIT_MS = 60_000;

test('a provisioning channel that cannot be opened (the factory throws, or the port refuses): NETWORK, and nothing keeps the process alive', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./support/link-unreachable.ts', import.meta.url))], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const kill = setTimeout(() => child.kill('SIGKILL'), CHILD_EXIT_WAIT_MS);
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  clearTimeout(kill);
  assert.deepEqual([code, signal], [0, null], 'the child exited by itself');
  assert.deepEqual(out.trim().split('\n'), ['NETWORK', 'NETWORK']);
});
