/**
 * The web client's model: one TacitClient (the SDK does the protocol, keys, sessions, relay and
 * received history), the journal (sent messages, started conversations) and the connection state,
 * exposed to the UI as plain snapshots plus a change signal. Nothing here touches the DOM.
 *
 * Errors shown to the user come from `userMessage`, which never stringifies unknown objects
 * (they may hold key material or plaintext).
 */
import { webBackend } from './crypto.js';
import { ClientError, TacitClient, isClientError, parseUsername, type ContactInfo, type SafetyNumberInfo, type StoredMessage } from '@tacit/client';
import { Journal, clipError, type OutgoingMessage, type OutgoingState } from './journal.js';
import { browserSocketFactory } from './socket.js';
import { SealedStore, isVaultError } from './vault.js';

const STATE_RECORD = 'client-state';
const JOURNAL_RECORD = 'journal';
/** Web Locks name: one tab per browser profile runs the account (two would replace each other's socket). */
const TAB_LOCK = 'tacit-account';
/** Longest preview shown in the conversation list. */
const PREVIEW_LENGTH = 80;

export type Phase =
  | { kind: 'loading' }
  | { kind: 'register'; busy: boolean; error: string | undefined }
  | { kind: 'other-tab' }
  | { kind: 'fatal'; message: string }
  | { kind: 'ready' };

export type Connection = 'connecting' | 'online' | 'offline' | 'stopped';

export interface ConversationView {
  username: string;
  unread: number;
  lastAt: number;
  preview: string;
  identityChanged: boolean;
}

export interface MessageView {
  key: string;
  dir: 'in' | 'out';
  text: string;
  at: number;
  state?: OutgoingState;
  error?: string;
  localId?: string;
  serverId?: string;
  read?: boolean;
}

export function userMessage(e: unknown): string {
  if (isClientError(e)) {
    switch (e.code) {
      case 'NETWORK':
        return 'The server could not be reached. Check your connection and try again.';
      case 'TIMEOUT':
        return 'The server did not answer in time. Try again.';
      case 'SERVER':
        return serverMessage(e.serverCode) ?? e.message;
      default:
        return e.message;
    }
  }
  if (isVaultError(e)) return e.message;
  return 'Something went wrong. Try again.';
}

function serverMessage(code: string | undefined): string | undefined {
  switch (code) {
    case 'USERNAME_TAKEN':
      return 'That username is taken. Choose another.';
    case 'INVITE_INVALID':
    case 'INVITE_REQUIRED':
      return 'The invite code is missing, wrong or used up. Ask your admin for a new one.';
    case 'RATE_LIMITED':
      return 'Too many attempts. Wait a minute and try again.';
    default:
      return undefined;
  }
}

function randomId(): string {
  const b = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/**
 * Takes the per-profile tab lock and holds it for the page's life. Calls `onWaiting` if another
 * tab holds it, then resolves once that tab is gone (closed or reloaded elsewhere).
 */
function takeTabLock(onWaiting: () => void): Promise<void> {
  const locks = (navigator as Navigator & { locks?: LockManager }).locks;
  if (locks === undefined) return Promise.resolve();
  return new Promise((resolve) => {
    const hold = (): Promise<void> => {
      resolve();
      return new Promise<void>(() => undefined); // held until the page goes away
    };
    locks
      .request(TAB_LOCK, { ifAvailable: true }, (lock) => {
        if (lock !== null) return hold();
        onWaiting();
        void locks.request(TAB_LOCK, hold).catch(() => resolve());
        return undefined;
      })
      .catch(() => resolve());
  });
}

export class Chat {
  phase: Phase = { kind: 'loading' };
  connection: Connection = 'connecting';
  /** Bumped on every change; the UI re-renders when it moves. */
  version = 0;
  /** Contacts whose messages could not be decrypted since the page opened (count per contact). */
  readonly undecryptable = new Map<string, number>();
  #store: SealedStore | undefined;
  #client: TacitClient | undefined;
  #journal: Journal | undefined;
  readonly #listeners = new Set<() => void>();
  readonly #unsubscribe: (() => void)[] = [];

  subscribe(fn: () => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  #changed(): void {
    this.version++;
    for (const l of [...this.#listeners]) {
      try {
        l();
      } catch {
        // a view's failure is its own
      }
    }
  }

  #setPhase(p: Phase): void {
    this.phase = p;
    this.#changed();
  }

  get client(): TacitClient | undefined {
    return this.#client;
  }

  /** Local storage is open (so signing out can delete it). */
  get hasAccount(): boolean {
    return this.#store !== undefined;
  }

  get username(): string | undefined {
    return this.#client?.username;
  }

  /** Opens local storage and, if this browser holds an account, the account. */
  async boot(): Promise<void> {
    try {
      await takeTabLock(() => this.#setPhase({ kind: 'other-tab' }));
      if (this.phase.kind === 'other-tab') this.#setPhase({ kind: 'loading' });
      this.#store = await SealedStore.open();
      this.#journal = await Journal.load(this.#store.vault(JOURNAL_RECORD));
      if (!(await this.#store.has(STATE_RECORD))) return this.#setPhase({ kind: 'register', busy: false, error: undefined });
      let client: TacitClient;
      try {
        client = await TacitClient.open(await this.#options());
      } catch (e) {
        if (isClientError(e) && e.code === 'NOT_REGISTERED') return this.#setPhase({ kind: 'register', busy: false, error: undefined });
        throw e;
      }
      await this.#start(client);
    } catch (e) {
      this.#setPhase({ kind: 'fatal', message: userMessage(e) });
    }
  }

  async #options() {
    return { vault: this.#store!.vault(STATE_RECORD), backend: await webBackend(), connect: browserSocketFactory };
  }

  async register(username: string, inviteCode: string): Promise<void> {
    if (this.phase.kind !== 'register' || this.phase.busy) return;
    this.#setPhase({ kind: 'register', busy: true, error: undefined });
    try {
      const invite = inviteCode.trim();
      const client = await TacitClient.register(await this.#options(), {
        server: location.origin,
        username: username.trim(),
        ...(invite !== '' ? { inviteCode: invite } : {}),
      });
      // An invite link (`?invite=`) has done its job; keep the code out of the history.
      if (location.search !== '') history.replaceState(null, '', location.pathname + location.hash);
      await this.#start(client);
    } catch (e) {
      this.#setPhase({ kind: 'register', busy: false, error: userMessage(e) });
    }
  }

  async #start(client: TacitClient): Promise<void> {
    this.#client = client;
    const j = this.#journal!;
    // Sends that were in flight when the page closed: the SDK resends what it had encrypted, but
    // which of them that was is not visible from here.
    let orphaned = false;
    for (const list of Object.values(j.data.outgoing)) {
      for (const m of list) {
        if (m.state === 'sending') {
          m.state = 'unconfirmed';
          m.error = 'The page closed while this was sending. It may still arrive; send again only if it did not.';
          orphaned = true;
        }
      }
    }
    if (orphaned) await j.save();
    this.#unsubscribe.push(
      client.on('message', (m) => {
        j.conversation(m.from, Date.now());
        this.#changed();
      }),
      client.on('identity-changed', () => this.#changed()),
      client.on('undecryptable', (u) => {
        this.undecryptable.set(u.from, (this.undecryptable.get(u.from) ?? 0) + 1);
        this.#changed();
      }),
      client.on('connection', (c) => {
        this.connection = c.state === 'disconnected' ? 'offline' : 'online';
        this.#changed();
      }),
      client.on('fatal', (e) => {
        this.connection = 'stopped';
        this.#setPhase({ kind: 'fatal', message: userMessage(e) });
      }),
    );
    this.#setPhase({ kind: 'ready' });
    client.connect().catch((e: unknown) => {
      if (isClientError(e) && e.code === 'TIMEOUT') return; // keeps retrying on its own
      if (isClientError(e) && e.code === 'CLOSED') return;
      this.connection = 'offline';
      this.#changed();
    });
  }

  // ---- conversations ----

  /** The conversation list, computed once per change. */
  conversations(): ConversationView[] {
    if (this.#conversationsAt?.version !== this.version) this.#conversationsAt = { version: this.version, list: this.#conversations() };
    return this.#conversationsAt.list;
  }

  #conversationsAt: { version: number; list: ConversationView[] } | undefined;

  #conversations(): ConversationView[] {
    const c = this.#client;
    const j = this.#journal;
    if (!c || !j) return [];
    const contacts = new Map<string, ContactInfo>(c.contacts().map((x) => [x.username, x]));
    const names = new Set<string>([...Object.keys(j.data.conversations), ...contacts.keys()]);
    const history = c.history();
    const lastIn = new Map<string, StoredMessage>();
    for (const m of history) lastIn.set(m.from, m);
    const out: ConversationView[] = [];
    for (const username of names) {
      if (username === c.username) continue;
      const info = contacts.get(username);
      const inMsg = lastIn.get(username);
      const outs = j.outgoing(username);
      const outMsg = outs[outs.length - 1];
      let lastAt = j.data.conversations[username]?.startedAt ?? info?.lastMessageAt ?? 0;
      let preview = '';
      if (inMsg && inMsg.receivedAt >= lastAt) {
        lastAt = inMsg.receivedAt;
        preview = inMsg.text;
      }
      if (outMsg && outMsg.at >= lastAt) {
        lastAt = outMsg.at;
        preview = `You: ${outMsg.text}`;
      }
      out.push({
        username,
        unread: info?.unread ?? 0,
        lastAt,
        preview: preview.replace(/\s+/g, ' ').slice(0, PREVIEW_LENGTH),
        identityChanged: info?.identityChanged ?? false,
      });
    }
    return out.sort((a, b) => b.lastAt - a.lastAt || a.username.localeCompare(b.username));
  }

  /** Checks that the user exists on the server and adds the conversation. Returns the canonical name. */
  async startConversation(name: string): Promise<string> {
    const c = this.#need();
    const username = parseUsername(name.trim());
    if (username === c.username) throw new ClientError('INVALID_ARGUMENT', 'That is you. Enter someone else’s username.');
    // Asks the server for the user's identity key: UNKNOWN_USER if there is no such user.
    await c.safetyNumber(username);
    this.#journal!.conversation(username, Date.now());
    await this.#journal!.save();
    this.#changed();
    return username;
  }

  messages(contact: string): MessageView[] {
    const c = this.#client;
    const j = this.#journal;
    if (!c || !j) return [];
    const list: MessageView[] = c.history(contact).map((m) => ({
      key: `in:${m.serverId}`,
      dir: 'in',
      text: m.text,
      at: m.receivedAt,
      serverId: m.serverId,
      read: m.read,
    }));
    for (const m of j.outgoing(contact)) {
      const v: MessageView = { key: `out:${m.localId}`, dir: 'out', text: m.text, at: m.at, state: m.state, localId: m.localId };
      if (m.error !== undefined) v.error = m.error;
      list.push(v);
    }
    // Stable sort: equal times keep received-then-sent order.
    return list.sort((a, b) => a.at - b.at);
  }

  identityChanged(contact: string): boolean {
    return this.#client?.changedIdentities().includes(contact) ?? false;
  }

  /** Marks the contact's received messages read (the conversation is on screen). */
  async markRead(contact: string): Promise<void> {
    const c = this.#client;
    if (!c) return;
    const ids = c.history(contact).filter((m) => !m.read).map((m) => m.serverId);
    if (ids.length === 0) return;
    await c.markRead(ids);
    this.#changed();
  }

  // ---- sending ----

  async send(contact: string, text: string): Promise<void> {
    const j = this.#journal!;
    if (text.trim() === '') return;
    const m: OutgoingMessage = { localId: randomId(), text, at: Date.now(), state: 'sending' };
    j.conversation(contact, m.at);
    j.addOutgoing(contact, m);
    // Written before it is shown: a message the user saw as "Sending…" is in the journal even if
    // the page closes at once (it then comes back as "Not confirmed").
    await j.save().catch(() => undefined);
    this.#changed();
    await this.#deliver(contact, m);
  }

  async retry(contact: string, localId: string): Promise<void> {
    const m = this.#journal?.find(contact, localId);
    if (!m || m.state === 'sending' || m.state === 'sent') return;
    m.state = 'sending';
    delete m.error;
    this.#changed();
    await this.#journal!.save().catch(() => undefined);
    await this.#deliver(contact, m);
  }

  async #deliver(contact: string, m: OutgoingMessage): Promise<void> {
    const c = this.#need();
    try {
      await c.send(contact, m.text);
      m.state = 'sent';
    } catch (e) {
      m.state = 'failed';
      m.error = clipError(isClientError(e) && e.code === 'UNTRUSTED_IDENTITY' ? `Not sent: the safety number with ${contact} changed.` : userMessage(e));
    }
    this.#changed();
    await this.#journal!.save().catch(() => undefined);
  }

  // ---- identities ----

  async safetyNumber(contact: string): Promise<SafetyNumberInfo> {
    return this.#need().safetyNumber(contact);
  }

  async trust(contact: string): Promise<void> {
    await this.#need().trust(contact);
    this.#changed();
  }

  // ---- account ----

  /** Deletes this browser's keys, sessions and history, and reloads. */
  async signOut(): Promise<void> {
    for (const u of this.#unsubscribe.splice(0)) u();
    await this.#client?.close().catch(() => undefined);
    this.#client = undefined;
    try {
      if (this.#store) await SealedStore.destroy(this.#store);
    } catch (e) {
      this.#setPhase({ kind: 'fatal', message: userMessage(e) });
      return;
    }
    this.#store = undefined;
    location.reload();
  }

  #need(): TacitClient {
    if (!this.#client) throw new ClientError('CLOSED', 'not signed in');
    return this.#client;
  }
}
