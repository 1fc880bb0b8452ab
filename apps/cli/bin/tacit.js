#!/usr/bin/env node
// The `tacit` command. Runs the bundle apps/cli/dist/tacit.mjs (built by `npm ci` through the
// root package's `prepare` script), rebuilding it first when a source file changed since it was
// built (scripts/build.mjs keeps a hash of the sources it was made from).
import { pathToFileURL } from 'node:url';
import { BUNDLE, build, isFresh } from '../scripts/build.mjs';

if (!isFresh()) {
  try {
    await build();
  } catch (e) {
    process.stderr.write(`tacit: could not build the command (${e instanceof Error ? e.message.split('\n')[0] : 'unknown error'}); run npm ci\n`);
    process.exit(1);
  }
}
const { main } = await import(pathToFileURL(BUNDLE).href);
const code = await main(process.argv.slice(2));
// Sockets, timers or stdin may still be referenced; the command is done. (stdout and stderr are
// synchronous for files and pipes on POSIX, so nothing written is lost.)
process.exit(code);
