/**
 * Multi-recipient ("fan-out") sends: one send to many devices, a group message (one shared
 * ciphertext) or a pairwise message to every device of some accounts (one ciphertext each).
 *
 * The device-list rules, Signal's (DESIGN §3.1), written once for every store adapter. For each
 * named account, against its devices at the moment of the write (in the same transaction):
 * - the account is unknown → NOT_FOUND (every named device counts as extra);
 * - stale = named devices that exist but have another registration id now;
 * - missing = the account's devices not named (the sending device is left out of its own account);
 * - extra = named devices the account does not have (the sending device, named in its own account,
 *   is extra too: nobody sends to itself).
 * Unknown accounts answer first, then stale devices (410-like), then missing/extra (409-like); in
 * each case nothing is stored and the answer lists, per account, what the sender must fix.
 */
import type { DeviceMismatch } from '@tacit/api';
import type { Address, CiphertextKind } from './store.js';

export interface FanoutDevice {
  deviceId: number;
  /** The registration id the ciphertext was made for (the session's remote registration id). */
  registrationId: number;
  kind: CiphertextKind;
  /** Devices of a group send share one array: the adapters store it once per device, never copy it here. */
  body: Uint8Array;
}

export interface NewFanout {
  from: Address;
  recipients: { username: string; devices: FanoutDevice[] }[];
  timestamp: number;
  expiresAt: number;
  /**
   * The fan-out's digest (resend.ts, `fanoutDigest`): when the sending device stored a fan-out
   * with this digest within RESEND_WINDOW_MS and among its last RESEND_MEMORY_PER_DEVICE sends,
   * nothing is stored, no check runs, and the result is `resent`. Absent: always written.
   */
  digest?: Uint8Array;
}

export type FanoutRefusal = 'NOT_FOUND' | 'STALE_DEVICE' | 'MISMATCHED_DEVICES';

/** One stored copy: its message id, and (stores shared by several nodes) `after` as in EnqueueResult. */
export interface StoredCopy {
  id: number;
  after?: number;
}

export type FanoutResult =
  /**
   * Stored: `stored[i][j]` is the copy for recipient i's device j, or null when that device's
   * mailbox was full and it was skipped (listed in `mailboxFull`).
   */
  | {
      ok: true;
      stored: (StoredCopy | null)[][];
      mailboxFull: Address[];
      /**
       * A resend of a fan-out the device already stored (NewFanout.digest): every `stored` entry
       * is null (the copies were delivered or queued then), and this is when it was stored and how
       * many copies; which devices had a full mailbox then is not remembered.
       */
      resent?: { timestamp: number; stored: number };
    }
  | { ok: false; code: FanoutRefusal; accounts: DeviceMismatch[] };

/** One account's current devices as the store sees them inside the write's transaction. */
export type CurrentDevices = ReadonlyMap<number, number>; // deviceId → registrationId

/**
 * Applies the rules to `fanout` given each named account's current devices (undefined for an
 * unknown account). Null when the device lists are right and the send may be stored.
 */
export function checkDeviceLists(
  fanout: Pick<NewFanout, 'from' | 'recipients'>,
  current: (username: string) => CurrentDevices | undefined,
): { code: FanoutRefusal; accounts: DeviceMismatch[] } | null {
  const unknown: DeviceMismatch[] = [];
  const stale: DeviceMismatch[] = [];
  const mismatched: DeviceMismatch[] = [];
  for (const r of fanout.recipients) {
    const devices = current(r.username);
    const named = r.devices.map((d) => d.deviceId);
    if (devices === undefined) {
      unknown.push({ username: r.username, missing: [], extra: sorted(named), stale: [] });
      continue;
    }
    const self = r.username === fanout.from.username ? fanout.from.deviceId : undefined;
    const s: number[] = [];
    const extra: number[] = [];
    for (const d of r.devices) {
      const reg = devices.get(d.deviceId);
      if (reg === undefined || d.deviceId === self) extra.push(d.deviceId);
      else if (reg !== d.registrationId) s.push(d.deviceId);
    }
    const namedSet = new Set(named);
    const missing = [...devices.keys()].filter((id) => id !== self && !namedSet.has(id));
    if (s.length > 0) stale.push({ username: r.username, missing: [], extra: [], stale: sorted(s) });
    if (missing.length > 0 || extra.length > 0) mismatched.push({ username: r.username, missing: sorted(missing), extra: sorted(extra), stale: [] });
  }
  if (unknown.length > 0) return { code: 'NOT_FOUND', accounts: unknown };
  if (stale.length > 0) return { code: 'STALE_DEVICE', accounts: stale };
  if (mismatched.length > 0) return { code: 'MISMATCHED_DEVICES', accounts: mismatched };
  return null;
}

/**
 * The same rules for a pairwise `send` that names its account's device list (`SendFrame.devices`):
 * the target device carries its expected registration id (if any), the other named devices are
 * checked for presence only (each has its own `send`). Null when the list is right.
 */
export function checkSendDeviceList(
  from: Address,
  to: { username: string; deviceId: number; registrationId?: number },
  named: readonly number[],
  current: CurrentDevices | undefined,
): { code: FanoutRefusal; accounts: DeviceMismatch[] } | null {
  const devices = named.map((id) => ({
    deviceId: id,
    registrationId: id === to.deviceId && to.registrationId !== undefined ? to.registrationId : (current?.get(id) ?? 0),
    kind: 2 as const,
    body: EMPTY,
  }));
  return checkDeviceLists({ from, recipients: [{ username: to.username, devices }] }, () => current);
}

const EMPTY = new Uint8Array(0);

/** The answer to a fan-out recognised as a resend: nothing stored now (see FanoutResult). */
export function resentFanout(f: Pick<NewFanout, 'recipients'>, timestamp: number, stored: number): FanoutResult {
  return { ok: true, stored: f.recipients.map((r) => r.devices.map(() => null)), mailboxFull: [], resent: { timestamp, stored } };
}

function sorted(ids: number[]): number[] {
  return [...ids].sort((a, b) => a - b);
}

/** Every device of the fan-out in order, with its address (recipient index i, device index j). */
export function* fanoutTargets(f: NewFanout): Generator<{ i: number; j: number; to: Address; device: FanoutDevice }> {
  for (let i = 0; i < f.recipients.length; i++) {
    const r = f.recipients[i]!;
    for (let j = 0; j < r.devices.length; j++) {
      const device = r.devices[j]!;
      yield { i, j, to: { username: r.username, deviceId: device.deviceId }, device };
    }
  }
}
