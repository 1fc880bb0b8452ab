import { render } from 'preact';
import { App } from './ui/app.js';
import { Chat } from './chat.js';
import './styles.css';

const chat = new Chat();
const root = document.getElementById('app');
if (root) {
  root.textContent = '';
  render(<App chat={chat} />, root);
}
void chat.boot();
