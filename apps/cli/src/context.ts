/** What every command gets: parsed arguments, output, the home directory and a way to open it. */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { linkHome, openHome, registerHome, signOutHome, type HomeClient, type SignOutResult } from '@tacit/client/node';
import type { LinkOptions, RegisterOptions } from '@tacit/client';
import type { ParsedArgs } from './args.js';
import type { Output } from './output.js';
import { getPassphrase } from './passphrase.js';

/** Deadline for connecting to the relay, ms. The relay keeps retrying with backoff until then. */
export const CONNECT_TIMEOUT_MS = 30_000;
/** Deadline for the server to deliver its queue after connecting, ms. */
export const DRAIN_TIMEOUT_MS = 120_000;

export interface Ctx {
  args: ParsedArgs;
  out: Output;
  home: string;
  env: Record<string, string | undefined>;
  stdin: NodeJS.ReadStream;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  open(): Promise<HomeClient>;
  register(reg: RegisterOptions): Promise<HomeClient>;
  link(link: LinkOptions): Promise<HomeClient>;
  /** `tacit sign-out`: unlinks this device (when the account has others) and deletes the home's state. */
  signOut(): Promise<SignOutResult>;
}

export function makeCtx(args: ParsedArgs, out: Output, io: { env: Record<string, string | undefined>; stdin: NodeJS.ReadStream; stdout: NodeJS.WriteStream; stderr: NodeJS.WriteStream }): Ctx {
  const home = resolve(args.home ?? io.env['TACIT_HOME'] ?? join(homedir(), '.tacit'));
  return {
    args,
    out,
    home,
    ...io,
    async open() {
      const passphrase = await getPassphrase(io, { confirm: false });
      return openHome({ home, passphrase });
    },
    async register(reg) {
      const passphrase = await getPassphrase(io, { confirm: true });
      return registerHome({ home, passphrase }, reg);
    },
    async link(link) {
      const passphrase = await getPassphrase(io, { confirm: true });
      return linkHome({ home, passphrase }, link);
    },
    async signOut() {
      const passphrase = await getPassphrase(io, { confirm: false });
      return signOutHome({ home, passphrase });
    },
  };
}
