import { useState } from 'preact/hooks';
import { neutralizeControls } from '@tacit/client';
import { userMessage, type Chat } from '../chat.js';
import { GroupsModel } from '../groups.js';
import { useFocusOn } from './focus.js';
import { href, navigate } from './route.js';

/** "New group": a title and the members (usernames, separated by commas or spaces). */
export function NewGroup({ chat }: { chat: Chat }) {
  const [title, setTitle] = useState('');
  const [members, setMembers] = useState('');
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const ref = useFocusOn<HTMLInputElement>();
  const submit = async (e: Event) => {
    e.preventDefault();
    const groups = chat.groups;
    if (busy || groups === undefined) return;
    setBusy(true);
    setError(undefined);
    try {
      const g = await groups.create(title, GroupsModel.parseMembers(members));
      navigate({ view: 'chat', contact: g.conversation });
    } catch (err) {
      setError(userMessage(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="card group-form" aria-labelledby="new-group-title">
      <header class="conv-header">
        <a class="back" href={href({ view: 'list' })} aria-label="Back to conversations">
          <span aria-hidden="true">‹</span> <span class="back-text">Conversations</span>
        </a>
        <h2 id="new-group-title">New group</h2>
      </header>
      <form onSubmit={(e) => void submit(e)}>
        <label for="group-title">Title</label>
        <input id="group-title" ref={ref} maxLength={100} value={title} onInput={(e) => setTitle((e.target as HTMLInputElement).value)} autoComplete="off" />
        <label for="group-members">Members</label>
        <input
          id="group-members"
          placeholder="bob, carol"
          value={members}
          onInput={(e) => setMembers((e.target as HTMLInputElement).value)}
          autoComplete="off"
          autoCapitalize="none"
          spellcheck={false}
          aria-describedby="group-members-hint"
        />
        <p class="hint" id="group-members-hint">
          Usernames, separated by commas. You are the group’s admin: you can add and remove members and rename it later.
        </p>
        {error && (
          <p class="error" role="alert" data-testid="group-error">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy || title.trim() === '' || members.trim() === ''}>
          {busy ? 'Creating…' : 'Create group'}
        </button>
      </form>
    </section>
  );
}

/** A group's members, admins, and (for admins) adding, removing, making admins and renaming; leaving for anyone. */
export function GroupMembers({ chat, contact }: { chat: Chat; contact: string }) {
  const groups = chat.groups;
  const g = groups?.get(contact);
  const [adding, setAdding] = useState('');
  const [title, setTitle] = useState(g?.title ?? '');
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  if (groups === undefined || g === undefined) return <p class="hint pad">No such group on this browser.</p>;
  const admin = groups.isAdmin(contact);
  const run = async (action: () => Promise<void>) => {
    if (busy) return;
    setBusy(true);
    setError(undefined);
    try {
      await action();
    } catch (err) {
      setError(userMessage(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="card group-form" aria-labelledby="members-title">
      <header class="conv-header">
        <a class="back" href={href({ view: 'chat', contact })} aria-label="Back to the group">
          <span aria-hidden="true">‹</span> <span class="back-text">{neutralizeControls(g.title)}</span>
        </a>
        <h2 id="members-title">Members of {neutralizeControls(g.title)}</h2>
      </header>
      {!g.member && <p class="hint">You are no longer a member of this group.</p>}
      <ul class="members" data-testid="members">
        {g.members.map((u) => (
          <li key={u} data-member={u}>
            <span class="member-name">{u}</span>
            {g.admins.includes(u) && <span class="badge">admin</span>}
            {u !== chat.username && chat.identityChanged(u) && (
              <span class="badge warn" title="Safety number changed">
                ⚠<span class="visually-hidden"> safety number changed</span>
              </span>
            )}
            {/* As `tacit safety-number <member>`: verify a member without starting a conversation first. */}
            {u !== chat.username && (
              <a class="link" href={href({ view: 'safety', contact: u })} aria-label={`Safety number with ${u}`} data-testid="member-safety">
                Safety number
              </a>
            )}
            {/* Any admin may make or unmake one; never the last admin (the SDK refuses, and so does this). */}
            {admin && !g.admins.includes(u) && (
              <button type="button" class="link" disabled={busy} onClick={() => void run(() => groups.setAdmin(contact, u, true))} aria-label={`Make ${u} an admin`} data-testid="make-admin">
                Make admin
              </button>
            )}
            {admin && g.admins.includes(u) && g.admins.length > 1 && (
              <button type="button" class="link" disabled={busy} onClick={() => void run(() => groups.setAdmin(contact, u, false))} aria-label={`Remove admin rights of ${u}`} data-testid="remove-admin">
                Remove admin
              </button>
            )}
            {admin && u !== chat.username && (
              <button type="button" class="link danger-link" disabled={busy} onClick={() => void run(() => groups.remove(contact, u))} aria-label={`Remove ${u}`}>
                Remove
              </button>
            )}
          </li>
        ))}
      </ul>
      {admin && (
        <>
          <form
            class="row"
            onSubmit={(e) => {
              e.preventDefault();
              void run(async () => {
                await groups.add(contact, GroupsModel.parseMembers(adding));
                setAdding('');
              });
            }}
          >
            <label for="add-members" class="visually-hidden">
              Add members
            </label>
            <input id="add-members" placeholder="add: username" value={adding} onInput={(e) => setAdding((e.target as HTMLInputElement).value)} autoCapitalize="none" spellcheck={false} />
            <button type="submit" disabled={busy || adding.trim() === ''}>
              Add
            </button>
          </form>
          <form
            class="row"
            onSubmit={(e) => {
              e.preventDefault();
              void run(() => groups.rename(contact, title));
            }}
          >
            <label for="rename-group" class="visually-hidden">
              Group title
            </label>
            <input id="rename-group" maxLength={100} value={title} onInput={(e) => setTitle((e.target as HTMLInputElement).value)} />
            <button type="submit" disabled={busy || title.trim() === '' || title.trim() === g.title}>
              Rename
            </button>
          </form>
        </>
      )}
      {error && (
        <p class="error" role="alert" data-testid="group-error">
          {error}
        </p>
      )}
      {g.member && (
        <button type="button" class="danger" disabled={busy} onClick={() => void run(() => groups.leave(contact))}>
          Leave group
        </button>
      )}
    </section>
  );
}
