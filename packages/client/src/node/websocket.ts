/** The relay socket for Node, on `ws` (Node 20 has no global WebSocket). */
import WebSocket from 'ws';
import { MAX_FRAME_BYTES } from '@tacit/api';
import type { SocketFactory } from '../relay.js';

/** Close code we use when the server sends a binary frame (not in the contract). */
const UNSUPPORTED_DATA = 1003;
/** WebSocket handshake deadline, ms. */
export const HANDSHAKE_TIMEOUT_MS = 15_000;

export const wsSocketFactory: SocketFactory = (url, handlers) => {
  const ws = new WebSocket(url, { maxPayload: MAX_FRAME_BYTES, handshakeTimeout: HANDSHAKE_TIMEOUT_MS, perMessageDeflate: false });
  let closed = false;
  const finish = (code: number, reason: string): void => {
    if (closed) return;
    closed = true;
    handlers.close(code, reason);
  };
  ws.on('open', () => handlers.open());
  ws.on('message', (data, isBinary) => {
    if (isBinary) {
      ws.close(UNSUPPORTED_DATA, 'binary');
      return;
    }
    const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8');
    handlers.message(text);
  });
  ws.on('close', (code, reason) => finish(code, reason.toString('utf8').slice(0, 123)));
  // 'error' is always followed by 'close'; listening keeps it from becoming an uncaught exception.
  ws.on('error', () => undefined);
  return {
    framesPerReadTurn: true,
    send(text) {
      if (ws.readyState === WebSocket.OPEN) ws.send(text);
      else throw new Error('socket not open');
    },
    close(code, reason) {
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      else ws.close(code, reason);
    },
  };
};
