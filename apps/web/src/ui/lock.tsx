import { ChatSettingsPanel } from './chat-settings.js';
import { useState } from 'preact/hooks';
import { useFocusOn } from './focus.js';
import { MIN_PASSPHRASE_LENGTH } from '@tacit/client/browser';
import type { Chat } from '../chat.js';

/** Asked for on every page load while the passphrase lock is on. */
export function Unlock({ chat, busy, error, forgot }: { chat: Chat; busy: boolean; error: string | undefined; forgot: preact.ComponentChildren }) {
  const [passphrase, setPassphrase] = useState('');
  // Focused when shown and again when a wrong passphrase gives it back (it is disabled meanwhile).
  const field = useFocusOn<HTMLInputElement>(!busy, true);
  return (
    <main class="card register" aria-labelledby="unlock-title">
      <h1 id="unlock-title">tacit is locked</h1>
      <p class="lede">Your keys and messages in this browser are sealed with your passphrase. Type it to open them.</p>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void chat.unlock(passphrase);
        }}
      >
        <label for="unlock-passphrase">Passphrase</label>
        <input
          id="unlock-passphrase"
          type="password"
          autoComplete="current-password"
          required
          value={passphrase}
          onInput={(e) => setPassphrase((e.target as HTMLInputElement).value)}
          disabled={busy}
          ref={field}
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? 'unlock-error' : undefined}
        />
        {error && (
          <p class="error" id="unlock-error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Unlocking…' : 'Unlock'}
        </button>
      </form>
      <p class="hint">Forgot it? Nobody can recover it, not even the server’s admin. {forgot}</p>
    </main>
  );
}

function Field({ id, label, value, set, autoComplete }: { id: string; label: string; value: string; set: (v: string) => void; autoComplete: string }) {
  return (
    <>
      <label for={id}>{label}</label>
      <input id={id} type="password" autoComplete={autoComplete} value={value} onInput={(e) => set((e.target as HTMLInputElement).value)} />
    </>
  );
}

/** Settings: the passphrase lock (turn on, change, turn off). */
export function Settings({ chat }: { chat: Chat }) {
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [again, setAgain] = useState('');
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<{ error: boolean; text: string } | undefined>(undefined);
  const locked = chat.passphraseLocked;
  const run = async (fn: () => Promise<string | undefined>, done: string) => {
    setBusy(true);
    setMessage(undefined);
    const error = await fn();
    setBusy(false);
    setMessage(error === undefined ? { error: false, text: done } : { error: true, text: error });
    if (error === undefined) {
      setCurrent('');
      setNext('');
      setAgain('');
    }
  };
  const mismatch = next !== again ? 'The two new passphrases differ.' : undefined;
  return (
    <section class="card settings" aria-labelledby="settings-title">
      <h1 id="settings-title">Settings</h1>
      <p>
        <a class="link" href="#/devices" data-testid="devices-link">
          Devices
        </a>{' '}
        — link this account to another browser or a terminal, or remove a device.
      </p>
      <h2>Passphrase lock</h2>
      <p data-testid="lock-state">
        {locked
          ? 'On: this browser asks for your passphrase each time tacit opens. Without it, a copy of this browser’s files cannot open your keys or messages.'
          : 'Off: your keys and messages are sealed with a key this browser keeps in its own files. Anyone who copies those files (a backup, a stolen disk without disk encryption) can open them. A passphrase lock prevents that.'}
      </p>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (mismatch) return setMessage({ error: true, text: mismatch });
          if (locked) void run(() => chat.changePassphrase(current, next), 'Passphrase changed.');
          else void run(() => chat.setPassphrase(next), 'Passphrase lock on.');
        }}
      >
        <fieldset disabled={busy}>
          {locked && <Field id="lock-current" label="Current passphrase" value={current} set={setCurrent} autoComplete="current-password" />}
          <Field id="lock-new" label={locked ? 'New passphrase' : 'Passphrase'} value={next} set={setNext} autoComplete="new-password" />
          <Field id="lock-again" label={locked ? 'New passphrase again' : 'Passphrase again'} value={again} set={setAgain} autoComplete="new-password" />
          <p class="hint">At least {MIN_PASSPHRASE_LENGTH} characters. If you forget it, this browser’s keys and messages are lost.</p>
          <button type="submit" class="primary">
            {busy ? 'Working…' : locked ? 'Change passphrase' : 'Turn on passphrase lock'}
          </button>{' '}
          {locked && (
            <button type="button" onClick={() => void run(() => chat.removePassphrase(current), 'Passphrase lock off.')}>
              Turn off passphrase lock
            </button>
          )}
        </fieldset>
        {message && (
          <p class={message.error ? 'error' : 'hint'} role={message.error ? 'alert' : 'status'} data-testid="lock-message">
            {message.text}
          </p>
        )}
      </form>
      <ChatSettingsPanel chat={chat} />
    </section>
  );
}
