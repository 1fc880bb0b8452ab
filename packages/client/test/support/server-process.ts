// A real tacit server process (apps/server/src/main.ts) for SDK tests that need one, on a
// temporary data directory, with devices registered over its HTTP API.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { toBase64, type DeviceCredentials, type RegisterRequest } from '@tacit/api';
import { IdentityKeyPair, generateKyberPreKey, generateRegistrationId, generateSignedPreKey } from '@tacit/protocol';
import { nodeBackend } from '@tacit/protocol/node';

const MAIN = resolve(import.meta.dirname, '../../../../apps/server/src/main.ts');
const backend = nodeBackend();

export class ServerProcess {
  readonly url: string;
  readonly dataDir: string;
  readonly #proc: ChildProcess;
  readonly #root: string;
  #users = 0;

  private constructor(url: string, dataDir: string, root: string, proc: ChildProcess) {
    this.url = url;
    this.dataDir = dataDir;
    this.#root = root;
    this.#proc = proc;
  }

  /** Starts a server (open registration) with extra environment, e.g. TACIT_MAX_ATTACHMENT_BYTES. */
  static async start(env: Record<string, string> = {}, nodeArgs: string[] = []): Promise<ServerProcess> {
    const root = await mkdtemp(join(tmpdir(), 'tacit-sdk-server-'));
    const dataDir = join(root, 'data');
    const proc = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', MAIN], {
      env: { ...process.env, PORT: '0', HOST: '127.0.0.1', TACIT_REGISTRATION: 'open', TACIT_LOG_LEVEL: 'silent', TACIT_DATA_DIR: dataDir, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const port = await new Promise<number>((res, rej) => {
      const t = setTimeout(() => rej(new Error('server did not start')), 60_000);
      proc.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /on http:\/\/[^:]+:(\d+)/.exec(out);
        if (m) {
          clearTimeout(t);
          res(Number(m[1]));
        }
      });
      proc.once('exit', (code) => {
        clearTimeout(t);
        rej(new Error(`server exited (${code}): ${err.trim()}`));
      });
    });
    return new ServerProcess(`http://127.0.0.1:${port}`, dataDir, root, proc);
  }

  /** The server's process id (for memory readings). */
  get pid(): number {
    return this.#proc.pid!;
  }

  /** Registers a fresh account (device 1) and returns its credentials. */
  async register(): Promise<DeviceCredentials> {
    return registerBare(this.url, `u${++this.#users}_${process.pid}`);
  }

  async stop(): Promise<void> {
    if (this.#proc.exitCode === null && this.#proc.signalCode === null) {
      const exited = once(this.#proc, 'exit');
      this.#proc.kill('SIGTERM');
      await exited;
    }
    await rm(this.#root, { recursive: true, force: true });
  }
}

/**
 * Registers an account (device 1) on the server at `url` with a signed pre-key and a last-resort
 * key and no one-time keys, over the HTTP API: a peer that only fetches bundles or sends.
 */
export async function registerBare(url: string, username: string): Promise<DeviceCredentials> {
  const identity = IdentityKeyPair.generate(backend);
  const spk = generateSignedPreKey(backend, identity, 1, 0);
  const kyber = generateKyberPreKey(backend, identity, 1, 0);
  const secret = toBase64(backend.randomBytes(32));
  const req: RegisterRequest = {
    username,
    deviceId: 1,
    registrationId: generateRegistrationId(backend),
    identityKey: toBase64(identity.publicKey.serialize()),
    signedPreKey: { keyId: 1, publicKey: toBase64(spk.keyPair.publicKey.serialize()), signature: toBase64(spk.signature) },
    kyberLastResortKey: { keyId: 1, publicKey: toBase64(kyber.keyPair.publicKey.serialize()), signature: toBase64(kyber.signature) },
    preKeys: [],
    kyberPreKeys: [],
    secret,
  };
  const res = await fetch(`${url}/v1/accounts`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(req) });
  if (res.status !== 201) throw new Error(`register failed: ${res.status}`);
  return { username, deviceId: 1, secret };
}
