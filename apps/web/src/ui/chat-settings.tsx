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
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </>
  );
}
