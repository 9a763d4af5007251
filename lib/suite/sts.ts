// `sts` tasks: JSON lines {"sentence1", "sentence2", "score"}; the cosine similarity of the two
// sentences' embeddings against the gold scores, as MTEB reports it: Spearman's rank correlation
// (tied values get the average of their ranks, as scipy.stats.spearmanr) and Pearson's
// correlation, both in float64.
import { UserError } from '../errors.ts';
import { readJsonLines } from '../formats/jsonl.ts';
import { jsonKeys, number, object, parse, string } from '../schema.ts';
import type { StsTask } from './schema.ts';
import type { Unit, UnitContext } from './unit.ts';

const stsLine = object({ sentence1: string(), sentence2: string(), score: number() }, { unknownKeys: 'keep', expected: 'a JSON object {"sentence1", "sentence2", "score"}' });

/** Pearson's correlation (NaN when either side is constant). */
export function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  if (n !== b.length || n < 2) throw new UserError(`pearson: needs two equally long lists of at least 2 values (got ${a.length} and ${b.length})`);
  let ma = 0, mb = 0;
  for (let i = 0; i < n; i++) { ma += a[i]; mb += b[i]; }
  ma /= n; mb /= n;
  let sab = 0, saa = 0, sbb = 0;
  for (let i = 0; i < n; i++) {
    const da = a[i] - ma, db = b[i] - mb;
    sab += da * db; saa += da * da; sbb += db * db;
  }
  return sab / Math.sqrt(saa * sbb);
}

/** 1-based ranks, ties sharing the mean of the ranks they span. */
export function averageRanks(v: ArrayLike<number>): Float64Array {
  const order = Array.from({ length: v.length }, (_, i) => i).sort((x, y) => v[x] - v[y]);
  const ranks = new Float64Array(v.length);
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j + 1 < order.length && v[order[j + 1]] === v[order[i]]) j++;
    const r = (i + j) / 2 + 1;
    for (let t = i; t <= j; t++) ranks[order[t]] = r;
    i = j + 1;
  }
  return ranks;
}

/** Spearman's rank correlation: Pearson's of the average ranks. */
export function spearman(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return pearson(averageRanks(a), averageRanks(b));
}

export function stsUnits(task: StsTask): Unit[] {
  const maxLength = task.max_len ?? 128;
  return [{
    task, name: task.name, settings: { type: task.type, instruction: task.instruction ?? null, maxLength, metrics: task.metrics },
    accepts: (r) => r === 'dense',
    run: async (ctx: UnitContext) => {
      const first: string[] = [], second: string[] = [], gold: number[] = [], where: string[] = [];
      for await (const { value, line } of readJsonLines(task.data, 'STS pairs')) {
        const v = parse(stsLine, value, jsonKeys(`${task.data}:${line}`, 'the line'));
        first.push(v.sentence1);
        second.push(v.sentence2);
        gold.push(v.score);
        where.push(`${task.data}:${line}`);
      }
      if (gold.length < 2) throw new UserError(`${task.data}: an STS task needs at least 2 pairs, got ${gold.length}`);
      if (ctx.retriever.kind !== 'dense') throw new Error('sts: needs a dense model');
      const engine = await ctx.retriever.engine();
      // both sentences in one call: one length-sorted batching
      const emb = await engine.encode([...first, ...second], {
        instruction: task.instruction, maxLength, normalize: true, batchSize: task.batch_size, maxTokens: task.max_tokens,
        describeInput: (i) => `${where[i % gold.length]} ${i < gold.length ? 'sentence1' : 'sentence2'}`,
        onProgress: (d, t) => ctx.progress('sentences', d, t),
      });
      const n = gold.length, H = emb.dim;
      const cos = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let h = 0; h < H; h++) s += emb.data[i * H + h] * emb.data[(n + i) * H + h];
        cos[i] = s;
      }
      const all: Record<string, number> = { spearman: spearman(cos, gold), pearson: pearson(cos, gold) };
      return Object.fromEntries(task.metrics!.map((m) => [m, all[m]]));
    },
  }];
}
