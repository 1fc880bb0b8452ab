import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { checkText, describeTextProblem, MUTE_CHOICES, MUTED_FOREVER, neutralizeControls } from '@tacit/client';
import { sentence, type Chat, type MessageView } from '../chat.js';
import { linkify } from '../links.js';
import { useFocusOn } from './focus.js';
import { href } from './route.js';
import { MessageActions, Reactions, TimerSetting } from './edits.js';

const TIME = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const DAY = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric' });

function when(at: number): string {
  const d = new Date(at);
  if (Number.isNaN(d.getTime())) return '';
  const today = new Date();
  return d.toDateString() === today.toDateString() ? TIME.format(d) : `${DAY.format(d)} ${TIME.format(d)}`;
}

export function Conversation({ chat, contact }: { chat: Chat; contact: string }) {
  const group = contact.startsWith('g:') ? chat.groups?.get(contact) : undefined;
  // A group is named by its title (shown with controls neutralized), a contact by username.
  const name = group !== undefined ? neutralizeControls(group.title) : contact;
  const messages = chat.messages(contact);
  const blocked = chat.identityChanged(contact);
  const contactBlocked = chat.isBlocked(contact);
  const dropped = chat.conversation(contact)?.dropped ?? 0;
  const older = chat.hasOlder(contact);
  const failedDecrypts = chat.undecryptable.get(contact) ?? 0;
  const listRef = useRef<HTMLOListElement>(null);
  const unread = messages.some((m) => m.dir === 'in' && m.read === false);

  // Messages on screen are read (only while the tab is visible).
  useEffect(() => {
    if (!unread) return;
    const mark = () => {
      if (document.visibilityState === 'visible') void chat.markRead(contact).catch(() => undefined);
    };
    mark();
    document.addEventListener('visibilitychange', mark);
    return () => document.removeEventListener('visibilitychange', mark);
  }, [chat, contact, unread, messages.length]);

  // Keep the newest message in view, unless the reader scrolled up into the history (then only
  // their own new message brings them down).
  const atBottom = useRef(true);
  const last = messages[messages.length - 1];
  useLayoutEffect(() => {
    const el = listRef.current;
    if (el && (atBottom.current || last?.dir === 'out')) el.scrollTop = el.scrollHeight;
  }, [messages.length, contact]);
  const onScroll = () => {
    const el = listRef.current;
    if (el) atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 64;
  };

  return (
    <section class="conversation" aria-labelledby="conv-title">
      <header class="conv-header">
        <a class="back" href={href({ view: 'list' })} aria-label="Back to conversations">
          <span aria-hidden="true">‹</span> <span class="back-text">Conversations</span>
        </a>
        <h2 id="conv-title">{name}</h2>
        {/* The timer is a message to the contact: not while they are blocked or their safety number waits. */}
        <TimerSetting chat={chat} contact={contact} disabled={contactBlocked || blocked} />
        <MuteControl chat={chat} contact={contact} />
        {contact.startsWith('g:') ? (
          <a class="safety-link" href={href({ view: 'members', contact })} data-testid="members-link">
            {group !== undefined ? `${group.members.length} members` : 'Members'}
          </a>
        ) : (
          <>
            <a class="safety-link" href={href({ view: 'safety', contact })}>
              Safety number
            </a>
            <BlockControl chat={chat} contact={contact} blocked={contactBlocked} />
          </>
        )}
      </header>
      <ol class="messages" ref={listRef} onScroll={onScroll} tabIndex={0} aria-label={`Messages with ${name}`} aria-live="polite" data-testid="messages">
        {older && (
          <li class="older">
            <button type="button" class="link" onClick={() => void chat.showOlder(contact)}>
              Show older messages
            </button>
          </li>
        )}
        {!older && dropped > 0 && (
          <li class="hint pad" data-testid="dropped">
            {dropped === 1 ? 'An older message was' : `${dropped} older messages were`} removed to keep this browser’s history within its storage limits.
          </li>
        )}
        {messages.length === 0 && <li class="hint pad">No messages yet. Say hello — only {group !== undefined ? 'the members' : contact} can read it.</li>}
        {messages.map((m) => (
          // Nothing can be sent here (a changed safety number, or the contact blocked): no Retry, reactions or edits.
          <Message key={m.key} chat={chat} contact={contact} m={m} blocked={blocked || contactBlocked} online={chat.connection === 'online'} />
        ))}
      </ol>
      <TypingLine chat={chat} contact={contact} />
      {failedDecrypts > 0 && (
        <p class="system" role="status">
          {failedDecrypts === 1 ? 'A message' : `${failedDecrypts} messages`} from {contact} could not be decrypted and {failedDecrypts === 1 ? 'was' : 'were'} dropped.
        </p>
      )}
      {contactBlocked && (
        <p class="system" role="status" data-testid="blocked-notice">
          You blocked {contact}. Their messages, reactions and typing are not shown, and you cannot send to them. They are not told.
        </p>
      )}
      {blocked ? (
        <IdentityWarning contact={contact} />
      ) : group !== undefined && !group.member ? (
        <p class="hint pad">You are no longer a member of this group.</p>
      ) : (
        <Composer chat={chat} contact={contact} name={name} disabled={contactBlocked} />
      )}
    </section>
  );
}

/** "bob is typing…" (in a group, who), from the SDK's typing events; says nothing when no one is. */
function TypingLine({ chat, contact }: { chat: Chat; contact: string }) {
  const who = chat.typingIn(contact);
  const text = who.length === 0 ? '' : who.length === 1 ? `${who[0]} is typing…` : who.length === 2 ? `${who[0]} and ${who[1]} are typing…` : 'Several people are typing…';
  return (
    <p class="typing hint" aria-live="polite" data-testid="typing">
      {text}
    </p>
  );
}

/** `queued` reads as sending while connected, and as waiting while the server is unreachable. */
function stateText(state: NonNullable<MessageView['state']>, online: boolean): string {
  if (state === 'uploading') return 'Uploading…';
  if (state === 'queued') return online ? 'Sending…' : 'Waiting for the server';
  return state === 'sent' ? 'Stored by server' : 'Failed';
}

/**
 * A sent message's receipts as Signal shows them: one tick when the server stored it, two when
 * every recipient's device has it, two filled when every recipient has read it. In a group the
 * title says who has read it and who has it.
 */
function Ticks({ m }: { m: MessageView }) {
  const d = m.delivery ?? 'sent';
  const label = d === 'read' ? 'Read' : d === 'delivered' ? 'Delivered' : 'Sent';
  const who = [m.readBy?.length ? `read by ${m.readBy.join(', ')}` : '', m.deliveredTo?.length ? `delivered to ${m.deliveredTo.join(', ')}` : ''].filter((x) => x !== '').join('; ');
  return (
    <span class={`ticks ${d}`} data-testid="delivery" data-delivery={d} title={who !== '' ? `${label}: ${who}` : label}>
      <span class="tick-marks" aria-hidden="true">
        <span class="tick-glyph">{d === 'sent' ? '✓' : '✓✓'}</span>
      </span>{' '}
      {label}
      {who !== '' && d !== 'read' && <span class="visually-hidden"> ({who})</span>}
    </span>
  );
}

function Message({ chat, contact, m, blocked, online }: { chat: Chat; contact: string; m: MessageView; blocked: boolean; online: boolean }) {
  if (m.system) {
    return (
      <li class="msg system-line" data-system="true">
        {neutralizeControls(m.text)} <time dateTime={new Date(m.at).toISOString()}>{when(m.at)}</time>
      </li>
    );
  }
  const inGroup = contact.startsWith('g:');
  return (
    <li class={`msg ${m.dir} ${m.state ?? ''}`} data-dir={m.dir} data-state={m.state} data-from={m.from}>
      <span class="visually-hidden">{m.dir === 'in' ? `${inGroup ? m.from : contact} said: ` : 'You said: '}</span>
      {inGroup && m.dir === 'in' && (
        <span class="msg-from" aria-hidden="true">
          {m.from}
        </span>
      )}
      {m.deleted ? (
        <p class="msg-text msg-deleted" data-testid="msg-deleted">
          <em>This message was deleted</em>
        </p>
      ) : null}
      {!m.deleted && m.file && <FileView chat={chat} contact={contact} m={m} file={m.file} />}
      {!m.deleted && (!m.file || m.text !== '') && <p class="msg-text">
        {/* Controls and bidi overrides shown as U+FFFD, as the CLI does (links never contain them). */}
        {linkify(m.text).map((part, i) =>
          typeof part === 'string' ? (
            neutralizeControls(part)
          ) : (
            // A new tab that gets no handle on this page (noopener) and no Referer (noreferrer).
            <a key={i} href={part.href} target="_blank" rel="noopener noreferrer">
              {part.text}
            </a>
          ),
        )}
      </p>}
      {m.reactions && <Reactions m={m} />}
      <span class="msg-meta">
        <time dateTime={new Date(m.at).toISOString()}>{when(m.at)}</time>
        {m.edited && !m.deleted && <span class="msg-edited" data-testid="msg-edited"> · edited</span>}
        {m.disappearing && <span class="msg-timer" title={m.expiresAt !== undefined ? `Disappears at ${new Date(m.expiresAt).toLocaleString()}` : 'Disappears after it is read'}> · ⏱<span class="visually-hidden"> disappearing</span></span>}
        {m.state && (
          <span class="msg-state" data-testid="msg-state">
            {' · '}
            {m.state === 'sent' ? <Ticks m={m} /> : stateText(m.state, online)}
          </span>
        )}
      </span>
      {m.error && <span class="msg-error">{m.error}</span>}
      {!m.deleted && !blocked && <MessageActions chat={chat} contact={contact} m={m} />}
      {m.state === 'failed' && !blocked && (
        <button type="button" class="retry" onClick={() => void (m.file && !m.file.uploaded ? chat.files?.retry(contact, m.seq) : chat.retry(contact, m.seq))}>
          Retry
        </button>
      )}
    </li>
  );
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** A file in a message: an image inline (from the decrypted bytes), anything else as a download; an upload's progress with Cancel. */
function FileView({ chat, contact, m, file }: { chat: Chat; contact: string; m: MessageView; file: NonNullable<MessageView['file']> }) {
  const files = chat.files;
  const progress = files?.progress(contact, m.seq);
  const url = files?.url(contact, m.seq);
  const error = files?.error(contact, m.seq);
  const inline = file.uploaded && files !== undefined && files.autoLoads(file.type, file.size);
  useEffect(() => {
    if (inline && url === undefined && error === undefined) void files?.load(contact, m.seq);
  }, [inline, url, error, contact, m.seq]);
  const name = neutralizeControls(file.name);
  return (
    <div class="msg-file" data-testid="file" data-name={file.name}>
      {inline && url !== undefined ? (
        <img class="msg-image" src={url} alt={name} width={file.width} height={file.height} data-testid="file-image" />
      ) : (
        <span class="file-card">
          <span class="file-label">File: </span>
          <span class="file-name">{name}</span> <span class="file-size">({formatBytes(file.size)})</span>
        </span>
      )}
      {m.state === 'uploading' && progress !== undefined && (
        <span class="file-progress">
          <progress max={1} value={progress} aria-label={`Uploading ${name}`} data-testid="file-progress" />
          <button type="button" class="link" onClick={() => files?.cancel(contact, m.seq)} data-testid="file-cancel">
            Cancel
          </button>
        </span>
      )}
      {file.uploaded && url === undefined && (
        <button type="button" class="link" disabled={files?.isLoading(contact, m.seq)} onClick={() => void files?.save(contact, m.seq, file.name)} data-testid="file-download">
          {files?.isLoading(contact, m.seq) ? 'Downloading…' : 'Download'}
        </button>
      )}
      {url !== undefined && (
        <a class="link" href={url} download={file.name} data-testid="file-save">
          Save
        </a>
      )}
      {error && (
        <span class="msg-error" role="alert" data-testid="file-error">
          {error}
        </span>
      )}
    </div>
  );
}

/**
 * A header control's state: whether its menu or confirmation is open (closed again when the
 * conversation or `state` changes), `run` (an action that closes it when done, or says why it
 * failed), and that error.
 */
function useHeaderAction(contact: string, state: unknown): [boolean, (open: boolean) => void, (p: Promise<unknown>) => void, string | undefined] {
  const [open, setOpen] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  useEffect(() => setOpen(false), [contact, state]);
  const run = (p: Promise<unknown>) => {
    setError(undefined);
    void p.then(
      () => setOpen(false),
      (e: unknown) => setError(e instanceof Error ? e.message : 'That did not work.'),
    );
  };
  return [open, setOpen, run, error];
}

/**
 * Mute / Unmute in a conversation's header (pairwise or group): Mute opens a small menu with
 * Signal's choices (1 hour, 8 hours, 1 day, 7 days, Always). A muted conversation still shows its
 * messages and unread badge; it raises no notification and adds nothing to the title count.
 */
function MuteControl({ chat, contact }: { chat: Chat; contact: string }) {
  const until = chat.mutedUntil(contact);
  const [open, setOpen, run, error] = useHeaderAction(contact, until);
  return (
    <span class="mute-control">
      {until !== undefined ? (
        <>
          <span class="hint" data-testid="muted-until" title="No notifications for this conversation">
            🔕 {until === MUTED_FOREVER ? 'Muted' : `Muted until ${when(until)}`}
          </span>{' '}
          <button type="button" class="link" onClick={() => run(chat.unmute(contact))} data-testid="unmute">
            Unmute
          </button>
        </>
      ) : (
        <button type="button" class="link" aria-expanded={open} onClick={() => setOpen(!open)} data-testid="mute">
          Mute
        </button>
      )}
      {open && until === undefined && (
        <span class="mute-menu" role="menu" aria-label="Mute notifications for" data-testid="mute-menu">
          {MUTE_CHOICES.map((c) => (
            <button key={c.ms} type="button" class="small" role="menuitem" onClick={() => run(chat.mute(contact, c.ms))}>
              {c.label}
            </button>
          ))}
          <button type="button" class="small" role="menuitem" onClick={() => run(chat.mute(contact, 'always'))} data-testid="mute-always">
            Always
          </button>
        </span>
      )}
      {error && (
        <span class="error" role="alert">
          {error}
        </span>
      )}
    </span>
  );
}

/**
 * Block / Unblock in a conversation's header. Blocking asks first, saying what it does; unblocking
 * does not (nothing is lost by it).
 */
function BlockControl({ chat, contact, blocked }: { chat: Chat; contact: string; blocked: boolean }) {
  const [confirming, setConfirming, run, error] = useHeaderAction(contact, blocked);
  const confirmRef = useFocusOn<HTMLButtonElement>(confirming && !blocked);
  return (
    <span class="block-control">
      {blocked ? (
        <button type="button" class="link" onClick={() => run(chat.unblock(contact))} data-testid="unblock">
          Unblock
        </button>
      ) : confirming ? (
        <span class="confirm" role="group" aria-label={`Block ${contact}?`} data-testid="block-confirm">
          <span class="hint">
            Block {contact}? You will no longer see their messages, reactions or typing (here and in groups), and nothing you send reaches them. They are not
            told. Your other devices block them too.
          </span>{' '}
          <button type="button" class="danger small" ref={confirmRef} onClick={() => run(chat.block(contact))} data-testid="confirm-block">
            Block
          </button>{' '}
          <button type="button" class="small" onClick={() => setConfirming(false)}>
            Cancel
          </button>
        </span>
      ) : (
        <button type="button" class="link" onClick={() => setConfirming(true)} data-testid="block">
          Block
        </button>
      )}
      {error && (
        <span class="error" role="alert">
          {error}
        </span>
      )}
    </span>
  );
}

function Composer({ chat, contact, name, disabled = false }: { chat: Chat; contact: string; name: string; disabled?: boolean }) {
  const [text, setText] = useState('');
  // Focused on opening a conversation, and when it can be written in again.
  const ref = useFocusOn<HTMLTextAreaElement>(disabled ? false : contact);
  const fileRef = useRef<HTMLInputElement>(null);
  const [dragging, setDragging] = useState(false);
  const canAttach = chat.files !== undefined;
  const attach = (list: FileList | null | undefined) => {
    if (!canAttach || !list) return;
    for (const f of Array.from(list)) void chat.files?.send(contact, f);
  };
  // Checked as the user types or pastes; too long is said, and the text stays for them to shorten.
  const problem = text.trim() === '' ? undefined : checkText(text);
  const send = () => {
    const t = text;
    if (disabled || t.trim() === '' || problem !== undefined) return;
    setText('');
    chat.typing(contact, false);
    void chat.send(contact, t);
    ref.current?.focus();
  };
  return (
    <>
      {problem && (
        <p class="error composer-error" id="composer-error" role="alert" data-testid="composer-error">
          {sentence(describeTextProblem(problem))} Shorten it or send it in parts; your text is kept.
        </p>
      )}
      <form
        class={`composer${dragging ? ' dragging' : ''}`}
        onSubmit={(e) => {
          e.preventDefault();
          send();
        }}
        onDragOver={(e) => {
          if (!canAttach || !e.dataTransfer?.types.includes('Files')) return;
          e.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={(e) => {
          if (!canAttach) return;
          e.preventDefault();
          setDragging(false);
          attach(e.dataTransfer?.files);
        }}
      >
        {canAttach && (
          <>
            <input
              type="file"
              ref={fileRef}
              class="visually-hidden"
              id="composer-file"
              multiple
              tabIndex={-1}
              data-testid="file-input"
              onChange={(e) => {
                const input = e.target as HTMLInputElement;
                attach(input.files);
                input.value = '';
              }}
            />
            <button type="button" class="attach" aria-label="Attach a file" title="Attach a file" disabled={disabled} onClick={() => fileRef.current?.click()} data-testid="attach">
              Attach
            </button>
          </>
        )}
        <label for="composer-text" class="visually-hidden">
          Message to {name}
        </label>
        <textarea
          id="composer-text"
          ref={ref}
          rows={1}
          placeholder={disabled ? `${name} is blocked` : `Message ${name}`}
          disabled={disabled}
          value={text}
          onInput={(e) => {
            const v = (e.target as HTMLTextAreaElement).value;
            setText(v);
            // Typing indicator (rate limited in the SDK); an emptied box says stopped.
            chat.typing(contact, v.trim() !== '');
          }}
          onPaste={(e) => {
            // A pasted image (a screenshot) is sent as a file; pasted text stays text.
            const files = e.clipboardData?.files;
            if (canAttach && files && files.length > 0) {
              e.preventDefault();
              attach(files);
            }
          }}
          onKeyDown={(e) => {
            // Enter sends; Shift+Enter is a new line; IME composition is left alone.
            if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
              e.preventDefault();
              send();
            }
          }}
          aria-describedby={problem ? 'composer-hint composer-error' : 'composer-hint'}
          aria-invalid={problem ? true : undefined}
        />
        <span id="composer-hint" class="visually-hidden">
          Enter sends, Shift+Enter adds a line.
        </span>
        <button type="submit" class="primary" disabled={disabled || problem !== undefined}>
          Send
        </button>
      </form>
    </>
  );
}

function IdentityWarning({ contact }: { contact: string }) {
  const ref = useFocusOn<HTMLAnchorElement>(contact);
  return (
    <div class="identity-warning" role="alert" data-testid="identity-warning">
      <h3>Your safety number with {contact} has changed</h3>
      <p>
        This happens when {contact} reinstalls tacit or registers again — or when someone is trying to intercept your conversation. Sending is paused, and
        messages from {contact} are held unread, until you compare the new safety number with {contact} in person or over another channel you trust.
      </p>
      <a ref={ref} class="button primary" href={href({ view: 'safety', contact })}>
        Compare safety numbers
      </a>
    </div>
  );
}
