// A short pass of the decoder fuzzer over every decoder of protocol, api and client (see
// support/fuzz-targets.ts). `npm run fuzz` runs the full one (10^6 inputs per decoder).
// Replay a failure with TACIT_TEST_SEED=<seed>.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fuzz, FuzzFailure } from './support/fuzz.ts';
import { fuzzTargets } from './support/fuzz-targets.ts';

const INPUTS_PER_TARGET = 3_000;
const seed = process.env['TACIT_TEST_SEED'] !== undefined ? Number(process.env['TACIT_TEST_SEED']) : Math.floor(Math.random() * 2 ** 31);

test(`every decoder survives ${INPUTS_PER_TARGET} fuzzed inputs (seed ${seed})`, async () => {
  const targets = await fuzzTargets();
  assert.ok(targets.length >= 20);
  for (const t of targets) {
    const r = fuzz(t, { inputs: INPUTS_PER_TARGET, seed });
    assert.equal(r.inputs, INPUTS_PER_TARGET);
    // The mix reaches both outcomes: some inputs decode, most are refused.
    assert.ok(r.accepted < r.inputs, `${t.name}: every fuzzed input was accepted`);
  }
});

test('the fuzzer finds a decoder that throws a stray error deep inside a valid-looking input', () => {
  const seedMessage = new TextEncoder().encode(JSON.stringify({ type: 'send', id: 'c1', to: { username: 'bob', deviceId: 1 } }));
  const target = {
    name: 'planted bug',
    input: 'bytes' as const,
    json: true,
    seeds: [seedMessage],
    decode: (b: Uint8Array | string): unknown => {
      const v = JSON.parse(new TextDecoder().decode(b as Uint8Array)) as { to?: { deviceId?: unknown } };
      // The bug: a non-number device id is dereferenced as if it were an object.
      if (v.to !== undefined && typeof v.to.deviceId !== 'number') return (v.to.deviceId as { x: { y: number } }).x.y;
      return v;
    },
    expected: (e: unknown) => e instanceof SyntaxError,
  };
  assert.throws(() => fuzz(target, { inputs: 20_000, seed }), (e) => e instanceof FuzzFailure && e.cause instanceof TypeError);
});
