/** The `tacit` command: parses arguments, runs one command, maps errors to one line and an exit code. */
import { describeError, isClientError } from '@tacit/client';
import { MAX_LIMIT, parseArgs, UsageError, type ParsedArgs } from './args.js';
import { cmdChat } from './chat.js';
import { cmdContacts, cmdHistory, cmdRecv, cmdRegister, cmdSafetyNumber, cmdSend, cmdTrust, cmdWhoami } from './commands.js';
import { makeCtx, type Ctx } from './context.js';
import { cmdAdmin, cmdDirectory } from './team.js';
import { cmdGroup } from './group.js';
import { cmdSettings } from './settings.js';
import { cmdBlock, cmdBlocked, cmdUnblock } from './block.js';
import { cmdMute, cmdUnmute } from './mute.js';
import { cmdDevices, cmdLink, cmdSignOut } from './devices.js';
import { cmdDelete, cmdEdit, cmdReact, cmdSearch, cmdTimer } from './edits.js';
import { cmdRetry } from './retry.js';
import { cmdPassphrase } from './passphrase.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { makeOutput } from './output.js';

export const HELP = `tacit — end-to-end encrypted chat

usage: tacit [--home <dir>] [--json] <command> [arguments]

commands:
  register <username> --server <url> [--invite <code>]   create an account on a server
                                 (--invite also takes the whole invite link; then
                                 --server may be left out)
  send <username> <text>         send a message; exits 0 once the server stored it
                                 (--wait: how long to try to reach the server, default
                                 30 s; then it stays queued, exit 11)
  send <username> -              send each line of standard input as a message
  send <username|#group> --file <path> [caption]
                                 send a file (a progress bar on a terminal); run it
                                 again after an interruption to continue
  recv [--wait <seconds>] [--out <dir>]
                                 print messages received since last time; files are
                                 saved in <home>/downloads (or --out), never replacing one
                                 (--wait: if none, wait up to that long for one)
  history <username> [--limit n] [--before <id>]
                                 the conversation with a user, both directions (last 50;
                                 --limit up to ${MAX_LIMIT}; --before: those before a message,
                                 by its id or first 6+ characters, to page back);
                                 your messages show ✓ sent, ✓✓ delivered, ✓✓ read
  retry <username> <id>          send a message that failed again (history marks it failed;
                                 after a changed safety number: trust first)
  chat <username>                interactive chat; incoming messages appear live
  safety-number <username>       show the safety number to compare with a contact
  trust <username>               accept a contact's changed identity key
  contacts                       list contacts
  whoami                         show this account
  block <username>               block a user: their messages, reactions, receipts and
                                 typing are dropped unseen (also in groups) and nothing is
                                 sent to them (exit 13); they are not told; your other
                                 devices block them too
  unblock <username>             unblock a user (their next messages are shown)
  blocked                        list blocked users
  mute <username|#group> [<duration>|always]
                                 mute a conversation: messages still arrive and count as
                                 unread, but chat does not ring the bell for it; for a
                                 duration as timer takes it (1h, 8h, 1d, 7d; up to 4w) or,
                                 by default, always (until unmute); your other devices too
  unmute <username|#group>       unmute a conversation
  settings [read-receipts|typing on|off]
                                 show or change chat settings (read receipts off: none
                                 sent and none shown; typing off: none sent or shown)
  passphrase                     change the passphrase that seals this home (the new one
                                 from TACIT_NEW_PASSPHRASE or asked twice)
  directory                      list the usernames registered on the server
                                 (when the server's team directory is on)

devices (one account on several devices: each gets every message, and your own messages):
  link --server <url> [--name <n>]  make this home a new device of an existing account: shows
                                 a link code (and a QR code) to enter on a signed-in device
  devices                        this account's devices (id, name, added, last seen)
  devices add <code>             link the new device showing this code
  devices remove <id>            sign a device out for good (it gets no more messages)
  sign-out [--yes]               sign this device out: remove it from the account (when the
                                 account has other devices) and delete this home's keys and
                                 history (received files stay)

edits, reactions, disappearing messages, search (a message is its id as history and
send --json print it, or its first 6+ characters; history shows the first 8):
  edit <conversation> <id> <text>   change your message (within 24 hours)
  delete <conversation> <id>     delete your message for everyone (within 24 hours)
  react <conversation> <id> <emoji>  react with one emoji (again: replace; -: remove)
  timer <conversation> [<duration>|off]
                                 disappearing messages for everyone in the conversation
                                 (30s, 5m, 1h, 1d, 1w); without a duration: show it
  search <words>… [--limit n]    find messages in this device's history (every word)

groups (a group is named #<title> or g:<id prefix>; send, recv, chat and history take it too):
  group create <title> <user>…   create a group; you are its admin
  group add|remove <group> <user>…  admins: change the members
  group rename <group> <title>   admins: rename the group
  group admin <group> <user> [--remove]
                                 admins: make a member an admin (--remove: take it away)
  group leave <group>            leave the group
  group list                     your groups
  group members <group>          members and admins of a group

admin commands (for admins: the first account on a server, and those the operator names):
  admin invite [count]           create invite links (1-20) to hand out
  admin accounts                 list every account with its devices
  admin reset <username> [--yes] delete an account whose owner lost their device, and get
                                 an invite link for them to register the name again

options:
  --home <dir>   account directory (default: $TACIT_HOME or ~/.tacit)
  --json         machine-readable output: one JSON object per line
  --yes          confirm admin reset or sign-out without being asked
  --help         this text

The passphrase that encrypts the local state comes from TACIT_PASSPHRASE or a prompt
(tacit passphrase changes it).

exit codes:
  0 ok                     6 local state damaged or in use by another tacit
  1 internal error         7 server unreachable or too slow
  2 bad command line       8 server refused the request
  3 no account here        9 a contact's safety number changed (see: trust)
  4 account exists        10 no such user
  5 wrong passphrase      11 queued: server unreachable, sent when tacit next connects
 12 a received file did not check out (nothing of it was kept)
 13 the contact is blocked (see: unblock)
130 interrupted (Ctrl-C)
`;

type Command = (ctx: Ctx) => Promise<number>;

const COMMANDS: Record<string, Command> = {
  register: cmdRegister,
  send: cmdSend,
  recv: cmdRecv,
  chat: cmdChat,
  history: cmdHistory,
  'safety-number': cmdSafetyNumber,
  trust: cmdTrust,
  contacts: cmdContacts,
  whoami: cmdWhoami,
  directory: cmdDirectory,
  admin: cmdAdmin,
  group: cmdGroup,
  settings: cmdSettings,
  block: cmdBlock,
  unblock: cmdUnblock,
  blocked: cmdBlocked,
  mute: cmdMute,
  unmute: cmdUnmute,
  link: cmdLink,
  devices: cmdDevices,
  'sign-out': cmdSignOut,
  edit: cmdEdit,
  delete: cmdDelete,
  react: cmdReact,
  timer: cmdTimer,
  search: cmdSearch,
  retry: cmdRetry,
  passphrase: cmdPassphrase,
};

export async function main(argv: string[]): Promise<number> {
  const io = { env: process.env, stdin: process.stdin, stdout: process.stdout, stderr: process.stderr };
  let args: ParsedArgs;
  try {
    args = parseArgs(argv);
  } catch (e) {
    process.stderr.write(`tacit: ${e instanceof UsageError ? e.message : 'bad command line'}\n`);
    return EXIT.USAGE;
  }
  const out = makeOutput(args.json, io);
  // `tacit help` as `tacit --help`: what people type first.
  const help = args.help || (args.command === 'help' && args.positionals.length === 0);
  if (help || args.command === undefined) {
    (help ? process.stdout : process.stderr).write(HELP);
    return help ? EXIT.OK : EXIT.USAGE;
  }
  const command = Object.prototype.hasOwnProperty.call(COMMANDS, args.command) ? COMMANDS[args.command] : undefined;
  if (command === undefined) {
    out.error({ code: 'USAGE', message: `unknown command "${args.command.slice(0, 40)}" (see tacit --help)`, exit: EXIT.USAGE });
    return EXIT.USAGE;
  }
  try {
    return await command(makeCtx(args, out, io));
  } catch (e) {
    if (e instanceof UsageError) {
      out.error({ code: 'USAGE', message: e.message, exit: EXIT.USAGE });
      return EXIT.USAGE;
    }
    if (isClientError(e)) {
      const exit = exitCodeFor(e.code);
      out.error({ code: e.code, message: e.message, exit, ...(e.serverCode !== undefined ? { serverCode: e.serverCode } : {}), ...(e.contact !== undefined ? { contact: e.contact } : {}) });
      return exit;
    }
    // Never print an unknown error's default stringification: it may hold user data.
    out.error({ code: 'INTERNAL', message: `internal error: ${describeError(e)}`, exit: EXIT.INTERNAL });
    return EXIT.INTERNAL;
  }
}
