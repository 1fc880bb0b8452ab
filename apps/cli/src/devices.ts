/**
 * Linked devices: `tacit link` (this home becomes a new device of an existing account),
 * `tacit devices` (list), `tacit devices add <code>` (link the device showing the code),
 * `tacit devices remove <id>`.
 */
import { renderUnicodeCompact } from 'uqr';
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
