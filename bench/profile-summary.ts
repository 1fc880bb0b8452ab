// Summarise a V8 .cpuprofile (from `node --cpu-prof`): top functions by self time, and self time
// per source file / package, as a share of the sampled time.
//
//   node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx bench/protocol.ts --only=pingpong --contenders=tacit
//   node --import tsx bench/profile-summary.ts /tmp/prof/CPU.*.cpuprofile [--top=25]
//     [--exclude=bundle,TacitParty]   drop samples with one of these functions on the stack
//                                     (e.g. the untimed bundle generation of the setup workload)
//     [--inclusive=agree,verifyBundle] also report inclusive time of these functions
// Note: --cpu-prof also writes a profile of tsx's loader thread (almost all idle); skip it.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    top: { type: 'string', default: '25' },
    exclude: { type: 'string', default: '' },
    inclusive: { type: 'string', default: '' },
  },
});
const top = Number(values.top);
const exclude = new Set(values.exclude.split(',').filter((s) => s !== ''));
const inclusive = values.inclusive.split(',').filter((s) => s !== '');

/** A readable location: the package for node_modules, the repo-relative path otherwise. */
function where(url: string): string {
  if (url === '') return '(native/V8)';
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    const pkg = rest[0]?.startsWith('@') === true ? `${rest[0]}/${rest[1]}` : (rest[0] ?? '?');
    return `${pkg}/${rest.slice(rest[0]?.startsWith('@') === true ? 2 : 1).join('/')}`;
  }
  if (url.startsWith('node:')) return url;
  const m = /\/work\/main\/(.*)$/.exec(url);
  return m?.[1] ?? url;
}

for (const file of positionals) {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const stackNames = (id: number): Set<string> => {
    const names = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      names.add(byId.get(cur)?.callFrame.functionName ?? '');
    }
    return names;
  };
  const selfUs = new Map<number, number>();
  const inclUs = new Map<string, number>();
  let total = 0;
  let excluded = 0;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    const names = exclude.size > 0 || inclusive.length > 0 ? stackNames(id) : new Set<string>();
    if ([...exclude].some((e) => names.has(e))) {
      excluded += dt;
      return;
    }
    for (const f of inclusive) if (names.has(f)) inclUs.set(f, (inclUs.get(f) ?? 0) + dt);
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
    total += dt;
  });
  const fns = new Map<string, number>();
  const files = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const n = byId.get(id);
    if (n === undefined) continue;
    const f = n.callFrame;
    const loc = where(f.url);
    const key = `${f.functionName || '(anonymous)'}  ${loc}${f.url !== '' ? `:${f.lineNumber + 1}` : ''}`;
    fns.set(key, (fns.get(key) ?? 0) + us);
    const fileKey = f.url === '' ? `${f.functionName}` : loc;
    files.set(fileKey, (files.get(fileKey) ?? 0) + us);
  }
  const pct = (us: number): string => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
  console.log(`\n== ${file}: ${(total / 1e6).toFixed(2)} s sampled${excluded > 0 ? ` (${(excluded / 1e6).toFixed(2)} s excluded)` : ''}`);
  if (inclusive.length > 0) {
    console.log('-- inclusive time');
    for (const f of inclusive) console.log(`${pct(inclUs.get(f) ?? 0)}  ${f}`);
  }
  console.log('-- top functions by self time');
  for (const [k, us] of [...fns].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)}  ${k}`);
  console.log('-- self time by file');
  for (const [k, us] of [...files].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)}  ${k}`);
}
