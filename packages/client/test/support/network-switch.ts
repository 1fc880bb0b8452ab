// A device's network, switchable off and on, in front of a real server: while off, HTTP requests
// fail as an unreachable server does (NETWORK) and sockets close before they open; going off
// closes the open ones. The SDK then works as it does offline (queues, reconnects with backoff).
import type { FetchLike, Socket, SocketFactory } from '../../src/index.ts';
import { wsSocketFactory } from '../../src/node.ts';

export class NetworkSwitch {
  #online = true;
  readonly #open = new Set<Socket>();

  get online(): boolean {
    return this.#online;
  }

  readonly connect: SocketFactory = (url, handlers) => {
    if (!this.#online) {
      let closed = false;
      const close = (): void => {
        if (closed) return;
        closed = true;
        handlers.close(1006, '');
      };
      setTimeout(close, 0);
      return {
        send: () => {
          throw new Error('offline');
        },
        close: () => setTimeout(close, 0),
      };
    }
    const s: Socket = wsSocketFactory(url, {
      ...handlers,
      close: (code, reason) => {
        this.#open.delete(s);
        handlers.close(code, reason);
      },
    });
    this.#open.add(s);
    return s;
  };

  readonly fetch: FetchLike = (url, init) => (this.#online ? fetch(url, init) : Promise.reject(new TypeError('fetch failed')));

  off(): void {
    this.#online = false;
    for (const s of this.#open) s.close(4000, 'offline');
  }

  on(): void {
    this.#online = true;
  }
}
