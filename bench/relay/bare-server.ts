// The bare ws relay the benchmark compares against: each socket says who it is in the URL
// (`/?id=N`); a text frame {to, payload} is forwarded to socket `to` as {payload}. Nothing else:
// no auth, no storage, no acknowledgement, no limits.
import { createServer } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';

const sockets = new Map<string, WebSocket>();
const http = createServer();
const wss = new WebSocketServer({ server: http, perMessageDeflate: false, clientTracking: false });
wss.on('connection', (ws, req) => {
  const id = new URL(req.url ?? '/', 'http://x').searchParams.get('id') ?? '';
  sockets.set(id, ws);
  ws.on('close', () => sockets.get(id) === ws && sockets.delete(id));
  ws.on('message', (data) => {
    let f: { to?: unknown; payload?: unknown };
    try {
      f = JSON.parse(data.toString()) as typeof f;
    } catch {
      return;
    }
    const to = sockets.get(String(f.to));
    if (to !== undefined) to.send(JSON.stringify({ payload: f.payload }));
  });
});
http.listen(0, '127.0.0.1', () => {
  const a = http.address();
  process.send!({ port: typeof a === 'object' && a !== null ? a.port : 0 });
});
const gc = (globalThis as { gc?: () => void }).gc;
/** RSS after a few collections spaced out, so freed pages have gone back to the OS. */
async function settledRss(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 150));
  }
  return process.memoryUsage().rss;
}
process.on('message', (m: { cmd: string }) => {
  if (m.cmd === 'mem') void settledRss().then((rss) => process.send!({ rss }));
});
process.on('disconnect', () => process.exit(0));
