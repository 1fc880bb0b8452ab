/**
 * The passphrase that opens the local state: TACIT_PASSPHRASE, or a prompt on the terminal without
 * echo. `tacit passphrase` changes it (the web page's Settings → Passphrase lock → Change).
 */
import { changeHomePassphrase } from '@tacit/client/node';
import { UsageError } from './args.js';
import type { Ctx } from './context.js';
import { EXIT } from './exit-codes.js';

/** Shortest passphrase accepted for a new account. */
export const MIN_PASSPHRASE_LENGTH = 8;
/** Longest passphrase accepted (bounds what scrypt hashes). */
export const MAX_PASSPHRASE_LENGTH = 1024;

export interface PromptIo {
  env: Record<string, string | undefined>;
  stdin: NodeJS.ReadStream;
  stderr: NodeJS.WriteStream;
}

export async function getPassphrase(io: PromptIo, opts: { confirm: boolean }): Promise<string> {
  const fromEnv = io.env['TACIT_PASSPHRASE'];
  let pass: string;
  if (fromEnv !== undefined && fromEnv !== '') {
    pass = fromEnv;
  } else {
    if (!io.stdin.isTTY) throw new UsageError('no passphrase: set TACIT_PASSPHRASE or run tacit in a terminal');
    pass = await prompt(io, 'Passphrase: ');
    if (opts.confirm) {
      const again = await prompt(io, 'Repeat passphrase: ');
      if (again !== pass) throw new UsageError('the passphrases do not match');
    }
  }
  if (pass.length > MAX_PASSPHRASE_LENGTH) throw new UsageError(`the passphrase is longer than ${MAX_PASSPHRASE_LENGTH} characters`);
  if (opts.confirm && pass.length < MIN_PASSPHRASE_LENGTH) throw new UsageError(`choose a passphrase of at least ${MIN_PASSPHRASE_LENGTH} characters`);
  return pass;
}

/** The new passphrase of `tacit passphrase`: TACIT_NEW_PASSPHRASE, or asked twice on the terminal. */
async function getNewPassphrase(io: PromptIo): Promise<string> {
  const fromEnv = io.env['TACIT_NEW_PASSPHRASE'];
  let pass: string;
  if (fromEnv !== undefined && fromEnv !== '') pass = fromEnv;
  else {
    if (!io.stdin.isTTY) throw new UsageError('no new passphrase: set TACIT_NEW_PASSPHRASE or run tacit in a terminal');
    pass = await prompt(io, 'New passphrase: ');
    if ((await prompt(io, 'Repeat new passphrase: ')) !== pass) throw new UsageError('the new passphrases do not match; nothing was changed');
  }
  if (pass.length < MIN_PASSPHRASE_LENGTH) throw new UsageError(`choose a passphrase of at least ${MIN_PASSPHRASE_LENGTH} characters; nothing was changed`);
  if (pass.length > MAX_PASSPHRASE_LENGTH) throw new UsageError(`the passphrase is longer than ${MAX_PASSPHRASE_LENGTH} characters; nothing was changed`);
  return pass;
}

/**
 * `tacit passphrase`: seals this home's state under a new passphrase (every record again, in one
 * transaction; the old ciphertexts are purged from the files). The current one must open it
 * (exit 5 otherwise, nothing changed).
 */
export async function cmdPassphrase(ctx: Ctx): Promise<number> {
  if (ctx.args.positionals.length !== 0) throw new UsageError('usage: tacit passphrase   (the current one from TACIT_PASSPHRASE or a prompt, the new one from TACIT_NEW_PASSPHRASE or a prompt)');
  const current = await getPassphrase(ctx, { confirm: false });
  const next = await getNewPassphrase(ctx);
  if (next === current) throw new UsageError('the new passphrase is the one in use; nothing was changed');
  await changeHomePassphrase({ home: ctx.home, passphrase: current }, next);
  ctx.out.event(
    'passphrase-changed',
    { home: ctx.home },
    `the passphrase of ${ctx.home} is changed: tacit asks for the new one from now on (scripts: set TACIT_PASSPHRASE to it). Copies of this home made before (backups) still open with the old one.`,
  );
  return EXIT.OK;
}

/** Reads one line from the terminal in raw mode, echoing nothing. */
function prompt(io: PromptIo, question: string): Promise<string> {
  const { stdin, stderr } = io;
  return new Promise((resolve, reject) => {
    stderr.write(question);
    let buf = '';
    const wasRaw = stdin.isRaw;
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    const done = (err: Error | undefined): void => {
      stdin.off('data', onData);
      stdin.setRawMode(wasRaw);
      stdin.pause();
      stderr.write('\n');
      if (err) reject(err);
      else resolve(buf);
    };
    const onData = (chunk: string): void => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return done(undefined);
        if (ch === '\u0003') return done(new UsageError('cancelled'));
        if (ch === '\u0004') return done(buf.length === 0 ? new UsageError('cancelled') : undefined);
        if (ch === '\u007f' || ch === '\b') buf = buf.slice(0, -1);
        else if (ch >= ' ') {
          if (buf.length >= MAX_PASSPHRASE_LENGTH) return done(new UsageError('the passphrase is too long'));
          buf += ch;
        }
      }
    };
    stdin.on('data', onData);
  });
}
