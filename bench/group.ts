// Group send benchmark (issue 9, "Benchmark"): one text to a group whose members have K devices
// in all (K = 10, 100, 1,000), sent as one group message (one SenderKeyMessage, shared by every
// device, in `send-multi` frames of at most MAX_FANOUT_DEVICES devices) and, in the same run, as
// K pairwise messages (one Double Ratchet encryption and one `send` frame per device). Measured
// on the sender: CPU time (process.cpuUsage, user + system) and the bytes it uploads (the frames'
// JSON text, as the WebSocket carries it).
//
// Setup (untimed), in process against in-memory stores, no server: the sender and K recipient
// devices (K accounts of one device each, as tacit's clients are today) are protocol parties
// (packages/protocol/test/support/tacit.ts). Each recipient hands over a bundle; the sender
// starts a session, and the recipient answers once, so every session is acknowledged and the
// timed pairwise messages are ordinary SignalMessages (not the larger PreKeySignalMessages of a
// first contact). The sender makes its sender key and every recipient processes the distribution
// message, as the SDK does before a group's first message (its cost, the key hand-over over each
// pairwise session, is printed on its own line: it is paid once per member device, not per message).
//
// Method: for each K, rounds alternate group and pairwise (G,P,G,P,…); each contender's figure is
// the median over rounds. A group round is GROUP_BURST group messages in a row, its figure the
// per-message share (a pairwise round is K encryptions; see GROUP_BURST); the first message of
// each group round is also reported on its own. A sample of recipients decrypts what it was sent, so a broken contender
// cannot look fast. Nothing here asserts on time. The last line of output is one JSON object.
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { MAX_FANOUT_DEVICES, toBase64 } from '@tacit/api';
import { DistributionId, GroupCipher, InMemorySenderKeyStore, ProtocolAddress, SenderKeyDistributionMessage } from '@tacit/protocol';
import { nodeBackend } from '@tacit/protocol/node';
import { buildSendMulti, encodeEnvelope, encodeGroupPayload, type FanoutTarget } from '../packages/client/src/index.ts';
import { TacitParty } from '../packages/protocol/test/support/tacit.ts';

const { values: flags } = parseArgs({ options: { k: { type: 'string', default: '10,100,1000' }, rounds: { type: 'string', default: '7' } } });
const SIZES = flags.k.split(',').map(Number);
const ROUNDS = Number(flags.rounds);
/** A typical chat line. */
const TEXT = 'Standup moved to 10:30 today — same room. Bring the release checklist, please.';
/** Recipients that decrypt each timed message (a check, untimed). */
const CHECKED = 3;
/**
 * Group messages timed together per round (the figure is per message). One message costs well
 * under a millisecond, where process.cpuUsage (the whole process: GC helper threads, the loader
 * thread) and a shared machine's noise are of the same order; a pairwise round (K encryptions)
 * averages over K operations the same way. The first message's own figure is printed too.
 */
const GROUP_BURST = 10;
/** The group target at K = 100: group ≤ 1/10 of pairwise in CPU and in bytes. */
const TARGET_RATIO = 0.1;

const backend = nodeBackend();
const GROUP_ID = '0123456789abcdef0123456789abcdef';

interface Figures {
  cpuMs: number;
  bytes: number;
}

function cpuMs(start: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1000;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Splits device targets into frames of at most MAX_FANOUT_DEVICES devices. */
function chunks(targets: FanoutTarget[]): FanoutTarget[][] {
  const out: FanoutTarget[][] = [];
  for (let i = 0; i < targets.length; i += MAX_FANOUT_DEVICES) out.push(targets.slice(i, i + MAX_FANOUT_DEVICES));
  return out;
}

async function setup(k: number) {
  const t0 = performance.now();
  const sender = new TacitParty('alice', backend);
  const members: TacitParty[] = [];
  for (let i = 0; i < k; i++) {
    const m = new TacitParty(`m${String(i).padStart(4, '0')}`, backend);
    await sender.processBundle(m.name, await m.bundle(true));
    const first = await sender.encrypt(m.name, encodeEnvelope({ v: 1, id: `hello${i}`, text: 'hi', sentAt: 1 }));
    await m.decrypt('alice', first);
    await sender.decrypt(m.name, await m.encrypt('alice', encodeEnvelope({ v: 1, id: `re${i}`, text: 'hi', sentAt: 1 })));
    members.push(m);
  }
  // The sender key, and every member's copy of it (what the key hand-over delivers).
  const senderKeys = new GroupCipher(backend, new InMemorySenderKeyStore());
  const me = new ProtocolAddress('alice', 1);
  const dist = DistributionId.random(backend);
  const skdm = await senderKeys.createSenderKeyDistributionMessage(me, dist);
  const memberCiphers = members.slice(0, CHECKED).map(() => new GroupCipher(backend, new InMemorySenderKeyStore()));
  for (const c of memberCiphers) await c.processSenderKeyDistributionMessage(me, SenderKeyDistributionMessage.deserialize(skdm.serialize()));
  return { sender, members, senderKeys, me, dist, skdm, memberCiphers, setupMs: performance.now() - t0 };
}

type World = Awaited<ReturnType<typeof setup>>;

/** One group message: encrypt once, frame for every device. */
async function groupMessage(w: World, n: number): Promise<{ bytes: number; body: Uint8Array }> {
  const plaintext = encodeGroupPayload({ grp: 'text', group: GROUP_ID, id: `g${n}`, text: TEXT, sentAt: 1_700_000_000_000 + n });
  const body = await w.senderKeys.groupEncrypt(w.me, w.dist, plaintext);
  const targets: FanoutTarget[] = w.members.map((m) => ({ username: m.name, devices: [{ deviceId: 1, registrationId: m.registrationId }] }));
  let bytes = 0;
  for (const c of chunks(targets)) bytes += JSON.stringify(buildSendMulti(`gm${n}-${bytes}`, c, { type: 'sender-key', body })).length;
  return { bytes, body };
}

/**
 * GROUP_BURST group messages in a row: per-message CPU (the burst's total over GROUP_BURST) and
 * bytes, and the first message's CPU on its own (`singleMs`).
 */
async function groupSend(w: World, n: number): Promise<Figures & { singleMs: number; bodies: Uint8Array[] }> {
  const start = process.cpuUsage();
  const bodies: Uint8Array[] = [];
  let bytes = 0;
  let singleMs = 0;
  for (let i = 0; i < GROUP_BURST; i++) {
    const m = await groupMessage(w, n * GROUP_BURST + i);
    if (i === 0) singleMs = cpuMs(start);
    bodies.push(m.body);
    bytes += m.bytes;
  }
  return { cpuMs: cpuMs(start) / GROUP_BURST, bytes: Math.round(bytes / GROUP_BURST), singleMs, bodies };
}

/** The same text as K pairwise messages: one encryption and one `send` frame per device. */
async function pairwiseSend(w: World, n: number): Promise<Figures & { sample: { type: 'prekey' | 'whisper'; body: Uint8Array }[] }> {
  const start = process.cpuUsage();
  const plaintext = encodeEnvelope({ v: 1, id: `p${n}`, text: TEXT, sentAt: 1_700_000_000_000 + n });
  let bytes = 0;
  const sample: { type: 'prekey' | 'whisper'; body: Uint8Array }[] = [];
  for (const m of w.members) {
    const ct = await w.sender.encrypt(m.name, plaintext);
    const frame = { type: 'send', id: `pm${n}-${m.name}`, to: { username: m.name, deviceId: 1, registrationId: m.registrationId }, message: { type: ct.type, body: toBase64(ct.body) } };
    bytes += JSON.stringify(frame).length;
    if (sample.length < CHECKED) sample.push(ct);
  }
  return { cpuMs: cpuMs(start), bytes, sample };
}

async function keyHandOver(w: World): Promise<Figures> {
  const start = process.cpuUsage();
  const payload = encodeGroupPayload({ grp: 'key', group: GROUP_ID, skdm: w.skdm.serialize() });
  const targets: FanoutTarget[] = [];
  for (const m of w.members) {
    const ct = await w.sender.encrypt(m.name, payload);
    targets.push({ username: m.name, devices: [{ deviceId: 1, registrationId: m.registrationId, message: { type: ct.type, body: ct.body } }] });
  }
  // Frames as the SDK sizes them (per-device ciphertexts fill a frame long before 300 devices).
  let bytes = 0;
  let frame: FanoutTarget[] = [];
  for (const t of targets) {
    frame.push(t);
    if (frame.length === 40) {
      bytes += JSON.stringify(buildSendMulti(`k${bytes}`, frame)).length;
      frame = [];
    }
  }
  if (frame.length > 0) bytes += JSON.stringify(buildSendMulti(`k${bytes}`, frame)).length;
  return { cpuMs: cpuMs(start), bytes };
}

const results: Record<string, { group: Figures; pairwise: Figures }> = {};
console.log(`bench:group — one ${TEXT.length}-character text to K member devices; median of ${ROUNDS} rounds; node ${process.version}`);
for (const k of SIZES) {
  const w = await setup(k);
  console.log(`K=${k}: setup (sessions for ${k} devices, in process) ${(w.setupMs / 1000).toFixed(1)} s`);
  const handOver = await keyHandOver(w);
  const g: (Figures & { singleMs: number })[] = [];
  const p: Figures[] = [];
  let n = 0;
  // Warm-up of both paths (JIT), untimed.
  await groupSend(w, n++);
  await pairwiseSend(w, n++);
  for (let r = 0; r < ROUNDS; r++) {
    const gs = await groupSend(w, n++);
    for (const c of w.memberCiphers) {
      for (const body of gs.bodies) {
        const got = await c.groupDecrypt(w.me, body);
        if (!new TextDecoder().decode(got.plaintext).includes(TEXT)) throw new Error('a member decrypted something else');
      }
    }
    g.push(gs);
    const ps = await pairwiseSend(w, n++);
    // Untimed: the sampled members read their copy (the ratchet skips what they were not shown).
    for (let i = 0; i < ps.sample.length; i++) {
      const got = await w.members[i]!.decrypt('alice', ps.sample[i]!);
      if (!new TextDecoder().decode(got).includes(TEXT)) throw new Error('a member decrypted something else');
    }
    p.push(ps);
  }
  const group = { cpuMs: +median(g.map((x) => x.cpuMs)).toFixed(3), bytes: median(g.map((x) => x.bytes)) };
  const single = median(g.map((x) => x.singleMs));
  // Each group round runs right before its pairwise round, so a ratio per pair of rounds cancels
  // much of a shared machine's drifting load; its median is printed beside the ratio of medians.
  const paired = median(g.map((x, i) => x.cpuMs / p[i]!.cpuMs));
  const pairwise = { cpuMs: +median(p.map((x) => x.cpuMs)).toFixed(3), bytes: median(p.map((x) => x.bytes)) };
  results[`k${k}`] = { group, pairwise };
  console.log(
    `K=${k}: group ${group.cpuMs} ms CPU, ${group.bytes} bytes | pairwise ${pairwise.cpuMs} ms CPU, ${pairwise.bytes} bytes | group/pairwise CPU ${(group.cpuMs / pairwise.cpuMs).toFixed(3)}, bytes ${(group.bytes / pairwise.bytes).toFixed(3)}`,
  );
  console.log(`K=${k}: group/pairwise CPU per pair of rounds (median): ${paired.toFixed(3)}`);
  console.log(`K=${k}: group, the first message of each burst on its own: ${single.toFixed(3)} ms CPU (median; group/pairwise ${(single / pairwise.cpuMs).toFixed(3)})`);
  console.log(`K=${k}: key hand-over before the first group message (once per member device): ${handOver.cpuMs.toFixed(1)} ms CPU, ${handOver.bytes} bytes`);
}
const k100 = results['k100'];
if (k100 !== undefined) {
  const ok = k100.group.cpuMs <= TARGET_RATIO * k100.pairwise.cpuMs && k100.group.bytes <= TARGET_RATIO * k100.pairwise.bytes;
  console.log(`target at K=100 (group ≤ ${TARGET_RATIO} × pairwise in CPU and bytes): ${ok ? 'met' : 'NOT met'}`);
}
console.log(JSON.stringify(results));
