// Test harness: a real tacit server as a child process (loopback, temp data dir) and real
// `tacit` CLI processes. Every wait is bounded and generous; nothing asserts on timing.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readdirSync, readFileSync, type WriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import assert from 'node:assert/strict';
import { ensureBuilt } from '../scripts/build.mjs';

export const ROOT = resolve(import.meta.dirname, '..', '..', '..');
export const BIN = join(ROOT, 'apps', 'cli', 'bin', 'tacit.js');
const SERVER_MAIN = join(ROOT, 'apps', 'server', 'src', 'main.ts');
// Build the command once here rather than in every process a test starts at the same time.
await ensureBuilt();

/** Passphrase used by every test home. */
export const PASSPHRASE = 'test passphrase 1';
/** Generous bound for one CLI invocation on a loaded 2-core machine. */
export const CLI_TIMEOUT_MS = 180_000;
/** Bound for waiting on an event from a long-running process. */
export const EVENT_TIMEOUT_MS = 120_000;

export async function tempDir(prefix: string): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `tacit-${prefix}-`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

export class ServerProcess {
  readonly dataDir: string;
  readonly logPath: string;
  port: number;
  url = '';
  /** Everything the server printed on stdout and stderr so far. */
  output = '';
  #proc: ChildProcess | undefined;
  #log: WriteStream;
  #env: Record<string, string>;

  private constructor(dataDir: string, logPath: string, port: number, env: Record<string, string>) {
    this.dataDir = dataDir;
    this.logPath = logPath;
    this.port = port;
    this.#env = env;
    this.#log = createWriteStream(logPath, { flags: 'a' });
  }

  /** Starts a server on a free loopback port (or `port`), with open registration. */
  static async start(dataDir: string, env: Record<string, string> = {}): Promise<ServerProcess> {
    await mkdir(dataDir, { recursive: true });
    const s = new ServerProcess(dataDir, join(dataDir, 'server.log'), 0, env);
    await s.#spawn();
    return s;
  }

  async #spawn(): Promise<void> {
    const proc = spawn(process.execPath, ['--import', 'tsx', SERVER_MAIN], {
      cwd: ROOT,
      env: {
        ...process.env,
        PORT: String(this.port),
        HOST: '127.0.0.1',
        TACIT_DATA_DIR: this.dataDir,
        INIT_CWD: ROOT,
        TACIT_REGISTRATION: 'open',
        TACIT_LOG_LEVEL: 'info',
        // Tests register more accounts from one address than a real one would.
        TACIT_REGISTRATION_BURST: '1000',
        ...this.#env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#proc = proc;
    let out = '';
    const ready = new Promise<void>((resolvePromise, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not start; log: ${out.slice(-2000)}`)), EVENT_TIMEOUT_MS);
      proc.stdout!.on('data', (d: Buffer) => {
        this.#log.write(d);
        out += d.toString('utf8');
        this.output += d.toString('utf8');
        const m = /tacit server on (http:\/\/127\.0\.0\.1:(\d+))/.exec(out);
        if (m) {
          clearTimeout(timer);
          this.url = m[1]!;
          this.port = Number(m[2]);
          resolvePromise();
        }
      });
      proc.stderr!.on('data', (d: Buffer) => {
        this.#log.write(d);
        out += d.toString('utf8');
        this.output += d.toString('utf8');
      });
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`server exited with ${code}; log: ${out.slice(-2000)}`));
      });
    });
    await ready;
  }

  /** Waits (bounded) until the server's output matches `re`; returns the match. */
  async waitForOutput(re: RegExp): Promise<RegExpExecArray> {
    for (let i = 0; i < EVENT_TIMEOUT_MS / 50; i++) {
      const m = re.exec(this.output);
      if (m) return m;
      await new Promise((r) => setTimeout(r, 50));
    }
    return assert.fail(`server output never matched ${re}: ${this.output.slice(-2000)}`);
  }

  /**
   * Runs a one-shot operator command of the server (`invite`, `reset-account <user>`) as its own
   * process on this server's data directory, alongside the running server.
   */
  command(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolvePromise, reject) => {
      const proc = spawn(process.execPath, ['--import', 'tsx', SERVER_MAIN, ...args], {
        cwd: ROOT,
        env: { ...process.env, TACIT_DATA_DIR: this.dataDir, INIT_CWD: ROOT, TACIT_LOG_LEVEL: 'info', ...this.#env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      proc.stdout!.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
      proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`server ${args.join(' ')} did not finish; stderr: ${stderr}`));
      }, CLI_TIMEOUT_MS);
      proc.on('exit', (code) => {
        clearTimeout(timer);
        resolvePromise({ code: code ?? -1, stdout, stderr });
      });
    });
  }

  /** SIGKILL: no shutdown, no flush; whatever the server had not made durable is lost. */
  async kill9(): Promise<void> {
    await this.#signal('SIGKILL');
  }

  async stop(): Promise<void> {
    await this.#signal('SIGTERM');
    await new Promise<void>((r) => this.#log.end(() => r()));
  }

  /** Starts again on the same port and data directory. */
  async restart(): Promise<void> {
    if (this.#log.closed || this.#log.writableEnded) this.#log = createWriteStream(this.logPath, { flags: 'a' });
    await this.#spawn();
  }

  async #signal(sig: NodeJS.Signals): Promise<void> {
    const p = this.#proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill(sig);
    await exited;
    this.#proc = undefined;
  }
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON lines (for --json invocations). */
  events: Record<string, unknown>[];
}

export function cliEnv(extra: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, TACIT_PASSPHRASE: PASSPHRASE, TACIT_SCRYPT_N: '1024', ...extra };
  delete env['TACIT_HOME'];
  for (const [k, v] of Object.entries(extra)) if (v === undefined) delete env[k];
  return env;
}

/** How long a stuck process gets to write its diagnostic report before it is killed. */
const REPORT_WAIT_MS = 3_000;
let reports = 0;

/** The JavaScript stack and open handles from the Node report a stuck process wrote, for the failure message. */
async function stuckReport(dir: string): Promise<string> {
  try {
    const files = await readdir(dir);
    const r = JSON.parse(await readFile(join(dir, files[0]!), 'utf8')) as {
      javascriptStack?: { message?: string; stack?: string[] };
      libuv?: { type: string; is_active: boolean; details?: string }[];
    };
    const stack = (r.javascriptStack?.stack ?? []).slice(0, 20).join(' | ');
    const handles = (r.libuv ?? []).filter((h) => h.is_active).map((h) => h.type + (h.details ? `(${h.details})` : '')).join(', ');
    return `JS stack: ${r.javascriptStack?.message ?? ''} ${stack}; active handles: ${handles}`;
  } catch (e) {
    return `no diagnostic report (${e instanceof Error ? e.message : String(e)})`;
  } finally {
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** A server in a temporary directory and a registered home per name: a test file's usual start. */
export async function serverWithUsers(
  prefix: string,
  names: readonly string[],
): Promise<{ dir: string; server: ServerProcess; homes: Record<string, string>; remove(): Promise<void> }> {
  const tmp = await tempDir(prefix);
  const server = await ServerProcess.start(join(tmp.path, 'server'));
  const homes: Record<string, string> = {};
  for (const name of names) {
    homes[name] = join(tmp.path, name);
    await ok(homes[name]!, ['register', name, '--server', server.url]);
  }
  return {
    dir: tmp.path,
    server,
    homes,
    async remove() {
      await server.stop();
      await tmp.remove();
    },
  };
}

/** The process's and its threads' scheduler states and wait channels from /proc (Linux), for a failure message. */
function procState(pid: number): string {
  const read = (f: string) => {
    try {
      return readFileSync(f, 'utf8').trim();
    } catch {
      return '?';
    }
  };
  const state = /^State:\s*(.*)$/m.exec(read(`/proc/${pid}/status`))?.[1] ?? '?';
  let threads = '';
  try {
    threads = readdirSync(`/proc/${pid}/task`)
      .map((t) => `${read(`/proc/${pid}/task/${t}/comm`)}:${read(`/proc/${pid}/task/${t}/stat`).split(') ')[1]?.split(' ')[0] ?? '?'}:${read(`/proc/${pid}/task/${t}/wchan`)}`)
      .join(' ');
  } catch {
    threads = '?';
  }
  return `state ${state}; threads ${threads}; kernel stack ${read(`/proc/${pid}/stack`).split('\n').slice(0, 6).join(' < ')}`;
}

/** Runs `tacit --home <home> ...args` to completion. */
export function tacit(home: string, args: string[], opts: { input?: string; env?: Record<string, string | undefined> } = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    // A process that does not finish is asked for a Node diagnostic report (SIGUSR2) before it is
    // killed, so the failure says where it was stuck.
    const reportDir = join(tmpdir(), `tacit-report-${process.pid}-${++reports}`);
    mkdirSync(reportDir, { recursive: true });
    const proc = spawn(process.execPath, ['--report-on-signal', '--report-signal=SIGUSR2', `--report-directory=${reportDir}`, BIN, '--home', home, ...args], {
      cwd: ROOT,
      env: cliEnv(opts.env ?? {}),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    // Decoded as a stream: a multi-byte character split across two chunks stays whole.
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stdout.on('data', (d: string) => (stdout += d));
    proc.stderr.on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      // What the kernel says of it first (running, sleeping on what, stopped), then Node's report.
      const kernel = procState(proc.pid!);
      proc.kill('SIGUSR2');
      setTimeout(() => {
        proc.kill('SIGKILL');
        void stuckReport(reportDir).then((where) =>
          reject(new Error(`tacit ${args.join(' ')} did not finish; stderr: ${stderr}; stdout: ${stdout.slice(-2000)}; kernel: ${kernel}; ${where}`)),
        );
      }, REPORT_WAIT_MS);
    }, CLI_TIMEOUT_MS);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      void rm(reportDir, { recursive: true, force: true }).catch(() => undefined);
      const events = stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      resolvePromise({ code: code ?? -1, stdout, stderr, events });
    });
    proc.stdin.end(opts.input ?? '');
  });
}

/** Like `tacit` but asserts exit 0 and returns the JSON events. */
export async function ok(home: string, args: string[], opts: { input?: string } = {}): Promise<Record<string, unknown>[]> {
  const r = await tacit(home, ['--json', ...args], opts);
  assert.equal(r.code, 0, `tacit ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.events;
}

/** Messages printed by `recv --json`, as "from: text". */
export async function recv(home: string, extra: string[] = []): Promise<string[]> {
  const events = await ok(home, ['recv', ...extra]);
  return events.filter((e) => e['event'] === 'message').map((e) => `${String(e['from'])}: ${String(e['text'])}`);
}

/** `tacit --json chat <partner>` kept running; lines in, events out. */
export class ChatProcess {
  readonly events: Record<string, unknown>[] = [];
  stderr = '';
  #proc: ChildProcess;
  #buf = '';
  #exit: Promise<number>;

  /** `command`: run another long-lived command instead of `chat` (e.g. ['link', '--server', url]). */
  constructor(home: string, partner: string, extra: string[] = [], command?: string[]) {
    this.#proc = spawn(process.execPath, [BIN, '--home', home, '--json', ...(command ?? ['chat', partner, ...extra])], { cwd: ROOT, env: cliEnv({}), stdio: ['pipe', 'pipe', 'pipe'] });
    this.#proc.stdout!.setEncoding('utf8');
    this.#proc.stderr!.setEncoding('utf8');
    this.#proc.stdout!.on('data', (d: string) => {
      this.#buf += d;
      let i;
      while ((i = this.#buf.indexOf('\n')) >= 0) {
        const line = this.#buf.slice(0, i);
        this.#buf = this.#buf.slice(i + 1);
        if (line.startsWith('{')) this.events.push(JSON.parse(line) as Record<string, unknown>);
      }
    });
    this.#proc.stderr!.on('data', (d: string) => (this.stderr += d));
    this.#exit = new Promise((r) => this.#proc.once('exit', (code) => r(code ?? -1)));
  }

  say(text: string): void {
    this.#proc.stdin!.write(text + '\n');
  }

  received(): string[] {
    return this.events.filter((e) => e['event'] === 'message').map((e) => String(e['text']));
  }

  count(event: string): number {
    return this.events.filter((e) => e['event'] === event).length;
  }

  async waitFor(cond: () => boolean, what: string, timeoutMs = EVENT_TIMEOUT_MS): Promise<void> {
    const steps = Math.ceil(timeoutMs / 50);
    for (let i = 0; i < steps; i++) {
      if (cond()) return;
      if (this.#proc.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.fail(`chat: timed out waiting for ${what}; stderr: ${this.stderr.slice(-1000)}; last events: ${JSON.stringify(this.events.slice(-5))}`);
  }

  /** Ends input and waits for the process to finish its sends and exit. */
  async end(): Promise<number> {
    this.#proc.stdin!.end();
    const timer = setTimeout(() => this.#proc.kill('SIGKILL'), CLI_TIMEOUT_MS);
    const code = await this.#exit;
    clearTimeout(timer);
    return code;
  }

  kill(): void {
    this.#proc.kill('SIGKILL');
  }
}

/** Links a new home at `home` to the account of `existing` (`tacit link`, then `tacit devices add` with its code). */
export async function linkHome(existing: string, home: string, serverUrl: string, name: string): Promise<void> {
  const link = new ChatProcess(home, '', [], ['link', '--server', serverUrl, '--name', name]);
  await link.waitFor(() => link.count('link-code') === 1, 'the link code');
  await ok(existing, ['devices', 'add', String(link.events.find((e) => e['event'] === 'link-code')!['code'])]);
  await link.waitFor(() => link.count('linked') === 1, 'linked');
  assert.equal(await link.end(), 0);
}
