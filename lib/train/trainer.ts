// The training loop: per step, sample B queries with G passages each, embed them (GradCache
// chunks when --chunk-size is given), the fused loss (InfoNCE, with KL or stabilized
// distillation against teacher scores), backward, clip, optimizer, schedule. With a task config
// every step comes from one task (homogeneous batches) and takes that task's settings.
// Checkpoints every --save-steps and at the end; --resume continues from the newest one.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.ts';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, addLora, applyAdapter, hasLora, writeAdapter, type AdapterConfig } from '../adapters/peft.ts';
import { native, type LossModes, type NativeModel, type PoolingMode } from '../native.ts';
import { dataFingerprint, loadTrainData, Sampler, type TrainRecord } from './data.ts';
import { checkFingerprint, listCheckpoints, readOptimizerState, readTrainerState, writeCheckpoint, type TrainerState } from './checkpoint.ts';
import { StepLog, type StepRecord } from './log.ts';
import { EVAL_LOG, TRAIN_LOG, writeTrainingCurves } from '../plot/training-curves.ts';
import { API_NAMING, BERT_LORA_TARGETS, DECODER_LORA_TARGETS, MAX_STEPS, resolveTrainOptions, type ResolvedTrainOptions, type TrainOptions } from './options.ts';
import { removeDeadTemps } from '../formats/atomic-write.ts';
import { lockOutput } from '../formats/output-lock.ts';
import type { CheckContext } from '../schema.ts';
import { hashInts, Purpose, randInt, rng } from './random.ts';
import { readInstructions, readTaskConfig, stepSettings, taskSettings, type StepSettings, type TaskConfig } from './task-config.ts';
import { learningRate, warmupSteps, type ScheduleSpec } from './schedule.ts';


/** What the trainer needs from a loaded model; Engine provides it. */
export interface TrainBackbone {
  model: NativeModel;
  modelDir: string;
  arch: 'decoder' | 'bert' | 't5';
  /** LoRA targets when the options name none (the architecture's attention and MLP linears) */
  loraTargets?: string[];
  pooling: PoolingMode;
  /**
   * Token ids of each text exactly as encode makes them (EOS pooling: truncated to maxLen-1, EOS
   * appended), packed; errors name describe(i). `cut` lists the texts truncation shortened.
   */
  tokenize(texts: string[], maxLength: number, instruction: string, describe?: (i: number) => string):
    { ids: Int32Array; cuSeqlens: Int32Array; cut?: { index: number; length: number }[] };
  /** Refuses a max length the model cannot run (the flag is named in the message). */
  checkMaxLength(flag: string, maxLength: number): void;
  /** Full mode: write the model's current weights as a plain HF model dir. */
  writeFullModel(dir: string): void;
  /** Full mode resume: load the weights written by writeFullModel into the model's trainable params. */
  loadFullModel(dir: string): void;
  /** Retrieval metrics of the model as it is now on a BEIR split (inference mode, no dropout). */
  evaluate(beir: string, split: string, o: ResolvedTrainOptions): Promise<Record<string, number>>;
}

export interface TrainSummary {
  output: string;
  steps: number; // total optimizer steps of the run
  startStep: number; // 0, or the checkpoint step resumed from
  losses: number[]; // loss of each step run in this call
  finalLoss: number;
  seconds: number;
  tokensPerSecond: number;
  checkpoint: string; // the last checkpoint dir written
  evaluations: ({ step: number } & Record<string, number>)[]; // --eval-beir results of this call
  warnings: string[]; // problems that did not stop the run (e.g. the curves plot)
}

/** A packed batch of sequences. */
interface Packed {
  ids: Int32Array;
  cuSeqlens: Int32Array;
}

function concatPacked(parts: Packed[]): Packed {
  const total = parts.reduce((n, p) => n + p.ids.length, 0);
  const seqs = parts.reduce((n, p) => n + p.cuSeqlens.length - 1, 0);
  const ids = new Int32Array(total);
  const cu = new Int32Array(seqs + 1);
  let t = 0;
  let s = 0;
  for (const p of parts) {
    ids.set(p.ids, t);
    for (let i = 1; i < p.cuSeqlens.length; i++) cu[++s] = t + p.cuSeqlens[i];
    t += p.ids.length;
  }
  return { ids, cuSeqlens: cu };
}

/** Sequences [a, b) of a packed batch. */
function slicePacked(p: Packed, a: number, b: number): Packed {
  const start = p.cuSeqlens[a];
  const cu = new Int32Array(b - a + 1);
  for (let i = a; i <= b; i++) cu[i - a] = p.cuSeqlens[i] - start;
  return { ids: p.ids.subarray(start, p.cuSeqlens[b]), cuSeqlens: cu };
}

/** Options that must be equal between a run and its --resume (everything that changes the numbers). */
function fingerprint(o: ResolvedTrainOptions, records: TrainRecord[], totalSteps: number, warmup: number, lora: AdapterConfig | null,
  tasks: TaskConfig | undefined, queryInstructions: string[]): Record<string, unknown> {
  // What was asked for (a resumed run takes its LoRA shape from the checkpoint, so compare the request too).
  const requested = o.full ? null : o.initAdapter !== undefined ? { '--init-adapter': path.resolve(o.initAdapter) }
    : { '--lora-r': o.loraR, '--lora-alpha': o.loraAlpha, '--lora-targets': o.loraTargets ?? 'default' };
  return {
    'data records': records.length, 'data content (FNV-1a)': dataFingerprint(records), 'total steps': totalSteps, 'warmup steps': warmup, '--seed': o.seed,
    '--batch-size': o.batchSize, '--group-size': o.groupSize, '--full': o.full, 'LoRA flags': requested,
    'lora': lora && { r: lora.r, alpha: lora.alpha, dropout: lora.dropout, targets: lora.targets },
    '--optimizer': o.optimizer, '--lr': o.lr, '--lr-scheduler': o.lrScheduler, '--weight-decay': o.weightDecay,
    '--max-grad-norm': o.maxGradNorm, adam: [o.adamBeta1, o.adamBeta2, o.adamEps],
    '--temperature': o.temperature, similarity: o.similarity, '--query-max-len': o.queryMaxLen,
    '--passage-max-len': o.passageMaxLen, '--query-instruction': o.queryInstruction, '--passage-instruction': o.passageInstruction,
    // (issue 13's settings appear only when used, so older checkpoints still resume)
    'query instructions': queryInstructions.length > 1 ? queryInstructions : undefined,
    '--task-config': tasks, '--mixed-batches': tasks && o.mixedBatches ? true : undefined,
    'loss modes': o.distill !== 'none' || o.contrastiveWeight !== 1 || !o.inBatchNegatives ? {
      distill: o.distill, contrastiveWeight: o.contrastiveWeight, distillWeight: o.distillWeight,
      teacherTemperature: o.teacherTemperature, studentTemperature: o.studentTemperature, inBatchNegatives: o.inBatchNegatives,
    } : undefined,
  };
}

export class TrainingDiverged extends UserError {}

/** OUTPUT must be a directory or not exist yet, and (full mode) not the model dir it would overwrite. */
function checkOutput(o: ResolvedTrainOptions, modelDir: string): void {
  if (fs.existsSync(o.output) && !fs.statSync(o.output).isDirectory()) throw new UserError(`--output ${o.output} exists and is not a directory`);
  if (o.full && path.resolve(o.output) === path.resolve(modelDir)) throw new UserError(`--output ${o.output} is the model dir itself; --full writes a new model dir there, choose another --output`);
}

/**
 * Train under OUTPUT's lock: a second run into the same OUTPUT fails at once naming this one.
 * `naming` words option errors for the caller (the API's keys by default, the CLI's flags).
 */
export async function train(backbone: TrainBackbone, options: TrainOptions, naming: CheckContext = API_NAMING): Promise<TrainSummary> {
  const o = resolveTrainOptions(options, naming);
  checkOutput(o, backbone.modelDir);
  // (the lock lives beside OUTPUT: OUTPUT itself is created only once the run is known to start)
  const lock = lockOutput(o.output, naming === API_NAMING ? 'engine.train' : 'lmdr train');
  try {
    const summary = await trainLocked(backbone, o, naming);
    if (lock.staleNote) summary.warnings.unshift(lock.staleNote);
    return summary;
  } finally {
    lock.release();
  }
}

async function trainLocked(backbone: TrainBackbone, o: ResolvedTrainOptions, naming: CheckContext): Promise<TrainSummary> {
  const { model } = backbone;
  const flag = (key: keyof TrainOptions) => (naming.label ?? ((k: string) => k))(key);
  backbone.checkMaxLength(flag('queryMaxLen'), o.queryMaxLen);
  backbone.checkMaxLength(flag('passageMaxLen'), o.passageMaxLen);
  const records = await loadTrainData(o.data, { replaceInvalidUtf8: o.replaceInvalidUtf8 });
  // The one table of per-task settings (a task config over the run's options), checked against every line.
  const tasks = o.taskConfig !== undefined ? readTaskConfig(o.taskConfig, flag('taskConfig')) : undefined;
  const taskSource = `${flag('taskConfig')} ${o.taskConfig}`;
  const queryInstructions = readInstructions(o.queryInstruction, flag('queryInstruction'));
  const globalSettings = stepSettings(o, queryInstructions);
  const table = new Map<string, StepSettings>(Object.entries(tasks ?? {}).map(([name, t]) => [name, stepSettings(o, queryInstructions, t)]));
  const homogeneous = tasks !== undefined && !o.mixedBatches;
  const settingsOf = (task: string | undefined): StepSettings => (task !== undefined && table.get(task)) || globalSettings;
  if (tasks && o.mixedBatches) {
    for (const [name, t] of Object.entries(tasks)) {
      const shaping = Object.keys(t).filter((k) => !['query_instruction', 'passage_instruction', 'template'].includes(k));
      if (shaping.length > 0) throw new UserError(`${taskSource}: task "${name}" sets ${shaping.join(', ')}, which needs one task per step; drop ${flag('mixedBatches')} or those keys (mixed steps use the run's options)`);
    }
  }
  for (const [name, s] of table) {
    backbone.checkMaxLength(`${taskSource} task "${name}" query_max_len`, s.queryMaxLen);
    backbone.checkMaxLength(`${taskSource} task "${name}" passage_max_len`, s.passageMaxLen);
  }
  for (const r of records) {
    const where = `${o.data}:${r.line}`;
    if (tasks) taskSettings(tasks, r.task, where, taskSource);
    const s = homogeneous ? settingsOf(r.task) : globalSettings;
    if (s.distill === 'none') continue;
    const why = tasks && homogeneous ? `task "${r.task}" distils (distill ${s.distill})` : `${flag('distill')} ${s.distill}`;
    const want = r.pos.length + r.neg.length;
    if (r.teacherScores === undefined) throw new UserError(`${where}: no "teacher_scores", but ${why}; score the data first (lmdr score --data)`);
    if (r.teacherScores.length !== want) throw new UserError(`${where}: ${r.teacherScores.length} teacher_scores for ${want} candidates (pos ++ neg)`);
    if (s.groupSize > 1 && r.neg.length === 0) throw new UserError(`${where}: no "neg", but ${why}: the group's negatives need teacher scores, so they must come from the line itself`);
  }
  const plan = tasks || o.distill !== 'none'
    ? { homogeneous, groupSize: (t: string | undefined) => settingsOf(t).groupSize, distilled: (t: string | undefined) => (homogeneous ? settingsOf(t) : globalSettings).distill !== 'none' }
    : undefined;
  const sampler = new Sampler(records, o.batchSize, o.groupSize, o.seed, o.data, plan);
  const totalSteps = o.steps ?? Math.max(1, Math.ceil((o.epochs ?? 1) * sampler.stepsPerEpoch));
  if (totalSteps > MAX_STEPS) {
    throw new UserError(`${flag('epochs')} ${o.epochs} is ${totalSteps.toPrecision(3)} steps of ${o.batchSize} queries ` +
      `(${sampler.stepsPerEpoch} per epoch), more than the limit of ${MAX_STEPS} steps; give fewer epochs or ${flag('steps')}`);
  }
  const schedule: ScheduleSpec = { kind: o.lrScheduler, lr: o.lr, totalSteps, warmupSteps: warmupSteps(totalSteps, o.warmupSteps, o.warmupRatio) };

  // The output dir holds one run: refuse to mix a new run into an old one.
  const checkpoints = listCheckpoints(o.output);
  const resumeFrom = o.resume ? checkpoints[0] : undefined;
  // (A log without any checkpoint is what a run that failed early leaves: it is started over.)
  // (Full mode writes a model dir into OUTPUT: an existing one is not overwritten either.)
  const results = [ADAPTER_WEIGHTS, ADAPTER_CONFIG, ...(o.full ? ['config.json', 'model.safetensors', 'model.safetensors.index.json'] : [])];
  if (!o.resume && (checkpoints.length > 0 || results.some((f) => fs.existsSync(path.join(o.output, f))))) {
    throw new UserError(`${flag('output')} ${o.output} already holds a training run (or a model); pass ${flag('resume')} to continue a run or choose another ${flag('output')}`);
  }

  // Trainable parameters: fresh LoRA, an initial adapter, a checkpoint's adapter, or full fine-tuning.
  if (hasLora(model)) {
    throw new UserError('this model already has a LoRA adapter (Engine.load with an adapter, or an earlier train()); load a fresh Engine and pass initAdapter to start from an adapter');
  }
  let lora: AdapterConfig | null = null;
  const loraSource = resumeFrom?.dir ?? o.initAdapter;
  if (o.full) {
    model.setTrainable('full');
  } else if (loraSource) {
    const c = applyAdapter(model, loraSource, o.loraDropout);
    lora = { ...c, dropout: o.loraDropout, baseModel: backbone.modelDir };
  } else {
    const targets = o.loraTargets ?? backbone.loraTargets ?? (backbone.arch === 'bert' ? BERT_LORA_TARGETS : DECODER_LORA_TARGETS);
    try {
      addLora(model, { targets, r: o.loraR, alpha: o.loraAlpha, dropout: o.loraDropout, seed: hashInts(o.seed, Purpose.loraInit) });
    } catch (err) {
      throw new UserError(`--lora-targets ${targets.join(',')}: ${(err as Error).message.replace(/^addLora: /, '')}`);
    }
    model.setTrainable('lora');
    lora = { r: o.loraR, alpha: o.loraAlpha, dropout: o.loraDropout, targets, baseModel: backbone.modelDir };
  }
  model.setRecompute(o.recompute);

  const print = fingerprint(o, records, totalSteps, schedule.warmupSteps, lora, tasks, queryInstructions);
  let startStep = 0;
  let lastCheckpoint = '';
  if (resumeFrom) {
    const state = readTrainerState(resumeFrom.dir);
    checkFingerprint(resumeFrom.dir, state.fingerprint, print);
    if (o.full) backbone.loadFullModel(resumeFrom.dir);
    model.setOptimizerState(readOptimizerState(resumeFrom.dir));
    startStep = state.step;
    lastCheckpoint = resumeFrom.dir;
  }

  fs.mkdirSync(o.output, { recursive: true });
  removeDeadTemps(o.output); // what killed runs' unfinished writes left (their pids are gone)
  const writeModel = (dir: string) => (lora ? writeAdapter(dir, lora, model.params()) : backbone.writeFullModel(dir));
  const lastGood = () => (lastCheckpoint ? `the last good checkpoint is ${lastCheckpoint}` : 'no checkpoint was written');
  const save = (step: number, loss: number): string => {
    // An update can overflow with a finite loss and gradient: such weights must not become a "good" checkpoint.
    for (const p of model.params()) {
      const bad = p.data.findIndex((x) => !Number.isFinite(x));
      if (bad >= 0) throw new TrainingDiverged(`weight ${p.name}[${bad}] is ${p.data[bad]} after step ${step}; stopped, ${lastGood()}`);
    }
    const state: TrainerState = {
      step, totalSteps, epoch: step / sampler.stepsPerEpoch,
      dataPosition: { epoch: Math.floor(step / sampler.stepsPerEpoch), stepInEpoch: step % sampler.stepsPerEpoch },
      rng: { seed: o.seed, kind: 'counter-based' }, lastLoss: loss, fingerprint: print,
    };
    return writeCheckpoint(o.output, state, model.optimizerState(), writeModel);
  };

  const log = new StepLog<StepRecord>(path.join(o.output, TRAIN_LOG), startStep);
  const evalLog = o.evalBeir ? new StepLog<{ step: number } & Record<string, number>>(path.join(o.output, EVAL_LOG), startStep) : undefined;
  const evaluations: ({ step: number } & Record<string, number>)[] = [];
  const evaluate = async (step: number) => {
    if (!evalLog) return;
    const record = { step, ...(await backbone.evaluate(o.evalBeir!, o.evalSplit, { ...o, queryInstruction: queryInstructions[0] })) };
    evalLog.append(record);
    evaluations.push(record);
  };
  const losses: number[] = [];
  // Texts truncation shortened, by their source ("FILE:LINE pos[0]"): reported once, at the end.
  const cutQueries = new Map<string, number>();
  const cutPassages = new Map<string, number>();
  const started = performance.now();
  let tokensTotal = 0;
  model.zeroGrad();
  try {
    if (startStep === 0) await evaluate(0);
    for (let step = startStep; step < totalSteps; step++) {
      const t0 = performance.now();
      const batch = sampler.batch(step);
      const G = batch.groupSize;
      const s = homogeneous ? settingsOf(batch.task) : globalSettings;
      // instructions: the step's task's, or (mixed steps) each line's task's; one of several drawn per query
      const lineSettings = (slot: number) => (tasks && !homogeneous ? settingsOf(records[batch.records[slot]].task) : s);
      const queryPrefix = (slot: number) => {
        const list = lineSettings(slot).queryInstructions;
        return list.length === 1 ? list[0] : list[randInt(rng(hashInts(o.seed, Purpose.instruction, step, slot)), list.length)];
      };
      const q = backbone.tokenize(batch.queries.map((t, i) => queryPrefix(i) + t), s.queryMaxLen, '', (i) => batch.querySources[i]);
      const p = backbone.tokenize(batch.passages.map((t, j) => lineSettings(Math.floor(j / G)).passageInstruction + t), s.passageMaxLen, '', (i) => batch.passageSources[i]);
      for (const c of q.cut ?? []) cutQueries.set(batch.querySources[c.index], c.length);
      for (const c of p.cut ?? []) cutPassages.set(batch.passageSources[c.index], c.length);
      const packed = concatPacked([q, p]);
      const modes: LossModes = {
        inBatch: s.inBatch, contrastiveWeight: s.contrastiveWeight, distill: s.distill, distillWeight: s.distillWeight,
        teacherTemperature: s.teacherTemperature, studentTemperature: s.studentTemperature, teacher: batch.teacher,
      };
      const parts = await retrievalStep(backbone, packed, { batchSize: o.batchSize, groupSize: G, temperature: s.temperature, similarity: o.similarity, chunkSize: o.chunkSize },
        hashInts(o.seed, Purpose.dropout, step), modes);
      const loss = parts.loss;
      const where = lastGood();
      if (!Number.isFinite(loss)) throw new TrainingDiverged(`loss is ${loss} at step ${step + 1}; stopped, ${where}`);
      const gradNorm = Math.sqrt(model.gradSumSquares());
      if (!Number.isFinite(gradNorm)) throw new TrainingDiverged(`gradient norm is ${gradNorm} at step ${step + 1}; stopped, ${where}`);
      // torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1
      const gradScale = o.maxGradNorm > 0 ? Math.min(1, o.maxGradNorm / (gradNorm + 1e-6)) : 1;
      const lr = learningRate(schedule, step);
      model.optimizerStep({ kind: o.optimizer, lr, beta1: o.adamBeta1, beta2: o.adamBeta2, eps: o.adamEps, weightDecay: o.weightDecay, step: step + 1, gradScale });
      model.zeroGrad();

      const seconds = (performance.now() - t0) / 1000;
      const tokens = packed.ids.length;
      tokensTotal += tokens;
      losses.push(loss);
      const record: StepRecord = {
        step: step + 1, total_steps: totalSteps, epoch: (step + 1) / sampler.stepsPerEpoch, loss, lr, grad_norm: gradNorm,
        tokens, tokens_per_s: tokens / Math.max(seconds, 1e-9), seconds, lines: batch.records.map((r) => sampler.records[r].line),
      };
      if (batch.task !== undefined) record.task = batch.task;
      if (s.distill !== 'none') {
        record.contrastive_loss = parts.contrastive;
        record.distill_loss = parts.distill;
      }
      log.append(record);
      o.onStep?.(record);
      const done = step + 1;
      if (done === totalSteps || (o.evalSteps > 0 && done % o.evalSteps === 0)) await evaluate(done);
      if (done === totalSteps || (o.saveSteps > 0 && done % o.saveSteps === 0)) lastCheckpoint = save(done, loss);
    }
  } finally {
    log.close();
    evalLog?.close();
  }

  // The run's result at the top of OUTPUT: the adapter (PEFT) or, in full mode, the HF model files.
  writeModel(o.output);
  const warnings: string[] = [];
  for (const [cut, what, key] of [[cutQueries, 'queries', 'queryMaxLen'], [cutPassages, 'passages', 'passageMaxLen']] as const) {
    if (cut.size === 0) continue;
    const longest = Math.max(...cut.values());
    warnings.push(`${cut.size} ${what} were longer than ${flag(key)} ${o[key]} tokens and were truncated (longest: ${longest} tokens, ` +
      `e.g. ${cut.keys().next().value}); raise ${flag(key)} to keep more`);
  }
  try {
    await writeTrainingCurves(o.output);
  } catch (err) {
    warnings.push(`could not plot ${path.join(o.output, 'curves.svg')}: ${(err as Error).message}`);
  }
  const seconds = (performance.now() - started) / 1000;
  return {
    output: o.output, steps: totalSteps, startStep, losses, finalLoss: losses.at(-1) ?? NaN, seconds,
    tokensPerSecond: tokensTotal / Math.max(seconds, 1e-9), checkpoint: lastCheckpoint, evaluations, warnings,
  };
}

/**
 * One step's loss and accumulated gradients. Sequences are the B queries then the B*G passages;
 * each one's dropout key is its index in the step, so chunked and whole-batch passes draw the
 * same masks and give the same gradients.
 */
export async function contrastiveStep(backbone: TrainBackbone, packed: Packed, o: StepShape, dropoutSeed: number): Promise<number> {
  return (await retrievalStep(backbone, packed, o, dropoutSeed)).loss;
}

type StepShape = Pick<ResolvedTrainOptions, 'batchSize' | 'groupSize' | 'temperature' | 'similarity' | 'chunkSize'>;

/** contrastiveStep with the fused loss's modes (distillation, weights, in-batch negatives): the loss and its parts. */
export async function retrievalStep(backbone: TrainBackbone, packed: Packed, o: StepShape, dropoutSeed: number, modes?: LossModes): Promise<{ loss: number; contrastive: number; distill: number }> {
  const { model, pooling } = backbone;
  const H = model.hidden;
  const B = o.batchSize;
  const S = packed.cuSeqlens.length - 1;
  if (S !== B * (1 + o.groupSize)) throw new Error(`contrastiveStep: ${S} sequences, expected ${B} * (1 + ${o.groupSize})`);
  const seqKeys = Int32Array.from({ length: S }, (_, i) => i);
  const forward = (p: Packed, a: number, b: number, keep: boolean) =>
    model.forward(p.ids, p.cuSeqlens, { pooling, normalize: false, train: true, keep, dropoutSeed, seqKeys: seqKeys.subarray(a, b) });
  const lossAndGrad = (E: Float32Array) => {
    const r = native().infonce(E.subarray(0, B * H), E.subarray(B * H), B, o.groupSize, H, o.temperature, o.similarity === 'cosine', model.device, modes);
    const dE = new Float32Array(S * H);
    dE.set(r.dq, 0);
    dE.set(r.dp, B * H);
    return { loss: r.loss, parts: { loss: r.loss, contrastive: r.contrastive, distill: r.distill }, dE };
  };

  const chunk = o.chunkSize;
  if (chunk === 0 || chunk >= S) {
    const E = await forward(packed, 0, S, true);
    const { loss, parts, dE } = lossAndGrad(E);
    if (Number.isFinite(loss)) await model.backward(dE);
    return parts;
  }
  // GradCache: (1) embed every chunk without activations, (2) loss and dL/dE, (3) re-run each chunk keeping activations and back-propagate its rows of dL/dE.
  const E = new Float32Array(S * H);
  for (let a = 0; a < S; a += chunk) {
    const b = Math.min(S, a + chunk);
    E.set(await forward(slicePacked(packed, a, b), a, b, false), a * H);
  }
  const { loss, parts, dE } = lossAndGrad(E);
  if (!Number.isFinite(loss)) return parts;
  for (let a = 0; a < S; a += chunk) {
    const b = Math.min(S, a + chunk);
    await forward(slicePacked(packed, a, b), a, b, true);
    await model.backward(dE.subarray(a * H, b * H));
  }
  return parts;
}
