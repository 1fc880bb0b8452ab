/**
 * The set-up the browser suites share, as node:test hooks (call it first inside `describe`): a
 * tacit server process on a fresh data dir, started once the built web client is there; CLI users
 * and other temporary directories of the suite; and an `after` hook that closes the browsers and
 * the server and removes every temporary directory before it checks what the pages did, so a
 * failing check leaves nothing behind.
 */
import { after, afterEach, before } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { Cli, ServerProcess, assertBuilt, freePort, tempDir, type Profile } from './harness.ts';

/** What the `after` hook checks of every page, in this order, once all is cleaned up. */
export interface PageChecks {
  /** Requests were recorded (the recorder the next check relies on worked). */
  requests?: boolean;
  /** The page talked to the tacit server only; `ignore` passes the URLs a suite expects (blob:). */
  foreign?: { message: string; ignore?: (url: string) => boolean };
}

export interface SuiteOptions {
  /** The browser profiles of the suite. */
  profiles?: readonly Profile[];
  registration?: 'invite' | 'open';
  /** Extra server environment (limit overrides). */
  env?: Record<string, string>;
  /** Beyond "no uncaught errors", which every suite checks. */
  checks?: PageChecks;
}

export interface Suite {
  /** The server, from the first `before` hook on. */
  readonly server: ServerProcess;
  /** A CLI user with a home of its own (`cli.home`), removed after the suite. */
  cli(name: string): Cli;
  /** A temporary directory, removed after the suite. */
  dir(name: string): string;
}

/** Whether a finished test failed (`passed` is in Node 20's test context, not yet in its types). */
function failed(t: object): boolean {
  return 'passed' in t && t.passed === false;
}

/** `prefix` names the suite's temporary directories (`<prefix>-server`, `<prefix>-<name>`). */
export function browserSuite(prefix: string, options: SuiteOptions = {}): Suite {
  const profiles = options.profiles ?? [];
  const dirs: string[] = [];
  const dir = (name: string): string => {
    const d = tempDir(`${prefix}-${name}`);
    dirs.push(d);
    return d;
  };
  const dataDir = dir('server');
  let server: ServerProcess | undefined;

  before(async () => {
    assertBuilt();
    server = new ServerProcess(dataDir, await freePort(), options.registration ?? 'open', options.env);
    await server.start();
  });

  // A test that fails may leave its browsers open; the next test that opens one of these profiles
  // would then fail too (Chromium's SingletonLock: the profile is in use). Close them at once: a
  // test that depended on an open page fails either way, one that opens its own now runs.
  afterEach(async (t) => {
    if (!failed(t)) return;
    for (const p of profiles) await p.close().catch(() => undefined);
  });

  after(async () => {
    for (const p of profiles) await p.close().catch(() => undefined);
    await server?.stop();
    const checks = options.checks ?? {};
    const seen = profiles.map((p) => ({
      requests: p.requests.length,
      foreign: server && checks.foreign ? p.foreignRequests(server.url).filter((u) => !(checks.foreign?.ignore?.(u) ?? false)) : [],
      errors: [...p.pageErrors],
    }));
    for (const p of profiles) p.destroy();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    if (checks.requests === undefined && checks.foreign === undefined) {
      assert.deepEqual(seen.flatMap((v) => v.errors), [], profiles.length > 1 ? 'no uncaught errors in the pages' : 'no uncaught errors in the page');
      return;
    }
    for (const v of seen) {
      if (checks.requests) assert.ok(v.requests > 0, 'requests were recorded');
      if (checks.foreign) assert.deepEqual(v.foreign, [], checks.foreign.message);
      assert.deepEqual(v.errors, [], 'no uncaught errors in the page');
    }
  });

  return {
    get server(): ServerProcess {
      if (server === undefined) throw new Error('the suite\u2019s server is not started');
      return server;
    },
    cli: (name) => new Cli(dir(name)),
    dir,
  };
}
