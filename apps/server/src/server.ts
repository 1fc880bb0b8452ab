/**
 * `buildServer(options)`: the whole server as an object that tests drive in-process. Only main.ts
 * listens on a port. HTTP and the WebSocket relay share one Node HTTP server (the relay takes the
 * `upgrade` event for `/v1/ws`).
 */
import { ProvisioningChannels } from './provisioning.js';
import { isProvisioningUpgrade, registerLinkRoutes } from './linking.js';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { errorBody, errorSummary, isServerError } from './errors.js';
import { resolveLimits, type Limits } from './config.js';
import type { Context, SignatureVerifier } from './context.js';
import { registerHttpRoutes } from './http.js';
import { guardHttp, httpTimeoutOptions } from './http-guard.js';
import { LoginThrottle } from './login-throttle.js';
import { registerAdminRoutes } from './admin.js';
import { LocalLimiters, type Limiters } from './rate.js';
import { Relay } from './relay.js';
import { registerStatic } from './static.js';
import { Metrics, registerMetricsRoute } from './metrics.js';
import { createInvite } from './invites.js';
import { clientAddress, trustFunction, type TrustProxy } from './proxy.js';
import type { IncomingMessage, RequestListener, Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Store } from './store.js';
import type { Cluster } from './cluster.js';
import { defaultVerifier } from './signatures.js';
import type { BlobStore } from './attachments/blob-store.js';
import { registerAttachmentRoutes } from './attachments/routes.js';

export interface ServerOptions {
  store: Store;
  /** 'invite' (default): registration needs an invite code. 'open': anyone may register. */
  registration?: 'invite' | 'open';
  /**
   * The team directory (GET /v1/directory: registered usernames, for signed-in devices). Default:
   * on for invite-only servers, whose accounts are all colleagues; off for open registration,
   * where it would hand every stranger the list of users.
   */
  directory?: boolean;
  limits?: Partial<Limits>;
  /** Directory of built web client files served at `/` (optional). */
  staticDir?: string;
  /** Fastify logger option; off by default (tests). main.ts turns it on. */
  logger?: boolean | { level: string; stream?: { write(line: string): void } };
  /** Defaults to @tacit/protocol's xeddsaVerify. */
  verifySignature?: SignatureVerifier;
  /** Clock, for tests of expiry. */
  now?: () => number;
  /**
   * Which X-Forwarded-For hops to believe for the client's address (behind a reverse proxy): a
   * hop count or a list of proxy addresses (proxy.ts). None by default: the socket's peer.
   */
  trustProxy?: TrustProxy;
  /** Several nodes sharing a PostgresStore: cross-node delivery and replacement (RedisCluster). */
  cluster?: Cluster;
  /** Rate and connection limits; per process by default, RedisLimiters to share them between nodes. */
  limiters?: Limiters;
  /**
   * Serve HTTPS (and WSS) with this certificate chain and private key (PEM) instead of plain
   * HTTP. main.ts reads them from TACIT_TLS_CERT and TACIT_TLS_KEY.
   */
  tls?: { cert: Buffer; key: Buffer };
  /**
   * GET /metrics: readable with `Authorization: Bearer <token>` when set, else only from
   * loopback without proxy headers (metrics.ts). main.ts reads TACIT_METRICS_TOKEN.
   */
  metricsToken?: string;
  /** Attachment blobs (FsBlobStore, PostgresBlobStore); without one, attachment routes answer UNAVAILABLE. */
  blobs?: BlobStore;
}

export interface TacitServer {
  app: FastifyInstance;
  relay: Relay;
  store: Store;
  limits: Limits;
  /** Creates an invite code (single use, valid for limits.inviteTtlMs) and returns it. */
  createInvite(): Promise<string>;
  /** Listens; returns the bound port. */
  listen(port: number, host?: string): Promise<number>;
  /** Closes sockets, then HTTP, then the store. */
  close(): Promise<void>;
}

export async function buildServer(options: ServerOptions): Promise<TacitServer> {
  const limits = resolveLimits(options.limits);
  const now = options.now ?? Date.now;
  const trust = trustFunction(options.trustProxy);
  const tls = options.tls;
  const app = Fastify({
    // HTTPS from the configured certificate: the same fastify app on a TLS server (fastify's
    // types tie `https` to another instance type; the request handler is the same).
    ...(tls ? { serverFactory: (handler: RequestListener) => createHttpsServer({ cert: tls.cert, key: tls.key, ...httpTimeoutOptions(limits).http }, handler) as unknown as HttpServer } : {}),
    bodyLimit: limits.maxRequestBodyBytes,
    ...httpTimeoutOptions(limits),
    // A URL the router cannot decode (`/v1/keys/%zz`), or a parameter over its length: the API's
    // error shape, never the framework's own (which quotes the path).
    frameworkErrors: (_err, _req, reply) => {
      void (reply as FastifyReply).code(400).send(errorBody('INVALID_REQUEST', 'malformed URL'));
    },
    trustProxy: trust,
    logger:
      options.logger === undefined || options.logger === false
        ? false
        : {
            level: options.logger === true ? 'info' : options.logger.level,
            ...(options.logger !== true && options.logger.stream ? { stream: options.logger.stream } : {}),
            // Log the route pattern (`/v1/keys/:username/:deviceId`), never the path: paths name
            // users, and query strings may carry a WebSocket ticket. An unrouted request is logged
            // as such, without its path.
            serializers: {
              req: (req: { method: string; routeOptions?: { url?: string } }) => ({ method: req.method, route: req.routeOptions?.url ?? '(no route)' }),
            },
          },
  });
  guardHttp(app, limits, trust);
  const limiters = options.limiters ?? new LocalLimiters();
  const metrics = new Metrics();
  // Every store call the routes and the relay make is timed for /metrics.
  const store = metrics.instrument(options.store);
  const ctx = {
    store,
    metrics,
    limits,
    registration: options.registration ?? 'invite',
    directory: options.directory ?? (options.registration ?? 'invite') === 'invite',
    now,
    verifySignature: options.verifySignature ?? defaultVerifier,
    limiters,
    registrationLimiter: limiters.bucket('registration', { burst: limits.registrationBurst, perSecond: limits.registrationPerHour / 3600 }),
    bundleLimiter: limiters.bucket('bundle', { burst: limits.bundleFetchBurst, perSecond: limits.bundleFetchPerMinute / 60 }),
    loginThrottle: new LoginThrottle(limiters, limits),
    log: app.log,
    clientAddress: (req: IncomingMessage) => clientAddress(req, trust),
    ...(options.cluster ? { cluster: options.cluster } : {}),
  } as Omit<Context, 'relay' | 'provisioning'> as Context;
  const relay = new Relay(ctx);
  ctx.relay = relay;
  const provisioning = new ProvisioningChannels({ ttlMs: limits.provisioningChannelTtlMs, now });
  ctx.provisioning = provisioning;
  await options.cluster?.start({
    onDeliver: (keys, messages) => relay.onDeliver(keys, messages),
    onConnected: (key) => relay.onConnected(key),
    onEphemeral: (messages) => relay.onEphemeral(messages),
  });

  app.setErrorHandler((err, _req, reply) => {
    if (isServerError(err)) {
      metrics.refused('http', err.code);
      return reply.code(err.status).send(errorBody(err.code, err.message));
    }
    const e = err as { statusCode?: number; code?: string };
    if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') metrics.refused('http', 'PAYLOAD_TOO_LARGE');
    else if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) metrics.refused('http', 'INVALID_REQUEST');
    if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return reply.code(413).send(errorBody('PAYLOAD_TOO_LARGE', `request body over ${limits.maxRequestBodyBytes} bytes`));
    if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
      // Fastify's own 4xx: malformed JSON, wrong content type, empty body. Its message may quote input; ours does not.
      return reply.code(400).send(errorBody('INVALID_REQUEST', 'malformed request'));
    }
    app.log.error({ err: errorSummary(err) }, 'request failed');
    return reply.code(500).send(errorBody('INTERNAL', 'internal error'));
  });
  // JSON bodies: an empty body counts as no body (a client may send `content-type: application/json`
  // on POST /v1/ws-ticket without one). Plain JSON.parse is safe here: `__proto__` becomes an own
  // property, which every validator rejects as unknown.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    const text = body as string;
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text) as unknown);
    } catch {
      done(Object.assign(new Error('malformed JSON'), { statusCode: 400 }), undefined);
    }
  });
  app.setNotFoundHandler((_req, reply) => {
    metrics.refused('http', 'NOT_FOUND');
    return reply.code(404).send(errorBody('NOT_FOUND', 'no such route'));
  });

  registerMetricsRoute(app, metrics, () => relay.stats, store, now, options.metricsToken);
  registerHttpRoutes(app, ctx);
  registerLinkRoutes(app, ctx);
  registerAdminRoutes(app, ctx);
  const attachments = registerAttachmentRoutes(app, ctx, options.blobs);
  if (options.staticDir !== undefined) registerStatic(app, options.staticDir);

  app.server.on('upgrade', (req, socket, head) => {
    if (isProvisioningUpgrade(req)) provisioning.handleUpgrade(req, socket, head, ctx.clientAddress(req));
    else relay.handleUpgrade(req, socket, head);
  });

  const sweep = setInterval(() => {
    const t = now();
    limiters.sweep(t);
    options.store.expire(t).then(
      (n) => n > 0 && app.log.info({ expired: n }, 'expired undelivered messages'),
      (e: unknown) => app.log.error({ err: errorSummary(e) }, 'expiry sweep failed'),
    );
    attachments.sweep(t).then(
      (n) => n > 0 && app.log.info({ expired: n }, 'expired attachments'),
      (e: unknown) => app.log.error({ err: errorSummary(e) }, 'attachment expiry sweep failed'),
    );
  }, limits.expirySweepIntervalMs);
  sweep.unref();

  await app.ready();

  return {
    app,
    relay,
    store: options.store,
    limits,
    createInvite: () => createInvite(options.store, now(), limits.inviteTtlMs),
    async listen(port: number, host = '127.0.0.1') {
      await app.listen({ port, host });
      const addr = app.server.address();
      return typeof addr === 'object' && addr !== null ? addr.port : port;
    },
    async close() {
      clearInterval(sweep);
      // Drain. Stop accepting connections first: behind a load balancer, a client that
      // reconnects from here is refused and sent to another node, never back to this one.
      relay.drain();
      app.server.close(() => undefined);
      provisioning.close();
      await relay.close();
      await options.cluster?.close();
      await attachments.close();
      await app.close();
      await options.blobs?.close();
      await options.store.close();
    },
  };
}
