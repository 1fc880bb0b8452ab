// `npm run fuzz`: the decoder fuzzer's full run. Every decoder of protocol, api and client messages
// (packages/client/test/support/fuzz-targets.ts) gets TACIT_FUZZ_INPUTS inputs (default 10^6),
// all within TACIT_FUZZ_BUDGET_S seconds (default 3600, shared evenly). Prints counts per decoder;
// exits 1 on the first mishandled input (printing what reproduces it), 2 if a decoder did not get
// its inputs within the budget. TACIT_TEST_SEED fixes the seed.
import { fuzz, FuzzFailure } from '../packages/client/test/support/fuzz.ts';
import { fuzzTargets } from '../packages/client/test/support/fuzz-targets.ts';

const inputs = Number(process.env['TACIT_FUZZ_INPUTS'] ?? 1_000_000);
const budgetS = Number(process.env['TACIT_FUZZ_BUDGET_S'] ?? 3600);
const seed = process.env['TACIT_TEST_SEED'] !== undefined ? Number(process.env['TACIT_TEST_SEED']) : Math.floor(Math.random() * 2 ** 31);
if (!Number.isSafeInteger(inputs) || inputs <= 0 || !(budgetS > 0)) {
  console.error('TACIT_FUZZ_INPUTS must be a positive integer and TACIT_FUZZ_BUDGET_S a positive number');
  process.exit(2);
}

const targets = await fuzzTargets();
console.log(`fuzzing ${targets.length} decoders, ${inputs.toLocaleString('en')} inputs each, budget ${budgetS} s, seed ${seed}`);
const end = Date.now() + budgetS * 1000;
let short = 0;
let total = 0;
for (const [i, t] of targets.entries()) {
  // Each decoder gets an even share of what is left of the budget.
  const deadline = Date.now() + (end - Date.now()) / (targets.length - i);
  try {
    const r = fuzz(t, { inputs, seed, deadline });
    total += r.inputs;
    const rate = Math.round(r.inputs / (r.ms / 1000));
    const mark = r.inputs < inputs ? '  SHORT: budget ran out' : '';
    if (r.inputs < inputs) short++;
    console.log(
      `${t.name.padEnd(42)} ${r.inputs.toLocaleString('en').padStart(11)} inputs  ${r.accepted.toLocaleString('en').padStart(9)} accepted  ` +
        `${(r.ms / 1000).toFixed(1).padStart(6)} s  ${rate.toLocaleString('en').padStart(9)}/s  slowest ${r.slowestMs.toFixed(2)} ms${mark}`,
    );
  } catch (e) {
    if (e instanceof FuzzFailure) {
      console.error(`FAIL ${e.message}`);
      console.error(`replay: TACIT_TEST_SEED=${e.seed} TACIT_FUZZ_INPUTS=${e.iteration + 1} npm run fuzz`);
      process.exit(1);
    }
    throw e;
  }
}
console.log(`${total.toLocaleString('en')} inputs in total, no decoder mishandled any${short > 0 ? `; ${short} decoder(s) fell short of ${inputs.toLocaleString('en')}` : ''}`);
console.log(JSON.stringify({ fuzz: { decoders: targets.length, inputsPerDecoder: inputs, total, short, seed } }));
process.exit(short > 0 ? 2 : 0);
