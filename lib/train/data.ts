// Training data: FlagEmbedding JSON lines {"query": str, "pos": [str], "neg": [str], "task"?: str,
// "teacher_scores"?: [number] (aligned to pos ++ neg)} and the seeded sampler that turns it into steps.
//
// Sampling rule (a pure function of seed and step, so --resume needs only the step number):
// - Epoch e visits the queries in a permutation drawn from (seed, e). Step k of the epoch takes
//   positions k*B .. k*B+B-1 of it; the last step of an epoch, when short, is filled from the
//   start of the same permutation, so every step has B distinct queries and an epoch is
//   ceil(N / B) steps.
// - Slot i of step s draws from (seed, s, i): one positive uniformly from "pos"; then G-1
//   negatives: a uniform sample without replacement when "neg" has at least G-1, otherwise
//   "neg" shuffled and cycled (each negative used once before any repeats); a record with no
//   negatives gets positives of other, uniformly chosen records instead. Teacher scores travel
//   with the sampled candidates.
// - Homogeneous batches (a task plan): epoch e shuffles each task's lines with (seed, e, task) and
//   cuts them into batches of B (a task's last batch, when short, is filled from the start of
//   its own permutation); the batches of every task are then shuffled together with (seed, e).
//   An epoch is sum over tasks of ceil(N_task / B) steps, every step from one task.
import { UserError } from '../errors.ts';
import { readJsonLines } from '../formats/jsonl.ts';
import type { ReadLinesOptions } from '../formats/lines.ts';
import { array, jsonKeys, number, object, optional, parse, refine, string } from '../schema.ts';
import { hashInts, permutation, Purpose, randInt, rng } from './random.ts';

export interface TrainRecord {
  query: string;
  pos: string[];
  neg: string[];
  task?: string;
  teacherScores?: number[]; // aligned to pos ++ neg
  line: number; // 1-based line in the file, for messages
}

export interface StepBatch {
  step: number; // 0-based global step index
  epoch: number;
  records: number[]; // record indices, B of them
  queries: string[]; // B
  passages: string[]; // B*G: query i's positive at i*G, then its G-1 negatives
  querySources: string[]; // where each text comes from, for messages: "FILE:LINE query"
  passageSources: string[]; // "FILE:LINE pos[k]" / "FILE:LINE neg[k]"
  groupSize: number; // passages per query this step
  task?: string; // the step's task (homogeneous batches)
  teacher?: Float64Array; // [B*G] teacher scores of the passages (distilled steps)
}

/** How a task plan shapes the steps: one task per step (homogeneous), its group size, whether it distils. */
export interface SamplerPlan {
  homogeneous: boolean;
  groupSize(task: string | undefined): number;
  distilled(task: string | undefined): boolean;
}

/** One line of a training file: the declaration its TrainRecord fields and their checks come from. */
export const trainLineSchema = object({
  query: string(),
  pos: refine(array(string()), (v) => v.length > 0, 'is empty; every query needs a positive passage'),
  neg: optional(array(string()), { nullable: true }),
  task: optional(string()),
  teacher_scores: optional(array(number())),
}, { unknownKeys: 'keep', expected: 'a JSON object {"query", "pos", "neg"}' });

/** Checks one parsed JSON line; errors name file:line and the key. */
export function toTrainRecord(value: unknown, file: string, line: number): TrainRecord {
  const v = parse(trainLineSchema, value, jsonKeys(`${file}:${line}`, 'the line'));
  return { query: v.query, pos: v.pos, neg: v.neg ?? [], task: v.task, ...(v.teacher_scores !== undefined ? { teacherScores: v.teacher_scores } : {}), line };
}

/** Every record of a training file; blank lines are skipped, anything else bad is an error naming file:line. */
export async function loadTrainData(file: string, options: ReadLinesOptions = {}): Promise<TrainRecord[]> {
  const records: TrainRecord[] = [];
  for await (const { value, line } of readJsonLines(file, '--data', options)) records.push(toTrainRecord(value, file, line));
  if (records.length === 0) throw new UserError(`${file}: no training records`);
  return records;
}

/** FNV-1a (32-bit) over every record's text: a resumed run must see the same data. */
export function dataFingerprint(records: TrainRecord[]): string {
  let h = 0x811c9dc5;
  const add = (text: string) => {
    for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
    h = Math.imul(h ^ 0xff, 0x01000193); // separator, so field boundaries count
  };
  for (const r of records) {
    add(r.query);
    r.pos.forEach(add);
    add('');
    r.neg.forEach(add);
    add('');
    // (only when present, so files without them keep their fingerprint)
    if (r.task !== undefined) add(`task:${r.task}`);
    if (r.teacherScores !== undefined) add(`teacher:${r.teacherScores.join(',')}`);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

export class Sampler {
  readonly stepsPerEpoch: number;
  private order?: { epoch: number; perm: Int32Array };
  private readonly tasks: { name: string; records: number[] }[] = [];
  private plannedEpoch?: { epoch: number; batches: [number, number][]; perms: Int32Array[] };

  constructor(
    readonly records: TrainRecord[],
    readonly batchSize: number,
    readonly groupSize: number,
    readonly seed: number,
    readonly file = 'data',
    readonly plan?: SamplerPlan,
  ) {
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new UserError(`--batch-size must be an integer >= 1, got ${batchSize}`);
    if (!Number.isInteger(groupSize) || groupSize < 2) throw new UserError(`--group-size must be an integer >= 2 (1 positive + at least 1 negative), got ${groupSize}`);
    if (records.length === 0) throw new UserError(`${file}: no training records`);
    if (batchSize > records.length) throw new UserError(`--batch-size ${batchSize} is larger than the ${records.length} queries in ${file}`);
    if (records.length < 2 && records.every((r) => r.neg.length === 0)) throw new UserError(`${file}: a single record without "neg" leaves nothing to use as a negative`);
    if (plan?.homogeneous) {
      const byTask = new Map<string, number[]>();
      records.forEach((r, i) => {
        const t = r.task ?? '';
        if (!byTask.has(t)) byTask.set(t, []);
        byTask.get(t)!.push(i);
      });
      for (const [name, list] of byTask) {
        if (list.length < batchSize) throw new UserError(`task "${name}" has ${list.length} lines in ${file}, fewer than --batch-size ${batchSize} (homogeneous batches take one task per step; lower --batch-size or pass --mixed-batches)`);
        this.tasks.push({ name, records: list });
      }
      this.stepsPerEpoch = this.tasks.reduce((n, t) => n + Math.ceil(t.records.length / batchSize), 0);
    } else {
      this.stepsPerEpoch = Math.ceil(records.length / batchSize);
    }
  }

  /** Homogeneous plan of an epoch: each task's permutation and the shuffled list of (task, batch). */
  private epochPlan(epoch: number): { batches: [number, number][]; perms: Int32Array[] } {
    if (this.plannedEpoch?.epoch !== epoch) {
      const perms = this.tasks.map((t, ti) => permutation(t.records.length, rng(hashInts(this.seed, Purpose.taskOrder, epoch, ti))));
      const all: [number, number][] = [];
      this.tasks.forEach((t, ti) => {
        for (let j = 0; j < Math.ceil(t.records.length / this.batchSize); j++) all.push([ti, j]);
      });
      const order = permutation(all.length, rng(hashInts(this.seed, Purpose.batchOrder, epoch)));
      this.plannedEpoch = { epoch, perms, batches: Array.from(order, (i) => all[i]) };
    }
    return this.plannedEpoch;
  }

  private epochOrder(epoch: number): Int32Array {
    if (this.order?.epoch !== epoch) this.order = { epoch, perm: permutation(this.records.length, rng(hashInts(this.seed, Purpose.epochOrder, epoch))) };
    return this.order.perm;
  }

  /** The batch of 0-based global step `step`. */
  batch(step: number): StepBatch {
    const epoch = Math.floor(step / this.stepsPerEpoch);
    const k = step % this.stepsPerEpoch;
    const records: number[] = [];
    let task: string | undefined;
    if (this.plan?.homogeneous) {
      const { batches, perms } = this.epochPlan(epoch);
      const [ti, j] = batches[k];
      const t = this.tasks[ti];
      task = t.name === '' ? undefined : t.name;
      for (let i = 0; i < this.batchSize; i++) records.push(t.records[perms[ti][(j * this.batchSize + i) % t.records.length]]);
    } else {
      const perm = this.epochOrder(epoch);
      const n = perm.length;
      for (let j = 0; j < this.batchSize; j++) records.push(perm[(k * this.batchSize + j) % n]);
    }
    const groupSize = this.plan?.homogeneous ? this.plan.groupSize(task) : this.groupSize;
    const distilled = this.plan?.distilled(task) ?? false;
    const teacher: number[] = [];
    const queries: string[] = [];
    const passages: string[] = [];
    const querySources: string[] = [];
    const passageSources: string[] = [];
    const take = (r: number, field: 'pos' | 'neg', k: number) => {
      const rec = this.records[r];
      passages.push(rec[field][k]);
      passageSources.push(`${this.file}:${rec.line} ${field}[${k}]`);
      if (distilled) teacher.push(rec.teacherScores![field === 'pos' ? k : rec.pos.length + k]);
    };
    records.forEach((r, slot) => {
      const rec = this.records[r];
      const next = rng(hashInts(this.seed, Purpose.group, step, slot));
      queries.push(rec.query);
      querySources.push(`${this.file}:${rec.line} query`);
      take(r, 'pos', randInt(next, rec.pos.length));
      this.negatives(r, next, take, groupSize);
    });
    return { step, epoch, records, queries, passages, querySources, passageSources, groupSize, task, teacher: distilled ? Float64Array.from(teacher) : undefined };
  }

  private negatives(r: number, next: () => number, take: (r: number, field: 'pos' | 'neg', k: number) => void, groupSize: number): void {
    const want = groupSize - 1;
    const neg = this.records[r].neg;
    if (neg.length === 0) {
      const n = this.records.length;
      for (let j = 0; j < want; j++) {
        const other = (r + 1 + randInt(next, n - 1)) % n; // uniform over records != r
        take(other, 'pos', randInt(next, this.records[other].pos.length));
      }
      return;
    }
    const perm = permutation(neg.length, next);
    for (let j = 0; j < want; j++) take(r, 'neg', perm[j % neg.length]);
  }
}
