// The one options type of a training run: engine.train() takes it, `lmdr train` maps its
// flags onto it (flag --lora-r <-> loraR). Defaults follow the CLI contract of issue 3.
import { UserError } from '../errors.ts';
import { array, boolean, func, number, object, oneOf, optional, parse, string, type CheckContext, type Infer } from '../schema.ts';
import type { StepRecord } from './log.ts';

export const DECODER_LORA_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
export const BERT_LORA_TARGETS = ['query', 'key', 'value', 'dense'];

/** The most optimizer steps a run may have (--steps, or what --epochs works out to): 2^31 - 1. */
export const MAX_STEPS = 2 ** 31 - 1;

/** The options of a training run: the one declaration of their types and ranges (TrainOptions is derived from it). */
export const trainOptionsSchema = object({
  data: string({ nonEmpty: true }), // FlagEmbedding JSON lines (a file path)
  output: string({ nonEmpty: true }), // output dir: adapter (or full model), checkpoints, train_log.jsonl
  initAdapter: optional(string({ nonEmpty: true })), // start from this PEFT adapter (its r, alpha, targets win)
  loraR: optional(number({ int: true, min: 1 })), // 32
  loraAlpha: optional(number({ above: 0 })), // 64
  loraDropout: optional(number({ min: 0, below: 1 })), // 0.1
  loraTargets: optional(array(string({ nonEmpty: true }), { nonEmpty: true })), // decoder: q,k,v,o,gate,up,down _proj; bert: query,key,value,dense
  full: optional(boolean()), // full fine-tuning: every base weight trains, no LoRA
  optimizer: optional(oneOf(['adamw', 'sgd'] as const)), // adamw
  lr: optional(number({ min: 0 })), // 3e-4
  lrScheduler: optional(oneOf(['linear', 'constant'] as const)), // linear
  warmupSteps: optional(number({ int: true, min: 0 })), // 0 unless this or warmupRatio
  warmupRatio: optional(number({ min: 0, max: 1 })),
  weightDecay: optional(number({ min: 0 })), // 0
  maxGradNorm: optional(number({ min: 0 })), // 1.0; 0 = no clipping
  adamBeta1: optional(number({ min: 0, below: 1 })), // 0.9
  adamBeta2: optional(number({ min: 0, below: 1 })), // 0.999
  adamEps: optional(number({ above: 0 })), // 1e-8
  batchSize: optional(number({ int: true, min: 1 })), // 128 queries per step
  groupSize: optional(number({ int: true, min: 2 })), // 8 passages per query: 1 positive + 7 negatives
  temperature: optional(number({ above: 0 })), // 0.02
  similarity: optional(oneOf(['cosine', 'dot'] as const)), // cosine
  queryMaxLen: optional(number({ int: true, min: 2 })), // 64
  passageMaxLen: optional(number({ int: true, min: 2 })), // 256
  queryInstruction: optional(string()), // ''
  passageInstruction: optional(string()), // ''
  steps: optional(number({ int: true, min: 1, max: MAX_STEPS })), // total optimizer steps; or
  epochs: optional(number({ above: 0 })), // 1 (an epoch is ceil(#queries / batch) steps)
  chunkSize: optional(number({ int: true, min: 0 })), // GradCache: sequences per forward; 0/undefined = the whole step at once
  recompute: optional(boolean()), // per-layer activation recompute during backward
  saveSteps: optional(number({ int: true, min: 0 })), // checkpoint every N steps (0 = only at the end); 500
  evalBeir: optional(string({ nonEmpty: true })), // BEIR folder evaluated at step 0, every evalSteps and at the end -> OUTPUT/eval_log.jsonl
  evalSplit: optional(string({ nonEmpty: true })), // test
  evalSteps: optional(number({ int: true, min: 0 })), // 0 = only at the start and the end
  seed: optional(number({ int: true, min: 0 })), // 42: data order, negatives, dropout, LoRA init
  resume: optional(boolean()), // continue from the newest OUTPUT/checkpoint-<step>
  replaceInvalidUtf8: optional(boolean()), // replace invalid UTF-8 in --data with U+FFFD instead of refusing it
  taskConfig: optional(string({ nonEmpty: true })), // per-task settings keyed by each line's "task": a JSON file or the preset "llm-embedder"
  mixedBatches: optional(boolean()), // with a task config: steps mix tasks (default: each step from one task)
  distill: optional(oneOf(['none', 'kl', 'stable'] as const)), // distillation against the lines' teacher_scores (none)
  contrastiveWeight: optional(number({ min: 0 })), // 1
  distillWeight: optional(number({ min: 0 })), // 1
  teacherTemperature: optional(number({ above: 0 })), // 1
  studentTemperature: optional(number({ above: 0 })), // 1 (KL)
  inBatchNegatives: optional(boolean()), // true: other queries' passages are negatives too
  device: optional(string({ nonEmpty: true })),
  onStep: optional(func<(record: StepRecord) => void>()),
}, { expected: 'an options object' });

export type TrainOptions = Infer<typeof trainOptionsSchema>;

export type ResolvedTrainOptions = Required<Omit<TrainOptions, Optional>> & Pick<TrainOptions, Optional>;
type Optional = 'taskConfig' | 'initAdapter' | 'warmupSteps' | 'warmupRatio' | 'steps' | 'epochs' | 'device' | 'onStep' | 'loraTargets' | 'evalBeir';

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
  replaceInvalidUtf8: false,
  mixedBatches: false,
  distill: 'none',
  contrastiveWeight: 1,
  distillWeight: 1,
  teacherTemperature: 1,
  studentTemperature: 1,
  inBatchNegatives: true,
} as const;

/** How a caller names the options in messages: the API by its keys (where: "engine.train"), the CLI by its flags. */
export const API_NAMING: CheckContext = { where: 'engine.train' };
export const FLAG_NAMING: CheckContext = { label: (key) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}` };

/** Check every option (types, ranges, unknown keys), fill defaults; errors name the option the way `naming` says. */
export function resolveTrainOptions(options: TrainOptions, naming: CheckContext = API_NAMING): ResolvedTrainOptions {
  const given = parse(trainOptionsSchema, options, naming);
  const o = { ...TRAIN_DEFAULTS, ...given } as ResolvedTrainOptions;
  const name = (key: keyof TrainOptions) => (naming.label ?? ((k: string) => k))(key);
  const check = (ok: boolean, message: string) => {
    if (!ok) throw new UserError(`${naming.where ? `${naming.where}: ` : ''}${message}`);
  };
  check(!(o.full && o.initAdapter), `${name('full')} and ${name('initAdapter')} exclude each other (full fine-tuning has no adapter)`);
  check(o.steps === undefined || o.epochs === undefined, `give ${name('steps')} or ${name('epochs')}, not both`);
  check(o.warmupSteps === undefined || o.warmupRatio === undefined, `give ${name('warmupSteps')} or ${name('warmupRatio')}, not both`);
  return o;
}
