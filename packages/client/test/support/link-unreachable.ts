// Child process for link.test.ts: TacitClient.link against a provisioning channel that cannot be
// opened, (a) a socket factory that throws at once (as a browser's WebSocket does for a URL it
// refuses) and (b) a real `ws` socket to a loopback port nobody listens on. Prints each error's
// code, then returns: the process must then exit by itself (no timer or socket left behind).
import { createServer } from 'node:net';
import { nodeBackend } from '@tacit/protocol/node';
import { isClientError, MemoryRecordStore, TacitClient, type SocketFactory } from '../../src/index.ts';
import { wsSocketFactory } from '../../src/node.ts';

const backend = nodeBackend();
const srv = createServer();
await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
const address = srv.address();
const port = typeof address === 'object' && address !== null ? address.port : 0;
await new Promise<void>((r) => srv.close(() => r()));

const throwing: SocketFactory = () => {
  throw new SyntaxError('refused URL');
};
for (const connect of [throwing, wsSocketFactory]) {
  try {
    await TacitClient.link({ store: new MemoryRecordStore(), backend, connect }, { server: `http://127.0.0.1:${port}`, name: 'laptop', onCode: () => undefined });
    console.log('linked');
  } catch (e) {
    console.log(isClientError(e) ? e.code : 'other');
  }
}
