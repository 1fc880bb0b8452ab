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
// A reader that goes away (`tacit history bob | head -1`) is not an error of the command: stop
// quietly, as commands killed by SIGPIPE do, instead of an unhandled 'error' and a stack trace.
// Exit 0 only for stdout: the reader took what it wanted. Anything else still ends the process.
for (const [stream, exitCode] of [[process.stdout, 0], [process.stderr, 1]]) {
  stream.on('error', (e) => {
    if (e?.code === 'EPIPE') process.exit(exitCode);
    throw e;
  });
}
const { main } = await import(pathToFileURL(BUNDLE).href);
const code = await main(process.argv.slice(2));
// Sockets, timers or stdin may still be referenced; the command is done. But first what it
// printed must be out: a write to a pipe whose reader is slow (`tacit history --limit 1000 |
// less`) waits in memory once the pipe is full, and exiting then cut the output short. A write's
// callback runs once everything before it is flushed (or the reader is gone).
const flushed = (stream) => new Promise((resolve) => (stream.writableLength === 0 ? resolve() : stream.write('', () => resolve())));
await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
process.exit(code);
