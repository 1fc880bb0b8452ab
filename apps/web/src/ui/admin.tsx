import { useEffect, useState } from 'preact/hooks';
import { MAX_INVITES_PER_REQUEST, type AccountSummary } from '@tacit/api';
import type { AccountReset, TeamInvite } from '@tacit/client';
import { userMessage, type Chat } from '../chat.js';
import { useFocusOn } from './focus.js';
import { href } from './route.js';

const DATE = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
const until = (at: number): string => DATE.format(new Date(at));

/** Admins: invite links, the accounts with their devices, and resetting an account. */
export function Admin({ chat }: { chat: Chat }) {
  const team = chat.team;
  if (!team?.admin) {
    return (
      <section class="admin" aria-labelledby="admin-title">
        <h2 id="admin-title">Admin</h2>
        <p>Only admins see this page. The first account on a server is an admin; the server’s operator can name others.</p>
      </section>
    );
  }
  return (
    <section class="admin" aria-labelledby="admin-title">
      <header class="conv-header">
        <a class="back" href={href({ view: 'list' })} aria-label="Back to conversations">
          <span aria-hidden="true">‹</span> <span class="back-text">Conversations</span>
        </a>
        <h2 id="admin-title">Admin</h2>
      </header>
      <div class="admin-body">
        <Invites chat={chat} />
        <Accounts chat={chat} />
      </div>
    </section>
  );
}

function InviteLink({ invite, label }: { invite: TeamInvite; label: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <div class="invite" data-testid="invite-link">
      <label>
        {label} <span class="hint">(single use, valid until {until(invite.expiresAt)})</span>
        <input readOnly value={invite.link} onFocus={(e) => (e.target as HTMLInputElement).select()} />
      </label>
      <button
        type="button"
        onClick={() => {
          void navigator.clipboard?.writeText(invite.link).then(
            () => setCopied(true),
            () => setCopied(false),
          );
        }}
      >
        {copied ? 'Copied' : 'Copy'}
      </button>
    </div>
  );
}

function Invites({ chat }: { chat: Chat }) {
  const [invites, setInvites] = useState<TeamInvite[]>([]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>();
  const [count, setCount] = useState('1');
  const create = async () => {
    const n = Number(count);
    if (!/^[0-9]+$/.test(count.trim()) || n < 1 || n > MAX_INVITES_PER_REQUEST) {
      setError(`Choose how many links to create: a whole number from 1 to ${MAX_INVITES_PER_REQUEST}.`);
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      const made = await chat.team!.createInvites(n);
      setInvites((list) => [...made, ...list]);
    } catch (e) {
      setError(userMessage(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="admin-part">
      <h3>Invite people</h3>
      <p class="hint">Each link lets one person register. Send it to them over a channel you trust; it opens the register form with the code filled in.</p>
      <form
        class="invite-create"
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          void create();
        }}
      >
        <label>
          How many <input type="number" inputMode="numeric" min={1} max={MAX_INVITES_PER_REQUEST} value={count} onInput={(e) => setCount((e.target as HTMLInputElement).value)} />
        </label>
        <button type="submit" class="primary" disabled={busy}>
          {count.trim() === '1' ? 'Create invite link' : 'Create invite links'}
        </button>
      </form>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {invites.map((i) => (
        <InviteLink key={i.code} invite={i} label="Invite link" />
      ))}
    </div>
  );
}

function Accounts({ chat }: { chat: Chat }) {
  const [accounts, setAccounts] = useState<AccountSummary[] | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [confirming, setConfirming] = useState<string | undefined>();
  // Cancel has the focus when a reset's confirmation opens (one at a time).
  const cancelReset = useFocusOn<HTMLButtonElement>(confirming);
  const [reset, setReset] = useState<AccountReset | undefined>();
  const load = async () => {
    try {
      setAccounts(await chat.team!.accounts());
      setError(undefined);
    } catch (e) {
      setError(userMessage(e));
    }
  };
  useEffect(() => void load(), [chat]);
  const doReset = async (username: string) => {
    setConfirming(undefined);
    try {
      setReset(await chat.team!.resetAccount(username));
    } catch (e) {
      setError(userMessage(e));
    }
    await load();
  };
  return (
    <div class="admin-part">
      <h3>Accounts</h3>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {reset && (
        <div class="system" role="status" data-testid="reset-done">
          <p>
            {reset.username} was reset: {reset.removed.devices} device(s) and {reset.removed.messages} undelivered message(s) removed. Give {reset.username} this
            link to register again; their contacts will see that the safety number changed.
          </p>
          <InviteLink invite={reset.invite} label={`Invite link for ${reset.username}`} />
        </div>
      )}
      {accounts === undefined ? (
        <p class="hint">Loading…</p>
      ) : (
        <table class="accounts" data-testid="accounts">
          <thead>
            <tr>
              <th scope="col">Username</th>
              <th scope="col">Devices</th>
              <th scope="col">Registered</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {accounts.map((a) => (
              <tr key={a.username} data-account={a.username}>
                <th scope="row">
                  {a.username}
                  {a.admin && <span class="badge">admin</span>}
                </th>
                <td>{a.devices.length === 0 ? 'none' : a.devices.map((d) => `#${d.deviceId}`).join(', ')}</td>
                <td>{DATE.format(new Date(a.createdAt))}</td>
                <td>
                  {a.username === chat.username ? (
                    <span class="hint">you</span>
                  ) : confirming === a.username ? (
                    <span class="confirm" role="group" aria-label={`Confirm reset of ${a.username}`}>
                      <span>
                        Reset {a.username}? Their devices, keys and undelivered messages are deleted. Only do this if they lost their device and asked you.
                      </span>
                      <button type="button" class="danger" onClick={() => void doReset(a.username)}>
                        Reset
                      </button>
                      <button type="button" onClick={() => setConfirming(undefined)} ref={cancelReset}>
                        Cancel
                      </button>
                    </span>
                  ) : (
                    <button type="button" onClick={() => setConfirming(a.username)}>
                      Reset…
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
