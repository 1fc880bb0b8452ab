/**
 * Serves a directory of built files (the web client) at `/`. Deliberately small: GET/HEAD only,
 * no directory listings, paths resolved and confined to the root, unknown paths without a file
 * extension fall back to index.html (client-side routing).
 */
import { readFile, stat } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import type { FastifyInstance } from 'fastify';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.wasm': 'application/wasm',
  '.txt': 'text/plain; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
};

/**
 * The policy of a script a page starts as a worker (the web client's key worker): a worker's CSP
 * comes from its script's own response, not from the page's meta tag. It may load same-origin
 * scripts, fetch from this server (the WebAssembly ML-KEM) and compile WebAssembly, nothing else.
 * Scripts a page loads ignore it.
 */
const SCRIPT_CSP = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'; frame-ancestors 'none'";

export function registerStatic(app: FastifyInstance, dir: string): void {
  const root = resolve(dir);
  const serve = async (path: string) => {
    let rel: string;
    try {
      rel = decodeURIComponent(path.split('?')[0] ?? '/');
    } catch {
      return undefined;
    }
    if (rel.includes('\0')) return undefined;
    let file = resolve(join(root, rel));
    if (file !== root && !file.startsWith(root + sep)) return undefined;
    try {
      if ((await stat(file)).isDirectory()) file = join(file, 'index.html');
      return { body: await readFile(file), type: TYPES[extname(file)] ?? 'application/octet-stream' };
    } catch {
      if (extname(rel) !== '') return undefined;
      try {
        return { body: await readFile(join(root, 'index.html')), type: TYPES['.html']! };
      } catch {
        return undefined;
      }
    }
  };
  app.get('/*', async (req, reply) => {
    const f = await serve(req.url);
    if (f === undefined) return reply.callNotFound();
    return reply
      .type(f.type)
      .header('x-content-type-options', 'nosniff')
      // The page refuses to run framed; these make the browser refuse first (a meta-tag CSP
      // cannot say frame-ancestors). Framing would let a site steer clicks on "accept new key".
      .header('content-security-policy', f.type === TYPES['.js'] ? SCRIPT_CSP : "frame-ancestors 'none'")
      .header('x-frame-options', 'DENY')
      .header('referrer-policy', 'no-referrer')
      .send(f.body);
  });
}
