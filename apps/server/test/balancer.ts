/**
 * A real load balancer in front of server processes: Debian's HAProxy (`.ci/run` installs it),
 * configured as docs/OPERATIONS.md recommends: health checks on /healthz, a failed connection
 * retried on the other node, WebSocket tunnels.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closedPort } from './processes.js';

/** Where Debian puts HAProxy, then $PATH. */
export function findHaproxy(): string | undefined {
  for (const p of ['/usr/sbin/haproxy', '/usr/local/sbin/haproxy']) if (existsSync(p)) return p;
  const r = spawnSync('sh', ['-c', 'command -v haproxy'], { encoding: 'utf8' });
  const found = r.stdout.trim();
  return r.status === 0 && found !== '' ? found : undefined;
}

/** HAProxy's configuration for tacit nodes (the one docs/OPERATIONS.md shows). */
export function haproxyConfig(listen: number, nodes: readonly number[], checkIntervalMs = 200): string {
  return `global
  maxconn 4096

defaults
  mode http
  timeout connect 1s
  timeout client 60s
  timeout server 60s
  # An upgraded WebSocket is a tunnel: idle up to this long (clients ping every 25 s).
  timeout tunnel 1h
  timeout http-request 10s
  # A refused connection (a node that died or stopped listening) is retried on another node.
  retries 3
  option redispatch 1
  option forwardfor

frontend tacit
  bind 127.0.0.1:${listen}
  default_backend nodes

backend nodes
  balance roundrobin
  option httpchk GET /healthz
  http-check expect status 200
  default-server inter ${checkIntervalMs}ms fall 2 rise 2
${nodes.map((p, i) => `  server n${i + 1} 127.0.0.1:${p} check`).join('\n')}
`;
}

export interface Balancer {
  port: number;
  stop(): Promise<void>;
}

/**
 * Starts HAProxy in the foreground in front of `nodes` (ports) and waits until it listens.
 * `checkIntervalMs`: how often (and how long) it checks each node's /healthz.
 */
export async function startBalancer(binary: string, nodes: readonly number[], checkIntervalMs?: number): Promise<Balancer> {
  const dir = mkdtempSync(join(tmpdir(), 'tacit-haproxy-'));
  const port = await closedPort();
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(cfg, haproxyConfig(port, nodes, checkIntervalMs));
  const check = spawnSync(binary, ['-c', '-f', cfg], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`haproxy rejected its configuration: ${check.stderr || check.stdout}`);
  const proc: ChildProcess = spawn(binary, ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  for (let i = 0; ; i++) {
    if (proc.exitCode !== null) throw new Error(`haproxy exited: ${err}`);
    if (await accepts(port)) break;
    if (i > 200) throw new Error('haproxy did not listen');
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = once(proc, 'exit');
        proc.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
