// Okapi BM25 over pre-tokenized documents: the lexical baseline of the demo.
//
//   score(q, d) = sum over query tokens t (a repeated token counts again) of
//                 idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))
//   idf(t)      = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))        (Lucene's, never negative)
//
// N = number of documents, df(t) = documents containing t, |d| = tokens of d, avgdl = mean |d|.
// Exact (every document with a shared token is scored), no stemming or stop words: the tokens
// are whatever the caller's tokenizer produced.
import { UserError } from '../errors.ts';

// The suite's BM25 tokenizer: lowercase, then maximal runs of letters, digits and combining
// marks (Unicode classes L, N, M); everything else (spaces, punctuation, symbols) separates
// tokens and is dropped. No stemming, no stop words.
const WORDS = /[\p{L}\p{N}\p{M}]+/gu;
export function bm25Tokenize(text: string): string[] {
  return text.toLowerCase().match(WORDS) ?? [];
}

export interface Bm25Options {
  k1?: number; // 0.9 (Anserini's default)
  b?: number; // 0.4
}

export interface Bm25Hit {
  index: number; // document position in the input
  score: number;
}

export class Bm25Index {
  readonly k1: number;
  readonly b: number;
  readonly numDocs: number;
  readonly avgDocLength: number;
  private readonly docLengths: Float64Array;
  /** token -> [document index, term frequency] pairs, documents ascending */
  private readonly postings = new Map<string, { docs: number[]; tfs: number[] }>();

  constructor(docs: readonly (readonly string[])[], options: Bm25Options = {}) {
    this.k1 = options.k1 ?? 0.9;
    this.b = options.b ?? 0.4;
    if (!(Number.isFinite(this.k1) && this.k1 >= 0)) throw new UserError(`BM25: k1 must be a number >= 0, got ${options.k1}`);
    if (!(Number.isFinite(this.b) && this.b >= 0 && this.b <= 1)) throw new UserError(`BM25: b must be in [0, 1], got ${options.b}`);
    if (docs.length === 0) throw new UserError('BM25: no documents to index');
    this.numDocs = docs.length;
    this.docLengths = new Float64Array(docs.length);
    let total = 0;
    docs.forEach((tokens, d) => {
      this.docLengths[d] = tokens.length;
      total += tokens.length;
      const counts = new Map<string, number>();
      for (const t of tokens) counts.set(t, (counts.get(t) ?? 0) + 1);
      for (const [t, tf] of counts) {
        let p = this.postings.get(t);
        if (!p) this.postings.set(t, (p = { docs: [], tfs: [] }));
        p.docs.push(d);
        p.tfs.push(tf);
      }
    });
    this.avgDocLength = total / docs.length;
  }

  /** Documents containing the token. */
  docFrequency(token: string): number {
    return this.postings.get(token)?.docs.length ?? 0;
  }

  idf(token: string): number {
    const df = this.docFrequency(token);
    return Math.log(1 + (this.numDocs - df + 0.5) / (df + 0.5));
  }

  /** The score of every document for a tokenized query (0 where no token is shared). */
  scores(query: readonly string[]): Float64Array {
    const out = new Float64Array(this.numDocs);
    // empty documents (avgdl 0) get length norm 1
    const norm = (d: number) => (this.avgDocLength > 0 ? 1 - this.b + (this.b * this.docLengths[d]) / this.avgDocLength : 1);
    for (const t of query) {
      const p = this.postings.get(t);
      if (!p) continue;
      const idf = this.idf(t);
      for (let i = 0; i < p.docs.length; i++) {
        const tf = p.tfs[i];
        const d = p.docs[i];
        out[d] += (idf * tf * (this.k1 + 1)) / (tf + this.k1 * norm(d));
      }
    }
    return out;
  }

  /** The k best documents (score > 0 only), best first; equal scores by document position. */
  search(query: readonly string[], k: number): Bm25Hit[] {
    if (!(Number.isInteger(k) && k >= 1)) throw new UserError(`BM25: k must be an integer >= 1, got ${k}`);
    const s = this.scores(query);
    const hits: Bm25Hit[] = [];
    for (let d = 0; d < s.length; d++) if (s[d] > 0) hits.push({ index: d, score: s[d] });
    hits.sort((x, y) => y.score - x.score || x.index - y.index);
    return hits.slice(0, k);
  }
}
