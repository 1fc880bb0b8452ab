import { useEffect, useState } from 'preact/hooks';
import type { SafetyNumberInfo } from '@tacit/client';
import { userMessage, type Chat } from '../chat.js';
import { useFocusOn } from './focus.js';
import { href, navigate } from './route.js';

/** 60 digits as 12 groups of 5, the way Signal shows them. */
function groups(digits: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < digits.length; i += 5) out.push(digits.slice(i, i + 5));
  return out;
}

export function SafetyNumber({ chat, contact }: { chat: Chat; contact: string }) {
  const [info, setInfo] = useState<SafetyNumberInfo | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const headingRef = useFocusOn<HTMLHeadingElement>(contact);
  const changed = chat.identityChanged(contact);

  useEffect(() => {
    let live = true;
    setInfo(undefined);
    chat.safetyNumber(contact).then(
      (i) => live && setInfo(i),
      (e: unknown) => live && setError(userMessage(e)),
    );
    return () => {
      live = false;
    };
    // `changed` re-reads the number when the identity changes while the screen is open.
  }, [chat, contact, changed]);

  const accept = async () => {
    setBusy(true);
    setError(undefined);
    try {
      await chat.trust(contact);
      navigate({ view: 'chat', contact });
    } catch (e) {
      setError(userMessage(e));
      setInfo(await chat.safetyNumber(contact).catch(() => undefined));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="safety" aria-labelledby="safety-title">
      <header class="conv-header">
        <a class="back" href={href({ view: 'chat', contact })} aria-label={`Back to ${contact}`}>
          <span aria-hidden="true">‹</span> <span class="back-text">Back to {contact}</span>
        </a>
        <h2 id="safety-title" tabIndex={-1} ref={headingRef}>
          Safety number with {contact}
        </h2>
      </header>
      <div class="safety-body">
        {changed && (
          <p class="warn-text" role="alert">
            {contact}’s safety number has changed. Compare the number below with the one {contact} sees before you accept it.
          </p>
        )}
        {info ? (
          <>
            <p class="digits" data-testid="safety-number" aria-label={`Safety number: ${groups(info.displayable).join(' ')}`}>
              {groups(info.displayable).map((g, i) => (
                <span key={i}>{g}</span>
              ))}
            </p>
            <p class="hint">
              {info.keyState === 'trusted' && `This is the key you have trusted for ${contact}.`}
              {info.keyState === 'changed' && `This number is for ${contact}’s new key, which you have not accepted yet.`}
              {info.keyState === 'unverified' && `You have not exchanged messages with ${contact} yet; this is the key the server shows now.`}
            </p>
            <p>
              If the number {contact} sees on their device is the same, nobody is in the middle. Compare it in person, on a call, or over another channel you
              trust.
            </p>
          </>
        ) : (
          !error && <p role="status">Computing the safety number…</p>
        )}
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        {changed && info && (
          <button type="button" class="primary" disabled={busy} onClick={() => void accept()}>
            {busy ? 'Accepting…' : `I have compared the numbers — accept ${contact}’s new key`}
          </button>
        )}
      </div>
    </section>
  );
}
