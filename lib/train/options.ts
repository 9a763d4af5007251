// The one options type of a training run: engine.train() takes it, `lmdr train` maps its
// flags onto it (flag --lora-r <-> loraR). Defaults follow the CLI contract of issue 3.
import { UserError } from '../errors.ts';
import type { LrScheduler } from './schedule.ts';
import type { StepRecord } from './log.ts';

export const DECODER_LORA_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
export const BERT_LORA_TARGETS = ['query', 'key', 'value', 'dense'];

export interface TrainOptions {
  data: string; // FlagEmbedding JSON lines
  output: string; // output dir: adapter (or full model), checkpoints, train_log.jsonl
  initAdapter?: string; // start from this PEFT adapter (its r, alpha, targets win)
  loraR?: number; // 32
  loraAlpha?: number; // 64
  loraDropout?: number; // 0.1
  loraTargets?: string[]; // decoder: q,k,v,o,gate,up,down _proj; bert: query,key,value,dense
  full?: boolean; // full fine-tuning: every base weight trains, no LoRA
  optimizer?: 'adamw' | 'sgd'; // adamw
  lr?: number; // 3e-4
  lrScheduler?: LrScheduler; // linear
  warmupSteps?: number; // 0 unless this or warmupRatio
  warmupRatio?: number;
  weightDecay?: number; // 0
  maxGradNorm?: number; // 1.0; 0 = no clipping
  adamBeta1?: number; // 0.9
  adamBeta2?: number; // 0.999
  adamEps?: number; // 1e-8
  batchSize?: number; // 128 queries per step
  groupSize?: number; // 8 passages per query: 1 positive + 7 negatives
  temperature?: number; // 0.02
  similarity?: 'cosine' | 'dot'; // cosine
  queryMaxLen?: number; // 64
  passageMaxLen?: number; // 256
  queryInstruction?: string; // ''
  passageInstruction?: string; // ''
  steps?: number; // total optimizer steps; or
  epochs?: number; // 1 (an epoch is ceil(#queries / batch) steps)
  chunkSize?: number; // GradCache: sequences per forward; 0/undefined = the whole step at once
  recompute?: boolean; // per-layer activation recompute during backward
  saveSteps?: number; // checkpoint every N steps (0 = only at the end); 500
  evalBeir?: string; // BEIR folder evaluated at step 0, every evalSteps and at the end -> OUTPUT/eval_log.jsonl
  evalSplit?: string; // test
  evalSteps?: number; // 0 = only at the start and the end
  seed?: number; // 42: data order, negatives, dropout, LoRA init
  resume?: boolean; // continue from the newest OUTPUT/checkpoint-<step>
  device?: string;
  onStep?: (record: StepRecord) => void;
}

export type ResolvedTrainOptions = Required<Omit<TrainOptions, Optional>> & Pick<TrainOptions, Optional>;
type Optional = 'initAdapter' | 'warmupSteps' | 'warmupRatio' | 'steps' | 'epochs' | 'device' | 'onStep' | 'loraTargets' | 'evalBeir';

export const TRAIN_DEFAULTS = {
  loraR: 32,
  loraAlpha: 64,
  loraDropout: 0.1,
  full: false,
  optimizer: 'adamw',
  lr: 3e-4,
  lrScheduler: 'linear',
  weightDecay: 0,
  maxGradNorm: 1.0,
  adamBeta1: 0.9,
  adamBeta2: 0.999,
  adamEps: 1e-8,
  batchSize: 128,
  groupSize: 8,
  temperature: 0.02,
  similarity: 'cosine',
  queryMaxLen: 64,
  passageMaxLen: 256,
  queryInstruction: '',
  passageInstruction: '',
  chunkSize: 0,
  recompute: false,
  saveSteps: 500,
  evalSplit: 'test',
  evalSteps: 0,
  seed: 42,
  resume: false,
} as const;

function check(ok: boolean, message: string): void {
  if (!ok) throw new UserError(message);
}

const isInt = (v: number, min: number) => Number.isSafeInteger(v) && v >= min;

/** Fill defaults and check ranges; errors name the flag. */
export function resolveTrainOptions(options: TrainOptions): ResolvedTrainOptions {
  const o = { ...TRAIN_DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) } as ResolvedTrainOptions;
  check(typeof o.data === 'string' && o.data !== '', '--data FILE.jsonl is required');
  check(typeof o.output === 'string' && o.output !== '', '--output DIR is required');
  check(isInt(o.loraR, 1), `--lora-r must be an integer >= 1, got ${o.loraR}`);
  check(Number.isFinite(o.loraAlpha) && o.loraAlpha > 0, `--lora-alpha must be > 0, got ${o.loraAlpha}`);
  check(o.loraDropout >= 0 && o.loraDropout < 1, `--lora-dropout must be in [0, 1), got ${o.loraDropout}`);
  check(o.loraTargets === undefined || (o.loraTargets.length > 0 && o.loraTargets.every((t) => t !== '')), '--lora-targets must be a non-empty comma-separated list');
  check(!(o.full && o.initAdapter), '--full and --init-adapter exclude each other (full fine-tuning has no adapter)');
  check(o.optimizer === 'adamw' || o.optimizer === 'sgd', `--optimizer must be adamw or sgd, got ${o.optimizer}`);
  check(Number.isFinite(o.lr) && o.lr >= 0, `--lr must be >= 0, got ${o.lr}`);
  check(o.lrScheduler === 'linear' || o.lrScheduler === 'constant', `--lr-scheduler must be linear or constant, got ${o.lrScheduler}`);
  check(Number.isFinite(o.weightDecay) && o.weightDecay >= 0, `--weight-decay must be >= 0, got ${o.weightDecay}`);
  check(Number.isFinite(o.maxGradNorm) && o.maxGradNorm >= 0, `--max-grad-norm must be >= 0 (0 = off), got ${o.maxGradNorm}`);
  check(o.adamBeta1 >= 0 && o.adamBeta1 < 1 && o.adamBeta2 >= 0 && o.adamBeta2 < 1, 'Adam betas must be in [0, 1)');
  check(o.adamEps > 0, `Adam epsilon must be > 0, got ${o.adamEps}`);
  check(isInt(o.batchSize, 1), `--batch-size must be an integer >= 1, got ${o.batchSize}`);
  check(isInt(o.groupSize, 2), `--group-size must be an integer >= 2 (1 positive + at least 1 negative), got ${o.groupSize}`);
  check(Number.isFinite(o.temperature) && o.temperature > 0, `--temperature must be > 0, got ${o.temperature}`);
  check(o.similarity === 'cosine' || o.similarity === 'dot', `similarity must be cosine or dot, got ${o.similarity}`);
  check(isInt(o.queryMaxLen, 2), `--query-max-len must be an integer >= 2, got ${o.queryMaxLen}`);
  check(isInt(o.passageMaxLen, 2), `--passage-max-len must be an integer >= 2, got ${o.passageMaxLen}`);
  check(o.steps === undefined || o.epochs === undefined, 'give --steps or --epochs, not both');
  check(o.steps === undefined || isInt(o.steps, 1), `--steps must be an integer >= 1, got ${o.steps}`);
  check(o.epochs === undefined || (Number.isFinite(o.epochs) && o.epochs > 0), `--epochs must be > 0, got ${o.epochs}`);
  check(isInt(o.chunkSize, 0), `--chunk-size must be an integer >= 1 (or 0 = no chunking), got ${o.chunkSize}`);
  check(isInt(o.saveSteps, 0), `--save-steps must be an integer >= 0, got ${o.saveSteps}`);
  check(isInt(o.evalSteps, 0), `--eval-steps must be an integer >= 0, got ${o.evalSteps}`);
  check(isInt(o.seed, 0), `--seed must be an integer >= 0, got ${o.seed}`);
  return o;
}
