import { useState } from 'preact/hooks';
import { neutralizeControls } from '@tacit/client';
import { userMessage, type Chat } from '../chat.js';
import { href, navigate } from './route.js';
import { Search } from './edits.js';

export function ConversationList({ chat, selected }: { chat: Chat; selected: string | undefined }) {
  const list = chat.conversations();
  return (
    <div class="conversations">
      <NewConversation chat={chat} />
      <a class="button new-group-link" href={href({ view: 'new-group' })} data-testid="new-group">
        New group
      </a>
      <Search chat={chat} />
      <h2 class="visually-hidden">Conversations</h2>
      {list.length === 0 ? (
        <p class="hint pad">No conversations yet.</p>
      ) : (
        <ul class="conv-list" data-testid="conversation-list">
          {list.map((c) => (
            <li key={c.username}>
              <a
                href={href({ view: 'chat', contact: c.username })}
                class={`conv ${c.username === selected ? 'selected' : ''}`}
                aria-current={c.username === selected ? 'page' : undefined}
                data-contact={c.username}
              >
                <span class="conv-name">{c.title !== undefined ? `# ${neutralizeControls(c.title)}` : c.username}</span>
                {c.identityChanged && (
                  <span class="badge warn" title="Safety number changed">
                    ⚠<span class="visually-hidden"> safety number changed</span>
                  </span>
                )}
                {chat.isBlocked(c.username) && (
                  <span class="badge" data-testid="blocked-badge" title="Blocked: nothing from them is shown">
                    blocked
                  </span>
                )}
                {chat.mutedUntil(c.username) !== undefined && (
                  <span class="muted-icon" data-testid="muted-badge" title="Muted: no notifications">
                    🔕<span class="visually-hidden"> muted</span>
                  </span>
                )}
                {c.unread > 0 && (
                  <span class="badge unread" data-testid="unread" aria-label={`${c.unread} unread`}>
                    {c.unread}
                  </span>
                )}
                <span class="conv-preview">{c.preview}</span>
              </a>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

function NewConversation({ chat }: { chat: Chat }) {
  const [name, setName] = useState('');
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  // The team directory (when the server has it on): registered usernames to pick from.
  const suggestions = chat.team?.directory ?? [];
  const submit = async (e: Event) => {
    e.preventDefault();
    if (busy || name.trim() === '') return;
    setBusy(true);
    setError(undefined);
    try {
      const contact = await chat.startConversation(name);
      setName('');
      navigate({ view: 'chat', contact });
    } catch (err) {
      setError(userMessage(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="new-conv" onSubmit={(e) => void submit(e)}>
      <label for="new-conv-name">Start a conversation</label>
      <div class="row">
        <input
          id="new-conv-name"
          placeholder="username"
          list={suggestions.length > 0 ? 'directory-users' : undefined}
          onFocus={() => void chat.team?.refresh()}
          autoComplete="off"
          autoCapitalize="none"
          spellcheck={false}
          maxLength={32}
          value={name}
          onInput={(e) => setName((e.target as HTMLInputElement).value)}
          aria-describedby={error ? 'new-conv-error' : undefined}
        />
        <button type="submit" disabled={busy}>
          {busy ? '…' : 'Start'}
        </button>
      </div>
      {suggestions.length > 0 && (
        <datalist id="directory-users" data-testid="directory">
          {suggestions.map((u) => (
            <option key={u} value={u} />
          ))}
        </datalist>
      )}
      {error && (
        <p class="error" id="new-conv-error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}
