/**
 * A minimal WebDriver BiDi driver for Debian's firefox-esr (playwright-core drives only its own
 * patched Firefox builds, which we never download). Enough to load the app, run script in the
 * page, type with the real keyboard, hand files to a file input, collect downloads and wait for
 * conditions; every wait is bounded. The profile forces every non-loopback connection into a dead
 * proxy, so the browser stays on loopback, and saves every download into `downloads` unasked.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { STEP_TIMEOUT_MS, freePort, tempDir } from './harness.ts';

export const FIREFOX = process.env['TACIT_FIREFOX'] ?? '/usr/bin/firefox-esr';

const PREFS: Record<string, string | number | boolean> = {
  // Loopback only: everything else goes to a proxy on the discard port (loopback bypasses proxies).
  'network.proxy.type': 1,
  'network.proxy.http': '127.0.0.1',
  'network.proxy.http_port': 9,
  'network.proxy.ssl': '127.0.0.1',
  'network.proxy.ssl_port': 9,
  'network.proxy.allow_hijacking_localhost': false,
  'network.dns.disableIPv6': true,
  'browser.shell.checkDefaultBrowser': false,
  'browser.startup.homepage_override.mstone': 'ignore',
  'datareporting.policy.dataSubmissionEnabled': false,
  'toolkit.telemetry.enabled': false,
  'app.update.disabledForTesting': true,
  'browser.safebrowsing.malware.enabled': false,
  'browser.safebrowsing.phishing.enabled': false,
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
  'extensions.update.enabled': false,
  'services.settings.server': 'http://127.0.0.1:9/',
  // Downloads go straight to the directory set per profile (browser.download.dir), never a dialog.
  'browser.download.folderList': 2,
  'browser.download.useDownloadDir': true,
  'browser.download.always_ask_before_handling_new_types': false,
  'browser.download.start_downloads_in_tmp_dir': false,
  'browser.download.alwaysOpenPanel': false,
  'browser.download.panel.shown': true,
};

/** WebDriver's code points for the keys the tests press (its table of keys: \uE006 is the main Enter, \uE007 the keypad's). */
const KEYS = { Enter: '\uE006', Tab: '\uE004', Escape: '\uE00C', Backspace: '\uE003' } as const;
export type Key = keyof typeof KEYS;

/** The line Firefox logs (as an error, without a stack) when a connection is refused. */
const REFUSED = /^Firefox can’t establish a connection to the server at \S+\.$/;

/** A page expression: the message of the open conversation, in direction `dir`, whose text is `text` (or undefined). */
export const message = (dir: 'in' | 'out', text: string): string =>
  `[...document.querySelectorAll('li.msg.${dir}')].find((e) => e.querySelector('.msg-text')?.textContent === ${JSON.stringify(text)})`;

interface Pending {
  resolve: (v: Record<string, unknown>) => void;
  reject: (e: Error) => void;
}

export class FirefoxPage {
  readonly dir = tempDir('firefox');
  /** Where the profile saves downloads (created at launch). */
  readonly downloads = join(this.dir, 'downloads');
  #child: ChildProcess | undefined;
  #ws: WebSocket | undefined;
  #next = 1;
  #pending = new Map<number, Pending>();
  #context = '';
  /** Uncaught page errors (class and first line only). */
  readonly pageErrors: string[] = [];
  /** Connections Firefox reported refused (its own console line, not the page's error), in order. */
  readonly refusedConnections: string[] = [];

  async launch(): Promise<void> {
    mkdirSync(this.downloads, { recursive: true });
    const prefs = { ...PREFS, 'browser.download.dir': this.downloads };
    writeFileSync(join(this.dir, 'user.js'), Object.entries(prefs).map(([k, v]) => `user_pref(${JSON.stringify(k)}, ${JSON.stringify(v)});`).join('\n') + '\n');
    const port = await freePort();
    const child = spawn(FIREFOX, ['--headless', '--no-remote', '--profile', this.dir, `--remote-debugging-port=${port}`, 'about:blank'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, MOZ_CRASHREPORTER_DISABLE: '1' },
    });
    this.#child = child;
    await new Promise<void>((res, rej) => {
      let buf = '';
      const t = setTimeout(() => rej(new Error('firefox did not start WebDriver BiDi in time')), STEP_TIMEOUT_MS);
      const on = (d: Buffer) => {
        buf += d.toString('utf8');
        if (/WebDriver BiDi listening on ws:\/\//.test(buf)) {
          clearTimeout(t);
          child.stderr?.off('data', on);
          child.stdout?.off('data', on);
          res();
        }
      };
      child.stderr?.on('data', on);
      child.stdout?.on('data', on);
      child.once('exit', (c) => {
        clearTimeout(t);
        rej(new Error(`firefox exited (${c})`));
      });
    });
    const ws = new WebSocket(`ws://127.0.0.1:${port}/session`);
    this.#ws = ws;
    await new Promise<void>((res, rej) => {
      ws.once('open', () => res());
      ws.once('error', () => rej(new Error('BiDi socket failed')));
    });
    ws.on('message', (data) => {
      let msg: { id?: number; type?: string; result?: Record<string, unknown>; error?: string; message?: string };
      try {
        msg = JSON.parse(String(data)) as typeof msg;
      } catch {
        return;
      }
      if (msg.id === undefined) {
        const ev = msg as { method?: string; params?: { type?: string; level?: string; text?: string; stackTrace?: unknown } };
        if (ev.method === 'log.entryAdded' && ev.params?.type === 'javascript' && ev.params.level === 'error') {
          const line = (ev.params.text ?? '').split('\n')[0]!.slice(0, 200);
          // Firefox reports a refused connection (a WebSocket to a server that is down) as an
          // error entry of its own, with no stack: the page's handlers see it and reconnect.
          if (ev.params.stackTrace === undefined && REFUSED.test(line)) this.refusedConnections.push(line);
          else this.pageErrors.push(line);
        }
        return;
      }
      const p = this.#pending.get(msg.id);
      if (!p) return;
      this.#pending.delete(msg.id);
      if (msg.type === 'error') p.reject(new Error(`BiDi ${msg.error ?? 'error'}: ${(msg.message ?? '').slice(0, 200)}`));
      else p.resolve(msg.result ?? {});
    });
    await this.#send('session.new', { capabilities: {} });
    const tree = (await this.#send('browsingContext.getTree', {})) as { contexts: { context: string }[] };
    const ctx = tree.contexts[0]?.context;
    if (!ctx) throw new Error('no browsing context');
    this.#context = ctx;
    await this.#send('session.subscribe', { events: ['log.entryAdded'] });
    await this.#send('browsingContext.setViewport', { context: ctx, viewport: { width: 1100, height: 700 } });
  }

  async screenshot(path: string): Promise<void> {
    const r = (await this.#send('browsingContext.captureScreenshot', { context: this.#context })) as { data: string };
    writeFileSync(path, Buffer.from(r.data, 'base64'));
  }

  #send(method: string, params: Record<string, unknown>): Promise<Record<string, unknown>> {
    const id = this.#next++;
    const ws = this.#ws;
    if (!ws) return Promise.reject(new Error('not connected'));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`BiDi ${method} timed out`));
      }, STEP_TIMEOUT_MS);
      this.#pending.set(id, {
        resolve: (v) => {
          clearTimeout(t);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
      ws.send(JSON.stringify({ id, method, params }));
    });
  }

  async goto(url: string): Promise<void> {
    await this.#send('browsingContext.navigate', { context: this.#context, url, wait: 'complete' });
  }

  async reload(): Promise<void> {
    await this.#send('browsingContext.reload', { context: this.#context, wait: 'complete' });
  }

  /** Evaluates an expression (awaiting a promise) and returns its JSON-serialized value. */
  async eval<T>(expression: string): Promise<T> {
    const r = (await this.#send('script.evaluate', {
      expression: `(async () => JSON.stringify(await (${expression})))()`,
      target: { context: this.#context },
      awaitPromise: true,
      resultOwnership: 'none',
    })) as { type: string; result?: { type: string; value?: string }; exceptionDetails?: { text?: string } };
    if (r.type !== 'success') throw new Error(`page script failed: ${(r.exceptionDetails?.text ?? '').slice(0, 200)}`);
    const v = r.result?.value;
    return (v === undefined ? undefined : JSON.parse(v)) as T;
  }

  /** Polls `expression` (its value, or what it resolves to) until it is truthy; bounded. */
  async waitFor(expression: string, what: string, timeoutMs = STEP_TIMEOUT_MS): Promise<void> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      if (await this.eval<boolean>(`(async () => Boolean(await (${expression})))()`).catch(() => false)) return;
      if (Date.now() > end) {
        // What the page shows and what it raised, to tell a stuck screen from a failed one.
        const shown = await this.eval<string>(`document.body?.innerText.slice(0, 300) ?? ''`).catch(() => '(unreadable)');
        throw new Error(`firefox: timed out waiting for ${what}; the page shows ${JSON.stringify(shown)}; page errors: ${JSON.stringify(this.pageErrors)}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Sets an input's value the way typing does (Preact listens to `input`). */
  async fill(selector: string, value: string): Promise<void> {
    await this.eval(`(() => {
      const el = document.querySelector(${JSON.stringify(selector)});
      if (!el) throw new Error('no element');
      el.focus();
      el.value = ${JSON.stringify(value)};
      el.dispatchEvent(new Event('input', { bubbles: true }));
      return true;
    })()`);
  }

  async press(selector: string, key: string): Promise<void> {
    await this.eval(`(() => {
      const el = document.querySelector(${JSON.stringify(selector)});
      if (!el) throw new Error('no element');
      el.dispatchEvent(new KeyboardEvent('keydown', { key: ${JSON.stringify(key)}, bubbles: true, cancelable: true }));
      return true;
    })()`);
  }

  async click(selector: string): Promise<void> {
    await this.eval(`(() => { const el = document.querySelector(${JSON.stringify(selector)}); if (!el) throw new Error('no element'); el.click(); return true; })()`);
  }

  /** Sets the hash route (#/, #/c/bob…) as following a link in the page does. */
  async route(hash: string): Promise<void> {
    await this.eval(`(location.hash = ${JSON.stringify(hash)}, true)`);
  }

  /** Opens the conversation with `contact` and waits until it shows. */
  async openChat(contact: string): Promise<void> {
    await this.route(`#/c/${contact}`);
    await this.waitFor(`document.querySelector('#conv-title')?.textContent === ${JSON.stringify(contact)}`, `the conversation with ${contact}`);
  }

  /** The element's text, or undefined when there is no such element. */
  async text(selector: string): Promise<string | undefined> {
    return this.eval<string | undefined>(`document.querySelector(${JSON.stringify(selector)})?.textContent ?? undefined`);
  }

  /**
   * Types `text` and then presses `keys` with the real (trusted) keyboard, into whatever has the
   * focus: what a person does, so the page's focus handling is part of what is tested. The page's
   * own key handlers see every key, but here (headless, over BiDi) Enter or Space on a focused
   * button does not activate it, even on a bare data: page and with focusmanager.testmode: click
   * buttons instead.
   */
  async type(text: string, ...keys: Key[]): Promise<void> {
    const values = [...[...text], ...keys.map((k) => KEYS[k])];
    await this.#send('input.performActions', {
      context: this.#context,
      actions: [{ type: 'key', id: 'keyboard', actions: values.flatMap((value) => [{ type: 'keyDown', value }, { type: 'keyUp', value }]) }],
    });
  }

  /** Hands files (paths on this machine) to a file input, as picking them in its dialog does (input and change fire). */
  async setFiles(selector: string, paths: string[]): Promise<void> {
    const r = (await this.#send('script.evaluate', {
      expression: `document.querySelector(${JSON.stringify(selector)})`,
      target: { context: this.#context },
      awaitPromise: false,
      resultOwnership: 'none',
    })) as { type: string; result?: { type: string; sharedId?: string } };
    const sharedId = r.result?.sharedId;
    if (r.type !== 'success' || r.result?.type !== 'node' || sharedId === undefined) throw new Error(`no element ${selector}`);
    await this.#send('input.setFiles', { context: this.#context, element: { sharedId }, files: paths });
  }

  /** Waits (bounded) until the browser has saved a download named `name` completely, and returns its bytes. */
  async download(name: string, timeoutMs = STEP_TIMEOUT_MS): Promise<Buffer> {
    const path = join(this.downloads, name);
    const end = Date.now() + timeoutMs;
    let lastSize = -1;
    for (;;) {
      // Firefox writes `<name>.part` beside `<name>` and moves it there when done: done is no
      // `.part` left and `<name>` the same size at two looks in a row.
      const parts = readdirSync(this.downloads).filter((f) => f.endsWith('.part'));
      const size = parts.length === 0 && existsSync(path) ? statSync(path).size : -1;
      if (size >= 0 && size === lastSize) return readFileSync(path);
      lastSize = size;
      if (Date.now() > end) throw new Error(`firefox: no complete download ${name} within ${timeoutMs} ms (the directory has ${JSON.stringify(readdirSync(this.downloads))})`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async close(): Promise<void> {
    try {
      await this.#send('browser.close', {}).catch(() => undefined);
    } finally {
      this.#ws?.close();
      const c = this.#child;
      if (c && c.exitCode === null) {
        const exited = new Promise<void>((r) => c.once('exit', () => r()));
        const t = setTimeout(() => c.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(t);
      }
    }
  }

  destroy(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
