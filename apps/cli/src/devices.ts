/**
 * Linked devices: `tacit link` (this home becomes a new device of an existing account),
 * `tacit devices` (list), `tacit devices add <code>` (link the device showing the code),
 * `tacit devices remove <id>`, `tacit sign-out` (this device leaves the account; the home is deleted).
 */
import { createInterface } from 'node:readline';
import { renderUnicodeCompact } from 'uqr';
import { describeError } from '@tacit/client';
import { UsageError } from './args.js';
import type { Ctx } from './context.js';
import { EXIT } from './exit-codes.js';
import { formatTime, sanitize } from './output.js';

export async function cmdLink(ctx: Ctx): Promise<number> {
  if (ctx.args.positionals.length !== 0) throw new UsageError('usage: tacit link --server <url> [--name <device name>]');
  if (ctx.args.server === undefined) throw new UsageError('link needs --server <url> (the server of the account to join)');
  const tty = ctx.stdout.isTTY === true && !ctx.args.json;
  const h = await ctx.link({
    server: ctx.args.server,
    name: ctx.args.name ?? 'terminal',
    ...(ctx.args.wait !== undefined ? { timeoutMs: ctx.args.wait * 1000 } : {}),
    onCode: (code, expiresAt) => {
      // The QR code only on a terminal: in a pipe or a file its blocks are noise.
      const qr = tty ? `\n${renderUnicodeCompact(code, { border: 1 })}\n` : '';
      ctx.out.event(
        'link-code',
        { code, expiresAt },
        `On a device already signed in to this account, run:\n  tacit devices add ${code}\nor in the web client open Settings → Devices and paste the code (the QR code holds the same text, for a phone's camera):${qr}\n${code}\nWaiting for it (until ${formatTime(expiresAt)})…`,
      );
    },
  });
  try {
    const c = h.client;
    ctx.out.event('linked', { username: c.username, deviceId: c.deviceId, server: c.server, home: ctx.home }, `linked: this is device ${c.deviceId} of ${c.username} on ${c.server} (contacts and groups came along; earlier messages do not)`);
  } finally {
    await h.close();
  }
  return EXIT.OK;
}

export async function cmdDevices(ctx: Ctx): Promise<number> {
  const [sub, arg, ...rest] = ctx.args.positionals;
  if (sub === undefined || sub === 'list') {
    if (arg !== undefined) throw new UsageError('usage: tacit devices');
    return listDevices(ctx);
  }
  if (sub === 'add') {
    if (arg === undefined || rest.length > 0) throw new UsageError('usage: tacit devices add <link code>');
    const h = await ctx.open();
    try {
      const r = await h.client.linkDevice(arg);
      if (r.deviceId !== undefined) ctx.out.event('device-added', { deviceId: r.deviceId }, `linked device ${r.deviceId}`);
      else ctx.out.event('device-added', { deviceId: null }, 'sent the link message; the new device has not registered yet (see tacit devices)');
    } finally {
      await h.close();
    }
    return EXIT.OK;
  }
  if (sub === 'remove') {
    if (arg === undefined || rest.length > 0 || !/^[0-9]{1,3}$/.test(arg)) throw new UsageError('usage: tacit devices remove <device id>');
    const h = await ctx.open();
    try {
      await h.client.removeDevice(Number(arg));
      ctx.out.event('device-removed', { deviceId: Number(arg) }, `removed device ${arg}: it is signed out and gets no more messages`);
    } finally {
      await h.close();
    }
    return EXIT.OK;
  }
  throw new UsageError('usage: tacit devices [add <code> | remove <id>]');
}

async function listDevices(ctx: Ctx): Promise<number> {
  const h = await ctx.open();
  try {
    const list = await h.client.devices();
    ctx.out.batch(() => {
      for (const d of list) {
        const name = d.name === '' ? '(no name)' : sanitize(d.name);
        const seen = d.lastSeenAt === 0 ? 'never connected' : `last seen ${new Date(d.lastSeenAt).toISOString().slice(0, 10)}`;
        ctx.out.event(
          'device',
          { deviceId: d.deviceId, name: d.name, createdAt: d.createdAt, lastSeenAt: d.lastSeenAt, current: d.current },
          `${String(d.deviceId).padStart(3)}  ${name}${d.current ? ' (this device)' : ''}  added ${formatTime(d.createdAt)}, ${seen}`,
        );
      }
    });
  } finally {
    await h.close();
  }
  return EXIT.OK;
}

/** Reads one line from a terminal: "yes" confirms signing out. */
async function confirmSignOut(ctx: Ctx): Promise<boolean> {
  ctx.stderr.write(
    `Sign out of ${ctx.home}? This removes this device from the account (when the account has other devices: it gets no more messages)\n` +
      `and deletes its keys and history here, which cannot be undone. On the account's only device, the account and its messages\n` +
      `cannot be opened again anywhere and the username stays taken until an admin resets it.\nType yes to confirm: `,
  );
  const rl = createInterface({ input: ctx.stdin, terminal: false });
  try {
    for await (const line of rl) return line.trim().toLowerCase() === 'yes';
    return false;
  } finally {
    rl.close();
  }
}

/**
 * `tacit sign-out [--yes]`: removes this device from the account on the server when the account
 * has other devices (best effort: if the server cannot be reached, the local state is deleted
 * anyway and the output says to remove the device from another one), then deletes the home's
 * state. The account's only device is not removed from the server. Received files stay.
 */
export async function cmdSignOut(ctx: Ctx): Promise<number> {
  if (ctx.args.positionals.length !== 0) throw new UsageError('usage: tacit sign-out [--yes]');
  const interactive = ctx.stdin.isTTY === true && !ctx.args.json;
  if (!ctx.args.yes && !interactive) throw new UsageError('signing out deletes this home\'s keys and history and cannot be undone: add --yes to confirm');
  if (!ctx.args.yes && !(await confirmSignOut(ctx))) throw new UsageError('not confirmed; nothing was changed');
  const r = await ctx.signOut();
  const who = `device ${r.deviceId} of ${r.username}`;
  const server =
    r.server.kind === 'unlinked'
      ? `removed ${who} from the account (it gets no more messages)`
      : r.server.kind === 'already-removed'
        ? `${who} was already removed from the account (from another device, or the account was reset)`
        : r.server.kind === 'only-device'
        ? `kept ${who} on the server: it is the account's only device, so the account stays and the username stays taken until an admin resets it`
        : `could not remove ${who} from the account (${sanitize(describeError(r.server.error))}): remove it from another device (tacit devices remove ${r.deviceId}, or Settings → Devices on the web)`;
  const local = r.kept.length === 0 ? `deleted ${ctx.home}` : `deleted the keys and history in ${ctx.home} (kept: ${r.kept.slice(0, 5).map(sanitize).join(', ')}${r.kept.length > 5 ? ', …' : ''})`;
  ctx.out.event(
    'signed-out',
    { username: r.username, deviceId: r.deviceId, unlinked: r.server.kind === 'unlinked' || r.server.kind === 'already-removed', server: r.server.kind, home: ctx.home, kept: r.kept },
    `signed out: ${server}; ${local}`,
  );
  return EXIT.OK;
}
