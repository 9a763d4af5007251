import { loadAddresses, buildDataset } from './lib/demo/sotu-dataset.ts';
import { pretokenize } from './lib/demo/demo-model.ts';
const d = buildDataset(loadAddresses([1946, 2021]), { maxTestQueries: 300 });
const docs = d.test.corpus.map((c) => pretokenize(c.text));
const df = new Map<string, number>();
for (const t of docs) for (const w of new Set(t)) df.set(w, (df.get(w) ?? 0) + 1);
const N = docs.length;
const vec = (toks: string[]) => { const m = new Map<string, number>(); for (const w of toks) m.set(w, (m.get(w) ?? 0) + 1); let n = 0; for (const [w, c] of m) { const v = c * Math.log((N + 1) / ((df.get(w) ?? 0) + 1)); m.set(w, v); n += v * v; } n = Math.sqrt(n); for (const [w, v] of m) m.set(w, v / n); return m; };
const dv = docs.map(vec);
const rel = new Map(d.test.qrels.map((q) => [q.queryId, q.docId]));
let mrr = 0, r10 = 0;
for (const q of d.test.queries) {
  const qv = vec(pretokenize(q.text));
  const scores = dv.map((v, i) => { let s = 0; for (const [w, x] of qv) s += x * (v.get(w) ?? 0); return [s, i] as [number, number]; }).sort((a, b) => b[0] - a[0]);
  const rank = scores.findIndex(([, i]) => d.test.corpus[i]._id === rel.get(q._id));
  if (rank < 10) { mrr += 1 / (rank + 1); r10++; }
}
console.log('tfidf mrr@10', mrr / d.test.queries.length, 'r@10', r10 / d.test.queries.length);
