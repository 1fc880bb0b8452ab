/**
 * Limits shared by every node, in Redis: the same token buckets and connection registry as
 * rate.ts's local ones, evaluated by Lua scripts so each decision is atomic across nodes.
 *
 * - Buckets: a hash {t: tokens, a: last refill time} per (limit, key), expiring once it would be
 *   full again (an absent bucket is a full one), so Redis holds only buckets in use. One script
 *   call takes tokens for any number of keys: the relay asks once per batch of sends, not per send.
 * - Connections: a sorted set per account of `<deviceId>|<owner>` scored by lease expiry. A node
 *   refreshes its holds on every heartbeat; the holds of a node that died (kill -9, power loss)
 *   lapse after CONNECTION_LEASE_MS, and a device that reconnects elsewhere replaces its old hold
 *   at once, so a dead node never locks an account out.
 * - Time is the caller's clock (as with the local limiter); a node whose clock is behind cannot
 *   make a bucket refill twice (a bucket's time never goes backwards).
 * - If Redis fails, each node falls back to its own local limiter for that decision (a limit per
 *   node rather than none) and logs it once per outage: availability of sends over exactness.
 */
import type { Redis } from 'ioredis';
import { LocalLimiters, type BucketSpec, type ConnectionRegistry, type Limiters, type RateLimit } from './rate.js';

/**
 * How long a node's connection hold lasts without a refresh. Three heartbeats by default: long
 * enough that a busy node refreshing late keeps its holds; short enough that the devices of a
 * dead node that never reconnect stop counting within minutes.
 */
export function connectionLeaseMs(heartbeatIntervalMs: number): number {
  return 3 * heartbeatIntervalMs;
}

/** KEYS: bucket keys. ARGV: burst, tokens per ms, now, then n per key. Returns tokens granted per key. */
const TAKE = `
local burst = tonumber(ARGV[1])
local perMs = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local out = {}
for i, key in ipairs(KEYS) do
  local n = tonumber(ARGV[3 + i])
  local v = redis.call('HMGET', key, 't', 'a')
  local tokens = burst
  local at = now
  if v[1] then
    at = tonumber(v[2])
    tokens = math.min(burst, tonumber(v[1]) + math.max(0, now - at) * perMs)
    if now > at then at = now end
  end
  local got = math.floor(tokens)
  if got > n then got = n end
  if got < 0 then got = 0 end
  tokens = tokens - got
  redis.call('HSET', key, 't', tostring(tokens), 'a', tostring(at))
  redis.call('PEXPIRE', key, math.ceil((burst - tokens) / perMs) + 1000)
  out[i] = got
end
return out
`;

/** KEYS[1]: the account's set. ARGV: deviceId, owner, max, now, lease. Returns 1 if recorded. */
const ACQUIRE = `
local now = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local prefix = ARGV[1] .. '|'
local others = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(m, 1, #prefix) == prefix then redis.call('ZREM', KEYS[1], m) else others = others + 1 end
end
if others >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[5]), prefix .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5]))
return 1
`;

type Log = (line: string) => void;

/** The scripts above, as defined on the connection by RedisLimiters. */
type Scripts = Redis & {
  tacitTake(numKeys: number, ...args: (string | number)[]): Promise<number[]>;
  tacitAcquire(key: string, ...args: (string | number)[]): Promise<number>;
};

export interface RedisLimitersOptions {
  /** Key prefix, as the store's. Default `tacit:`. */
  prefix?: string;
  /** How long a connection hold lives without refresh (see `connectionLeaseMs`). */
  connectionLeaseMs: number;
  /** Told once per Redis outage that limits fell back to per-node. */
  log?: Log;
}

export class RedisLimiters implements Limiters {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #local = new LocalLimiters();
  readonly #degraded: { on: boolean; log: Log };
  readonly connections: ConnectionRegistry;

  constructor(redis: Redis, opts: RedisLimitersOptions) {
    // defineCommand sends each script once, then calls it by hash (EVALSHA).
    redis.defineCommand('tacitTake', { lua: TAKE });
    redis.defineCommand('tacitAcquire', { lua: ACQUIRE, numberOfKeys: 1 });
    this.#redis = redis;
    this.#prefix = opts.prefix ?? 'tacit:';
    this.#degraded = { on: false, log: opts.log ?? (() => undefined) };
    this.connections = new RedisConnectionRegistry(redis, `${this.#prefix}conns:`, opts.connectionLeaseMs, this.#local, this.#degraded);
  }

  bucket(name: string, spec: BucketSpec): RateLimit {
    return new RedisRateLimit(this.#redis, `${this.#prefix}rate:${name}:`, spec, this.#local.bucket(name, spec), this.#degraded);
  }

  sweep(now: number): void {
    this.#local.sweep(now);
  }
}

/** Runs `shared`; on a Redis failure, logs once per outage and returns `local()` instead. */
async function orLocal<T>(degraded: { on: boolean; log: Log }, shared: () => Promise<T>, local: () => Promise<T>): Promise<T> {
  let r: T;
  try {
    r = await shared();
  } catch (e) {
    if (!degraded.on) {
      degraded.on = true;
      degraded.log(`redis unavailable (${e instanceof Error ? e.name : typeof e}): rate and connection limits hold per node until it is back`);
    }
    return local();
  }
  if (degraded.on) {
    degraded.on = false;
    degraded.log('redis is back: rate and connection limits are shared by all nodes again');
  }
  return r;
}

class RedisRateLimit implements RateLimit {
  constructor(
    readonly redis: Redis,
    readonly keyPrefix: string,
    readonly spec: BucketSpec,
    readonly local: RateLimit,
    readonly degraded: { on: boolean; log: Log },
  ) {}

  async take(key: string, now: number): Promise<boolean> {
    return (await this.takeMany([{ key, n: 1 }], now))[0] === 1;
  }

  takeMany(requests: readonly { key: string; n: number }[], now: number): Promise<number[]> {
    if (requests.length === 0) return Promise.resolve([]);
    return orLocal(
      this.degraded,
      async () => {
        const keys = requests.map((r) => this.keyPrefix + r.key);
        const got = await (this.redis as Scripts).tacitTake(keys.length, ...keys, this.spec.burst, this.spec.perSecond / 1000, now, ...requests.map((r) => r.n));
        return got.map(Number);
      },
      () => this.local.takeMany(requests, now),
    );
  }
}

class RedisConnectionRegistry implements ConnectionRegistry {
  constructor(
    readonly redis: Redis,
    readonly keyPrefix: string,
    readonly leaseMs: number,
    readonly local: LocalLimiters,
    readonly degraded: { on: boolean; log: Log },
  ) {}

  acquire(account: string, deviceId: number, owner: string, max: number, now: number): Promise<boolean> {
    return orLocal(
      this.degraded,
      async () => (await (this.redis as Scripts).tacitAcquire(this.keyPrefix + account, deviceId, owner, max, now, this.leaseMs)) === 1,
      () => this.local.connections.acquire(account, deviceId, owner, max, now),
    );
  }

  async release(account: string, deviceId: number, owner: string): Promise<void> {
    await this.local.connections.release(account, deviceId, owner);
    // A failed release lapses with its lease.
    await this.redis.zrem(this.keyPrefix + account, `${deviceId}|${owner}`).catch(() => undefined);
  }

  async refresh(holds: readonly { account: string; deviceId: number; owner: string }[], now: number): Promise<void> {
    if (holds.length === 0) return;
    const p = this.redis.pipeline();
    for (const h of holds) {
      // XX: only a hold still there (one replaced by a newer connection is not brought back).
      p.zadd(this.keyPrefix + h.account, 'XX', now + this.leaseMs, `${h.deviceId}|${h.owner}`);
      p.pexpire(this.keyPrefix + h.account, this.leaseMs);
    }
    await p.exec().catch(() => undefined);
  }
}
