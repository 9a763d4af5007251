// Retrieval metrics with trec_eval 9.0.8 semantics (measures ndcg_cut, recip_rank, recall,
// map_cut, P), plus MS MARCO's MRR@k.
//
// Rules, as trec_eval applies them:
// - A query's ranking is its run entries sorted by score descending, ties broken by docno
//   DESCENDING (byte order, strcmp); the rank column of a run file is ignored. Scores are
//   compared as float32 (trec_eval stores them in a C float), so 0.1000000001 and
//   0.1000000002 tie.
// - Relevant means rel >= 1. Docs missing from the qrels and negative rels are not relevant
//   and have gain 0.
// - nDCG@k: DCG = sum over ranks r <= k of rel_r / log2(r + 1), counting rel > 0 only; the
//   ideal DCG takes all judged positive rels of the query, sorted descending, cut at k.
//   No positive judgement -> 0.
// - MRR@k: 1 / rank of the first relevant doc within k, else 0 (MS MARCO's MRR@10).
// - Recall@k: relevant retrieved within k / all relevant of the query (0 if none).
// - MAP@k: sum of precision at the rank of each relevant doc within k / all relevant.
// - P@k: relevant retrieved within k / k (k counts even when fewer docs were retrieved).
// - A measure without @k uses the whole ranking (not allowed for P).
// - Averages: over the queries present in both the run and the qrels (trec_eval default), or
//   with allQueries over every qrels query, a query missing from the run scoring 0
//   (trec_eval -c, MS MARCO's official averaging). A qrels query whose judgements are all
//   non-relevant is still a query: it scores 0. No overlap at all is an error.
// - Duplicate docs in a run: trec_eval 9.0.8 refuses the run ("duplicate docs"); lmdr keeps
//   the first line of each (qid, docno) and ignores later ones (see lib/formats/trec.ts).
// - dropSelf (BEIR's ignore_identical_ids): a retrieved doc whose id equals the query id is
//   removed before ranking. Judgements are left alone.
import { UserError } from '../errors.ts';
import { boolean, describeValue, object, optional, parse, string, type Infer } from '../schema.ts';

/** qid -> docno -> relevance grade (integer, may be negative). */
export type Qrels = Map<string, Map<string, number>>;
/** qid -> docno -> score. One score per (qid, docno) by construction. */
export type Run = Map<string, Map<string, number>>;

export type MeasureName = 'ndcg' | 'mrr' | 'recall' | 'map' | 'p';
export interface Measure {
  key: string; // canonical spelling, the key in outputs: "ndcg@10", "map"
  name: MeasureName;
  k: number; // Infinity = whole ranking
}

export const DEFAULT_MEASURES = 'ndcg@10,mrr@10,recall@10,recall@1000,map@1000,p@10';

const NAMES: Record<string, MeasureName> = { ndcg: 'ndcg', mrr: 'mrr', recall: 'recall', map: 'map', p: 'p' };

/** Parses "ndcg@10,mrr@10,..." (case-insensitive). */
export function parseMeasures(spec: string): Measure[] {
  parse(string(), spec, { where: 'parseMeasures', label: () => 'spec' });
  const out: Measure[] = [];
  const seen = new Set<string>();
  for (const raw of spec.split(',')) {
    const text = raw.trim().toLowerCase();
    if (!text) continue;
    const m = /^([a-z]+)(?:@(\d+))?$/.exec(text);
    const name = m ? NAMES[m[1]] : undefined;
    if (!m || !name) throw new UserError(`unknown measure "${raw.trim()}" (expected ndcg@K, mrr@K, recall@K, map@K or p@K)`);
    const k = m[2] === undefined ? Infinity : Number(m[2]);
    if (k === 0) throw new UserError(`measure "${raw.trim()}": the cutoff must be at least 1`);
    if (name === 'p' && k === Infinity) throw new UserError('measure "p" needs a cutoff, e.g. p@10');
    const key = k === Infinity ? name : `${name}@${k}`;
    if (!seen.has(key)) out.push({ key, name, k });
    seen.add(key);
  }
  if (out.length === 0) throw new UserError('no measures given');
  return out;
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** strcmp on the UTF-8 bytes (what trec_eval does); JS `<` differs only beyond ASCII. */
export function compareBytes(a: string, b: string): number {
  if (isAscii(a) && isAscii(b)) return a < b ? -1 : a > b ? 1 : 0;
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Docnos of one query's run, in trec_eval order: score (as a C float) desc, then docno desc. */
export function rankDocs(scores: Map<string, number>, dropId?: string): string[] {
  const docs: { doc: string; score: number }[] = [];
  // trec_eval keeps scores in a float: values that differ only beyond float32 precision tie.
  for (const [doc, score] of scores) if (doc !== dropId) docs.push({ doc, score: Math.fround(score) });
  docs.sort((a, b) => {
    if (a.score !== b.score) return a.score > b.score ? -1 : 1;
    return compareBytes(b.doc, a.doc);
  });
  return docs.map((d) => d.doc);
}

/** Every requested measure for one ranked list against one query's judgements. */
export function queryMeasures(ranked: string[], judged: Map<string, number>, measures: Measure[]): number[] {
  const rels = ranked.map((d) => judged.get(d) ?? 0);
  let numRel = 0;
  const positive: number[] = [];
  for (const rel of judged.values()) {
    if (rel >= 1) numRel++;
    if (rel > 0) positive.push(rel);
  }
  positive.sort((a, b) => b - a);
  return measures.map(({ name, k }) => {
    const cut = Math.min(k, rels.length);
    switch (name) {
      case 'ndcg': {
        let dcg = 0;
        for (let i = 0; i < cut; i++) if (rels[i] > 0) dcg += rels[i] / Math.log2(i + 2);
        let ideal = 0;
        const icut = Math.min(k, positive.length);
        for (let i = 0; i < icut; i++) ideal += positive[i] / Math.log2(i + 2);
        return ideal > 0 ? dcg / ideal : 0;
      }
      case 'mrr': {
        for (let i = 0; i < cut; i++) if (rels[i] >= 1) return 1 / (i + 1);
        return 0;
      }
      case 'recall': {
        if (numRel === 0) return 0;
        let hits = 0;
        for (let i = 0; i < cut; i++) if (rels[i] >= 1) hits++;
        return hits / numRel;
      }
      case 'map': {
        if (numRel === 0) return 0;
        let hits = 0;
        let sum = 0;
        for (let i = 0; i < cut; i++) {
          if (rels[i] >= 1) {
            hits++;
            sum += hits / (i + 1);
          }
        }
        return sum / numRel;
      }
      case 'p': {
        let hits = 0;
        for (let i = 0; i < cut; i++) if (rels[i] >= 1) hits++;
        return hits / k;
      }
    }
  });
}

const evaluateOptionsSchema = object({
  /** trec_eval -c: average over every qrels query (missing ones score 0). */
  allQueries: optional(boolean()),
  /** BEIR's ignore_identical_ids: drop a retrieved doc whose id equals the query id. */
  dropSelf: optional(boolean()),
  perQuery: optional(boolean()),
}, { expected: 'an options object' });
export type EvaluateOptions = Infer<typeof evaluateOptionsSchema>;

export interface MetricsResult {
  means: Record<string, number>;
  perQuery?: Record<string, Record<string, number>>;
  numQueries: number; // queries averaged over
  runOnly: number; // run queries without judgements (ignored, as trec_eval does)
  qrelsOnly: number; // qrels queries absent from the run
}

/** trec_eval-equal averages of `measures` (see the rules at the top of this file). */
export function evaluateRun(qrels: Qrels, run: Run, measures: Measure[], evaluateOptions: EvaluateOptions = {}): MetricsResult {
  const where = 'evaluateRun';
  if (!(qrels instanceof Map)) throw new UserError(`${where}: qrels must be a Map (readQrels), got ${describeValue(qrels)}`);
  if (!(run instanceof Map)) throw new UserError(`${where}: run must be a Map (readTrecRun(...).run), got ${describeValue(run)}`);
  if (!Array.isArray(measures) || measures.some((m) => typeof m !== 'object' || m === null || typeof (m as Measure).key !== 'string')) {
    throw new UserError(`${where}: measures must be an array of measures (parseMeasures("ndcg@10,...")), got ${describeValue(measures)}`);
  }
  const options = parse(evaluateOptionsSchema, evaluateOptions, { where });
  // trec_eval walks queries in qid (strcmp) order; summing in that order keeps the last bits.
  const qids = [...qrels.keys()].sort(compareBytes);
  let overlap = 0;
  for (const qid of qids) if (run.has(qid)) overlap++;
  let runOnly = 0;
  for (const qid of run.keys()) if (!qrels.has(qid)) runOnly++;
  if (overlap === 0) {
    const sample = (m: Map<string, unknown>) => [...m.keys()].slice(0, 3).map((q) => JSON.stringify(q)).join(', ');
    throw new UserError(`no query of the run (${run.size} queries, e.g. ${sample(run) || 'none'}) appears in the qrels ` +
      `(${qrels.size} queries, e.g. ${sample(qrels) || 'none'}): wrong split or id files?`);
  }
  const sums = new Array<number>(measures.length).fill(0);
  const perQuery: Record<string, Record<string, number>> = {};
  let count = 0;
  const empty = new Map<string, number>();
  for (const qid of qids) {
    const scores = run.get(qid);
    if (!scores && !options.allQueries) continue;
    const ranked = rankDocs(scores ?? empty, options.dropSelf ? qid : undefined);
    const values = queryMeasures(ranked, qrels.get(qid)!, measures);
    values.forEach((v, i) => (sums[i] += v));
    if (options.perQuery) perQuery[qid] = Object.fromEntries(measures.map((m, i) => [m.key, values[i]]));
    count++;
  }
  const means = Object.fromEntries(measures.map((m, i) => [m.key, sums[i] / count]));
  return {
    means,
    perQuery: options.perQuery ? perQuery : undefined,
    numQueries: count,
    runOnly,
    qrelsOnly: qids.length - overlap,
  };
}
