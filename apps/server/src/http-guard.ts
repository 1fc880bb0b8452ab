/**
 * What one HTTP client may hold of the server's sockets and time: header, body, request and idle
 * timeouts, and a cap on connections per client address. Without them half-sent headers, bodies
 * trickled a byte at a time and half-sent upgrades were held for minutes, and enough of them
 * starve the process of file descriptors (slowloris).
 *
 * - headers: every request's headers (a WebSocket upgrade's too) must arrive within
 *   `httpHeadersTimeoutMs` of its first byte, or of the connection when nothing came (Node's
 *   `headersTimeout`, answered 408 and closed);
 * - body: a request's body must arrive within `httpBodyTimeoutMs` after its headers, except an
 *   attachment upload piece (megabytes, resumable), which only the request timeout bounds;
 * - request: the whole request within `httpRequestTimeoutMs` (Node's `requestTimeout`);
 * - idle: a socket with no traffic for `httpIdleTimeoutMs` is destroyed, one kept alive between
 *   requests for `httpKeepAliveTimeoutMs` is closed (an upgraded WebSocket leaves both to the
 *   relay's heartbeat: ws turns the socket timeout off);
 * - connections: at most `maxHttpConnectionsPerAddress` open TCP connections (HTTP and WebSocket)
 *   per peer address; more are destroyed on arrival. A peer the TACIT_TRUST_PROXY rule trusts (our
 *   own reverse proxy, which carries everyone) is not capped: the proxy caps its clients.
 */
import type { Server, ServerOptions } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Limits } from './config.js';
import type { TrustFunction } from './proxy.js';

/** The route whose bodies are exempt from the body timeout (large, resumable upload pieces). */
const UPLOAD_ROUTE = '/v1/attachments/:id/upload';

/** Most often Node checks its header and request deadlines; quicker when a deadline is shorter. */
const MAX_DEADLINE_CHECK_INTERVAL_MS = 1000;

type HttpLimits = Pick<
  Limits,
  'httpHeadersTimeoutMs' | 'httpBodyTimeoutMs' | 'httpRequestTimeoutMs' | 'httpIdleTimeoutMs' | 'httpKeepAliveTimeoutMs' | 'maxHttpConnectionsPerAddress'
>;

/** Fastify's options for the timeouts Node enforces itself. */
export function httpTimeoutOptions(l: HttpLimits): {
  connectionTimeout: number;
  keepAliveTimeout: number;
  requestTimeout: number;
  http: ServerOptions;
} {
  // Node refuses a header timeout longer than the request timeout.
  const headersTimeout = Math.min(l.httpHeadersTimeoutMs, l.httpRequestTimeoutMs);
  return {
    connectionTimeout: l.httpIdleTimeoutMs,
    keepAliveTimeout: l.httpKeepAliveTimeoutMs,
    requestTimeout: l.httpRequestTimeoutMs,
    http: {
      headersTimeout,
      requestTimeout: l.httpRequestTimeoutMs,
      connectionsCheckingInterval: Math.max(10, Math.min(MAX_DEADLINE_CHECK_INTERVAL_MS, Math.floor(headersTimeout / 2))),
    },
  };
}

/**
 * Installs the timeouts, the body timeout and the per-address connection cap on a built (not yet
 * listening) app. Node checks its header and request deadlines every `connectionsCheckingInterval`,
 * which only the server's constructor takes: pass `httpTimeoutOptions(l).http` to it as well.
 */
export function guardHttp(app: FastifyInstance, l: HttpLimits, trust: TrustFunction): void {
  // Fastify applies its timeout options only to servers it creates itself; with a serverFactory
  // (HTTPS) nothing would be set. Set them here on whatever server there is.
  const t = httpTimeoutOptions(l);
  const server = app.server;
  server.headersTimeout = t.http.headersTimeout!;
  server.requestTimeout = t.requestTimeout;
  server.keepAliveTimeout = t.keepAliveTimeout;
  server.setTimeout(t.connectionTimeout);
  capConnections(server, l.maxHttpConnectionsPerAddress, trust);
  app.addHook('onRequest', (req, _reply, done) => {
    const raw = req.raw;
    const hasBody = raw.headers['transfer-encoding'] !== undefined || (raw.headers['content-length'] !== undefined && raw.headers['content-length'] !== '0');
    if (!hasBody || raw.complete || req.routeOptions.url === UPLOAD_ROUTE) return done();
    const timer = setTimeout(() => {
      if (raw.complete) return;
      // The client has stopped sending (or sends too slowly): say so, as Node does for its own
      // deadlines, and free the socket. Nothing of the request was handled.
      const socket = raw.socket;
      if (!socket.destroyed) socket.end('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      socket.destroySoon();
    }, l.httpBodyTimeoutMs);
    timer.unref();
    const clear = () => clearTimeout(timer);
    raw.once('end', clear);
    raw.once('close', clear);
    done();
  });
}

function capConnections(server: Server, max: number, trust: TrustFunction): void {
  const open = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? '';
    if (trust(address, 0)) return;
    const n = (open.get(address) ?? 0) + 1;
    if (n > max) {
      socket.destroy();
      return;
    }
    open.set(address, n);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left <= 0) open.delete(address);
      else open.set(address, left);
    });
  });
}
