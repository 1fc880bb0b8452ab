/**
 * Browser-test harness: a real tacit server in a child process (loopback, temporary data dir,
 * serving the built web client), Debian's chromium driven by playwright-core (never a downloaded
 * browser), and the `tacit` CLI as a child process. Every wait is bounded.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { deflateSync } from 'node:zlib';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const ROOT = resolve(import.meta.dirname, '../../..');
export const DIST = join(ROOT, 'apps/web/dist');
export const SCREENSHOTS = join(ROOT, 'docs/screenshots');
export const CHROMIUM = process.env['TACIT_CHROMIUM'] ?? '/usr/bin/chromium';
/** Generous: two shared cores run a server, one or two browsers and the CLI at once. */
export const STEP_TIMEOUT_MS = 60_000;

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export const DESKTOP = { width: 1100, height: 700 };
export const PHONE = { width: 390, height: 760 };

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `tacit-web-${prefix}-`));
}

export function assertBuilt(): void {
  if (!existsSync(join(DIST, 'index.html'))) throw new Error('apps/web/dist is missing: run `npm run build:web` first');
}

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      s.close(() => res(port));
    });
  });
}

/** Collects a child's stdout and waits (bounded) for a pattern anywhere in what it printed so far. */
class Output {
  text = '';
  readonly #child: ChildProcess;
  constructor(child: ChildProcess) {
    this.#child = child;
    child.stdout?.on('data', (d: Buffer) => {
      this.text = (this.text + d.toString('utf8')).slice(-100_000);
    });
  }

  waitFor(re: RegExp, timeoutMs: number, what: string): Promise<RegExpExecArray> {
    const child = this.#child;
    return new Promise((res, rej) => {
      const check = (): boolean => {
        const m = re.exec(this.text);
        if (m) {
          cleanup();
          res(m);
        }
        return m !== null;
      };
      const timer = setTimeout(() => {
        cleanup();
        rej(new Error(`${what}: no matching output within ${timeoutMs} ms`));
      }, timeoutMs);
      const onData = () => void check();
      const onExit = (code: number | null) => {
        if (check()) return;
        cleanup();
        rej(new Error(`${what}: exited with ${code} before it was ready`));
      };
      const cleanup = () => {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.off('exit', onExit);
      };
      child.stdout?.on('data', onData);
      child.once('exit', onExit);
      check();
    });
  }
}

/** A tacit server process on a fixed loopback port (so it can be restarted under the same URL). */
export class ServerProcess {
  readonly dataDir: string;
  readonly port: number;
  readonly registration: 'invite' | 'open';
  #child: ChildProcess | undefined;
  /** The invite code printed on first start (invite mode). */
  firstInvite: string | undefined;
  stderr = '';
  /** Extra environment (limit overrides such as TACIT_BUNDLE_FETCH_BURST). */
  readonly #extraEnv: Record<string, string>;

  constructor(dataDir: string, port: number, registration: 'invite' | 'open', env: Record<string, string> = {}) {
    this.dataDir = dataDir;
    this.port = port;
    this.registration = registration;
    this.#extraEnv = env;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  #env(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PORT: String(this.port),
      HOST: '127.0.0.1',
      TACIT_DATA_DIR: this.dataDir,
      TACIT_STATIC_DIR: DIST,
      TACIT_REGISTRATION: this.registration,
      TACIT_LOG_LEVEL: 'warn',
      ...this.#extraEnv,
    };
    delete env['INIT_CWD'];
    return env;
  }

  async start(): Promise<void> {
    const child = spawn(process.execPath, ['--import', 'tsx', 'apps/server/src/main.ts'], { cwd: ROOT, env: this.#env(), stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    child.stderr?.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString('utf8')).slice(-20_000);
    });
    const out = new Output(child);
    try {
      await out.waitFor(/tacit server on http:\/\/\S+/, STEP_TIMEOUT_MS, 'tacit server');
    } catch (e) {
      await this.stop();
      throw e;
    }
    if (this.registration === 'invite' && this.firstInvite === undefined) {
      // Printed right after the listening line on a first start.
      const m = await out.waitFor(/invite code[^:]*: (\S+)\n/, 10_000, 'first invite').catch(() => undefined);
      this.firstInvite = m?.[1];
    }
  }

  /** Prints `n` new invite codes with the server's own command (same data dir). */
  async invites(n: number): Promise<string[]> {
    const r = await run(process.execPath, ['--import', 'tsx', 'apps/server/src/main.ts', 'invite', String(n)], { env: this.#env() });
    if (r.code !== 0) throw new Error(`invite command failed (${r.code})`);
    return r.stdout.split('\n').map((s) => s.trim()).filter((s) => s !== '');
  }

  async stop(): Promise<void> {
    const c = this.#child;
    this.#child = undefined;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise<void>((res) => c.once('exit', () => res()));
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  }
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { cwd: ROOT, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      rej(new Error(`${args.slice(0, 4).join(' ')}: timed out`));
    }, opts.timeoutMs ?? STEP_TIMEOUT_MS * 2);
    child.once('error', (e) => {
      clearTimeout(timer);
      rej(e);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      res({ code, stdout, stderr });
    });
  });
}

/** The passphrase of every CLI user of the browser tests (their stores can be opened with it). */
export const CLI_PASSPHRASE = 'browser-test passphrase';

/** The events a `tacit --json` command printed: one JSON object a line (`T`: the shape a test reads). */
export function events<T = Record<string, unknown>>(stdout: string): T[] {
  return stdout
    .split('\n')
    .filter((l) => l.trim().startsWith('{'))
    .map((l) => JSON.parse(l) as T);
}

/** The `tacit` CLI with its own home and passphrase. */
export class Cli {
  readonly home: string;
  constructor(home: string) {
    this.home = home;
  }

  #env(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env, TACIT_PASSPHRASE: CLI_PASSPHRASE };
    delete env['INIT_CWD'];
    return env;
  }

  #args(args: string[]): string[] {
    return [join(ROOT, 'apps/cli/bin/tacit.js'), '--home', this.home, '--json', ...args];
  }

  run(...args: string[]): Promise<RunResult> {
    return run(process.execPath, this.#args(args), { env: this.#env() });
  }

  /** Runs a command that must succeed (exit 0) and returns its events. */
  async ok(...args: string[]): Promise<Record<string, unknown>[]> {
    const r = await this.run(...args);
    assert.equal(r.code, 0, `tacit ${args.join(' ')}: ${r.stderr}`);
    return events(r.stdout);
  }

  /** A long-running `tacit --json <args>` (`chat`, `link`), read as it runs, until it exits or `end()`. */
  start(...args: string[]): ChatProcess {
    return new ChatProcess(spawn(process.execPath, this.#args(args), { env: this.#env(), stdio: ['pipe', 'pipe', 'pipe'] }));
  }

  /** `tacit --json chat <partner>`, running until `end()`. */
  chat(partner: string): ChatProcess {
    return this.start('chat', partner);
  }
}

/** A running `tacit --json chat`: lines go to its stdin; its events are read as they come. */
export class ChatProcess {
  readonly #child: ChildProcessWithoutNullStreams;
  #out = '';

  constructor(child: ChildProcessWithoutNullStreams) {
    this.#child = child;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => (this.#out += d));
  }

  /** Everything it printed so far. */
  events(): Record<string, unknown>[] {
    return events(this.#out);
  }

  /** Writes `text` (a line, with its newline) to its stdin. */
  write(text: string): void {
    this.#child.stdin.write(text);
  }

  /** Waits (bounded) until it has printed an event that `pred` accepts. */
  async seen(pred: (e: Record<string, unknown>) => boolean, what: string): Promise<void> {
    for (let i = 0; i < 600; i++) {
      if (events(this.#out).some(pred)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.fail(`timed out waiting for ${what}: ${this.#out.slice(-500)}`);
  }

  /** Ends its input (it quits) and waits for it to exit. */
  async end(): Promise<void> {
    const child = this.#child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.stdin.end();
    await exited;
  }

  /** Waits (bounded) for it to exit by itself, and returns its exit code. */
  async exited(): Promise<number | null> {
    const child = this.#child;
    if (child.exitCode === null && child.signalCode === null) {
      await new Promise<void>((res, rej) => {
        const t = setTimeout(() => rej(new Error(`did not exit in time: ${this.#out.slice(-300)}`)), STEP_TIMEOUT_MS);
        child.once('exit', () => {
          clearTimeout(t);
          res();
        });
      });
    }
    return child.exitCode;
  }
}

/**
 * One browser profile (a persistent user-data dir): closing and reopening it keeps IndexedDB, as
 * closing and reopening a real browser does. Records every request, so tests can check that the
 * page talks to the tacit server only, and every uncaught page error.
 */
export class Profile {
  readonly dir: string;
  readonly viewport: { width: number; height: number };
  context: BrowserContext | undefined;
  page!: Page;
  readonly requests: string[] = [];
  readonly pageErrors: string[] = [];

  readonly #acceptDownloads: boolean;

  constructor(name: string, viewport: { width: number; height: number }, opts: { acceptDownloads?: boolean } = {}) {
    this.dir = tempDir(name);
    this.viewport = viewport;
    this.#acceptDownloads = opts.acceptDownloads ?? false;
  }

  async open(url: string): Promise<Page> {
    const ctx = await chromium.launchPersistentContext(this.dir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: this.viewport,
      serviceWorkers: 'block',
      acceptDownloads: this.#acceptDownloads,
      timeout: STEP_TIMEOUT_MS,
    });
    ctx.setDefaultTimeout(STEP_TIMEOUT_MS);
    this.context = ctx;
    ctx.on('request', (r) => this.requests.push(r.url()));
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    // Only the error class and first line: never a page's full error text (it could quote data).
    page.on('websocket', (w) => this.requests.push(w.url()));
    page.on('pageerror', (e) => this.pageErrors.push(`${e.name}: ${e.message.split('\n')[0]?.slice(0, 200)}`));
    this.page = page;
    await page.goto(url);
    return page;
  }

  async close(): Promise<void> {
    const c = this.context;
    this.context = undefined;
    await c?.close();
  }

  /** Requests that did not go to `origin` (http or ws) and are not data: URLs. */
  foreignRequests(origin: string): string[] {
    const ws = origin.replace(/^http/, 'ws');
    return this.requests.filter((u) => !u.startsWith(origin + '/') && !u.startsWith(ws + '/') && !u.startsWith('data:'));
  }

  destroy(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), animations: 'disabled', caret: 'hide' });
}

/** A real PNG (an RGB gradient), made here so the test needs no image files. */
export function png(width: number, height: number): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer) => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const rows: number[] = [];
  for (let y = 0; y < height; y++) {
    rows.push(0);
    for (let x = 0; x < width; x++) rows.push(Math.round((x / width) * 255), Math.round((y / height) * 255), 160);
  }
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.from(rows))), chunk('IEND', Buffer.alloc(0))]);
}
