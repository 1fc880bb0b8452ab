import { useEffect, useState } from 'preact/hooks';
import type { ChatSettings } from '@tacit/client';
import type { Chat } from '../chat.js';

/**
 * Settings: read receipts and typing indicators (stored with this browser's account records).
 * As in Signal, with read receipts off none are sent and others' are not shown.
 */
export function ChatSettingsPanel({ chat }: { chat: Chat }) {
  const [s, setS] = useState<ChatSettings | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  useEffect(() => {
    void chat.chatSettings().then(setS, () => setError('The settings could not be read.'));
  }, [chat]);
  const change = (c: Partial<ChatSettings>) => {
    setError(undefined);
    void chat.updateChatSettings(c).then(setS, () => setError('The setting could not be saved.'));
  };
  return (
    <>
      <h2>Privacy</h2>
      <fieldset class="toggles" disabled={s === undefined} data-testid="chat-settings">
        <label>
          <input type="checkbox" checked={s?.readReceipts ?? true} onChange={(e) => change({ readReceipts: e.currentTarget.checked })} data-testid="read-receipts" /> Read receipts
        </label>
        <p class="hint">When off, people are not told you read their messages, and you do not see when they read yours. Delivery receipts are always sent.</p>
        <label>
          <input type="checkbox" checked={s?.typingIndicators ?? true} onChange={(e) => change({ typingIndicators: e.currentTarget.checked })} data-testid="typing-indicators" /> Typing indicators
        </label>
        <p class="hint">When off, people do not see when you are typing, and you do not see when they are.</p>
      </fieldset>
      <BlockedList chat={chat} />
      <Notifications chat={chat} />
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </>
  );
}

/** Settings: browser notifications (permission asked only when the button is pressed). */
function Notifications({ chat }: { chat: Chat }) {
  const n = chat.notifier;
  if (n === undefined) return null;
  const permission = n.permission;
  return (
    <>
      <h2>Notifications</h2>
      <p class="hint" data-testid="notify-state">
        {permission === 'unsupported'
          ? 'This browser cannot show notifications.'
          : permission === 'denied'
            ? 'Notifications are blocked for this site in the browser’s settings.'
            : n.on
              ? 'On: a message that arrives while tacit is in the background shows a notification.'
              : 'Off. The tab title and icon show how many messages are unread either way.'}
      </p>
      {permission !== 'unsupported' && permission !== 'denied' && (
        <p>
          {n.on ? (
            <button type="button" onClick={() => n.disable()} data-testid="notify-off">
              Turn off notifications
            </button>
          ) : (
            <button type="button" class="primary" onClick={() => void n.enable()} data-testid="notify-on">
              Turn on notifications
            </button>
          )}
        </p>
      )}
      <label>
        <input type="checkbox" checked={n.showText} onChange={(e) => n.setShowText(e.currentTarget.checked)} data-testid="notify-text" /> Show the message text in notifications
      </label>
      <p class="hint">When off, a notification says only who wrote ("New message").</p>
    </>
  );
}

/** Settings: the users this account blocks, each with Unblock. */
function BlockedList({ chat }: { chat: Chat }) {
  const [error, setError] = useState<string | undefined>(undefined);
  return (
    <>
      <h2>Blocked</h2>
      {chat.blocked.length === 0 ? (
        <p class="hint" data-testid="blocked-none">
          Nobody is blocked. Block someone from the header of your conversation with them.
        </p>
      ) : (
        <ul class="blocked" data-testid="blocked-list">
          {chat.blocked.map((u) => (
            <li key={u}>
              <strong>{u}</strong>{' '}
              <button type="button" class="link" onClick={() => void chat.unblock(u).then(() => setError(undefined), () => setError(`${u} could not be unblocked.`))} data-testid={`unblock-${u}`}>
                Unblock
              </button>
            </li>
          ))}
        </ul>
      )}
      <p class="hint">A blocked person’s messages, reactions and typing are not shown (in groups too), and nothing you send reaches them. They are not told.</p>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </>
  );
}
