import { useState } from 'preact/hooks';
import { useFocusOn } from './focus.js';
import { inviteCodeFromFragment } from '@tacit/api';
import type { Chat } from '../chat.js';
import { QrCode } from './qr.js';

/** An invite link (`/#invite=CODE`, or the older `?invite=CODE`) fills the code in. */
function inviteFromLocation(): string {
  return inviteCodeFromFragment(location.hash) ?? new URLSearchParams(location.search).get('invite')?.slice(0, 64) ?? '';
}

/** "Link to an existing account": this browser shows a code; a signed-in device enters it. */
function LinkExisting({ chat, busy, error, back }: { chat: Chat; busy: boolean; error: string | undefined; back: () => void }) {
  const [name, setName] = useState('browser');
  const nameRef = useFocusOn<HTMLInputElement>(!busy);
  const code = chat.linkCode;
  return (
    <main class="card register" aria-labelledby="link-title">
      <h1 id="link-title">Link to an existing account</h1>
      {!busy && (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void chat.link(name);
          }}
        >
          <p class="lede">This browser becomes one more device of an account you already use elsewhere. It gets your contacts and groups, and every new message; earlier messages stay on your other devices.</p>
          <label for="link-name">Name of this device</label>
          <input id="link-name" name="device-name" maxLength={64} value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} ref={nameRef} />
          {error && (
            <p class="error" id="link-error" role="alert">
              {error}
            </p>
          )}
          <button type="submit" class="primary">
            Show a link code
          </button>{' '}
          <button type="button" onClick={back}>
            Back
          </button>
        </form>
      )}
      {busy && code === undefined && <p role="status">Opening a link channel…</p>}
      {busy && code !== undefined && (
        <div class="link-code">
          <p>
            On a device already signed in to the account, open <strong>Settings → Devices</strong> and paste this code (the QR code holds the same text, for a phone’s camera to read), or in a terminal run{' '}
            <code>tacit devices add &lt;code&gt;</code>:
          </p>
          <QrCode text={code} label="Link code as a QR code" />
          <p>
            <code class="code" data-testid="link-code">
              {code}
            </code>
          </p>
          <p class="hint" role="status">
            Waiting for your other device… The code works once and for 10 minutes.
          </p>
        </div>
      )}
    </main>
  );
}

export function Register({ chat, busy, error }: { chat: Chat; busy: boolean; error: string | undefined }) {
  const [linking, setLinking] = useState(false);
  if (linking || chat.linkCode !== undefined) return <LinkExisting chat={chat} busy={busy} error={error} back={() => setLinking(false)} />;
  return <RegisterForm chat={chat} busy={busy} error={error} link={() => setLinking(true)} />;
}

function RegisterForm({ chat, busy, error, link }: { chat: Chat; busy: boolean; error: string | undefined; link: () => void }) {
  const [username, setUsername] = useState('');
  const [invite, setInvite] = useState(inviteFromLocation);
  // Focused when shown, and again when a refusal (a name taken) gives the form back.
  const usernameRef = useFocusOn<HTMLInputElement>(!busy);
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
          ref={usernameRef}
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
      <p>
        <button type="button" class="link" onClick={link} disabled={busy}>
          Link to an existing account
        </button>
      </p>
    </main>
  );
}
