import { useEffect, useState } from 'preact/hooks';
import { neutralizeControls, type LinkedDevice } from '@tacit/client';
import { userMessage, type Chat } from '../chat.js';

const day = (ms: number): string => (ms === 0 ? 'never' : new Date(ms).toLocaleDateString());

/** This account's devices: list, link a new one by its code, remove one. */
export function Devices({ chat }: { chat: Chat }) {
  const [devices, setDevices] = useState<LinkedDevice[] | undefined>(undefined);
  const [code, setCode] = useState('');
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<{ error: boolean; text: string } | undefined>(undefined);
  const [confirm, setConfirm] = useState<number | undefined>(undefined);
  const client = chat.client;
  const refresh = async () => {
    if (!client) return;
    try {
      setDevices(await client.devices());
    } catch (e) {
      setMessage({ error: true, text: userMessage(e) });
    }
  };
  useEffect(() => void refresh(), [client]);
  const run = async (fn: () => Promise<string>) => {
    setBusy(true);
    setMessage(undefined);
    try {
      setMessage({ error: false, text: await fn() });
    } catch (e) {
      setMessage({ error: true, text: userMessage(e) });
    }
    setBusy(false);
    await refresh();
  };
  return (
    <section class="card settings" aria-labelledby="devices-title">
      <h1 id="devices-title">Devices</h1>
      <p>Every device of your account gets each new message, and shows what you sent from the others.</p>
      {devices === undefined ? (
        <p role="status">Loading…</p>
      ) : (
        <ul class="devices" data-testid="devices">
          {devices.map((d) => (
            <li key={d.deviceId} data-testid={`device-${d.deviceId}`}>
              <strong>{d.name === '' ? `Device ${d.deviceId}` : neutralizeControls(d.name)}</strong>
              {d.current && <span class="hint"> (this browser)</span>}
              <span class="hint">
                {' '}
                · device {d.deviceId} · added {day(d.createdAt)} · last seen {day(d.lastSeenAt)}
              </span>
              {!d.current &&
                (confirm === d.deviceId ? (
                  <span class="confirm" role="group" aria-label={`Confirm removing device ${d.deviceId}`}>
                    {' '}
                    <button type="button" class="danger" disabled={busy} onClick={() => void run(async () => (await client!.removeDevice(d.deviceId), `Removed device ${d.deviceId}.`)).then(() => setConfirm(undefined))}>
                      Remove device {d.deviceId}
                    </button>{' '}
                    <button type="button" onClick={() => setConfirm(undefined)}>
                      Cancel
                    </button>
                  </span>
                ) : (
                  <>
                    {' '}
                    <button type="button" class="link" onClick={() => setConfirm(d.deviceId)}>
                      Remove
                    </button>
                  </>
                ))}
            </li>
          ))}
        </ul>
      )}
      <h2>Link a new device</h2>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void run(async () => {
            const r = await client!.linkDevice(code);
            setCode('');
            return r.deviceId !== undefined ? `Linked device ${r.deviceId}.` : 'Sent. The new device has not finished registering yet.';
          });
        }}
      >
        <label for="link-code-input">Link code shown on the new device</label>
        <input id="link-code-input" name="link-code" autoComplete="off" spellcheck={false} value={code} maxLength={200} onInput={(e) => setCode((e.target as HTMLInputElement).value)} disabled={busy} />
        <button type="submit" class="primary" disabled={busy || code.trim() === ''}>
          {busy ? 'Linking…' : 'Link device'}
        </button>
      </form>
      {message && (
        <p class={message.error ? 'error' : 'hint'} role={message.error ? 'alert' : 'status'} data-testid="devices-message">
          {message.text}
        </p>
      )}
    </section>
  );
}
