// BM25 (lib/search/bm25.ts, k1 0.9, b 0.4, bm25Tokenize) as a retriever of the suite: a TREC run
// of a BEIR split, and top-k passages of a list of texts (rag).
import type { Run } from '../eval/metrics.ts';
import { readBeirCorpus, readBeirQueries, type TextRecord } from '../formats/beir.ts';
import { TrecRunWriter } from '../formats/trec.ts';
import { UserError } from '../errors.ts';
import { Bm25Index, bm25Tokenize } from '../search/bm25.ts';

export const SUITE_BM25 = { k1: 0.9, b: 0.4 } as const;

/** Passages of corpus.jsonl in file order (duplicate ids are errors). */
export async function readCorpus(file: string, titles: boolean): Promise<TextRecord[]> {
  const out: TextRecord[] = [];
  const seen = new Set<string>();
  for await (const p of readBeirCorpus(file, titles)) {
    if (seen.has(p.id)) throw new UserError(`${p.where}: duplicate passage id "${p.id}"`);
    seen.add(p.id);
    out.push(p);
  }
  if (out.length === 0) throw new UserError(`${file}: the corpus has no passages`);
  return out;
}

/** An index over texts; hits are positions in `texts`. */
export function bm25Index(texts: string[]): Bm25Index {
  return new Bm25Index(texts.map(bm25Tokenize), SUITE_BM25);
}

/**
 * BM25 run of the queries `qids` of a BEIR folder: k hits per query (score > 0 only), best
 * first; with dropSelf a hit whose id equals the query id is left out and the next takes its
 * place (as the dense run does). Written to runFile when given.
 */
export async function bm25Run(files: { corpus: string; queries: string }, qids: string[], o: { k: number; titles: boolean; dropSelf: boolean; runFile?: string }): Promise<Run> {
  const corpus = await readCorpus(files.corpus, o.titles);
  const queries = await readBeirQueries(files.queries);
  const index = bm25Index(corpus.map((p) => p.text));
  const run: Run = new Map();
  const writer = o.runFile ? new TrecRunWriter(o.runFile) : undefined;
  try {
    for (const qid of qids) {
      const q = queries.get(qid);
      if (!q) throw new UserError(`${files.queries}: query "${qid}" has judgements but no text`);
      const hits = index.search(bm25Tokenize(q.text), o.k + 1).filter((h) => !(o.dropSelf && corpus[h.index].id === qid)).slice(0, o.k);
      writer?.writeQuery(qid, hits.map((h) => corpus[h.index].id), hits.map((h) => h.score));
      run.set(qid, new Map(hits.map((h) => [corpus[h.index].id, h.score])));
    }
  } catch (err) {
    writer?.abort();
    throw err;
  }
  writer?.close();
  return run;
}
