/**
 * Which X-Forwarded-For hops to believe (TACIT_TRUST_PROXY). Every hop of the header can be
 * written by the client except those its own proxies appended, so trusting the whole header lets
 * anyone pick the address rate limits see. Two ways to say which proxies are ours:
 *
 * - a hop count `n`: the last `n` addresses on the path (the socket's peer first, then the
 *   header read right to left) are our proxies; the address before them is the client;
 * - an address list (`10.0.0.5,10.1.0.0/16,::1`): a hop is believed only while the address that
 *   handed it to us is in the list.
 *
 * The rule is express's / proxy-addr's; fastify takes it as a function, and the relay applies
 * the same function to WebSocket upgrades (`clientAddress`).
 */
import { BlockList, isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';

/** The hop count above which a configuration is surely a mistake (a path of 10 proxies is not a deployment). */
export const MAX_TRUSTED_PROXY_HOPS = 10;
/** At most this many entries in an address list. */
export const MAX_TRUSTED_PROXY_ADDRESSES = 100;

export type TrustProxy = { hops: number } | { addresses: readonly string[] };
/** fastify's `trustProxy` function: is the hop at `address`, `hop` steps from us, one of our proxies? */
export type TrustFunction = (address: string, hop: number) => boolean;

/**
 * Parses TACIT_TRUST_PROXY: a hop count 1..10, or a comma-separated list of IP addresses and
 * CIDR ranges. Throws an Error with a sentence for the operator on anything else (including the
 * old meaning "trust every hop", which no value gives any more).
 */
export function parseTrustProxy(value: string): TrustProxy {
  const v = value.trim();
  if (/^\d+$/.test(v)) {
    const hops = Number(v);
    if (hops < 1 || hops > MAX_TRUSTED_PROXY_HOPS) throw new Error(`TACIT_TRUST_PROXY: a hop count must be 1..${MAX_TRUSTED_PROXY_HOPS}`);
    return { hops };
  }
  const items = v.split(',').map((s) => s.trim());
  if (items.length > MAX_TRUSTED_PROXY_ADDRESSES) throw new Error(`TACIT_TRUST_PROXY: at most ${MAX_TRUSTED_PROXY_ADDRESSES} addresses`);
  for (const item of items) {
    if (parseEntry(item) === undefined) throw new Error('TACIT_TRUST_PROXY must be a hop count (1) or a comma-separated list of proxy addresses (10.0.0.5,10.1.0.0/16)');
  }
  return { addresses: items };
}

function parseEntry(item: string): { address: string; prefix?: number; family: 'ipv4' | 'ipv6' } | undefined {
  const [address = '', prefixText, extra] = item.split('/');
  if (extra !== undefined) return undefined;
  const version = isIP(address);
  if (version === 0) return undefined;
  const family = version === 4 ? 'ipv4' : 'ipv6';
  if (prefixText === undefined) return { address, family };
  if (!/^\d+$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > (version === 4 ? 32 : 128)) return undefined;
  return { address, prefix, family };
}

/** The trust rule as a function of (address, hop index), for fastify and for `clientAddress`. */
export function trustFunction(trust: TrustProxy | undefined): TrustFunction {
  if (trust === undefined) return () => false;
  if ('hops' in trust) return (_address, hop) => hop < trust.hops;
  const list = new BlockList();
  for (const item of trust.addresses) {
    const e = parseEntry(item);
    if (e === undefined) throw new Error(`bad proxy address ${JSON.stringify(item)}`);
    if (e.prefix === undefined) list.addAddress(e.address, e.family);
    else list.addSubnet(e.address, e.prefix, e.family);
  }
  return (address) => {
    const a = unmapped(address);
    const version = isIP(a);
    return version !== 0 && list.check(a, version === 4 ? 'ipv4' : 'ipv6');
  };
}

/** `::ffff:10.0.0.5` (an IPv4 peer on a dual-stack socket) is 10.0.0.5. */
function unmapped(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

/**
 * The client's address for a raw request (a WebSocket upgrade, which fastify does not see):
 * the socket's peer, then the X-Forwarded-For hops right to left, stopping at the first address
 * that is not one of our proxies. Same answer as fastify's `req.ip` under the same rule.
 */
export function clientAddress(req: IncomingMessage, trust: TrustFunction): string {
  const path = [req.socket.remoteAddress ?? ''];
  const header = req.headers['x-forwarded-for'];
  const forwarded = Array.isArray(header) ? header.join(',') : header;
  if (forwarded !== undefined) path.push(...forwarded.split(',').map((s) => s.trim()).reverse());
  let i = 0;
  while (i < path.length - 1 && trust(path[i]!, i)) i++;
  return path[i]!;
}
