/**
 * `GET /metrics`: this node's counters in the Prometheus text format (version 0.0.4).
 *
 * What is counted: WebSocket connections (gauge, by state), messages stored (sends, one per
 * recipient device copy) and pushed to devices (deliveries), messages waiting in mailboxes (the
 * store's queue depth, all nodes), the store's latency per operation (histogram), and refusals by
 * error code and transport. Labels are fixed vocabularies (error codes, store method names,
 * connection states): never a username, a device, an address or anything a client chose.
 *
 * Who may read it (docs/OPERATIONS.md, "Metrics"): with TACIT_METRICS_TOKEN set, any request
 * carrying `Authorization: Bearer <token>` (compared in constant time); without it, only a
 * request from this machine (loopback) that no proxy forwarded (no X-Forwarded-For or Forwarded
 * header, so a reverse proxy on the same machine does not open it to the world).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ServerError } from './errors.js';
import type { Store } from './store.js';

/** Upper bounds of the store latency buckets, in seconds: 0.5 ms (a cached read) to 5 s (a stuck disk). */
export const STORE_LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] as const;
/** Shortest TACIT_METRICS_TOKEN accepted: 16 characters, so it cannot be guessed online. */
export const MIN_METRICS_TOKEN_LENGTH = 16;
/**
 * The queue depth is a count over the whole mailbox table; it is read at most this often, so a
 * scraper polling fast (or many of them) costs the store one count per interval.
 */
export const QUEUE_DEPTH_CACHE_MS = 5_000;

/** Store methods that are not worth a histogram (administrative, once per process). */
const UNTIMED = new Set(['close', 'constructor']);

class Histogram {
  readonly counts = new Array<number>(STORE_LATENCY_BUCKETS.length).fill(0);
  sum = 0;
  count = 0;
  observe(seconds: number): void {
    this.sum += seconds;
    this.count++;
    for (let i = 0; i < STORE_LATENCY_BUCKETS.length; i++) if (seconds <= STORE_LATENCY_BUCKETS[i]!) this.counts[i]!++;
  }
}

export class Metrics {
  sends = 0;
  deliveries = 0;
  readonly #refusals = new Map<string, number>();
  readonly #store = new Map<string, Histogram>();
  #depth: { at: number; value: number | undefined } | undefined;

  /** A request or frame refused with `code` (an API error code). */
  refused(transport: 'http' | 'ws', code: string): void {
    const k = `${transport}\u0000${code}`;
    this.#refusals.set(k, (this.#refusals.get(k) ?? 0) + 1);
  }

  observeStore(op: string, seconds: number): void {
    let h = this.#store.get(op);
    if (h === undefined) {
      h = new Histogram();
      this.#store.set(op, h);
    }
    h.observe(seconds);
  }

  /**
   * The store with every asynchronous method timed (the store's own `this`, so private fields
   * keep working). Names come from the Store interface, never from input.
   */
  instrument(store: Store): Store {
    const cache = new Map<PropertyKey, unknown>();
    return new Proxy(store, {
      get: (target, prop) => {
        const v: unknown = Reflect.get(target, prop, target);
        if (typeof v !== 'function' || typeof prop !== 'string' || UNTIMED.has(prop)) return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        let wrapped = cache.get(prop);
        if (wrapped === undefined) {
          const fn = v as (...a: unknown[]) => unknown;
          wrapped = (...args: unknown[]) => {
            const t0 = performance.now();
            const r = fn.apply(target, args);
            if (r instanceof Promise) {
              return r.finally(() => this.observeStore(prop, (performance.now() - t0) / 1000));
            }
            this.observeStore(prop, (performance.now() - t0) / 1000);
            return r;
          };
          cache.set(prop, wrapped);
        }
        return wrapped;
      },
    });
  }

  /** The queue depth, read from the store at most every QUEUE_DEPTH_CACHE_MS. */
  async queueDepth(store: Store, now: number): Promise<number | undefined> {
    if (this.#depth === undefined || now - this.#depth.at >= QUEUE_DEPTH_CACHE_MS) {
      let value: number | undefined;
      try {
        value = await store.countQueued();
      } catch {
        value = undefined; // the store is unreachable: the metric is left out, the rest still served
      }
      this.#depth = { at: now, value };
    }
    return this.#depth.value;
  }

  /** The exposition text. */
  render(g: { sockets: number; devices: number; unauthenticated: number; queueDepth: number | undefined }): string {
    const out: string[] = [];
    const metric = (name: string, type: string, help: string, lines: string[]) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...lines);
    };
    metric('tacit_connections', 'gauge', 'Open WebSocket connections on this node, by state.', [
      `tacit_connections{state="authenticated"} ${g.devices}`,
      `tacit_connections{state="unauthenticated"} ${g.unauthenticated}`,
    ]);
    metric('tacit_sends_total', 'counter', 'Message copies stored by this node for a recipient device (a group send counts one per copy).', [`tacit_sends_total ${this.sends}`]);
    metric('tacit_deliveries_total', 'counter', 'Messages this node pushed to a connected device (a message pushed again after a reconnect counts again).', [
      `tacit_deliveries_total ${this.deliveries}`,
    ]);
    if (g.queueDepth !== undefined) {
      metric('tacit_queue_depth', 'gauge', 'Messages stored and not yet acknowledged by their recipient device, in the whole store (all nodes).', [`tacit_queue_depth ${g.queueDepth}`]);
    }
    const store: string[] = [];
    for (const [op, h] of [...this.#store].sort(([a], [b]) => (a < b ? -1 : 1))) {
      STORE_LATENCY_BUCKETS.forEach((le, i) => store.push(`tacit_store_seconds_bucket{op="${op}",le="${le}"} ${h.counts[i]}`));
      store.push(`tacit_store_seconds_bucket{op="${op}",le="+Inf"} ${h.count}`, `tacit_store_seconds_sum{op="${op}"} ${h.sum.toFixed(6)}`, `tacit_store_seconds_count{op="${op}"} ${h.count}`);
    }
    metric('tacit_store_seconds', 'histogram', 'Time the store took per call, by operation (writeBatch is one transaction of sends and acks).', store);
    const refusals = [...this.#refusals].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, n]) => {
      const [transport, code] = k.split('\u0000');
      return `tacit_refusals_total{transport="${transport}",code="${code}"} ${n}`;
    });
    metric('tacit_refusals_total', 'counter', 'Requests (http) and frames or connections (ws) refused, by error code.', refusals);
    const mem = process.memoryUsage();
    metric('tacit_process_resident_memory_bytes', 'gauge', 'Resident memory of this process.', [`tacit_process_resident_memory_bytes ${mem.rss}`]);
    metric('tacit_process_heap_used_bytes', 'gauge', 'V8 heap in use.', [`tacit_process_heap_used_bytes ${mem.heapUsed}`]);
    return out.join('\n') + '\n';
  }
}

/** Who may read /metrics: a bearer token from the configuration, or else this machine, unproxied. */
export function metricsAccess(token: string | undefined): (req: FastifyRequest) => boolean {
  if (token !== undefined) {
    const want = createHash('sha256').update(token).digest();
    return (req) => {
      const h = req.headers.authorization;
      if (typeof h !== 'string' || !h.startsWith('Bearer ')) return false;
      // Both sides hashed to 32 bytes, so the comparison takes the same time whatever was sent.
      return timingSafeEqual(createHash('sha256').update(h.slice(7)).digest(), want);
    };
  }
  return (req) => {
    if (req.headers['x-forwarded-for'] !== undefined || req.headers['forwarded'] !== undefined) return false;
    return isLoopback(req.socket.remoteAddress ?? '');
  };
}

function isLoopback(address: string): boolean {
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (a === '::1') return true;
  return isIP(a) === 4 && a.startsWith('127.');
}

export function registerMetricsRoute(
  app: FastifyInstance,
  metrics: Metrics,
  gauges: () => { sockets: number; devices: number; unauthenticated: number },
  store: Store,
  now: () => number,
  token: string | undefined,
): void {
  const allowed = metricsAccess(token);
  app.get('/metrics', async (req, reply) => {
    if (!allowed(req)) throw new ServerError('FORBIDDEN', token === undefined ? 'metrics are readable from this machine only' : 'metrics need the bearer token');
    const queueDepth = await metrics.queueDepth(store, now());
    return reply.type('text/plain; version=0.0.4; charset=utf-8').header('cache-control', 'no-store').send(metrics.render({ ...gauges(), queueDepth }));
  });
}
