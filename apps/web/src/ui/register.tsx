import { useState } from 'preact/hooks';
import { inviteCodeFromFragment } from '@tacit/api';
import type { Chat } from '../chat.js';

/** An invite link (`/#invite=CODE`, or the older `?invite=CODE`) fills the code in. */
function inviteFromLocation(): string {
  return inviteCodeFromFragment(location.hash) ?? new URLSearchParams(location.search).get('invite')?.slice(0, 64) ?? '';
}

export function Register({ chat, busy, error }: { chat: Chat; busy: boolean; error: string | undefined }) {
  const [username, setUsername] = useState('');
  const [invite, setInvite] = useState(inviteFromLocation);
  const submit = (e: Event) => {
    e.preventDefault();
    void chat.register(username, invite);
  };
  return (
    <main class="card register" aria-labelledby="reg-title">
      <h1 id="reg-title">tacit</h1>
      <p class="lede">End-to-end encrypted chat for your team. Your keys are made in this browser and never leave it.</p>
      <form onSubmit={submit}>
        <label for="reg-username">Username</label>
        <input
          id="reg-username"
          name="username"
          autoComplete="username"
          autoCapitalize="none"
          spellcheck={false}
          required
          minLength={3}
          maxLength={32}
          value={username}
          onInput={(e) => setUsername((e.target as HTMLInputElement).value)}
          disabled={busy}
          autoFocus
          aria-describedby={error ? 'reg-username-hint reg-error' : 'reg-username-hint'}
          aria-invalid={error ? true : undefined}
        />
        <p class="hint" id="reg-username-hint">3–32 characters: a letter, then letters, digits, “_” or “-”.</p>
        <label for="reg-invite">Invite code</label>
        <input
          id="reg-invite"
          name="invite"
          autoComplete="off"
          autoCapitalize="none"
          spellcheck={false}
          maxLength={64}
          value={invite}
          onInput={(e) => setInvite((e.target as HTMLInputElement).value)}
          disabled={busy}
          aria-describedby="reg-invite-hint"
        />
        <p class="hint" id="reg-invite-hint">From your server’s admin. Leave empty if the server has open registration.</p>
        {error && (
          <p class="error" id="reg-error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Creating your keys…' : 'Register'}
        </button>
      </form>
      <p class="hint">Already registered in this browser? You are signed in automatically when you open this page.</p>
    </main>
  );
}
