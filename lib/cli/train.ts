// lmdr train: flags -> TrainOptions -> engine.train(), with a progress bar on stderr.
import { parseFlags } from './args.ts';
import { Engine } from '../engine.ts';
import { UserError } from '../errors.ts';
import { ProgressBar } from './progress.ts';
import type { StepRecord } from '../train/log.ts';
import { FLAG_NAMING, TRAIN_DEFAULTS, type TrainOptions } from '../train/options.ts';
import { engineBackbone } from '../train/backbone.ts';
import { train } from '../train/trainer.ts';

const HELP = `usage: lmdr train --model DIR --data FILE.jsonl --output DIR [flags]

Contrastive fine-tuning of a retriever (InfoNCE over in-batch and hard negatives).
Data: JSON lines {"query": str, "pos": [str], "neg": [str]} ("neg" optional; "task": str selects
the line's settings in --task-config; "teacher_scores": [number] aligned to pos ++ neg, from
lmdr score --data, feed --distill). Output: OUTPUT/adapter_config.json + adapter_model.safetensors (PEFT LoRA;
a plain HF model dir with --full), OUTPUT/checkpoint-<step>/, OUTPUT/train_log.jsonl.

  --init-adapter DIR        start from a PEFT adapter (its r, alpha and targets win)
  --lora-r N                LoRA rank (${TRAIN_DEFAULTS.loraR})
  --lora-alpha A            LoRA alpha; scale alpha/r (${TRAIN_DEFAULTS.loraAlpha})
  --lora-dropout P          dropout on the LoRA input (${TRAIN_DEFAULTS.loraDropout})
  --lora-targets LIST       module names; default per model_type: qwen2, qwen3, llama, mistral, gemma,
                            gemma2: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj;
                            phi: q_proj,k_proj,v_proj,dense,fc1,fc2; phi3: qkv_proj,o_proj,gate_up_proj,down_proj;
                            bert: query,key,value,dense; t5: q,k,v,o,wi,wo (gated: wi_0,wi_1 for wi)
  --full                    full fine-tuning of every weight, no LoRA
  --optimizer adamw|sgd     (${TRAIN_DEFAULTS.optimizer})
  --lr LR                   peak learning rate (${TRAIN_DEFAULTS.lr})
  --lr-scheduler linear|constant   (${TRAIN_DEFAULTS.lrScheduler})
  --warmup-steps N | --warmup-ratio R   linear warmup (0)
  --weight-decay W          decoupled weight decay (${TRAIN_DEFAULTS.weightDecay})
  --max-grad-norm G         gradient-norm clipping, 0 = off (${TRAIN_DEFAULTS.maxGradNorm})
  --batch-size N            queries per step (${TRAIN_DEFAULTS.batchSize})
  --group-size G            passages per query: 1 positive + G-1 negatives (${TRAIN_DEFAULTS.groupSize})
  --temperature T           InfoNCE temperature on cosine scores (${TRAIN_DEFAULTS.temperature})
  --query-max-len N         (${TRAIN_DEFAULTS.queryMaxLen})
  --passage-max-len N       (${TRAIN_DEFAULTS.passageMaxLen})
  --query-instruction TEXT|FILE  prepended to every query; a file of instructions (one per line):
                            each query takes one at random (seeded)
  --passage-instruction TEXT  prepended to every passage
  --distill none|kl|stable  distil the lines' teacher_scores: KL over each query's group, or the
                            stabilized (rank-by-rank) distillation of LLM-Embedder (none)
  --contrastive-weight W    loss = W * InfoNCE + --distill-weight * distillation (1)
  --distill-weight W        (1)
  --teacher-temperature T   teacher weights = softmax(teacher_scores / T) (1)
  --student-temperature T   KL: student = softmax(scores / T) (1)
  --no-in-batch-negatives   softmaxes over each query's own group only
  --task-config FILE|llm-embedder   per-task settings keyed by each line's "task" (instructions,
                            group size, temperature, lengths, distillation, weights); every step
                            then holds one task (homogeneous batches)
  --mixed-batches           with --task-config: steps mix tasks (instructions still per line)
  --steps N | --epochs E    run length (default 1 epoch = ceil(#queries / batch) steps)
  --chunk-size N            GradCache: sequences per forward (default: the whole step at once)
  --recompute               recompute activations per layer in backward (less memory)
  --save-steps N            checkpoint every N steps, 0 = only at the end (${TRAIN_DEFAULTS.saveSteps})
  --eval-beir DIR           evaluate on this BEIR folder at step 0, every --eval-steps and at the end
                            (OUTPUT/eval_log.jsonl; plotted with the loss in OUTPUT/curves.svg)
  --eval-split NAME         qrels split for --eval-beir (test)
  --eval-steps N            evaluation interval in steps, 0 = only at the start and the end (0)
  --seed S                  data order, negatives, dropout and LoRA init (${TRAIN_DEFAULTS.seed})
  --resume                  continue from the newest OUTPUT/checkpoint-<step>
  --replace-invalid-utf8    read invalid UTF-8 in --data as U+FFFD (default: an error naming FILE:LINE)
  --device cpu|cuda|cuda:N  (default: CUDA when usable, else CPU; $LMDR_DEVICE)
  --no-progress             no progress bar (LMDR_PROGRESS=0|1 also decides)
`;

const stringFlags = [
  'model', 'data', 'output', 'init-adapter', 'lora-r', 'lora-alpha', 'lora-dropout', 'lora-targets', 'optimizer', 'lr',
  'lr-scheduler', 'warmup-steps', 'warmup-ratio', 'weight-decay', 'max-grad-norm', 'batch-size', 'group-size',
  'temperature', 'query-max-len', 'passage-max-len', 'query-instruction', 'passage-instruction', 'steps', 'epochs',
  'chunk-size', 'save-steps', 'eval-beir', 'eval-split', 'eval-steps', 'seed', 'device',
  'task-config', 'distill', 'contrastive-weight', 'distill-weight', 'teacher-temperature', 'student-temperature',
] as const;
const booleanFlags = ['full', 'resume', 'recompute', 'no-progress', 'replace-invalid-utf8', 'mixed-batches', 'no-in-batch-negatives'] as const;

export function parseTrainFlags(argv: string[]): { model: string; options: TrainOptions; progress: boolean } {
  const values = parseFlags('train', argv, Object.fromEntries([
    ...stringFlags.map((f) => [f, 'string' as const]),
    ...booleanFlags.map((f) => [f, 'boolean' as const]),
  ])) as Record<string, string | boolean | undefined>;
  const str = (f: string) => values[f] as string | undefined;
  const num = (f: string): number | undefined => {
    const v = str(f);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new UserError(`--${f} expects a number, got "${v}"`);
    return n;
  };
  const model = str('model');
  if (!model) throw new UserError('--model DIR is required');
  if (!str('data')) throw new UserError('--data FILE.jsonl is required');
  if (!str('output')) throw new UserError('--output DIR is required');
  const options: TrainOptions = {
    data: str('data')!,
    output: str('output')!,
    initAdapter: str('init-adapter'),
    loraR: num('lora-r'),
    loraAlpha: num('lora-alpha'),
    loraDropout: num('lora-dropout'),
    loraTargets: str('lora-targets')?.split(',').map((t) => t.trim()),
    full: values.full === true,
    optimizer: str('optimizer') as TrainOptions['optimizer'],
    lr: num('lr'),
    lrScheduler: str('lr-scheduler') as TrainOptions['lrScheduler'],
    warmupSteps: num('warmup-steps'),
    warmupRatio: num('warmup-ratio'),
    weightDecay: num('weight-decay'),
    maxGradNorm: num('max-grad-norm'),
    batchSize: num('batch-size'),
    groupSize: num('group-size'),
    temperature: num('temperature'),
    queryMaxLen: num('query-max-len'),
    passageMaxLen: num('passage-max-len'),
    queryInstruction: str('query-instruction'),
    passageInstruction: str('passage-instruction'),
    steps: num('steps'),
    epochs: num('epochs'),
    chunkSize: num('chunk-size'),
    recompute: values.recompute === true,
    saveSteps: num('save-steps'),
    evalBeir: str('eval-beir'),
    evalSplit: str('eval-split'),
    evalSteps: num('eval-steps'),
    seed: num('seed'),
    resume: values.resume === true,
    replaceInvalidUtf8: values['replace-invalid-utf8'] === true,
    device: str('device'),
    taskConfig: str('task-config'),
    mixedBatches: values['mixed-batches'] === true || undefined,
    distill: str('distill') as TrainOptions['distill'],
    contrastiveWeight: num('contrastive-weight'),
    distillWeight: num('distill-weight'),
    teacherTemperature: num('teacher-temperature'),
    studentTemperature: num('student-temperature'),
    inBatchNegatives: values['no-in-batch-negatives'] === true ? false : undefined,
  };
  return { model, options, progress: values['no-progress'] !== true };
}

export async function run(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP);
    return;
  }
  const { model, options, progress } = parseTrainFlags(argv);
  const engine = await Engine.load(model, { device: options.device });
  try {
    const bar = progress ? stepProgress() : undefined;
    // The trainer itself (what engine.train runs), so option errors name the flags.
    const summary = await train(engineBackbone(engine), { ...options, onStep: bar?.update }, FLAG_NAMING);
    bar?.done();
    for (const w of summary.warnings) process.stderr.write(`lmdr train: warning: ${w}\n`);
    for (const ev of summary.evaluations) {
      process.stderr.write(`eval step ${ev.step}: ${Object.entries(ev).filter(([k]) => k !== 'step').map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ')}\n`);
    }
    if (summary.losses.length === 0) {
      process.stderr.write(`nothing to train: ${summary.checkpoint} is step ${summary.startStep} of ${summary.steps}; wrote ${summary.output}\n`);
    } else {
      const from = summary.startStep > 0 ? `steps ${summary.startStep + 1}-${summary.steps} of ${summary.steps} (resumed)` : `${summary.steps} steps`;
      process.stderr.write(`trained ${from} (final loss ${summary.finalLoss.toFixed(4)}, ${Math.round(summary.tokensPerSecond)} tokens/s); wrote ${summary.output}\n`);
    }
  } finally {
    engine.dispose();
  }
}

/** The shared progress bar, created at the first step (when the run length is known). */
function stepProgress(): { update: (r: StepRecord) => void; done: () => void } {
  let bar: ProgressBar | undefined;
  let extra = '';
  return {
    update(r: StepRecord) {
      bar ??= new ProgressBar('train', r.total_steps, { unit: 'steps' });
      extra = `${r.task !== undefined ? `${r.task} ` : ''}loss ${r.loss.toFixed(4)} lr ${r.lr.toExponential(2)} ${Math.round(r.tokens_per_s)} tokens/s`;
      bar.update(r.step, extra);
    },
    done() {
      bar?.finish(extra);
    },
  };
}
