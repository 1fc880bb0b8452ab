/** Server processes (main.ts) for tests that need real processes: startup, kill -9, failover. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { WAIT_MS } from './helpers.js';

export const MAIN = resolve(import.meta.dirname, '../src/main.ts');

export interface ServerProcess {
  proc: ChildProcess;
  port: number;
  /** Everything written to stdout and stderr so far. */
  out: () => string;
  err: () => string;
}

/** Runs main.ts with `args` and `env` (on top of a quiet default) until it exits. */
export async function runMain(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawnMain(args, env);
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(proc, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

function spawnMain(args: string[], env: Record<string, string>, nodeArgs: string[] = []): ChildProcess {
  return spawn(process.execPath, [...nodeArgs, '--import', 'tsx', MAIN, ...args], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', TACIT_REGISTRATION: 'open', TACIT_LOG_LEVEL: 'silent', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Starts a server process and resolves once it listens (rejects if it exits first). `nodeArgs` go to node (e.g. --cpu-prof). */
export async function startServer(env: Record<string, string>, nodeArgs: string[] = []): Promise<ServerProcess> {
  const proc = spawnMain([], env, nodeArgs);
  let out = '';
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const port = await new Promise<number>((resolvePort, reject) => {
    const t = setTimeout(() => reject(new Error('server did not start')), WAIT_MS * 3);
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /on https?:\/\/[^:]+:(\d+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolvePort(Number(m[1]));
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`server exited early (${code}): ${err.trim()}`));
    });
  });
  return { proc, port, out: () => out, err: () => err };
}

/** Ends a server process with `signal` and waits for it to exit; returns its exit code. */
export async function stopServer(s: ServerProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (s.proc.exitCode !== null || s.proc.signalCode !== null) return s.proc.exitCode;
  const exited = once(s.proc, 'exit') as Promise<[number | null]>;
  s.proc.kill(signal);
  return (await exited)[0];
}

/** A TCP port on 127.0.0.1 that nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  srv.close();
  await once(srv, 'close');
  return port;
}
