/**
 * The web client's model: one TacitClient (the SDK does the protocol, keys, sessions, relay and
 * the whole conversation history, both directions) on the browser's record store, exposed to the
 * UI as plain snapshots plus a change signal. Nothing here touches the DOM.
 *
 * The snapshots (conversation list, the messages of conversations on screen) are read from the
 * SDK's history when it says something changed, and kept here so rendering stays synchronous.
 *
 * Errors shown to the user come from `userMessage`, which never stringifies unknown objects
 * (they may hold key material or plaintext).
 */
import {
  MAX_PAGE,
  ClientError,
  EDIT_WINDOW_MS,
  MUTED_FOREVER,
  TacitClient,
  directConversation,
  neutralizeControls,
  isClientError,
  parseUsername,
  refusalText,
  upgradeLegacyState,
  type ChatSettings,
  type ConversationInfo,
  type HistoryMessage,
  type RecordStore,
  type SafetyNumberInfo,
} from '@tacit/client';
import {
  IndexedDbRecordStore,
  LEGACY_JOURNAL_RECORD,
  LEGACY_STATE_RECORD,
  deleteLegacyRecords,
  deleteTacitDatabase,
  changePassphrase,
  deviceSealingKey,
  passphraseProblem,
  openTacitDatabase,
  readLegacyRecord,
  readSealing,
  removePassphraseLock,
  setPassphraseLock,
  unlockSealingKey,
  type PassphraseLock,
} from '@tacit/client/browser';
import { webBackend } from './crypto.js';
import { workerInitialKeys, workerKeys } from './keygen.js';
import { browserSocketFactory } from './socket.js';
import { TeamModel } from './team.js';
import { GroupsModel } from './groups.js';
import { FilesModel } from './files.js';
import { Notifier } from './notify.js';
import { href } from './ui/route.js';

/** Web Locks name: one tab per browser profile runs the account (two would replace each other's socket). */
const TAB_LOCK = 'tacit-account';
/** Longest preview shown in the conversation list. */
const PREVIEW_LENGTH = 80;
/** Messages of a conversation loaded at first; "Show older messages" adds as many again. */
export const HISTORY_PAGE = 200;
/** Search results shown at most. */
export const SEARCH_LIMIT = 50;
/**
 * Longest delay a browser timer takes (2^31 − 1 ms, about 24.8 days); a longer one fires at once.
 * A timed mute can last longer (the SDK's MAX_MUTE_MS), so its timer is set in steps of this.
 */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

export type Phase =
  | { kind: 'loading' }
  | { kind: 'register'; busy: boolean; error: string | undefined }
  | { kind: 'other-tab' }
  /** The records are under a passphrase lock: asked for on every page load. */
  | { kind: 'locked'; busy: boolean; error: string | undefined }
  | { kind: 'fatal'; message: string }
  /** Signed out, local data deleted, but this browser could not be removed from the account. */
  | { kind: 'signed-out'; message: string }
  | { kind: 'ready' };

export type Connection = 'connecting' | 'online' | 'offline' | 'stopped';

export interface ConversationView {
  /** A contact's username, or a group's conversation id (`g:<id>`). */
  username: string;
  /** A group: its title (the list and the header show it instead of `username`). */
  title?: string;
  unread: number;
  lastAt: number;
  preview: string;
  identityChanged: boolean;
  /** Messages removed to stay within the local storage bounds. */
  dropped: number;
  /** Messages held in this browser (all of them, not only those loaded). */
  messages: number;
  /** Disappearing messages: the conversation's timer, ms (0: off). */
  timer: number;
  /** Muted until then (ms; MUTED_FOREVER: until unmuted); absent: not muted when last read (see Chat.mutedUntil). */
  mutedUntil?: number;
}

/** `queued`: stored here, waiting for the server (or for the connection to come back). */
/** `uploading`: a file on its way to the server's blob store. */
export type OutgoingState = 'uploading' | 'queued' | 'sent' | 'failed';

export interface MessageView {
  key: string;
  dir: 'in' | 'out';
  text: string;
  at: number;
  seq: number;
  /** Who wrote it (shown in a group). */
  from: string;
  /** A group's system line (a join, a removal, a rename). */
  system?: boolean;
  state?: OutgoingState;
  error?: string;
  read?: boolean;
  /** Outgoing, sent: how far it got (chat/receipts.ts in the SDK): ✓ sent, ✓✓ delivered, filled ✓✓ read. */
  delivery?: 'sent' | 'delivered' | 'read';
  /** Outgoing in a group: who has read it, and who has it but has not read it yet. */
  readBy?: string[];
  deliveredTo?: string[];
  /** A file sent or received with it (the text is then its caption). */
  file?: { name: string; type: string; size: number; width?: number; height?: number; uploaded: boolean };
  /** The sender's message id (edits, deletions and reactions name it). */
  id: string;
  /** Edited by its author; deleted for everyone (the text is then empty). */
  edited?: boolean;
  deleted?: boolean;
  /** Our own message that may still be edited or deleted for everyone. */
  editable?: boolean;
  /** Reactions grouped by emoji, in the order they were first made. */
  reactions?: { emoji: string; from: string[]; mine: boolean }[];
  /** Disappearing: when this browser deletes it (absent while unread). */
  expiresAt?: number;
  disappearing?: boolean;
}

/** A search result: where and what. */
export interface SearchHit {
  contact: string;
  title: string;
  from: string;
  dir: 'in' | 'out';
  text: string;
  at: number;
}

export function userMessage(e: unknown): string {
  if (isClientError(e)) {
    switch (e.code) {
      case 'NETWORK':
        return 'The server could not be reached. Check your connection and try again.';
      case 'TIMEOUT':
        return 'The server did not answer in time. Try again.';
      case 'SERVER':
        return sentence(refusalText(e.serverCode));
      default:
        return e.message;
    }
  }
  return 'Something went wrong. Try again.';
}

/** What a refused passphrase operation says. */
function lockMessage(e: unknown): string {
  if (isClientError(e) && e.code === 'WRONG_PASSPHRASE') return 'That passphrase is not the one that locks tacit in this browser. Nothing was changed.';
  if (isClientError(e) && e.code === 'INVALID_ARGUMENT') return e.message;
  return userMessage(e);
}

/** The SDK's lower-case clauses as sentences. */
export function sentence(clause: string): string {
  return clause.charAt(0).toUpperCase() + clause.slice(1) + '.';
}

/** What a failed message says, in words for the person who sent it. */
/** Edits, deletions, reactions and timers of a message as the view shows them. */
function actionFields(m: HistoryMessage, self: string): Partial<MessageView> {
  const v: Partial<MessageView> = {};
  if (m.edited !== undefined) v.edited = true;
  if (m.deleted === true) v.deleted = true;
  if (m.direction === 'out' && m.system !== true && m.deleted !== true && m.state === 'sent' && Date.now() - m.sentAt <= EDIT_WINDOW_MS) v.editable = true;
  if (m.reactions !== undefined) {
    const by = new Map<string, string[]>();
    for (const r of m.reactions) by.set(r.emoji, [...(by.get(r.emoji) ?? []), r.from]);
    v.reactions = [...by].map(([emoji, from]) => ({ emoji, from, mine: from.includes(self) }));
  }
  if (m.expireTimer !== undefined) v.disappearing = true;
  if (m.expiresAt !== undefined) v.expiresAt = m.expiresAt;
  return v;
}

function failureText(contact: string, m: HistoryMessage): string | undefined {
  const err = m.error;
  if (err === undefined) return undefined;
  switch (err.code) {
    case 'UNTRUSTED_IDENTITY':
      return contact.startsWith('g:') ? `Held: a member’s safety number changed (${err.message}).` : `Not sent: the safety number with ${contact} changed.`;
    case 'SERVER':
      return sentence(refusalText(err.serverCode));
    case 'BLOCKED':
      return `Not sent: you blocked ${contact} before it went out. Unblock them to send it (Retry).`;
    default:
      return err.message;
  }
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

/**
 * Opens this browser's record store, upgrading the records of the release before record storage
 * (its state document and journal) in one commit; the old records are deleted after it.
 */
async function openStore(db: IDBDatabase, key: CryptoKey): Promise<{ db: IDBDatabase; store: RecordStore }> {
  try {
    const store = new IndexedDbRecordStore(db, key);
    const legacy = await readLegacyRecord(db, key, LEGACY_STATE_RECORD);
    if (legacy !== undefined) {
      if ((await store.list('', { limit: 1 })).length === 0) {
        const journal = await readLegacyRecord(db, key, LEGACY_JOURNAL_RECORD).catch(() => undefined);
        await upgradeLegacyState(store, await webBackend(), { state: legacy, ...(journal !== undefined ? { journal } : {}) }, Date.now());
      }
      await deleteLegacyRecords(db, [LEGACY_STATE_RECORD, LEGACY_JOURNAL_RECORD]);
    }
    return { db, store };
  } catch (e) {
    db.close();
    throw e;
  }
}

export class Chat {
  phase: Phase = { kind: 'loading' };
  connection: Connection = 'connecting';
  /** Bumped on every change; the UI re-renders when it moves. */
  version = 0;
  /** Contacts whose messages could not be decrypted since the page opened (count per contact). */
  readonly undecryptable = new Map<string, number>();
  /** Admin rights and the directory of usernames, once the page has reached the server. */
  team: TeamModel | undefined;
  /** The account's groups (titles, members, changes). */
  groups: GroupsModel | undefined;
  /** Sending and showing files (files.ts). */
  files: FilesModel | undefined;
  /** Browser notifications for messages that arrive while the page is hidden (notify.ts). */
  notifier: Notifier | undefined;
  #store: RecordStore | undefined;
  #db: IDBDatabase | undefined;
  /** The passphrase lock, when on (as read at load or last changed). */
  #lock: PassphraseLock | undefined;
  /** While the page waits for the passphrase: takes the unlocked sealing key. */
  #unlocked: ((key: CryptoKey) => void) | undefined;
  #client: TacitClient | undefined;
  readonly #listeners = new Set<() => void>();
  readonly #unsubscribe: (() => void)[] = [];
  #conversations: ConversationView[] = [];
  /** Loaded messages of conversations that were opened, and how many to load. */
  readonly #messages = new Map<string, MessageView[]>();
  readonly #limits = new Map<string, number>();
  /** Who is typing, per conversation id (the SDK's `typing` events; they lapse on their own). */
  readonly #typing = new Map<string, Set<string>>();
  #refreshing: Promise<void> | undefined;
  #dirty = new Set<string>();
  #dirtyList = false;

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
      const db = await openTacitDatabase();
      this.#db = db;
      const sealing = await readSealing(db).catch((e: unknown) => {
        db.close();
        throw e;
      });
      let key: CryptoKey;
      if (sealing.kind === 'passphrase') {
        this.#lock = sealing.lock;
        key = await new Promise<CryptoKey>((resolve) => {
          this.#unlocked = resolve;
          this.#setPhase({ kind: 'locked', busy: false, error: undefined });
        });
        this.#unlocked = undefined;
        this.#setPhase({ kind: 'loading' });
      } else {
        key = sealing.kind === 'device' ? sealing.key : await deviceSealingKey(db);
      }
      const { store } = await openStore(db, key);
      this.#store = store;
      let client: TacitClient;
      try {
        client = await TacitClient.open(await this.#options(store));
      } catch (e) {
        if (isClientError(e) && e.code === 'NOT_REGISTERED') return this.#setPhase({ kind: 'register', busy: false, error: undefined });
        throw e;
      }
      await this.#start(client);
    } catch (e) {
      this.#setPhase({ kind: 'fatal', message: userMessage(e) });
    }
  }

  async #options(store: RecordStore) {
    return { store, backend: await webBackend(), connect: browserSocketFactory, initialKeys: workerInitialKeys(webBackend), keyGenerator: workerKeys(webBackend) };
  }

  async register(username: string, inviteCode: string): Promise<void> {
    if (this.phase.kind !== 'register' || this.phase.busy || !this.#store) return;
    this.#setPhase({ kind: 'register', busy: true, error: undefined });
    try {
      const invite = inviteCode.trim();
      const client = await TacitClient.register(await this.#options(this.#store), {
        server: location.origin,
        username: username.trim(),
        ...(invite !== '' ? { inviteCode: invite } : {}),
      });
      // An invite link (`#invite=` or `?invite=`) has done its job; keep the code out of the history.
      if (location.search !== '' || location.hash.startsWith('#invite=')) history.replaceState(null, '', location.pathname);
      await this.#start(client);
    } catch (e) {
      this.#setPhase({ kind: 'register', busy: false, error: userMessage(e) });
    }
  }

  /** The link code this browser shows while it waits to be linked (`link`), if it is waiting. */
  linkCode: string | undefined;

  /**
   * "Link to an existing account": opens a provisioning channel, shows its code (`linkCode`) and
   * waits for a signed-in device of the account to send the link message, then registers this
   * browser as one more device of that account.
   */
  async link(name: string): Promise<void> {
    if (this.phase.kind !== 'register' || this.phase.busy || !this.#store) return;
    this.linkCode = undefined;
    this.#setPhase({ kind: 'register', busy: true, error: undefined });
    try {
      const client = await TacitClient.link(await this.#options(this.#store), {
        server: location.origin,
        name: name.trim(),
        onCode: (code) => {
          this.linkCode = code;
          this.#changed();
        },
      });
      this.linkCode = undefined;
      await this.#start(client);
    } catch (e) {
      this.linkCode = undefined;
      this.#setPhase({ kind: 'register', busy: false, error: userMessage(e) });
    }
  }

  async #start(client: TacitClient): Promise<void> {
    this.#client = client;
    this.team = new TeamModel(client, () => this.#changed());
    this.groups = new GroupsModel(client, () => this.#changed());
    this.files = new FilesModel(client, () => this.#changed());
    this.notifier = new Notifier({
      changed: () => this.#changed(),
      title: (conversation) => (conversation.startsWith('g:') ? `#${this.groups?.get(conversation)?.title ?? 'group'}` : conversation.slice(2)),
      open: (conversation) => {
        location.hash = href({ view: 'chat', contact: conversation.startsWith('g:') ? conversation : conversation.slice(2) });
      },
      muted: (conversation) => this.mutedUntil(conversation.startsWith('g:') ? conversation : conversation.slice(2)) !== undefined,
    });
    this.#unsubscribe.push(
      client.on('group', () => this.#invalidate()),
      client.on('message', (m) => this.notifier?.message(m)),
      client.on('typing', ({ conversation, from, typing }) => {
        const set = this.#typing.get(conversation) ?? new Set<string>();
        if (typing) set.add(from);
        else set.delete(from);
        if (set.size > 0) this.#typing.set(conversation, set);
        else this.#typing.delete(conversation);
        this.#changed();
      }),
      client.on('history', ({ conversation }) => this.#invalidate(conversation)),
      client.on('identity-changed', () => this.#invalidate()),
      client.on('block', (b) => {
        this.blocked = b.blocked;
        this.#invalidate();
      }),
      client.on('mute', (m) => {
        this.#setMutes(m.mutes);
        this.#invalidate();
      }),
      client.on('undecryptable', (u) => {
        this.undecryptable.set(u.from, (this.undecryptable.get(u.from) ?? 0) + 1);
        this.#changed();
      }),
      client.on('connection', (c) => {
        this.connection = c.state === 'disconnected' ? 'offline' : 'online';
        if (c.state === 'ready') void this.team?.refresh(true);
        this.#changed();
      }),
      client.on('fatal', (e) => {
        this.connection = 'stopped';
        this.#setPhase({ kind: 'fatal', message: userMessage(e) });
      }),
    );
    // The browser knows before the backoff does: back online, or the tab visible again (browsers
    // throttle a hidden tab's timers), means try to reconnect now.
    const online = (): void => client.reconnectNow();
    const visible = (): void => {
      if (document.visibilityState === 'visible') client.reconnectNow();
    };
    addEventListener('online', online);
    document.addEventListener('visibilitychange', visible);
    this.#unsubscribe.push(
      () => removeEventListener('online', online),
      () => document.removeEventListener('visibilitychange', visible),
    );
    this.blocked = await client.blocked();
    this.#setMutes(await client.mutes());
    this.#unsubscribe.push(() => this.#setMutes({}));
    await this.#refresh();
    this.#setPhase({ kind: 'ready' });
    client.connect().catch((e: unknown) => {
      if (isClientError(e) && e.code === 'TIMEOUT') return; // keeps retrying on its own
      if (isClientError(e) && e.code === 'CLOSED') return;
      this.connection = 'offline';
      this.#changed();
    });
  }

  // ---- snapshots of the SDK's history ----

  /** Something changed in one conversation (or, without an argument, in the list): re-read it. */
  #invalidate(conversation?: string): void {
    this.#dirtyList = true;
    if (conversation !== undefined) this.#dirty.add(conversation);
    void this.#refresh();
  }

  /** Re-reads what changed; calls made while one runs are folded into the next. */
  #refresh(): Promise<void> {
    if (this.#refreshing) return this.#refreshing;
    const run = (async () => {
      // Let a burst of events (one commit of many messages) land first.
      await Promise.resolve();
      const c = this.#client;
      if (!c) return;
      this.#dirtyList = false;
      const dirty = [...this.#dirty];
      this.#dirty.clear();
      await this.groups?.refresh();
      const all = (await c.conversations()).filter((x) => x.group !== undefined || x.contact !== c.username);
      this.#conversations = all.map((x) => this.#view(x));
      // Read here or on another device of the account: its notification goes.
      this.notifier?.read(all.filter((x) => x.unread === 0).map((x) => x.id));
      for (const contact of this.#messages.keys()) if (dirty.includes(contact.startsWith('g:') ? contact : directConversation(contact))) await this.#load(contact);
      this.#changed();
    })()
      .catch((e: unknown) => {
        // The client was closed under the read (the passphrase lock going on, signing out): the
        // page reloads or shows another phase, so there is nothing left to show.
        if (isClientError(e) && e.code === 'CLOSED') return;
        throw e;
      })
      .finally(() => {
        this.#refreshing = undefined;
        if (this.#client !== undefined && (this.#dirtyList || this.#dirty.size > 0)) void this.#refresh();
      });
    this.#refreshing = run;
    return run;
  }

  #view(x: ConversationInfo): ConversationView {
    const last = x.last;
    const body = last === undefined ? '' : last.attachment !== undefined ? `File: ${last.attachment.name}${last.text !== '' ? ` ${last.text}` : ''}` : last.text;
    const preview = last === undefined ? '' : last.system ? last.text : last.direction === 'out' ? `You: ${body}` : x.group !== undefined ? `${last.from}: ${body}` : body;
    const title = x.group !== undefined ? (this.groups?.get(x.id)?.title ?? 'Group') : undefined;
    return {
      username: x.group !== undefined ? x.id : x.contact,
      ...(title !== undefined ? { title } : {}),
      unread: x.unread,
      lastAt: x.lastAt,
      preview: neutralizeControls(preview.replace(/\s+/g, ' ').slice(0, PREVIEW_LENGTH)),
      identityChanged: x.identityChanged,
      dropped: x.dropped,
      timer: x.timer ?? 0,
      messages: x.messages,
      ...(x.mutedUntil !== undefined ? { mutedUntil: x.mutedUntil } : {}),
    };
  }

  async #load(contact: string): Promise<void> {
    const c = this.#client;
    if (!c) return;
    const want = this.#limits.get(contact) ?? HISTORY_PAGE;
    const list: HistoryMessage[] = [];
    let before: number | undefined;
    // In pages of at most MAX_PAGE (what one history() call returns), each before the oldest so
    // far, so "Show older messages" goes on past the first 1,000.
    while (list.length < want) {
      const page = await c.history(contact, { limit: Math.min(MAX_PAGE, want - list.length), ...(before !== undefined ? { before } : {}) });
      if (page.length === 0) break;
      list.unshift(...page);
      before = page[0]!.seq;
    }
    this.#messages.set(
      contact,
      list.map((m) => {
        const v: MessageView = { key: `m:${m.seq}`, dir: m.direction, text: m.text, at: m.direction === 'in' ? (m.receivedAt ?? m.sentAt) : m.sentAt, seq: m.seq, from: m.from, id: m.id, ...actionFields(m, c.username) };
        if (m.system) v.system = true;
        if (m.attachment !== undefined) {
          const a = m.attachment;
          v.file = { name: a.name, type: a.type, size: a.size, uploaded: a.uploaded, ...(a.width !== undefined && a.height !== undefined ? { width: a.width, height: a.height } : {}) };
        }
        if (m.direction === 'in') v.read = m.read ?? false;
        else {
          v.state = m.state ?? 'sent';
          if (m.delivery !== undefined) v.delivery = m.delivery;
          if (m.receipts !== undefined && contact.startsWith('g:')) {
            const r = Object.entries(m.receipts);
            v.readBy = r.filter(([, x]) => x.read !== undefined).map(([u]) => u);
            v.deliveredTo = r.filter(([, x]) => x.delivered !== undefined && x.read === undefined).map(([u]) => u);
          }
          const error = failureText(contact, m);
          // A group message held for a member's changed safety number stays queued, and says why.
          if ((m.state === 'failed' || (m.state === 'queued' && contact.startsWith('g:'))) && error !== undefined) v.error = error;
        }
        return v;
      }),
    );
  }

  // ---- conversations ----

  /** The conversation list, most recent first. */
  conversations(): ConversationView[] {
    return this.#conversations;
  }

  /** Checks that the user exists on the server and adds the conversation. Returns the canonical name. */
  async startConversation(name: string): Promise<string> {
    const c = this.#need();
    const username = parseUsername(name.trim());
    if (username === c.username) throw new ClientError('INVALID_ARGUMENT', 'That is you. Enter someone else’s username.');
    // Asks the server for the user's devices: UNKNOWN_USER if there is no such user.
    await c.startConversation(username);
    await this.#refresh();
    return username;
  }

  /** The loaded messages of a conversation (oldest first); loads them on first use. */
  messages(contact: string): MessageView[] {
    const m = this.#messages.get(contact);
    if (m === undefined && this.#client) {
      this.#messages.set(contact, []);
      void this.#load(contact).then(() => this.#changed());
    }
    return m ?? [];
  }

  /** More messages are held than are loaded. */
  hasOlder(contact: string): boolean {
    const held = this.#conversations.find((c) => c.username === contact)?.messages ?? 0;
    return held > (this.#messages.get(contact)?.length ?? 0);
  }

  async showOlder(contact: string): Promise<void> {
    this.#limits.set(contact, (this.#limits.get(contact) ?? HISTORY_PAGE) + HISTORY_PAGE);
    await this.#load(contact);
    this.#changed();
  }

  conversation(contact: string): ConversationView | undefined {
    return this.#conversations.find((c) => c.username === contact);
  }

  identityChanged(contact: string): boolean {
    return this.conversation(contact)?.identityChanged ?? false;
  }

  /**
   * The conversation is on screen: what arrived is taken for display (the SDK marks it read in
   * the same commit, so it is not counted as new again after a reload).
   */
  async markRead(contact: string): Promise<void> {
    const c = this.#client;
    if (!c) return;
    await c.takeForDisplay(() => undefined, { conversation: contact });
  }

  // ---- typing indicators ----

  /** Who is typing in a conversation (a contact's name or a group's `g:` id). */
  typingIn(contact: string): string[] {
    const id = contact.startsWith('g:') ? contact : directConversation(contact);
    return [...(this.#typing.get(id) ?? [])].sort();
  }

  /** We are typing (or stopped) in a conversation: the SDK rate-limits and sends it ephemerally. */
  typing(contact: string, typing: boolean): void {
    void this.#client?.setTyping(contact, typing).catch(() => undefined);
  }

  // ---- blocking ----

  /** Blocked usernames (changed here or on another device of the account). */
  blocked: string[] = [];

  isBlocked(contact: string): boolean {
    return !contact.startsWith('g:') && this.blocked.includes(contact);
  }

  /** Blocks a contact (the SDK's `block`; the `block` event updates the view). */
  async block(contact: string): Promise<void> {
    await this.#need().block(contact);
  }

  async unblock(contact: string): Promise<void> {
    await this.#need().unblock(contact);
  }

  // ---- muting (the SDK's chat/mute.ts) ----

  /** Conversation id → muted until (changed here or on another device of the account). */
  #mutes: Record<string, number> = {};
  /** Fires when the earliest timed mute ends, so the list's 🔕 and the header's "Muted until" go on time. */
  #muteTimer: ReturnType<typeof setTimeout> | undefined;

  /** Takes the mutes as they are now and sets the timer to the earliest end still ahead (none: cleared). */
  #setMutes(mutes: Record<string, number>): void {
    this.#mutes = mutes;
    clearTimeout(this.#muteTimer);
    this.#muteTimer = undefined;
    const now = Date.now();
    const next = Math.min(...Object.values(mutes).filter((u) => u > now && u !== MUTED_FOREVER));
    if (!Number.isFinite(next)) return;
    this.#muteTimer = setTimeout(() => {
      this.#muteTimer = undefined;
      // Past its end `mutedUntil` says not muted: draw again (list, header, title count), then wait for the next.
      this.#changed();
      this.#setMutes(this.#mutes);
    }, Math.min(next - now, MAX_TIMER_DELAY_MS));
  }

  /**
   * Until when a conversation (a contact's username or a group's `g:` id) is muted, or undefined.
   * A muted conversation still shows its messages and unread badge; it raises no notification and
   * adds nothing to the title and favicon count. Compared with the clock, so a mute ends on time.
   */
  mutedUntil(contact: string): number | undefined {
    const until = this.#mutes[contact.startsWith('g:') ? contact : directConversation(contact)];
    return until !== undefined && until > Date.now() ? until : undefined;
  }

  /** Mutes a conversation for `duration` ms or always (the `mute` event updates the view). */
  async mute(contact: string, duration: number | 'always'): Promise<void> {
    await this.#need().mute(contact, duration);
  }

  async unmute(contact: string): Promise<void> {
    await this.#need().unmute(contact);
  }

  /** Unread messages that should alert: every conversation's but the muted ones' (the title and favicon count). */
  alertingUnread(): number {
    return this.#conversations.reduce((n, c) => n + (this.mutedUntil(c.username) === undefined ? c.unread : 0), 0);
  }

  // ---- chat settings (read receipts, typing indicators) ----

  /** This browser's chat settings, once the client runs. */
  async chatSettings(): Promise<ChatSettings> {
    return this.#need().settings();
  }

  async updateChatSettings(change: Partial<ChatSettings>): Promise<ChatSettings> {
    const s = await this.#need().updateSettings(change);
    // Read receipts shown or hidden: every loaded conversation is drawn again.
    for (const k of this.#messages.keys()) this.#dirty.add(k.startsWith('g:') ? k : directConversation(k));
    this.#invalidate();
    return s;
  }

  // ---- sending ----

  async send(contact: string, text: string): Promise<void> {
    if (text.trim() === '') return;
    // Stored as queued before it shows; its state follows from the SDK's history events.
    await this.#need()
      .send(contact, text)
      .catch(() => undefined);
  }

  // ---- edits, deletions, reactions, disappearing messages, search ----

  /** Edits our message `id` (the SDK refuses after 24 hours or for someone else's). */
  async edit(contact: string, id: string, text: string): Promise<void> {
    await this.#need().editMessage(contact, id, text);
  }

  async deleteForEveryone(contact: string, id: string): Promise<void> {
    await this.#need().deleteForEveryone(contact, id);
  }

  /** Reacts with `emoji`, or removes our reaction when it is the one we had. */
  async react(contact: string, id: string, emoji: string, mine: boolean): Promise<void> {
    await this.#need().react(contact, id, mine ? '' : emoji);
  }

  async setTimer(contact: string, ms: number): Promise<void> {
    await this.#need().setDisappearingTimer(contact, ms);
    await this.#refresh();
  }

  /** Searches this browser's history (every word, as a word prefix), newest first. */
  async search(query: string): Promise<SearchHit[]> {
    const c = this.#need();
    const hits = await c.search(query, { limit: SEARCH_LIMIT });
    return hits.map((m) => {
      const contact = m.conversation.startsWith('g:') ? m.conversation : m.conversation.slice(2);
      const title = m.conversation.startsWith('g:') ? `# ${this.groups?.get(m.conversation)?.title ?? 'Group'}` : contact;
      return { contact, title, from: m.from, dir: m.direction, text: m.text, at: m.sentAt };
    });
  }

  async retry(contact: string, seq: number): Promise<void> {
    await this.#need()
      .retry(contact, seq)
      .catch(() => undefined);
  }

  // ---- identities ----

  async safetyNumber(contact: string): Promise<SafetyNumberInfo> {
    return this.#need().safetyNumber(contact);
  }

  async trust(contact: string): Promise<void> {
    await this.#need().trust(contact);
    await this.#refresh();
  }

  // ---- passphrase lock ----

  /** Whether this browser's records are under a passphrase lock. */
  get passphraseLocked(): boolean {
    return this.#lock !== undefined;
  }

  /** Opens the records with the passphrase; a wrong one says so and changes nothing. */
  async unlock(passphrase: string): Promise<void> {
    const lock = this.#lock;
    if (this.phase.kind !== 'locked' || this.phase.busy || lock === undefined || this.#unlocked === undefined) return;
    this.#setPhase({ kind: 'locked', busy: true, error: undefined });
    try {
      this.#unlocked(await unlockSealingKey(lock, passphrase));
    } catch (e) {
      this.#setPhase({ kind: 'locked', busy: false, error: lockMessage(e) });
    }
  }

  /**
   * Turns the lock on: every record sealed again under a fresh key wrapped by the passphrase.
   * The client stops for it (no record may change meanwhile), then the page reloads and asks for
   * the passphrase. Returns an error sentence, or never returns (reload) on success.
   */
  async setPassphrase(passphrase: string): Promise<string | undefined> {
    const db = this.#db;
    if (db === undefined || this.#lock !== undefined) return 'The passphrase lock is already on.';
    const problem = passphraseProblem(passphrase);
    if (problem !== undefined) return problem;
    const sealing = await readSealing(db);
    if (sealing.kind !== 'device') return 'The passphrase lock is already on.';
    for (const u of this.#unsubscribe.splice(0)) u();
    await this.#client?.close().catch(() => undefined);
    this.#client = undefined;
    await this.#store?.close().catch(() => undefined);
    this.#store = undefined;
    try {
      const fresh = await openTacitDatabase();
      try {
        await setPassphraseLock(fresh, sealing.key, passphrase);
      } finally {
        fresh.close();
      }
    } catch (e) {
      // Nothing was changed (one transaction); start again as before.
      this.#setPhase({ kind: 'fatal', message: lockMessage(e) });
      return lockMessage(e);
    }
    location.reload();
    return undefined;
  }

  /** A new passphrase; the current one must be right. Returns an error sentence or undefined. */
  async changePassphrase(current: string, next: string): Promise<string | undefined> {
    const db = this.#db;
    const lock = this.#lock;
    if (db === undefined || lock === undefined) return 'The passphrase lock is off.';
    const problem = passphraseProblem(next);
    if (problem !== undefined) return problem;
    try {
      await changePassphrase(db, lock, current, next);
      const s = await readSealing(db);
      this.#lock = s.kind === 'passphrase' ? s.lock : undefined;
      this.#changed();
      return undefined;
    } catch (e) {
      return lockMessage(e);
    }
  }

  /** Turns the lock off; the passphrase must be right. Returns an error sentence or undefined. */
  async removePassphrase(current: string): Promise<string | undefined> {
    const db = this.#db;
    const lock = this.#lock;
    if (db === undefined || lock === undefined) return 'The passphrase lock is off.';
    try {
      await removePassphraseLock(db, lock, current);
      this.#lock = undefined;
      this.#changed();
      return undefined;
    } catch (e) {
      return lockMessage(e);
    }
  }

  // ---- account ----

  /**
   * How many other devices the account has (for the sign-out confirmation), or undefined when
   * that cannot be learnt (locked, offline).
   */
  async otherDevices(): Promise<number | undefined> {
    const client = this.#client;
    if (client === undefined) return undefined;
    try {
      return (await client.devices()).filter((d) => !d.current).length;
    } catch {
      return undefined;
    }
  }

  /**
   * Signs out: first removes this browser from the account on the server when the account has
   * other devices (TacitClient.unlinkThisDevice; the only device is kept), then deletes this
   * browser's keys, sessions and history, and reloads. Removal is best effort: when the server
   * cannot be reached (or tacit is locked, so there are no credentials), local data is deleted
   * anyway and the page says to remove this browser from another device's Devices page. Locked
   * (or with a damaged account record) there are no credentials: local data only, as the
   * confirmation says.
   */
  async signOut(): Promise<void> {
    const username = this.#client?.username;
    // Locked or damaged there are no credentials to ask with; the confirmation said so.
    let unlinkFailure: string | undefined;
    try {
      // 'only-device' and 'already-removed' need nothing more; the confirmation said so.
      await this.#client?.unlinkThisDevice();
    } catch (e) {
      unlinkFailure = isClientError(e) && (e.code === 'NETWORK' || e.code === 'TIMEOUT') ? 'the server could not be reached' : userMessage(e).replace(/\.$/, '');
    }
    for (const u of this.#unsubscribe.splice(0)) u();
    await this.#client?.close().catch(() => undefined);
    await this.#store?.close().catch(() => undefined);
    this.#db?.close();
    this.#client = undefined;
    try {
      await deleteTacitDatabase();
    } catch (e) {
      this.#setPhase({ kind: 'fatal', message: userMessage(e) });
      return;
    }
    this.#store = undefined;
    if (unlinkFailure === undefined) return location.reload();
    this.#setPhase({
      kind: 'signed-out',
      message:
        `This browser's keys and history are deleted, but it could not be removed from ${username ?? 'the account'}'s devices (${unlinkFailure}). ` +
        'If the account has other devices, remove this one on another device (Settings → Devices in the web client, tacit devices remove in the terminal): until then messages are still encrypted for it.',
    });
  }

  #need(): TacitClient {
    if (!this.#client) throw new ClientError('CLOSED', 'not signed in');
    return this.#client;
  }
}
