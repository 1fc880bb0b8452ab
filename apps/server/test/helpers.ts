/** Test helpers: real keys from @tacit/protocol, an in-process server, a WebSocket client with event-driven waits. */
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { IdentityKeyPair, KyberKeyPair, generatePreKey, generateSignedPreKey } from '@tacit/protocol';
import { nodeBackend } from '@tacit/protocol/node';
import { authorizationHeader, type ErrorBody, type RegisterRequest, type ServerFrame, type DeviceCredentials } from '@tacit/api';
import { buildServer, SqliteStore, type ServerOptions, type TacitServer, type Limits } from '../src/index.js';

export const backend = nodeBackend();
export const b64 = (u: Uint8Array): string => Buffer.from(u).toString('base64');

/** One Kyber public key for all tests (keygen is the slow part); each use is signed afresh by its identity. */
const kyberPublic = KyberKeyPair.generate(backend).publicKey.serialize();

export interface TestDevice {
  identity: IdentityKeyPair;
  secret: string;
  keys: Pick<RegisterRequest, 'registrationId' | 'signedPreKey' | 'kyberLastResortKey' | 'preKeys' | 'kyberPreKeys'>;
}

export function signedKyber(identity: IdentityKeyPair, keyId: number) {
  return { keyId, publicKey: b64(kyberPublic), signature: b64(identity.sign(backend, kyberPublic)) };
}

export function makeDevice(opts: { identity?: IdentityKeyPair; preKeys?: number; kyberPreKeys?: number; firstKeyId?: number } = {}): TestDevice {
  const identity = opts.identity ?? IdentityKeyPair.generate(backend);
  const first = opts.firstKeyId ?? 1;
  const spk = generateSignedPreKey(backend, identity, first, 0);
  return {
    identity,
    secret: b64(randomBytes(32)),
    keys: {
      registrationId: 1 + (randomBytes(2).readUInt16BE() % 16000),
      signedPreKey: { keyId: spk.id, publicKey: b64(spk.keyPair.publicKey.serialize()), signature: b64(spk.signature) },
      kyberLastResortKey: signedKyber(identity, first),
      preKeys: Array.from({ length: opts.preKeys ?? 0 }, (_, i) => {
        const p = generatePreKey(backend, first + i);
        return { keyId: p.id, publicKey: b64(p.keyPair.publicKey.serialize()) };
      }),
      kyberPreKeys: Array.from({ length: opts.kyberPreKeys ?? 0 }, (_, i) => signedKyber(identity, first + 1 + i)),
    },
  };
}

export function registration(username: string, d: TestDevice, inviteCode?: string): RegisterRequest {
  return {
    username,
    deviceId: 1,
    identityKey: b64(d.identity.publicKey.serialize()),
    secret: d.secret,
    ...d.keys,
    ...(inviteCode === undefined ? {} : { inviteCode }),
  };
}

export interface Harness {
  server: TacitServer;
  port: number;
  wsUrl: string;
  close(): Promise<void>;
}

/** A server on an in-memory SQLite store (or the given options), listening on 127.0.0.1 port 0. */
export async function start(opts: Partial<ServerOptions> & { limits?: Partial<Limits> } = {}): Promise<Harness> {
  const server = await buildServer({ store: new SqliteStore({ path: ':memory:' }), registration: 'open', ...opts });
  const port = await server.listen(0, '127.0.0.1');
  return { server, port, wsUrl: `ws://127.0.0.1:${port}/v1/ws`, close: () => server.close() };
}

/** Runs `fn` against a fresh server (see `start`) and closes it afterwards. */
export async function withServer(fn: (h: Harness) => Promise<void>, opts: Parameters<typeof start>[0] = {}): Promise<void> {
  const h = await start(opts);
  try {
    await fn(h);
  } finally {
    await h.close();
  }
}

/** The error code of an HTTP error response body. */
export const errorCode = (body: string): string => (JSON.parse(body) as ErrorBody).error.code;

export interface Account extends DeviceCredentials {
  device: TestDevice;
}

let counter = 0;
/** Registers a fresh user through the in-process app. */
export async function register(h: Harness, opts: { name?: string; preKeys?: number; kyberPreKeys?: number } = {}): Promise<Account> {
  const username = opts.name ?? `user${++counter}_${process.pid}`;
  const device = makeDevice({ preKeys: opts.preKeys ?? 0, kyberPreKeys: opts.kyberPreKeys ?? 0 });
  const res = await h.server.app.inject({ method: 'POST', url: '/v1/accounts', payload: registration(username, device) });
  if (res.statusCode !== 201) throw new Error(`register failed: ${res.statusCode} ${res.body}`);
  return { username, deviceId: 1, secret: device.secret, device };
}

export const auth = (c: DeviceCredentials) => ({ authorization: authorizationHeader(c) });

/** A second (third, …) device of `a`'s account, added with `a`'s credentials: its credentials and registration id. */
export async function addDevice(h: Harness, a: Account): Promise<DeviceCredentials & { registrationId: number }> {
  const d = makeDevice({ identity: a.device.identity });
  const res = await h.server.app.inject({ method: 'POST', url: '/v1/devices', headers: auth(a), payload: { ...d.keys, secret: d.secret } });
  if (res.statusCode !== 201) throw new Error(`adding a device failed: ${res.statusCode} ${res.body}`);
  return { username: a.username, deviceId: (res.json() as { deviceId: number }).deviceId, secret: d.secret, registrationId: d.keys.registrationId };
}

/** Default wait for anything asynchronous: generous, for a loaded 2-core machine. */
export const WAIT_MS = 20_000;

/** A WebSocket client that collects frames and lets tests await the next one matching a predicate. */
export class Client {
  readonly ws: WebSocket;
  readonly frames: ServerFrame[] = [];
  #waiters: { pred: (f: ServerFrame) => boolean; resolve: (f: ServerFrame) => void; reject: (e: Error) => void }[] = [];
  readonly #taken: boolean[] = [];
  closed: Promise<{ code: number; reason: string }>;
  isClosed = false;

  constructor(url: string) {
    this.ws = new WebSocket(url, { maxPayload: 16 * 1024 * 1024 });
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => {
        this.isClosed = true;
        for (const w of this.#waiters) w.reject(new Error(`closed ${code} ${reason.toString()}`));
        this.#waiters = [];
        resolve({ code, reason: reason.toString() });
      });
    });
    this.ws.on('error', () => undefined);
    this.ws.on('message', (data) => {
      const f = JSON.parse(data.toString()) as ServerFrame;
      this.frames.push(f);
      this.#dispatch();
    });
  }

  static async open(url: string): Promise<Client> {
    const c = new Client(url);
    await Promise.race([once(c.ws, 'open'), c.closed.then((x) => Promise.reject(new Error(`closed before open: ${x.code}`)))]);
    return c;
  }

  /** Opens and authenticates by first frame; resolves after `ready`. */
  static async connect(url: string, a: DeviceCredentials): Promise<Client> {
    const c = await Client.open(url);
    c.send({ type: 'auth', username: a.username, deviceId: a.deviceId, secret: a.secret });
    await c.next((f) => f.type === 'ready');
    return c;
  }

  #dispatch(): void {
    for (;;) {
      const w = this.#waiters[0];
      if (w === undefined) return;
      const found = this.#find(w.pred);
      if (found < 0) return;
      this.#taken[found] = true;
      this.#waiters.shift();
      w.resolve(this.frames[found]!);
    }
  }

  #find(pred: (f: ServerFrame) => boolean): number {
    for (let i = 0; i < this.frames.length; i++) if (!this.#taken[i] && pred(this.frames[i]!)) return i;
    return -1;
  }

  /** The oldest frame not yet returned by `next` that matches `pred` (waits for one if none). */
  next<T extends ServerFrame = ServerFrame>(pred: (f: ServerFrame) => boolean = () => true, ms = WAIT_MS): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.isClosed || this.#waiters.length === 0) {
        const i = this.#find(pred);
        if (i >= 0) {
          this.#taken[i] = true;
          return resolve(this.frames[i] as T);
        }
      }
      if (this.isClosed) {
        // Frames that arrived before the close still count.
        const i = this.#find(pred);
        if (i < 0) return reject(new Error('closed'));
        this.#taken[i] = true;
        return resolve(this.frames[i] as T);
      }
      const t = setTimeout(() => reject(new Error('timed out waiting for a frame')), ms);
      this.#waiters.push({
        pred,
        resolve: (f) => {
          clearTimeout(t);
          resolve(f as T);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
      this.#dispatch();
    });
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  close(): void {
    this.ws.close();
  }
}

/** Sends a message and waits for its `sent`. */
export async function sendMessage(c: Client, to: { username: string; deviceId: number }, body: Uint8Array | string, id = `m${++counter}`) {
  c.send({ type: 'send', id, to, message: { type: 'whisper', body: typeof body === 'string' ? Buffer.from(body).toString('base64') : b64(body) } });
  return c.next((f) => (f.type === 'sent' || f.type === 'error') && 'id' in f && f.id === id);
}
