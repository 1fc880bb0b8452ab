// SDK devices on a real server process (ServerProcess) for tests of one account on several
// devices: fresh accounts and devices linked to them, each on a memory store that can be searched
// for a text and that records every receipt-queue record written; a bounded wait; padded JSON.
import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { nodeBackend } from '@tacit/protocol/node';
import { MemoryRecordStore, TacitClient, type FetchLike, type SocketFactory, type StoredRecord } from '../../src/index.ts';
import { utf8Encode } from '../../src/bytes.ts';
import { wsSocketFactory } from '../../src/node.ts';
import { ServerProcess } from './server-process.js';
import { rawDevice } from './raw-device.ts';

const backend = nodeBackend();

/** A memory store that remembers every receipt-queue record ever written (`rq/`), decoded. */
export class RecordingStore extends MemoryRecordStore {
  readonly queued: Record<string, unknown>[] = [];
  override async commit(puts: readonly StoredRecord[], deletes: readonly string[]): Promise<void> {
    await super.commit(puts, deletes);
    for (const r of puts) if (r.key.startsWith('rq/')) this.queued.push(JSON.parse(new TextDecoder().decode(r.value)) as Record<string, unknown>);
  }
  /** Does any record hold `text` (memory records are not sealed)? */
  async holds(text: string): Promise<boolean> {
    const needle = Buffer.from(text, 'utf8');
    return (await this.list('')).some((r) => Buffer.from(r.value).includes(needle));
  }
}

export interface Device {
  client: TacitClient;
  store: RecordingStore;
}

/** Registers and links devices on the server `url()` names; `closeAll` closes every one of them. */
export function devicesOn(url: () => string) {
  const open: TacitClient[] = [];
  let n = 0;
  const opts = (store: RecordingStore, connect: SocketFactory = wsSocketFactory, now?: () => number, fetch?: FetchLike) => ({
    store,
    backend,
    connect,
    backoff: { baseMs: 10, maxMs: 50 },
    ...(now !== undefined ? { now } : {}),
    ...(fetch !== undefined ? { fetch } : {}),
  });
  /** A username not used before in this process: `name`, a counter and the process id. */
  const unique = (name: string): string => `${name}${++n}x${process.pid}`;
  return {
    unique,
    /** `now`: the client's clock (default Date.now); `fetch`: its HTTP (default the global fetch). */
    async register(name: string, connect?: SocketFactory, now?: () => number, fetch?: FetchLike): Promise<Device> {
      const store = new RecordingStore();
      const client = await TacitClient.register(opts(store, connect, now, fetch), { server: url(), username: unique(name) });
      open.push(client);
      await client.connect();
      return { client, store };
    },
    /** Opens a device's store again as a new process would (after `close`), with the same network. */
    async reopen(d: Device, connect?: SocketFactory, now?: () => number, fetch?: FetchLike): Promise<Device> {
      // The records as they were committed (a new process finds exactly those).
      const store = new RecordingStore();
      await store.commit(await d.store.reopen().list(''), []);
      const client = await TacitClient.open(opts(store, connect, now, fetch));
      open.push(client);
      return { client, store };
    },
    async link(existing: TacitClient, name: string, now?: () => number): Promise<Device> {
      const store = new RecordingStore();
      let added: Promise<{ deviceId: number | undefined }> | undefined;
      const client = await TacitClient.link(opts(store, wsSocketFactory, now), { server: url(), name, onCode: (code) => (added = existing.linkDevice(code)) });
      open.push(client);
      assert.equal((await added!).deviceId, client.deviceId);
      await client.connect();
      return { client, store };
    },
    async closeAll(): Promise<void> {
      for (const c of open) await c.close().catch(() => undefined);
    },
  };
}

/**
 * A test file's server process (started in a `before` hook, with room for many registrations)
 * and its devices, all closed and the server stopped in an `after` hook.
 */
export function serverDevices() {
  let server: ServerProcess | undefined;
  const started = (): ServerProcess => {
    if (server === undefined) throw new Error('the server is not started');
    return server;
  };
  const devices = devicesOn(() => started().url);
  before(async () => {
    server = await ServerProcess.start({ TACIT_REGISTRATION_BURST: '100', TACIT_REGISTRATION_PER_HOUR: '1000' });
  });
  after(async () => {
    await devices.closeAll();
    await server?.stop();
  });
  /**
   * A device of another account sends `victim` each of `payloads` (syncs only our own devices may
   * send), then `honest` runs (it sends a genuine message and waits for it); every
   * payload must have been refused as FORGED_SYNC.
   */
  const sendForged = async (victim: TacitClient, payloads: readonly Uint8Array[], honest: () => Promise<void>): Promise<void> => {
    const reasons: string[] = [];
    victim.on('undecryptable', (e) => reasons.push(`${e.from}:${e.reason}`));
    const eve = await rawDevice(started(), devices.unique('eve'));
    try {
      for (const p of payloads) await eve.send(victim.username, 1, p);
      await honest();
      await until(() => reasons.length === payloads.length, 'every forged sync refused');
    } finally {
      eve.close();
    }
    assert.deepEqual(reasons, payloads.map(() => `${eve.username}:FORGED_SYNC`));
  };
  return { ...devices, server: started, sendForged };
}

export async function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 2_000; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** A decoder refuses each of `bad` (padded JSON texts), and `unpadded` without its padding. */
export function assertRefused(decode: (bytes: Uint8Array) => unknown, bad: readonly string[], unpadded: string): void {
  for (const b of bad) assert.equal(decode(padded(b)), undefined, b);
  assert.equal(decode(utf8Encode(unpadded)), undefined, 'unpadded');
}

/** JSON text with Signal's padding after it (0x80, then zeros), as every plaintext is laid out. */
export function padded(json: string): Uint8Array {
  const j = utf8Encode(json);
  const out = new Uint8Array(j.length + 16);
  out.set(j);
  out[j.length] = 0x80;
  return out;
}
