/** Command-line parsing: global flags anywhere, command flags after the command. Total: bad input is a UsageError. */

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface ParsedArgs {
  command: string | undefined;
  positionals: string[];
  home: string | undefined;
  json: boolean;
  help: boolean;
  /** Confirms a destructive command (admin reset) without asking. */
  yes: boolean;
  /** `group admin --remove`: take admin rights away instead of giving them. */
  remove: boolean;
  server: string | undefined;
  invite: string | undefined;
  wait: number | undefined;
  limit: number | undefined;
  /** `history --before <id>`: the messages before this one (an id or a prefix, as `edit` takes). */
  before: string | undefined;
  /** `send --file <path>`: the file to send. */
  file: string | undefined;
  /** Where received files are saved (default <home>/downloads). */
  out: string | undefined;
  /** `link --name <name>`: this device's name in the account's device list. */
  name: string | undefined;
}

/** Longest --wait, seconds (one day). */
export const MAX_WAIT_SECONDS = 86_400;
/** Largest --limit (messages one `history` prints). */
export const MAX_LIMIT = 1_000;

const VALUE_FLAGS = new Set(['--home', '--server', '--invite', '--wait', '--limit', '--before', '--file', '--out', '--name']);
const BOOL_FLAGS = new Set(['--json', '--help', '-h', '--yes', '--remove']);

export function parseArgs(argv: readonly string[]): ParsedArgs {
  const out: ParsedArgs = { command: undefined, positionals: [], home: undefined, json: false, help: false, yes: false, remove: false, server: undefined, invite: undefined, wait: undefined, limit: undefined, before: undefined, file: undefined, out: undefined, name: undefined };
  let rest = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (rest || a === '-' || !a.startsWith('-')) {
      if (out.command === undefined && !rest) out.command = a;
      else out.positionals.push(a);
      continue;
    }
    if (a === '--') {
      rest = true;
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(0, eq) : a;
    if (BOOL_FLAGS.has(name)) {
      if (eq > 0) throw new UsageError(`${name} takes no value`);
      if (name === '--json') out.json = true;
      else if (name === '--yes') out.yes = true;
      else if (name === '--remove') out.remove = true;
      else out.help = true;
      continue;
    }
    if (!VALUE_FLAGS.has(name)) throw new UsageError(`unknown option ${name}`);
    let value: string | undefined;
    if (eq > 0) value = a.slice(eq + 1);
    else value = argv[++i];
    if (value === undefined) throw new UsageError(`${name} needs a value`);
    switch (name) {
      case '--home':
        out.home = value;
        break;
      case '--server':
        out.server = value;
        break;
      case '--invite':
        out.invite = value;
        break;
      case '--file':
        out.file = value;
        break;
      case '--out':
        out.out = value;
        break;
      case '--name':
        out.name = value;
        break;
      case '--before':
        out.before = value;
        break;
      case '--wait': {
        const n = Number(value);
        if (!/^\d+(\.\d+)?$/.test(value) || !Number.isFinite(n) || n < 0 || n > MAX_WAIT_SECONDS) {
          throw new UsageError(`--wait takes a number of seconds between 0 and ${MAX_WAIT_SECONDS}`);
        }
        out.wait = n;
        break;
      }
      case '--limit': {
        const n = Number(value);
        if (!/^\d+$/.test(value) || n < 1 || n > MAX_LIMIT) throw new UsageError(`--limit takes a number of messages between 1 and ${MAX_LIMIT}`);
        out.limit = n;
        break;
      }
    }
  }
  return out;
}
