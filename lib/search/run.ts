// Searching a batch of queries into a TREC run: in query chunks, so the results held at once
// stay bounded, written as they come and/or kept as a Run for the metrics.
import type { Run } from '../eval/metrics.ts';
import { TrecRunWriter } from '../formats/trec.ts';
import type { VectorIndex } from './index.ts';
import { UserError } from '../errors.ts';
import { array, boolean, describeValue, func, instance, number, object, optional, parse, string, type Infer } from '../schema.ts';

const runSearchOptionsSchema = object({
  output: optional(string({ nonEmpty: true })), // TREC run file to write
  keep: optional(boolean()), // also return the run in memory
  queryChunk: optional(number({ int: true, min: 1 })), // queries per search call (default 4096)
  /** leave out a hit whose id equals its query's id, still returning k hits (BEIR's evaluator
   * searches k + 1 and skips the self-hit the same way) */
  dropSelf: optional(boolean()),
  onProgress: optional(func<(done: number, total: number) => void>()),
}, { expected: 'an options object' });
export type RunSearchOptions = Infer<typeof runSearchOptionsSchema>;

/**
 * Top-k of every query row against the index. Hits per query: min(k, index size) (one fewer
 * when dropSelf removed a self-hit from a corpus of at most k rows), ranks 1..n by score
 * descending (ties: lower corpus row first). Query i is named queryIds[i].
 */
export async function searchToRun(index: VectorIndex, queries: Float32Array, queryIds: string[], k: number,
  runOptions: RunSearchOptions = {}): Promise<Run | undefined> {
  const where = 'searchToRun';
  if (typeof index !== 'object' || index === null || typeof (index as VectorIndex).search !== 'function') {
    throw new UserError(`${where}: index must be a VectorIndex (CorpusIndex, HnswIndex, FaissIndex), got ${describeValue(index)}`);
  }
  parse(instance(Float32Array), queries, { where, label: () => 'queries' });
  parse(array(string({ nonEmpty: true })), queryIds, { where, label: (p) => `queryIds${p}` });
  parse(number({ int: true, min: 1 }), k, { where, label: () => 'k' });
  const options = parse(runSearchOptionsSchema, runOptions, { where });
  const dim = index.dim;
  const Q = queryIds.length;
  if (queries.length !== Q * dim) throw new UserError(`${where}: ${queries.length} query values for ${Q} ids of dim ${dim}`);
  const chunk = options.queryChunk ?? 4096;
  const writer = options.output ? new TrecRunWriter(options.output) : undefined;
  const run: Run | undefined = options.keep ? new Map() : undefined;
  try {
    for (let q0 = 0; q0 < Q; q0 += chunk) {
      const q1 = Math.min(Q, q0 + chunk);
      const r = await index.search(queries.subarray(q0 * dim, q1 * dim), options.dropSelf ? k + 1 : k);
      for (let q = q0; q < q1; q++) {
        const docs: string[] = [];
        const scores: number[] = [];
        for (let j = 0; j < r.k && docs.length < k; j++) {
          const row = r.rows[(q - q0) * r.k + j];
          if (row < 0) break;
          const id = index.id(row);
          if (options.dropSelf && id === queryIds[q]) continue;
          docs.push(id);
          scores.push(r.scores[(q - q0) * r.k + j]);
        }
        writer?.writeQuery(queryIds[q], docs, scores);
        if (run) {
          const m = new Map<string, number>();
          docs.forEach((d, j) => { if (!m.has(d)) m.set(d, scores[j]); });
          run.set(queryIds[q], m);
        }
      }
      options.onProgress?.(q1, Q);
    }
  } catch (err) {
    writer?.abort();
    throw err;
  }
  writer?.close();
  return run;
}
