// A hostile server for one real client, "bob": a `ws` relay on loopback that authenticates whoever
// connects and records acknowledgements, and a fetch that answers registration and key uploads.
// The test pushes whatever it likes through `socket()`.
import { WebSocketServer, type WebSocket } from 'ws';
import type { RegisterRequest } from '@tacit/api';
import type { FetchLike } from '../../src/index.ts';

export interface FakeRelay {
  readonly port: number;
  /** The socket of the latest authenticated connection. */
  socket(): WebSocket | undefined;
  /** Connections opened so far. */
  connections(): number;
  /** Every envelope id acknowledged, single or batched. */
  readonly acks: string[];
  /** What bob uploaded when registering. */
  registration(): RegisterRequest | undefined;
  readonly fetch: FetchLike;
  close(): Promise<void>;
}

export async function fakeRelay(): Promise<FakeRelay> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  let socket: WebSocket | undefined;
  let connections = 0;
  const acks: string[] = [];
  wss.on('connection', (ws) => {
    connections++;
    ws.on('message', (data) => {
      const f = JSON.parse(String(data)) as { type: string; id?: string; ids?: string[] };
      if (f.type === 'auth') {
        socket = ws;
        ws.send(JSON.stringify({ type: 'ready', username: 'bob', deviceId: 1 }));
      } else if (f.type === 'ack') acks.push(...(f.ids ?? (f.id ? [f.id] : [])));
    });
  });
  let registration: RegisterRequest | undefined;
  const fetch: FetchLike = async (url, init) => {
    const path = new URL(url).pathname;
    const reply = (status: number, body?: unknown) => ({ status, text: async () => (body === undefined ? '' : JSON.stringify(body)) });
    if (init.method === 'POST' && path === '/v1/accounts') {
      registration = JSON.parse(init.body ?? '') as RegisterRequest;
      return reply(201, { username: 'bob', deviceId: 1 });
    }
    if (path === '/v1/keys/count') return reply(200, { preKeys: 100, kyberPreKeys: 100 });
    if (init.method === 'PUT' && path === '/v1/keys') return reply(204);
    if (init.method === 'POST' && path === '/v1/keys/one-time') return reply(204);
    return reply(404, { error: { code: 'NOT_FOUND', message: 'no' } });
  };
  return {
    port: (wss.address() as { port: number }).port,
    socket: () => socket,
    connections: () => connections,
    acks,
    registration: () => registration,
    fetch,
    async close() {
      for (const c of wss.clients) c.terminate();
      await new Promise((r) => wss.close(() => r(undefined)));
    },
  };
}
