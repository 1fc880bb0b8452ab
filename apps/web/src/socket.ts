/**
 * The relay socket for browsers, on the global WebSocket: the browser half of the SDK's
 * SocketFactory (Node's is `@tacit/client/node`, on `ws`).
 */
import { MAX_FRAME_BYTES } from '@tacit/api';
import type { SocketFactory } from '@tacit/client';

/** Close code when the server sends a binary frame or an oversized one (not in the contract). */
const UNSUPPORTED_DATA = 1003;
const MESSAGE_TOO_BIG = 1009;

export const browserSocketFactory: SocketFactory = (url, handlers) => {
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  let closed = false;
  const finish = (code: number, reason: string): void => {
    if (closed) return;
    closed = true;
    handlers.close(code, reason);
  };
  ws.onopen = () => handlers.open();
  ws.onmessage = (ev: MessageEvent) => {
    if (typeof ev.data !== 'string') {
      ws.close(UNSUPPORTED_DATA, 'binary');
      return;
    }
    // UTF-16 length bounds UTF-8 bytes from below; a frame this long is over the limit anyway.
    if (ev.data.length > MAX_FRAME_BYTES) {
      ws.close(MESSAGE_TOO_BIG, 'frame too large');
      return;
    }
    handlers.message(ev.data);
  };
  ws.onclose = (ev: CloseEvent) => finish(ev.code, ev.reason.slice(0, 123));
  // 'error' is always followed by 'close'.
  ws.onerror = () => undefined;
  return {
    send(text) {
      if (ws.readyState === WebSocket.OPEN) ws.send(text);
      else throw new Error('socket not open');
    },
    close(code, reason) {
      try {
        // Browsers only allow 1000 and 3000-4999 from script.
        ws.close(code !== undefined && (code === 1000 || (code >= 3000 && code <= 4999)) ? code : 1000, reason);
      } catch {
        ws.close();
      }
      // A socket still connecting may never fire 'close' promptly; report it now.
      finish(code ?? 1000, reason ?? '');
    },
  };
};
