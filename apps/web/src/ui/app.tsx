import { setFaviconBadge } from '../notify.js';
import { useEffect, useErrorBoundary, useState } from 'preact/hooks';
import type { Chat } from '../chat.js';
import { Register } from './register.js';
import { ConversationList } from './conversations.js';
import { Conversation } from './conversation.js';
import { SafetyNumber } from './safety.js';
import { Admin } from './admin.js';
import { Settings, Unlock } from './lock.js';
import { GroupMembers, NewGroup } from './groups.js';
import { href, parseRoute, type Route } from './route.js';
import { Devices } from './devices.js';
import { useFocusOn } from './focus.js';

/**
 * Re-renders on every change of `chat`. Effects run after the first frame, and `chat.boot()` may
 * reach its last change before that (a passphrase-locked profile goes straight to 'locked' and
 * changes nothing more until the user types): so the effect reads the version once more after
 * subscribing, or that change would never be shown ("Opening tacit…" for good).
 */
function useChat(chat: Chat): number {
  const [version, setVersion] = useState(chat.version);
  useEffect(() => {
    const update = (): void => setVersion(chat.version);
    const unsubscribe = chat.subscribe(update);
    update();
    return unsubscribe;
  }, [chat]);
  return version;
}

/** The route from the address; like useChat, re-read after listening, for a change before the first frame. */
function useRoute(): Route {
  const [route, setRoute] = useState<Route>(() => parseRoute(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseRoute(location.hash));
    addEventListener('hashchange', on);
    on();
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

const CONNECTION_LABEL = { connecting: 'Connecting…', online: 'Online', offline: 'Offline — reconnecting', stopped: 'Disconnected' } as const;

/** A rendering failure shows a way out instead of a blank page (and nothing of the error's text). */
export function App({ chat }: { chat: Chat }) {
  const [error, reset] = useErrorBoundary();
  if (error) {
    return (
      <main class="card notice" aria-labelledby="crash-title">
        <h1 id="crash-title">Something went wrong</h1>
        <p>This screen could not be shown. Your keys and messages are safe in this browser.</p>
        <button
          type="button"
          class="primary"
          onClick={() => {
            location.hash = '#/';
            reset();
          }}
        >
          Back to conversations
        </button>{' '}
        <button type="button" onClick={() => location.reload()}>
          Reload
        </button>
      </main>
    );
  }
  return <Screens chat={chat} />;
}

function Screens({ chat }: { chat: Chat }) {
  useChat(chat);
  const route = useRoute();
  const phase = chat.phase;

  if (phase.kind === 'loading') return <p class="boot" role="status">Opening tacit…</p>;
  if (phase.kind === 'other-tab') {
    return (
      <main class="card notice" aria-labelledby="other-title">
        <h1 id="other-title">tacit is open in another tab</h1>
        <p>One tab at a time holds your keys and connection. This tab takes over when the other one is closed.</p>
        <p class="hint" role="status">Waiting for the other tab…</p>
      </main>
    );
  }
  if (phase.kind === 'fatal') {
    return (
      <main class="card notice" aria-labelledby="fatal-title">
        <h1 id="fatal-title">tacit stopped</h1>
        <p role="alert">{phase.message}</p>
        <button type="button" class="primary" onClick={() => location.reload()}>
          Reload
        </button>{' '}
        {chat.hasAccount && <SignOut chat={chat} />}
      </main>
    );
  }
  if (phase.kind === 'signed-out') {
    return (
      <main class="card notice" aria-labelledby="signed-out-title">
        <h1 id="signed-out-title">Signed out</h1>
        <p role="alert" data-testid="signed-out-message">
          {phase.message}
        </p>
        <button type="button" class="primary" onClick={() => location.reload()}>
          Continue
        </button>
      </main>
    );
  }
  if (phase.kind === 'locked') return <Unlock chat={chat} busy={phase.busy} error={phase.error} forgot={<SignOut chat={chat} />} />;
  if (phase.kind === 'register') return <Register chat={chat} busy={phase.busy} error={phase.error} />;

  const contact = route.view === 'chat' || route.view === 'safety' || route.view === 'members' ? route.contact : undefined;
  // Muted conversations keep their unread badges in the list but add nothing here.
  const unread = chat.alertingUnread();
  const title = unread > 0 ? `(${unread}) tacit` : 'tacit';
  if (document.title !== title) document.title = title;
  setFaviconBadge(unread);
  return (
    <div class={`shell ${contact || route.view === 'admin' || route.view === 'settings' || route.view === 'devices' || route.view === 'new-group' ? 'has-contact' : 'no-contact'}`}>
      <header class="topbar">
        <span class="brand" aria-hidden="true">tacit</span>
        <span class="me">
          <span class="me-label">Signed in as </span>
          <strong data-testid="me">{chat.username}</strong>
        </span>
        {chat.team?.admin && (
          <a class="link" href={href({ view: 'admin' })} aria-current={route.view === 'admin' ? 'page' : undefined}>
            Admin
          </a>
        )}
        <a class="link" href={href({ view: 'settings' })} aria-current={route.view === 'settings' ? 'page' : undefined}>
          Settings
        </a>
        <span class={`conn conn-${chat.connection}`} role="status" data-testid="connection">
          {CONNECTION_LABEL[chat.connection]}
        </span>
        <SignOut chat={chat} />
      </header>
      <nav class="sidebar" aria-label="Conversations">
        <ConversationList chat={chat} selected={contact} />
      </nav>
      <main class="pane">
        {route.view === 'chat' && <Conversation key={route.contact} chat={chat} contact={route.contact} />}
        {route.view === 'safety' && <SafetyNumber key={route.contact} chat={chat} contact={route.contact} />}
        {route.view === 'admin' && <Admin chat={chat} />}
        {route.view === 'settings' && <Settings chat={chat} />}
        {route.view === 'devices' && <Devices chat={chat} />}
        {route.view === 'new-group' && <NewGroup chat={chat} />}
        {route.view === 'members' && <GroupMembers key={route.contact} chat={chat} contact={route.contact} />}
        {route.view === 'list' && (
          <div class="empty">
            <p>Select a conversation, or start one by username.</p>
          </div>
        )}
      </main>
    </div>
  );
}

function SignOut({ chat }: { chat: Chat }) {
  const [confirming, setConfirming] = useState(false);
  const [others, setOthers] = useState<number | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  // The safe choice has the focus when the confirmation opens.
  const cancelRef = useFocusOn<HTMLButtonElement>(confirming);
  useEffect(() => {
    if (!confirming) return;
    let live = true;
    void chat.otherDevices().then((n) => live && setOthers(n));
    return () => {
      live = false;
    };
  }, [confirming]);
  if (!confirming) {
    return (
      <button type="button" class="link" onClick={() => setConfirming(true)}>
        Sign out
      </button>
    );
  }
  const account = chat.username ? `${chat.username} and its` : 'the account and its';
  return (
    <span
      class="confirm"
      role="group"
      aria-label="Confirm sign out"
      onKeyDown={(e) => {
        if (e.key === 'Escape') setConfirming(false);
      }}
    >
      <span data-testid="sign-out-warning">
        {others !== undefined && others > 0
          ? `Signing out removes this browser from ${chat.username ?? 'the account'}’s devices (it gets no more messages) and deletes its keys and history here. The account’s ${others === 1 ? 'other device keeps' : `${others} other devices keep`} theirs.`
          : others === 0
            ? `Signing out deletes this browser’s keys and history. They are this account’s only keys: ${account} messages cannot be opened again anywhere, and the username stays taken until an admin resets it.`
            : chat.username === undefined
              ? `Signing out deletes this browser’s keys and history. While tacit cannot open the account here, it cannot remove this browser from the account’s devices: if the account has other devices, remove it on one of them (Devices page) afterwards. If this is the account’s only device, these are its only keys: the account and its messages cannot be opened again anywhere, and the username stays taken until an admin resets it.`
              : `Signing out removes this browser from the account’s devices if it has others, and deletes this browser’s keys and history. If the server cannot be reached, remove this browser from another device’s Devices page afterwards. If this is the account’s only device, these are its only keys: ${account} messages cannot be opened again anywhere, and the username stays taken until an admin resets it.`}
      </span>
      <button
        type="button"
        class="danger"
        disabled={busy}
        onClick={() => {
          setBusy(true);
          void chat.signOut();
        }}
      >
        Delete keys and sign out
      </button>
      <button type="button" onClick={() => setConfirming(false)} ref={cancelRef}>
        Cancel
      </button>
    </span>
  );
}
