// Peak memory of a length-sweep point: `lmdr suite` on a generated BEIR folder whose passages
// are longer than 8192 tokens, with a tiny generated decoder, one child process per passage max
// length (its peak RSS from process.resourceUsage()), beside a child that only loads the model.
//   npx tsx bench/suite-long-passages.ts [--passages 32] [--lengths 256,1024,8192] [--hidden 64] [--max-tokens 16384]
// Prints one JSON line per point and a Markdown table.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { makeTinyModel, tinyWords } from '../test/helpers/tiny-models.ts';
import { randInt, uniformRng } from '../test/helpers/rng.ts';

const { values } = parseArgs({ options: { passages: { type: 'string', default: '32' }, lengths: { type: 'string', default: '256,1024,8192' }, hidden: { type: 'string', default: '64' }, 'max-tokens': { type: 'string', default: '16384' } } });
const P = Number(values.passages);
const lengths = values.lengths!.split(',').map(Number);
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdr-bench-long-'));
const u = uniformRng(7);
const words = (n: number) => Array.from({ length: n }, () => tinyWords[randInt(u, 0, 70)]).join(' ');
const model = makeTinyModel({ arch: 'qwen2', hidden: Number(values.hidden), heads: 4, kvHeads: 2, intermediate: 2 * Number(values.hidden), tokenizer: true, dir: path.join(root, 'model') });
const beir = path.join(root, 'long');
fs.mkdirSync(path.join(beir, 'qrels'), { recursive: true });
fs.writeFileSync(path.join(beir, 'corpus.jsonl'), Array.from({ length: P }, (_, i) => JSON.stringify({ _id: `d${i}`, text: words(8400) })).join('\n') + '\n');
fs.writeFileSync(path.join(beir, 'queries.jsonl'), Array.from({ length: 8 }, (_, i) => JSON.stringify({ _id: `q${i}`, text: words(12) })).join('\n') + '\n');
fs.writeFileSync(path.join(beir, 'qrels', 'test.tsv'), ['query-id\tcorpus-id\tscore', ...Array.from({ length: 8 }, (_, i) => `q${i}\td${i}\t1`)].join('\n') + '\n');

const repo = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
function child(code: string): { maxRssMiB: number; seconds: number } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: repo, encoding: 'utf8', env: { ...process.env, LMDR_DEVICE: 'cpu' } });
  if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`);
  const last = r.stdout.trim().split('\n').pop()!;
  return { maxRssMiB: (JSON.parse(last) as { maxRSS: number }).maxRSS / 1024, seconds: (performance.now() - t0) / 1000 };
}
const report = 'console.log(JSON.stringify({ maxRSS: process.resourceUsage().maxRSS }));';
const rows: { what: string; maxRssMiB: number; seconds: number }[] = [];
const load = child(`const { Engine } = await import('./lib/engine.ts'); const e = await Engine.load(${JSON.stringify(model)}, { device: 'cpu' }); await e.encode(['river'], {}); e.dispose(); ${report}`);
rows.push({ what: 'load the model, encode one short text', ...load });
for (const len of lengths) {
  const suite = path.join(root, `suite-${len}.json`);
  fs.writeFileSync(suite, JSON.stringify({ tasks: [{ name: 'long', type: 'length-sweep', data: beir, lengths: [len], k: 10, max_tokens: Number(values['max-tokens']) }] }));
  const r = child(`const { main } = await import('./lib/cli/main.ts'); const code = await main(['suite', ${JSON.stringify(suite)}, '--model', ${JSON.stringify(model)}, '--output', ${JSON.stringify(path.join(root, `out-${len}`))}, '--no-progress']); if (code !== 0) process.exit(code); ${report}`);
  rows.push({ what: `lmdr suite length-sweep point ${len} tokens, max_tokens ${values['max-tokens']} (${P} passages of >8192 tokens)`, ...r });
}
for (const r of rows) console.log(JSON.stringify(r));
console.log(`\n| measurement | peak RSS | wall |\n|---|---|---|\n${rows.map((r) => `| ${r.what} | ${r.maxRssMiB.toFixed(0)} MiB | ${r.seconds.toFixed(1)} s |`).join('\n')}`);
fs.rmSync(root, { recursive: true, force: true });
