import { render } from 'preact';
import { App } from './ui/app.js';
import { Chat } from './chat.js';
import { InsecureContext } from './ui/insecure.js';
import './styles.css';

const root = document.getElementById('app');

/** Inside a frame another site could overlay the page and steer clicks (e.g. "accept new key"). */
function framed(): boolean {
  try {
    return window.top !== window.self;
  } catch {
    return true;
  }
}

/** WebCrypto exists only in secure contexts (https://, or http://localhost). */
function secure(): boolean {
  return window.isSecureContext && typeof crypto !== 'undefined' && crypto.subtle !== undefined;
}

if (root && framed()) {
  root.textContent = 'tacit does not run inside a frame. Open it in its own tab.';
} else if (root && !secure()) {
  root.textContent = '';
  render(<InsecureContext href={location.origin} port={location.port || '80'} />, root);
} else if (root) {
  const chat = new Chat();
  root.textContent = '';
  render(<App chat={chat} />, root);
  void chat.boot();
}
