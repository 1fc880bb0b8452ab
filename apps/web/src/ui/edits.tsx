/**
 * Edits, deletions for everyone, reactions, the disappearing timer and search (issue 14), as
 * small controls beside the conversation. Every control is a button, a select or a form field:
 * reachable and usable with the keyboard (Escape closes what a button opened).
 */
import { useState } from 'preact/hooks';
import { MAX_DISAPPEARING_MS, MAX_REACTION_LENGTH, MIN_DISAPPEARING_MS, checkText, describeDuration, describeTextProblem, neutralizeControls, parseDuration } from '@tacit/client';
import { sentence, userMessage, type Chat, type MessageView, type SearchHit } from '../chat.js';
import { useFocusOn } from './focus.js';
import { href } from './route.js';

/** The reactions offered in one click (Signal's default set); any other single emoji can be typed beside them. */
export const QUICK_REACTIONS = ['👍', '❤️', '😂', '😮', '😢', '🎉'] as const;

/** Timer choices (ms); 0 is off. */
export const TIMER_CHOICES: readonly { ms: number; label: string }[] = [
  { ms: 0, label: 'Off' },
  { ms: 30_000, label: '30 seconds' },
  { ms: 5 * 60_000, label: '5 minutes' },
  { ms: 3600_000, label: '1 hour' },
  { ms: 24 * 3600_000, label: '1 day' },
  { ms: 7 * 24 * 3600_000, label: '1 week' },
];

export function Reactions({ m }: { m: MessageView }) {
  if (!m.reactions || m.reactions.length === 0) return null;
  return (
    <ul class="reactions" data-testid="reactions" aria-label="Reactions">
      {m.reactions.map((r) => (
        <li key={r.emoji} class={r.mine ? 'reaction mine' : 'reaction'} title={r.from.join(', ')} data-emoji={r.emoji}>
          {neutralizeControls(r.emoji)}
          {r.from.length > 1 ? <span class="reaction-count"> {r.from.length}</span> : null}
          <span class="visually-hidden"> from {r.from.join(', ')}</span>
        </li>
      ))}
    </ul>
  );
}

type ActionMode = 'idle' | 'react' | 'edit' | 'delete';

/** React, Edit and Delete under a message; Edit opens an inline editor, Delete asks once more. */
export function MessageActions({ chat, contact, m }: { chat: Chat; contact: string; m: MessageView }) {
  const [mode, setMode] = useState<ActionMode>('idle');
  const [error, setError] = useState<string | undefined>();
  // What closed last (a new object each time): the button that opened it takes the focus back,
  // so a keyboard user stays on the message rather than at the top of the page.
  const [closed, setClosed] = useState<{ from: ActionMode } | undefined>();
  const close = () => {
    setClosed({ from: mode });
    setMode('idle');
  };
  const firstEmoji = useFocusOn<HTMLButtonElement>(mode === 'react');
  const confirmDelete = useFocusOn<HTMLButtonElement>(mode === 'delete');
  const reactButton = useFocusOn<HTMLButtonElement>(closed?.from === 'react' && closed);
  const editButton = useFocusOn<HTMLButtonElement>(closed?.from === 'edit' && closed);
  const deleteButton = useFocusOn<HTMLButtonElement>(closed?.from === 'delete' && closed);
  if (m.system || m.state === 'queued' || m.state === 'uploading' || m.state === 'failed') return null;
  const run = (p: Promise<void>) => {
    setError(undefined);
    p.then(
      () => close(),
      (e: unknown) => setError(userMessage(e)),
    );
  };
  const escape = (e: KeyboardEvent) => {
    if (e.key === 'Escape' && mode !== 'idle') close();
  };
  return (
    <div class="msg-actions" onKeyDown={escape}>
      {mode === 'idle' && (
        <>
          <button type="button" class="link small" onClick={() => setMode('react')} ref={reactButton} data-testid="react-button" aria-label="React to this message">
            React
          </button>
          {m.editable && (
            <>
              <button type="button" class="link small" onClick={() => setMode('edit')} ref={editButton} data-testid="edit-button">
                Edit
              </button>
              <button type="button" class="link small" onClick={() => setMode('delete')} ref={deleteButton} data-testid="delete-button">
                Delete
              </button>
            </>
          )}
        </>
      )}
      {mode === 'react' && (
        <span class="reaction-picker" role="group" aria-label="Pick a reaction" data-testid="reaction-picker">
          {QUICK_REACTIONS.map((emoji, i) => {
            const mine = m.reactions?.some((r) => r.mine && r.emoji === emoji) ?? false;
            return (
              <button
                key={emoji}
                type="button"
                class={mine ? 'emoji mine' : 'emoji'}
                aria-pressed={mine}
                aria-label={mine ? `Remove ${emoji}` : `React ${emoji}`}
                ref={i === 0 ? firstEmoji : undefined}
                onClick={() => run(chat.react(contact, m.id, emoji, mine))}
              >
                {emoji}
              </button>
            );
          })}
          <OtherEmoji onPick={(emoji) => run(chat.react(contact, m.id, emoji, false))} />
          <button type="button" class="link small" onClick={close}>
            Cancel
          </button>
        </span>
      )}
      {mode === 'edit' && <EditForm initial={m.text} onSave={(t) => run(chat.edit(contact, m.id, t))} onCancel={close} />}
      {mode === 'delete' && (
        <span class="confirm-delete" role="group" aria-label="Delete for everyone?">
          <span>Delete for everyone?</span>{' '}
          <button type="button" class="danger small" ref={confirmDelete} onClick={() => run(chat.deleteForEveryone(contact, m.id))} data-testid="confirm-delete">
            Delete for everyone
          </button>{' '}
          <button type="button" class="link small" onClick={close}>
            Cancel
          </button>
        </span>
      )}
      {error && (
        <span class="msg-error" role="alert">
          {error}
        </span>
      )}
    </div>
  );
}

/** Any single emoji, as `tacit react` takes it (the SDK refuses anything else, in words). */
function OtherEmoji({ onPick }: { onPick: (emoji: string) => void }) {
  const [value, setValue] = useState('');
  const pick = () => {
    const v = value.trim();
    if (v !== '') onPick(v);
  };
  return (
    <>
      <input
        class="other-emoji"
        aria-label="Another emoji"
        placeholder="other"
        size={5}
        maxLength={MAX_REACTION_LENGTH}
        autoComplete="off"
        value={value}
        data-testid="other-emoji"
        onInput={(e) => setValue((e.target as HTMLInputElement).value)}
        onKeyDown={(e) => {
          if (e.key === 'Enter' && !e.isComposing) {
            e.preventDefault();
            pick();
          }
        }}
      />
      <button type="button" class="link small" disabled={value.trim() === ''} onClick={pick}>
        React
      </button>
    </>
  );
}

function EditForm({ initial, onSave, onCancel }: { initial: string; onSave: (text: string) => void; onCancel: () => void }) {
  const [text, setText] = useState(initial);
  const ref = useFocusOn<HTMLTextAreaElement>(true, true);
  const problem = text.trim() === '' ? undefined : checkText(text);
  const save = () => {
    if (text.trim() === '' || problem !== undefined || text === initial) return;
    onSave(text);
  };
  return (
    <form
      class="edit-form"
      onSubmit={(e) => {
        e.preventDefault();
        save();
      }}
    >
      <label class="visually-hidden" for="edit-text">
        Edit your message
      </label>
      <textarea
        id="edit-text"
        ref={ref}
        rows={2}
        value={text}
        data-testid="edit-text"
        onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
        onKeyDown={(e) => {
          if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            save();
          } else if (e.key === 'Escape') onCancel();
        }}
      />
      {problem && <span class="error">{sentence(describeTextProblem(problem))}</span>}
      <button type="submit" class="primary small" disabled={problem !== undefined} data-testid="edit-save">
        Save
      </button>{' '}
      <button type="button" class="link small" onClick={onCancel}>
        Cancel
      </button>
    </form>
  );
}

/** The select's value that opens the field for a timer of one's own choosing. */
const OTHER_TIMER = 'other';

/**
 * The conversation's disappearing-messages timer: a select in the header, changed for everyone.
 * "Other…" takes any duration `tacit timer` takes (30s, 90m, 2d, 1w…, within the protocol's bounds).
 */
export function TimerSetting({ chat, contact, disabled = false }: { chat: Chat; contact: string; disabled?: boolean }) {
  const current = chat.conversation(contact)?.timer ?? 0;
  const [error, setError] = useState<string | undefined>();
  const [other, setOther] = useState(false);
  const [typed, setTyped] = useState('');
  const otherRef = useFocusOn<HTMLInputElement>(other);
  const known = TIMER_CHOICES.some((c) => c.ms === current);
  const set = (ms: number) => {
    setError(undefined);
    chat.setTimer(contact, ms).catch((err: unknown) => setError(userMessage(err)));
  };
  const submitOther = (e: Event) => {
    e.preventDefault();
    const ms = parseDuration(typed);
    if (ms === undefined) {
      setError(`Type a duration from ${describeDuration(MIN_DISAPPEARING_MS)} to ${describeDuration(MAX_DISAPPEARING_MS)}, such as 30s, 90m, 2h, 3d or 1w (or off).`);
      return;
    }
    setOther(false);
    setTyped('');
    set(ms);
  };
  return (
    <span class="timer-setting">
      <label for="timer-select">
        <span aria-hidden="true">⏱</span>
        <span class="visually-hidden">Disappearing messages</span>
      </label>
      <select
        id="timer-select"
        data-testid="timer-select"
        value={other ? OTHER_TIMER : String(current)}
        disabled={disabled}
        title={disabled ? 'Disappearing messages (nothing can be sent here now)' : 'Disappearing messages'}
        onChange={(e) => {
          const v = (e.target as HTMLSelectElement).value;
          if (v === OTHER_TIMER) {
            setError(undefined);
            setOther(true);
            return;
          }
          setOther(false);
          set(Number(v));
        }}
      >
        {!known && <option value={String(current)}>{describeDuration(current)}</option>}
        {TIMER_CHOICES.map((c) => (
          <option key={c.ms} value={String(c.ms)}>
            {c.ms === 0 ? 'Disappearing: off' : c.label}
          </option>
        ))}
        <option value={OTHER_TIMER}>Other…</option>
      </select>
      {other && !disabled && (
        <form class="timer-other" onSubmit={submitOther}>
          <label>
            <span class="visually-hidden">Disappear after</span>
            <input
              data-testid="timer-other"
              value={typed}
              placeholder="e.g. 90m, 2d"
              size={10}
              ref={otherRef}
              onInput={(e) => setTyped((e.target as HTMLInputElement).value)}
              onKeyDown={(e) => {
                if (e.key === 'Escape') {
                  setOther(false);
                  setError(undefined);
                }
              }}
            />
          </label>
          <button type="submit">Set</button>
        </form>
      )}
      {error && (
        <span class="msg-error" role="alert">
          {error}
        </span>
      )}
    </span>
  );
}

/** Search of this browser's history: every word, as a word prefix; deleted and disappeared messages are gone. */
export function Search({ chat }: { chat: Chat }) {
  const [query, setQuery] = useState('');
  const [hits, setHits] = useState<SearchHit[] | undefined>();
  const [error, setError] = useState<string | undefined>();
  const submit = (e: Event) => {
    e.preventDefault();
    if (query.trim() === '') {
      setHits(undefined);
      return;
    }
    setError(undefined);
    chat.search(query).then(setHits, (err: unknown) => {
      setHits(undefined);
      setError(userMessage(err));
    });
  };
  return (
    <form class="search" role="search" onSubmit={submit}>
      <label for="search-box" class="visually-hidden">
        Search messages
      </label>
      <div class="row">
        <input id="search-box" type="search" placeholder="Search messages" maxLength={200} value={query} onInput={(e) => setQuery((e.target as HTMLInputElement).value)} data-testid="search-box" />
        <button type="submit">Search</button>
      </div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {hits !== undefined && (
        <ul class="search-results" data-testid="search-results" aria-label="Search results">
          {hits.length === 0 && <li class="hint">Nothing found.</li>}
          {hits.map((h, i) => (
            <li key={i} data-testid="search-hit">
              <a href={href({ view: 'chat', contact: h.contact })}>
                <span class="hit-where">{neutralizeControls(h.title)}</span> <time dateTime={new Date(h.at).toISOString()}>{new Date(h.at).toLocaleDateString()}</time>
                <span class="hit-text">
                  {h.dir === 'out' ? 'You' : h.from}: {neutralizeControls(h.text)}
                </span>
              </a>
            </li>
          ))}
        </ul>
      )}
    </form>
  );
}
