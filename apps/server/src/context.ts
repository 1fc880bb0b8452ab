import type { IncomingMessage } from 'node:http';
import type { FastifyBaseLogger } from 'fastify';
import type { Limits } from './config.js';
import type { Limiters, RateLimit } from './rate.js';
import type { LoginThrottle } from './login-throttle.js';
import type { Relay } from './relay.js';
import type { ProvisioningChannels } from './provisioning.js';
import type { Store } from './store.js';
import type { Cluster } from './cluster.js';
import type { Metrics } from './metrics.js';

/** XEdDSA verification: (33-byte identity key, signed bytes, 64-byte signature) → valid. Never throws. */
export type SignatureVerifier = (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) => boolean;

/** What the route handlers and the relay share; one per server instance (no module globals). */
export interface Context {
  store: Store;
  limits: Limits;
  registration: 'invite' | 'open';
  /** Whether GET /v1/directory lists registered usernames to signed-in devices. */
  directory: boolean;
  now: () => number;
  verifySignature: SignatureVerifier;
  /**
   * Every rate limit and the per-account connection registry are made here: in this process
   * (LocalLimiters, one node) or shared by all nodes through Redis (RedisLimiters).
   */
  limiters: Limiters;
  registrationLimiter: RateLimit;
  bundleLimiter: RateLimit;
  /** Failed device logins per client address (login-throttle.ts). */
  loginThrottle: LoginThrottle;
  relay: Relay;
  /** Provisioning channels for linking devices (provisioning.ts). */
  provisioning: ProvisioningChannels;
  log: FastifyBaseLogger;
  /**
   * The client's address for a raw request (a WebSocket upgrade), under the same
   * TACIT_TRUST_PROXY rule as fastify's `req.ip` (proxy.ts).
   */
  clientAddress: (req: IncomingMessage) => string;
  /** Counters for GET /metrics (metrics.ts). */
  metrics: Metrics;
  /** Present when several nodes share the store. */
  cluster?: Cluster;
}
