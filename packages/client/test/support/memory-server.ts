/**
 * An in-memory stand-in for the tacit server, for SDK tests that need several clients and full
 * control over outages: accounts and key bundles over a fake `fetch`, and a relay over a fake
 * SocketFactory with per-device mailboxes (stored until acknowledged, delivered again on every
 * connection, queue-empty after the backlog). `stop()` takes it "down" (fetch fails, sockets
 * close and cannot connect); `start()` brings it back with everything it stored. The real server
 * is exercised by the CLI and browser tests.
 */
import type { AddKeysRequest, DeviceListResponse, Envelope, KyberPreKey, PreKey, RegisterRequest, UploadKeysRequest } from '@tacit/api';
import { validateClientFrame } from '@tacit/api';
import type { FetchLike, SocketFactory, SocketHandlers } from '../../src/index.ts';

interface Account {
  reg: RegisterRequest;
  preKeys: PreKey[];
  kyberPreKeys: KyberPreKey[];
}

interface Conn {
  address: string | undefined;
  handlers: SocketHandlers;
  closed: boolean;
  /** Its `auth` said `batched`: sends are answered by `sent-batch`. */
  batched?: boolean;
}

export class MemoryServer {
  up = true;
  readonly accounts = new Map<string, Account>();
  /** Per `username.deviceId`: stored envelopes, in order, until acknowledged. */
  readonly mailboxes = new Map<string, Envelope[]>();
  /** Every message the server stored, counted once per copy. */
  stored = 0;
  /** Every envelope stored from a `send-multi`, in order (for tests that replay or tamper). */
  readonly multi: { to: string; envelope: Envelope }[] = [];
  /** The `ttlMs` of every `send` and `send-multi` that had one, in order. */
  readonly ttls: number[] = [];
  /** Acks received, by server id. */
  readonly acks: string[] = [];
  /** Users known only by their device list (made by an earlier server, e.g. in fixtures). */
  readonly directory = new Map<string, DeviceListResponse>();
  readonly #conns = new Set<Conn>();
  #nextId = 1;

  stop(): void {
    this.up = false;
    for (const c of [...this.#conns]) this.#close(c, 1006);
  }

  start(): void {
    this.up = true;
  }

  #close(c: Conn, code: number): void {
    if (c.closed) return;
    c.closed = true;
    this.#conns.delete(c);
    queueMicrotask(() => c.handlers.close(code, ''));
  }

  /** Delivers `envelope` (a copy made by a test) to a device, as if the server had stored it. */
  inject(to: string, envelope: Envelope): void {
    const box = this.mailboxes.get(to) ?? [];
    box.push(envelope);
    this.mailboxes.set(to, box);
    for (const c of this.#conns) if (c.address === to) this.#push(c, { type: 'message', envelope });
  }

  newId(): string {
    return `s${this.#nextId++}`;
  }

  readonly fetch: FetchLike = async (url, init) => {
    if (!this.up) throw new Error('connection refused');
    const path = new URL(url).pathname;
    const reply = (status: number, body?: unknown) => ({ status, text: async () => (body === undefined ? '' : JSON.stringify(body)) });
    const parts = path.split('/').filter((p) => p !== '');
    if (init.method === 'POST' && path === '/v1/accounts') {
      const reg = JSON.parse(init.body ?? '') as RegisterRequest;
      if (this.accounts.has(reg.username)) return reply(409, { error: { code: 'USERNAME_TAKEN', message: 'taken' } });
      this.accounts.set(reg.username, { reg, preKeys: [...reg.preKeys], kyberPreKeys: [...reg.kyberPreKeys] });
      return reply(201, { username: reg.username, deviceId: 1 });
    }
    if (path === '/v1/keys/count') return reply(200, { preKeys: 100, kyberPreKeys: 100 });
    if (init.method === 'PUT' && path === '/v1/keys') {
      const who = this.#caller(init.headers);
      const a = who === undefined ? undefined : this.accounts.get(who);
      const u = JSON.parse(init.body ?? '') as UploadKeysRequest;
      if (a && u.preKeys) a.preKeys = [...u.preKeys];
      if (a && u.kyberPreKeys) a.kyberPreKeys = [...u.kyberPreKeys];
      if (a && u.signedPreKey) a.reg.signedPreKey = u.signedPreKey;
      if (a && u.kyberLastResortKey) a.reg.kyberLastResortKey = u.kyberLastResortKey;
      return reply(204);
    }
    if (init.method === 'POST' && path === '/v1/keys/one-time') {
      const who = this.#caller(init.headers);
      const a = who === undefined ? undefined : this.accounts.get(who);
      const u = JSON.parse(init.body ?? '') as AddKeysRequest;
      if (a && u.preKeys) a.preKeys.push(...u.preKeys);
      if (a && u.kyberPreKeys) a.kyberPreKeys.push(...u.kyberPreKeys);
      return reply(204);
    }
    if (init.method === 'GET' && parts[0] === 'v1' && parts[1] === 'devices' && parts.length === 3) {
      const known = this.directory.get(decodeURIComponent(parts[2]!));
      if (known) return reply(200, known);
      const a = this.accounts.get(decodeURIComponent(parts[2]!));
      if (!a) return reply(404, { error: { code: 'NOT_FOUND', message: 'no such user' } });
      const list: DeviceListResponse = { username: a.reg.username, identityKey: a.reg.identityKey, devices: [{ deviceId: 1, registrationId: a.reg.registrationId }] };
      return reply(200, list);
    }
    if (init.method === 'GET' && parts[0] === 'v1' && parts[1] === 'keys' && parts.length >= 3) {
      const a = this.accounts.get(decodeURIComponent(parts[2]!));
      if (!a) return reply(404, { error: { code: 'NOT_FOUND', message: 'no such user' } });
      const preKey = a.preKeys.shift();
      const kyber = a.kyberPreKeys.shift();
      return reply(200, {
        username: a.reg.username,
        identityKey: a.reg.identityKey,
        devices: [
          {
            deviceId: 1,
            registrationId: a.reg.registrationId,
            signedPreKey: a.reg.signedPreKey,
            kyberPreKey: kyber ?? a.reg.kyberLastResortKey,
            kyberPreKeyIsLastResort: kyber === undefined,
            ...(preKey ? { preKey } : {}),
          },
        ],
      });
    }
    return reply(404, { error: { code: 'NOT_FOUND', message: 'no' } });
  };

  #caller(headers: Record<string, string>): string | undefined {
    const h = headers['authorization'];
    if (h === undefined) return undefined;
    const m = /^Basic (.+)$/.exec(h);
    if (!m) return undefined;
    const user = atob(m[1]!).split(':')[0] ?? '';
    return user.split('.')[0];
  }

  readonly factory: SocketFactory = (_url, handlers) => {
    const conn: Conn = { address: undefined, handlers, closed: false };
    if (!this.up) {
      conn.closed = true;
      queueMicrotask(() => handlers.close(1006, 'connection refused'));
    } else {
      this.#conns.add(conn);
      queueMicrotask(() => !conn.closed && handlers.open());
    }
    return {
      send: (text) => {
        if (conn.closed) throw new Error('closed');
        this.#frame(conn, JSON.parse(text) as Record<string, unknown>);
      },
      close: () => {
        conn.closed = true;
        this.#conns.delete(conn);
      },
    };
  };

  #push(conn: Conn, frame: unknown): void {
    if (conn.closed) return;
    const text = JSON.stringify(frame);
    queueMicrotask(() => !conn.closed && conn.handlers.message(text));
  }

  #frame(conn: Conn, f: Record<string, unknown>): void {
    switch (f['type']) {
      case 'auth': {
        const username = String(f['username']);
        const deviceId = Number(f['deviceId']);
        conn.address = `${username}.${deviceId}`;
        conn.batched = f['batched'] === true;
        for (const other of [...this.#conns]) if (other !== conn && other.address === conn.address) this.#close(other, 4409);
        this.#push(conn, { type: 'ready', username, deviceId });
        for (const env of this.mailboxes.get(conn.address) ?? []) this.#push(conn, { type: 'message', envelope: env });
        this.#push(conn, { type: 'queue-empty' });
        return;
      }
      case 'send': {
        if (typeof f['ttlMs'] === 'number') this.ttls.push(f['ttlMs']);
        const to = f['to'] as { username: string; deviceId: number };
        const message = f['message'] as { type: 'prekey' | 'whisper'; body: string };
        if (!this.accounts.has(to.username) && !this.directory.has(to.username)) return this.#push(conn, { type: 'error', id: f['id'], code: 'NOT_FOUND', message: 'no such device' });
        const [username, device] = conn.address!.split('.');
        const env: Envelope = { id: `s${this.#nextId++}`, type: message.type, body: message.body, source: { username: username!, deviceId: Number(device) }, timestamp: Date.now() };
        const key = `${to.username}.${to.deviceId}`;
        const box = this.mailboxes.get(key) ?? [];
        box.push(env);
        this.mailboxes.set(key, box);
        this.stored++;
        const sent = { id: f['id'], serverId: env.id, timestamp: env.timestamp };
        this.#push(conn, conn.batched ? { type: 'sent-batch', sent: [sent] } : { type: 'sent', ...sent });
        for (const c of this.#conns) if (c.address === key) this.#push(c, { type: 'message', envelope: env });
        return;
      }
      case 'send-multi': {
        if (typeof f['ttlMs'] === 'number') this.ttls.push(f['ttlMs']);
        // Signal's device-list check, for accounts with one device (id 1): unknown accounts are
        // NOT_FOUND, a wrong registration id STALE_DEVICE; nothing is stored then.
        // Either spelling of the recipient list, as the real server's validator reads it.
        const checked = validateClientFrame(f);
        if (!checked.ok || checked.value.type !== 'send-multi') return this.#push(conn, { type: 'error', id: f['id'], code: 'INVALID_REQUEST', message: 'bad send-multi' });
        const recipients = checked.value.recipients;
        const shared = f['message'] as { type: string; body: string } | undefined;
        const unknown = recipients.filter((r) => !this.accounts.has(r.username));
        if (unknown.length > 0) return this.#push(conn, { type: 'error', id: f['id'], code: 'NOT_FOUND', message: 'no such user', accounts: unknown.map((r) => ({ username: r.username, missing: [], extra: r.devices.map((d) => d.deviceId), stale: [] })) });
        const stale = recipients.filter((r) => r.devices.some((d) => d.deviceId === 1 && d.registrationId !== this.accounts.get(r.username)!.reg.registrationId));
        if (stale.length > 0) return this.#push(conn, { type: 'error', id: f['id'], code: 'STALE_DEVICE', message: 'stale', accounts: stale.map((r) => ({ username: r.username, missing: [], extra: [], stale: [1] })) });
        const [username, device] = conn.address!.split('.');
        const timestamp = Date.now();
        let stored = 0;
        for (const r of recipients) {
          for (const d of r.devices) {
            const message = (shared ?? d.message)!;
            const env: Envelope = { id: `s${this.#nextId++}`, type: message.type as Envelope['type'], body: message.body, source: { username: username!, deviceId: Number(device) }, timestamp };
            const key = `${r.username}.${d.deviceId}`;
            const box = this.mailboxes.get(key) ?? [];
            box.push(env);
            this.mailboxes.set(key, box);
            this.stored++;
            stored++;
            this.multi.push({ to: key, envelope: env });
            for (const c of this.#conns) if (c.address === key) this.#push(c, { type: 'message', envelope: env });
          }
        }
        return this.#push(conn, { type: 'sent-multi', id: f['id'], timestamp, stored });
      }
      case 'ack': {
        const ids = Array.isArray(f['ids']) ? (f['ids'] as unknown[]).map(String) : [String(f['id'])];
        for (const id of ids) {
          this.acks.push(id);
          const box = this.mailboxes.get(conn.address ?? '');
          if (box) {
            const i = box.findIndex((e) => e.id === id);
            if (i >= 0) box.splice(i, 1);
          }
        }
        return;
      }
      case 'ping':
        return this.#push(conn, { type: 'pong', ...(f['id'] !== undefined ? { id: f['id'] } : {}) });
    }
  }
}
