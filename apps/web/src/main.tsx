import { render } from 'preact';
import { App } from './ui/app.js';
import { Chat } from './chat.js';
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

if (root && framed()) {
  root.textContent = 'tacit does not run inside a frame. Open it in its own tab.';
} else if (root) {
  const chat = new Chat();
  root.textContent = '';
  render(<App chat={chat} />, root);
  void chat.boot();
}
