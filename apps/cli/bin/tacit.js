#!/usr/bin/env node
// The `tacit` command. Runs the TypeScript sources through tsx, so no build step is needed.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/main.ts');
const code = await main(process.argv.slice(2));
// Sockets, timers or stdin may still be referenced; the command is done. (stdout and stderr are
// synchronous for files and pipes on POSIX, so nothing written is lost.)
process.exit(code);
