// Full-corpus retrieval evaluation: encode the corpus (streamed, in chunks, each chunk
// length-sorted into token-budget batches by Engine.encode) and the split's queries, exact
// top-k search, a TREC run, trec_eval-equal metrics. Used by `lmdr eval` and, every N steps,
// by training (--eval-beir).
import fs from 'node:fs';
import path from 'node:path';

import type { Engine, Truncation } from '../engine.ts';
import { UserError } from '../errors.ts';
import { beirFiles, readBeirCorpus, readBeirQueries, type DatasetFiles, type TextRecord } from '../formats/beir.ts';
import { msmarcoFiles, readMsmarcoCollection, readMsmarcoQueries } from '../formats/msmarco.ts';
import { readQrels } from '../formats/trec.ts';
import { readLines, type ReadLinesOptions } from '../formats/lines.ts';
import { boolean, func, number, object, oneOf, optional, parse, record, string, unknownValue, type Infer } from '../schema.ts';
import { checkId, CorpusIndex, loadIndex, type VectorIndex } from '../search/index.ts';
import { searchToRun } from '../search/run.ts';
import { DEFAULT_MEASURES, evaluateRun, parseMeasures, type MetricsResult } from './metrics.ts';

const evaluateOptionsSchema = object({
  beir: optional(string({ nonEmpty: true })), // BEIR folder
  msmarco: optional(string({ nonEmpty: true })), // MS MARCO folder (collection.tsv, queries.<split>.tsv, qrels.<split>.tsv)
  split: optional(string({ nonEmpty: true })), // default "test" (BEIR), "dev" (MS MARCO)
  k: optional(number({ int: true, min: 1 })), // hits per query, default 1000
  measures: optional(string({ nonEmpty: true })), // default DEFAULT_MEASURES
  queryInstruction: optional(string()),
  passageInstruction: optional(string()),
  queryMaxLen: optional(number({ int: true, min: 1 })), // default 64
  passageMaxLen: optional(number({ int: true, min: 1 })), // default 256
  pooling: optional(oneOf(['eos', 'cls', 'mean'] as const)),
  batchSize: optional(number({ int: true, min: 1 })), // sequences per forward (Engine.encode)
  maxTokens: optional(number({ int: true, min: 1 })), // tokens per forward (Engine.encode); long passages get small batches
  titles: optional(boolean()), // BEIR: passage = title + " " + text (default true)
  allQueries: optional(boolean()), // trec_eval -c averaging
  /** leave a retrieved doc whose id equals the query id out of the run (k other hits remain);
   * default true for BEIR (as BEIR's evaluator), false for MS MARCO */
  dropSelf: optional(boolean()),
  runFile: optional(string({ nonEmpty: true })), // write the TREC run here
  /** dir holding corpus embeddings (embeddings.npy, ids.txt, meta.json): reused when meta.json
   * matches `corpusKey`, else (re)written. Omit to always encode (e.g. during training). */
  corpusCache: optional(string({ nonEmpty: true })),
  corpusKey: optional(record(unknownValue())), // what the embeddings depend on besides the corpus file
  perQuery: optional(boolean()),
  device: optional(string({ nonEmpty: true })), // search device, default the engine's
  corpusChunk: optional(number({ int: true, min: 1 })), // passages per encode call (default 8192)
  replaceInvalidUtf8: optional(boolean()), // read invalid UTF-8 in the dataset files as U+FFFD instead of failing
  onProgress: optional(func<(stage: 'corpus' | 'queries' | 'search', done: number, total: number) => void>()),
}, { expected: 'an options object' });

export type EvaluateRetrievalOptions = Infer<typeof evaluateOptionsSchema>;

export interface RetrievalEvaluation {
  metrics: Record<string, number>;
  perQuery?: Record<string, Record<string, number>>;
  numQueries: number; // queries averaged over
  corpusSize: number;
  corpusReused: boolean;
  split: string;
  /** inputs cut to their max length (null: none): passages encoded now, and queries */
  truncated: { corpus: Truncation | null; queries: Truncation | null };
}

/** Two truncation reports as one (null when neither cut anything). */
export function mergeTruncation(a: Truncation | null, b: Truncation | null): Truncation | null {
  if (!a || !b) return a ?? b;
  return { inputs: a.inputs + b.inputs, longest: Math.max(a.longest, b.longest), maxLength: a.maxLength };
}

/** The dataset's files for the split (missing ones are errors naming them). */
export function datasetFiles(o: Pick<EvaluateRetrievalOptions, 'beir' | 'msmarco' | 'split'>): { files: DatasetFiles; kind: 'beir' | 'msmarco'; split: string } {
  if ((o.beir === undefined) === (o.msmarco === undefined)) throw new UserError('give exactly one of --beir DIR or --msmarco DIR');
  if (o.beir !== undefined) {
    const split = o.split ?? 'test';
    return { files: beirFiles(o.beir, split), kind: 'beir', split };
  }
  const split = o.split ?? 'dev';
  return { files: msmarcoFiles(o.msmarco!, split), kind: 'msmarco', split };
}

async function countContentLines(file: string, options: ReadLinesOptions): Promise<number> {
  let n = 0;
  for await (const { text } of readLines(file, 'corpus', options)) if (text.trim() !== '') n++;
  return n;
}

/** Identity of the corpus file + what the embeddings depend on: equal keys mean reusable embeddings. */
function cacheMeta(corpusFile: string, key: Record<string, unknown>): string {
  const st = fs.statSync(corpusFile);
  return JSON.stringify({ corpus: path.resolve(corpusFile), bytes: st.size, mtimeMs: st.mtimeMs, ...key });
}

async function encodeCorpus(engine: Engine, passages: AsyncGenerator<TextRecord>, total: number, o: EvaluateRetrievalOptions,
  device: string): Promise<{ index: CorpusIndex; truncated: Truncation | null }> {
  let truncated: Truncation | null = null;
  const index = new CorpusIndex(engine.dim, { device, capacity: total });
  const chunk = o.corpusChunk ?? 8192;
  let texts: string[] = [];
  let ids: string[] = [];
  let wheres: string[] = [];
  const seen = new Set<string>();
  let done = 0;
  const flush = async () => {
    if (texts.length === 0) return;
    const base = done;
    const emb = await engine.encode(texts, {
      instruction: o.passageInstruction, maxLength: o.passageMaxLen ?? 256, pooling: o.pooling,
      batchSize: o.batchSize, maxTokens: o.maxTokens, normalize: true,
      describeInput: (i) => wheres[i],
      onProgress: (d) => o.onProgress?.('corpus', base + d, total),
    });
    truncated = mergeTruncation(truncated, emb.truncated);
    index.add(emb.data, ids);
    done += texts.length;
    texts = [];
    ids = [];
    wheres = [];
  };
  for await (const p of passages) {
    checkId(p.id, p.where);
    if (seen.has(p.id)) throw new UserError(`${p.where}: duplicate passage id "${p.id}"`);
    seen.add(p.id);
    texts.push(p.text);
    ids.push(p.id);
    wheres.push(p.where);
    if (texts.length >= chunk) await flush();
  }
  await flush();
  if (index.size === 0) throw new UserError('the corpus has no passages');
  return { index, truncated };
}

/** Encode, search and score one split; see EvaluateRetrievalOptions. */
export async function evaluateRetrieval(engine: Engine, options: EvaluateRetrievalOptions, where = 'evaluateRetrieval'): Promise<RetrievalEvaluation> {
  if (typeof engine !== 'object' || engine === null || typeof (engine as Engine).encode !== 'function') {
    throw new UserError(`${where}: engine must be a loaded Engine (Engine.load), got ${engine === null ? 'null' : typeof engine}`);
  }
  const o = parse(evaluateOptionsSchema, options, { where });
  const { files, kind, split } = datasetFiles(o);
  const measures = parseMeasures(o.measures ?? DEFAULT_MEASURES);
  const k = o.k ?? 1000;
  const device = o.device ?? engine.native.device;
  const utf8 = { replaceInvalidUtf8: o.replaceInvalidUtf8 ?? false };

  // Judgements and queries first: a bad split fails before hours of corpus encoding.
  const qrels = await readQrels(files.qrels);
  const allQueries = kind === 'beir' ? await readBeirQueries(files.queries, utf8) : await readMsmarcoQueries(files.queries, utf8);
  const queries: TextRecord[] = [];
  for (const qid of qrels.keys()) {
    const q = allQueries.get(qid);
    if (!q) throw new UserError(`${files.qrels}: query "${qid}" has judgements but no text in ${files.queries}`);
    queries.push(q);
  }

  // Corpus embeddings: reused from the cache dir when its meta matches.
  let index: VectorIndex | undefined;
  let corpusReused = false;
  let corpusTruncated: Truncation | null = null;
  const meta = o.corpusCache ? cacheMeta(files.corpus, {
    ...o.corpusKey, passageInstruction: o.passageInstruction ?? '', passageMaxLen: o.passageMaxLen ?? 256,
    pooling: o.pooling ?? null, titles: o.titles ?? true, dim: engine.dim,
  }) : undefined;
  if (o.corpusCache && meta) {
    const metaFile = path.join(o.corpusCache, 'meta.json');
    if (fs.existsSync(metaFile) && fs.readFileSync(metaFile, 'utf8') === meta && fs.existsSync(path.join(o.corpusCache, 'embeddings.npy'))) {
      index = await loadIndex(o.corpusCache, 'exact', { device });
      corpusReused = true;
    }
  }
  if (!index) {
    const total = await countContentLines(files.corpus, utf8);
    const passages = kind === 'beir' ? readBeirCorpus(files.corpus, o.titles ?? true, utf8) : readMsmarcoCollection(files.corpus, utf8);
    const { index: built, truncated } = await encodeCorpus(engine, passages, total, o, device);
    corpusTruncated = truncated;
    if (o.corpusCache && meta) {
      fs.rmSync(path.join(o.corpusCache, 'meta.json'), { force: true }); // invalid until the new files are complete
      await built.save(o.corpusCache);
      fs.writeFileSync(path.join(o.corpusCache, 'meta.json'), meta);
    }
    index = built;
  }

  const qEmb = await engine.encode(queries.map((q) => q.text), {
    instruction: o.queryInstruction, maxLength: o.queryMaxLen ?? 64, pooling: o.pooling,
    batchSize: o.batchSize, maxTokens: o.maxTokens, normalize: true,
    describeInput: (i) => queries[i].where,
    onProgress: (d, t) => o.onProgress?.('queries', d, t),
  });
  // Self-hits are left out of the run itself, k hits remaining (as BEIR does), so run.trec
  // holds exactly what was scored.
  const dropSelf = o.dropSelf ?? kind === 'beir';
  const run = (await searchToRun(index, qEmb.data, queries.map((q) => q.id), k, {
    output: o.runFile, keep: true, dropSelf, onProgress: (d, t) => o.onProgress?.('search', d, t),
  }))!;
  const result: MetricsResult = evaluateRun(qrels, run, measures, { allQueries: o.allQueries, perQuery: o.perQuery });
  return {
    metrics: result.means, perQuery: result.perQuery, numQueries: result.numQueries, corpusSize: index.size, corpusReused, split,
    truncated: { corpus: corpusTruncated, queries: qEmb.truncated },
  };
}
