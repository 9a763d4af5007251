// A generated multi-task retrieval set whose relevance differs by task, a hand-built "LLM" whose
// rewards reflect that relevance, and per-task held-out retrieval. Used by the multi-task end to
// end test and the ablation bench (bench/multitask-ablation.ts).
//
// - Tasks "alpha" and "beta" share one query distribution; a query's relevant passage is its
//   words mapped through the task's own word mapping (M_alpha or M_beta). Each line's negatives
//   are the other task's mapping of the same query (a hard distractor no query alone can tell
//   apart) and mappings of other queries. Held-out evaluation of a task ranks its queries
//   against the passages of both tasks: without the task's instruction, M_alpha(q) and
//   M_beta(q) are indistinguishable.
// - The teacher LM is a tiny qwen2 whose blocks add nothing (o_proj and down_proj are zero) and
//   whose head is its embedding (tied, rows scaled to norm 4): it predicts the token it has just
//   read. With the template "{query} {candidate}" and the answer = the positive's last word, a
//   candidate's reward log p(answer | query, candidate) is high when the candidate ends with the
//   answer: the positive ranks first, the distractors after it.
import fs from 'node:fs';
import path from 'node:path';
import { Engine } from '../../lib/engine.ts';
import { readSafetensorsHeader, readTensorValues, writeSafetensors } from '../../lib/model/safetensors.ts';
import { makeTinyModel, tinyWords } from '../helpers/tiny-models.ts';
import { randInt, uniformRng } from '../helpers/rng.ts';

const content = tinyWords.filter((w) => /^[a-z]+$/.test(w));

function mapping(seed: number): Map<string, string> {
  const u = uniformRng(seed);
  const shuffled = [...content];
  for (let i = shuffled.length - 1; i > 0; i--) {
    const j = randInt(u, 0, i + 1);
    [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
  }
  return new Map(content.map((w, i) => [w, shuffled[i]]));
}

export const TASKS = ['alpha', 'beta'] as const;
// (words of the tiny tokenizer's vocabulary, so the instructions are real tokens, not [UNK])
export const TASK_INSTRUCTIONS: Record<string, string> = { alpha: 'how does ', beta: 'why did ' };
export const PASSAGE_INSTRUCTION = 'read ';
const maps = { alpha: mapping(1001), beta: mapping(2002) };

export interface TaskLine { task: string; query: string; pos: string[]; neg: string[]; answers: string[] }

/** n queries per task (seeded); the same queries in both tasks. */
export function multiTaskLines(n: number, seed: number, negs = 3): TaskLine[] {
  const u = uniformRng(seed);
  const queries = Array.from({ length: n }, () => Array.from({ length: 3 }, () => content[randInt(u, 0, content.length)]));
  const out: TaskLine[] = [];
  for (const task of TASKS) {
    const other = task === 'alpha' ? 'beta' : 'alpha';
    queries.forEach((q, i) => {
      const pos = q.map((w) => maps[task].get(w)!).join(' ');
      const neg = [q.map((w) => maps[other].get(w)!).join(' ')];
      for (let j = 1; j < negs; j++) neg.push(queries[(i + 7 * j) % n].map((w) => maps[task].get(w)!).join(' '));
      out.push({ task, query: q.join(' '), pos: [pos], neg, answers: [pos.split(' ').at(-1)!] });
    });
  }
  return out;
}

/** The "repeat the last token" teacher LM described above, as a Hugging Face dir. */
export function makeRepeatLm(dir?: string): string {
  const model = makeTinyModel({ arch: 'qwen2', tokenizer: true, seed: 4242, tieWordEmbeddings: true, dir });
  const file = path.join(model, 'model.safetensors');
  const header = readSafetensorsHeader(file);
  const tensors = [...header.tensors.values()].map((t) => {
    const data = readTensorValues(file, t);
    if (/o_proj\.weight$|down_proj\.weight$/.test(t.name)) data.fill(0);
    if (t.name === 'model.norm.weight') data.fill(1);
    if (t.name === 'model.embed_tokens.weight') {
      const H = t.shape[1];
      for (let r = 0; r < t.shape[0]; r++) {
        let n = 0;
        for (let c = 0; c < H; c++) n += data[r * H + c] ** 2;
        for (let c = 0; c < H; c++) data[r * H + c] *= 4 / Math.sqrt(n);
      }
    }
    return { name: t.name, dtype: 'F32' as const, shape: t.shape, data };
  });
  fs.rmSync(file);
  writeSafetensors(file, tensors);
  return model;
}

/**
 * Per task: MRR and top-1 of each held-out query's relevant passage among the passages of every
 * task (cosine), queries with the task's instruction when `instructions`.
 */
export async function perTaskRetrieval(modelDir: string, held: TaskLine[], instructions: boolean, adapter?: string): Promise<Record<string, { mrr: number; top1: number }>> {
  const e = await Engine.load(modelDir, { device: 'cpu', adapter });
  try {
    const passages = held.map((h) => h.pos[0]);
    const p = await e.encode(passages.map((t) => (instructions ? PASSAGE_INSTRUCTION : '') + t), { maxLength: 24 });
    const out: Record<string, { mrr: number; top1: number }> = {};
    for (const task of TASKS) {
      const idx = held.flatMap((h, i) => (h.task === task ? [i] : []));
      const q = await e.encode(idx.map((i) => (instructions ? TASK_INSTRUCTIONS[task] : '') + held[i].query), { maxLength: 24 });
      let mrr = 0;
      let top1 = 0;
      idx.forEach((i, k) => {
        const scores = passages.map((_, j) => q.row(k).reduce((s, x, d) => s + x * p.row(j)[d], 0));
        const rank = 1 + scores.filter((s, j) => j !== i && s >= scores[i]).length;
        mrr += 1 / rank;
        if (rank === 1) top1++;
      });
      out[task] = { mrr: mrr / idx.length, top1: top1 / idx.length };
    }
    return out;
  } finally {
    e.dispose();
  }
}

/** The task config of the runs: instructions (or none), stable distillation. */
export function taskConfig(instructions: boolean): Record<string, Record<string, unknown>> {
  return Object.fromEntries(TASKS.map((t) => [t, {
    ...(instructions ? { query_instruction: TASK_INSTRUCTIONS[t], passage_instruction: PASSAGE_INSTRUCTION } : {}),
    distill: 'stable', template: '{query} {candidate}',
  }]));
}
