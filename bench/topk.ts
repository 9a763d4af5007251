// Exact top-k throughput: lmdr's native search vs usearch's exact (brute-force) search, same
// data, same machine, same run. 100k x 768 corpus, 1k queries, k = 100, unit-norm rows.
// Usage: npx tsx bench/topk.ts [--corpus N] [--queries Q] [--dim H] [--k K] [--device cpu|cuda]
// Appends a line to bench/RESULTS.md (created with a header if absent).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { native } from '../lib/native.ts';
import { normalRng } from '../lib/train/random.ts';
import { bestOf } from './timing.ts';

const { values } = parseArgs({
  options: {
    corpus: { type: 'string', default: '100000' }, queries: { type: 'string', default: '1000' },
    dim: { type: 'string', default: '768' }, k: { type: 'string', default: '100' },
    device: { type: 'string', default: 'cpu' }, repeats: { type: 'string', default: '3' },
  },
});
const N = Number(values.corpus), Q = Number(values.queries), H = Number(values.dim), K = Number(values.k);
const repeats = Number(values.repeats);

/** Seeded unit-norm gaussian rows: the same data on every run. */
function unitRows(rows: number, seed: number): Float32Array {
  const normal = normalRng(seed);
  const out = new Float32Array(rows * H);
  for (let r = 0; r < rows; r++) {
    let norm = 0;
    for (let h = 0; h < H; h++) {
      const v = normal();
      out[r * H + h] = v;
      norm += v * v;
    }
    const inv = 1 / Math.sqrt(norm);
    for (let h = 0; h < H; h++) out[r * H + h] *= inv;
  }
  return out;
}

async function best(label: string, fn: () => Promise<unknown> | unknown): Promise<number> {
  const onRun = (run: number, s: number) => process.stderr.write(`${label}: run ${run}/${repeats} ${s.toFixed(3)} s\n`);
  return (await bestOf(repeats, fn, { onRun })).seconds;
}

const corpus = unitRows(N, 1234);
const queries = unitRows(Q, 5678);
const threads = os.availableParallelism();

const lmdrS = await best('lmdr', () => native().topk(queries, corpus, Q, N, H, K, values.device!));

const require = createRequire(import.meta.url);
const usearch = require('usearch') as {
  exactSearch: (d: Float32Array, q: Float32Array, dim: number, k: number, metric: string, threads: number) => { keys: BigUint64Array; distances: Float32Array };
};
const usearchS = await best('usearch exactSearch', () => usearch.exactSearch(corpus, queries, H, K, 'ip', threads));

// Same answers? Recall of usearch's top-k against lmdr's (ties aside, both are exact).
const mine = await native().topk(queries, corpus, Q, N, H, K, values.device!);
const theirs = usearch.exactSearch(corpus, queries, H, K, 'ip', threads);
let agree = 0;
for (let q = 0; q < Q; q++) {
  const set = new Set(Array.from(mine.ids.subarray(q * K, (q + 1) * K), Number));
  for (let j = 0; j < K; j++) if (set.has(Number(theirs.keys[q * K + j]))) agree++;
}
const overlap = agree / (Q * K);

const info = native().buildInfo();
const device = values.device === 'cpu' ? `${os.cpus()[0]?.model ?? 'cpu'} x${threads} threads` : `${values.device} ${info.cudaDevices.join(', ')}`;
const qps = (s: number) => (Q / s).toFixed(0);
const ratio = usearchS / lmdrS;
const date = new Date().toISOString().slice(0, 10);
const command = `npx tsx bench/topk.ts --corpus ${N} --queries ${Q} --dim ${H} --k ${K} --device ${values.device}`;
const line = `| exact top-k ${N}x${H}, ${Q} queries, k=${K} | ${device} | ${date} | lmdr ${lmdrS.toFixed(3)} s (${qps(lmdrS)} q/s) | usearch exactSearch ${usearchS.toFixed(3)} s (${qps(usearchS)} q/s) | ${ratio.toFixed(2)}x | top-k overlap ${(overlap * 100).toFixed(2)}% | \`${command}\` |`;
process.stdout.write(line + '\n');

const results = path.join(path.dirname(fileURLToPath(import.meta.url)), 'RESULTS.md');
if (!fs.existsSync(results)) {
  fs.writeFileSync(results, '# Benchmark results\n\nEach figure is a ratio against a named baseline measured in the same run (`npm run bench`).\n\n');
}
const header = '| benchmark | device | date | lmdr | baseline | speed-up (baseline time / lmdr time) | check | command |\n|---|---|---|---|---|---|---|---|\n';
const text = fs.readFileSync(results, 'utf8');
fs.appendFileSync(results, (text.includes('| exact top-k') ? '' : `\n## Exact top-k search\n\n${header}`) + line + '\n');
