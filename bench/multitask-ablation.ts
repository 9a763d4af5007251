// `npx tsx bench/multitask-ablation.ts [--steps N]`: LLM-Embedder's recipe on the generated
// two-task set of test/train/multitask-fixtures.ts (relevance differs by task), in the shape of
// the paper's ablation table: rewards from a tiny decoder LM (`lmdr score --data`), then LoRA
// training of a tiny retriever with and without task instructions, homogeneous batches and
// stabilized distillation; held-out MRR and top-1 per task. Prints a Markdown table.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Engine } from '../lib/engine.ts';
import { makeTinyModel } from '../test/helpers/tiny-models.ts';
import { makeRepeatLm, multiTaskLines, perTaskRetrieval, taskConfig, TASKS } from '../test/train/multitask-fixtures.ts';

const { values } = parseArgs({ options: { steps: { type: 'string', default: '1200' }, seeds: { type: 'string', default: '1' }, lines: { type: 'string', default: '256' }, lr: { type: 'string', default: '3e-3' } } });
const steps = Number(values.steps);
const seeds = Number(values.seeds);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdr-ablation-'));
const write = (file: string, rows: unknown[]) => (fs.writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n'), file);

const lm = makeRepeatLm(path.join(dir, 'lm'));
const data = write(path.join(dir, 'train.jsonl'), multiTaskLines(Number(values.lines), 1));
const scored = path.join(dir, 'scored.jsonl');
const lmEngine = await Engine.load(lm, { device: 'cpu' });
await lmEngine.score({ data, output: scored, template: '{query} {candidate}' }).finally(() => lmEngine.dispose());
const base = makeTinyModel({ arch: 'qwen2', tokenizer: true, seed: 7, dir: path.join(dir, 'base') });
const held = multiTaskLines(24, 2);

interface Variant { name: string; instructions: boolean; homogeneous: boolean; distill: boolean }
const variants: Variant[] = [
  { name: 'LLM-Embedder recipe (instructions, homogeneous, stable distillation)', instructions: true, homogeneous: true, distill: true },
  { name: 'w/o instructions', instructions: false, homogeneous: true, distill: true },
  { name: 'w/o homogeneous batches', instructions: true, homogeneous: false, distill: true },
  { name: 'w/o instructions and homogeneous batches', instructions: false, homogeneous: false, distill: true },
  { name: 'w/o distillation (InfoNCE only)', instructions: true, homogeneous: true, distill: false },
];
const rows: string[] = [];
const fmt = (r: Record<string, { mrr: number; top1: number }>) => TASKS.map((t) => `${r[t].mrr.toFixed(3)} / ${r[t].top1.toFixed(2)}`).join(' | ');
for (const instructions of [false, true]) rows.push(`| base model, ${instructions ? 'with' : 'no'} instructions | ${fmt(await perTaskRetrieval(base, held, instructions))} |`);
for (const v of variants) {
  const acc = Object.fromEntries(TASKS.map((t) => [t, { mrr: 0, top1: 0 }])) as Record<string, { mrr: number; top1: number }>;
  for (let seed = 0; seed < seeds; seed++) {
    const config = taskConfig(v.instructions);
    for (const t of Object.values(config)) {
      if (!v.distill) t.distill = 'none';
      if (!v.homogeneous) delete t.distill; // mixed steps take the run's loss settings
    }
    const cfgFile = path.join(dir, `cfg-${rows.length}-${seed}.json`);
    fs.writeFileSync(cfgFile, JSON.stringify(config));
    const out = path.join(dir, `run-${rows.length}-${seed}`);
    const e = await Engine.load(base, { device: 'cpu' });
    await e.train({
      data: scored, output: out, taskConfig: cfgFile, mixedBatches: !v.homogeneous, distill: v.distill && !v.homogeneous ? 'stable' : undefined,
      teacherTemperature: 5, batchSize: 16, groupSize: 4, steps, lr: Number(values.lr), warmupSteps: 5, loraR: 8, loraAlpha: 16, temperature: 0.05,
      queryMaxLen: 24, passageMaxLen: 24, saveSteps: 0, seed,
    }).finally(() => e.dispose());
    const r = await perTaskRetrieval(base, held, v.instructions, out);
    for (const t of TASKS) {
      acc[t].mrr += r[t].mrr / seeds;
      acc[t].top1 += r[t].top1 / seeds;
    }
  }
  rows.push(`| ${v.name} | ${fmt(acc)} |`);
  process.stderr.write(`${rows.at(-1)}\n`);
}
process.stdout.write(`held-out MRR / top-1 per task (${held.length / 2} queries each, ranked against the passages of both tasks); ${steps} steps of 16 queries x 4 passages, ${seeds} seed(s)\n\n`);
process.stdout.write(`| run | ${TASKS.join(' | ')} |\n|---|${TASKS.map(() => '---').join('|')}|\n${rows.join('\n')}\n`);
fs.rmSync(dir, { recursive: true, force: true });
