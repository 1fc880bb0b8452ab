/**
 * Notifications: a browser Notification for a message that arrives while the page is hidden
 * (permission asked only on a user action, Settings › Notifications; the text can be left out),
 * and the unread count as a badge on the favicon (the tab title carries it too, ui/app.tsx). A
 * muted conversation raises no notification and adds nothing to either count.
 *
 * The two preferences (on, show text) are this browser's and hold no message data: they live in
 * localStorage. Nothing here talks to any server: Notification is local to the browser.
 */
import { neutralizeControls, type HistoryMessage } from '@tacit/client';

/** localStorage key of the preferences. */
export const NOTIFY_PREFS_KEY = 'tacit.notifications';
/** Characters of message text a notification shows at most. */
export const NOTIFY_TEXT_CHARS = 140;
/** Largest count the favicon badge draws (more shows as "99+"). */
export const BADGE_MAX = 99;

export type NotifyPermission = 'default' | 'granted' | 'denied' | 'unsupported';

interface Prefs {
  on: boolean;
  text: boolean;
}

function readPrefs(): Prefs {
  try {
    const v = JSON.parse(localStorage.getItem(NOTIFY_PREFS_KEY) ?? '{}') as Partial<Prefs>;
    return { on: v.on === true, text: v.text !== false };
  } catch {
    return { on: false, text: true };
  }
}

export class Notifier {
  #prefs = readPrefs();
  readonly #changed: () => void;
  readonly #title: (conversation: string) => string;
  readonly #open: (conversation: string) => void;
  readonly #muted: (conversation: string) => boolean;
  /** Notifications shown (for tests: the page can be inspected without the OS). */
  shown = 0;
  /** Notifications closed because their conversation was read (here or on another device). */
  cleared = 0;
  /** The notification showing per conversation (one each: a newer one replaces it). */
  readonly #showing = new Map<string, Notification>();

  /** `muted`: a conversation (by id) that is muted now raises no notification (the SDK's mutes). */
  constructor(opts: { changed: () => void; title: (conversation: string) => string; open: (conversation: string) => void; muted: (conversation: string) => boolean }) {
    this.#changed = opts.changed;
    this.#title = opts.title;
    this.#open = opts.open;
    this.#muted = opts.muted;
  }

  get permission(): NotifyPermission {
    return typeof Notification === 'undefined' ? 'unsupported' : Notification.permission;
  }
  /** Notifications wanted and allowed. */
  get on(): boolean {
    return this.#prefs.on && this.permission === 'granted';
  }
  get showText(): boolean {
    return this.#prefs.text;
  }

  #save(p: Prefs): void {
    this.#prefs = p;
    try {
      localStorage.setItem(NOTIFY_PREFS_KEY, JSON.stringify(p));
    } catch {
      // private mode: kept for this page only
    }
    this.#changed();
  }

  /** Asks for permission (call it from a click) and turns notifications on if granted. */
  async enable(): Promise<NotifyPermission> {
    if (this.permission === 'unsupported') return 'unsupported';
    const p = this.permission === 'default' ? await Notification.requestPermission() : this.permission;
    this.#save({ ...this.#prefs, on: p === 'granted' });
    return p;
  }

  disable(): void {
    this.#save({ ...this.#prefs, on: false });
  }

  setShowText(text: boolean): void {
    this.#save({ ...this.#prefs, text });
  }

  /**
   * Conversations with nothing unread (read on this page, or on another device of the account:
   * the SDK's read sync): their notifications go, as Signal clears them.
   */
  read(conversations: Iterable<string>): void {
    for (const c of conversations) {
      const n = this.#showing.get(c);
      if (n === undefined) continue;
      this.#showing.delete(c);
      this.cleared++;
      try {
        n.close();
      } catch {
        // already gone
      }
    }
  }

  /** A stored incoming message: notify if the page is hidden, notifications are on and its conversation is not muted. */
  message(m: HistoryMessage): void {
    // Already read on another device of ours (a read sync that came before it): nothing to tell.
    if (m.direction !== 'in' || m.read === true || !this.on || document.visibilityState !== 'hidden') return;
    // Muted (Signal's and Slack's mute): stored and counted unread, but no alert.
    if (this.#muted(m.conversation)) return;
    const where = this.#title(m.conversation);
    const title = m.conversation.startsWith('g:') ? `${m.system === true ? '' : `${m.from} in `}${where}` : m.from;
    const text = m.attachment !== undefined && m.text === '' ? 'Sent a file' : m.text;
    const body = this.#prefs.text ? neutralizeControls(Array.from(text).slice(0, NOTIFY_TEXT_CHARS).join('')) : 'New message';
    try {
      // One notification per conversation: a newer one replaces the older (tag).
      const n = new Notification(neutralizeControls(title), { body, tag: m.conversation, silent: false });
      this.shown++;
      this.#showing.set(m.conversation, n);
      n.onclose = () => {
        if (this.#showing.get(m.conversation) === n) this.#showing.delete(m.conversation);
      };
      n.onclick = () => {
        window.focus();
        this.#open(m.conversation);
        n.close();
      };
    } catch {
      // Some browsers allow notifications only from a service worker: nothing to show then.
    }
  }
}

let lastBadge = -1;

/** Draws the unread count on the favicon (a plain icon at 0). */
export function setFaviconBadge(count: number): void {
  const n = Math.max(0, Math.floor(count));
  if (n === lastBadge) return;
  lastBadge = n;
  let link = document.querySelector<HTMLLinkElement>('link[rel="icon"]');
  if (link === null) {
    link = document.createElement('link');
    link.rel = 'icon';
    document.head.appendChild(link);
  }
  const canvas = document.createElement('canvas');
  canvas.width = 32;
  canvas.height = 32;
  const g = canvas.getContext('2d');
  if (g === null) return;
  g.fillStyle = '#2456c7';
  g.beginPath();
  g.arc(16, 16, 14, 0, Math.PI * 2);
  g.fill();
  if (n > 0) {
    g.fillStyle = '#d93025';
    g.beginPath();
    g.arc(22, 10, 10, 0, Math.PI * 2);
    g.fill();
    g.fillStyle = '#ffffff';
    g.font = 'bold 13px sans-serif';
    g.textAlign = 'center';
    g.textBaseline = 'middle';
    g.fillText(n > BADGE_MAX ? '99+' : String(n), 22, 11);
  }
  link.href = canvas.toDataURL('image/png');
  link.dataset['badge'] = String(n);
}
