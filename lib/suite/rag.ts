// `rag` tasks: retrieval-augmented LLM evaluation (the second paper's Tables 1-3), scored with
// the causal-LM head of --lm (lib/lm/score.ts). One row per retriever: the model under test,
// "bm25", or "none".
//
// mode "qa" (knowledge): data = a folder with corpus.jsonl (BEIR passages) and queries.jsonl,
//   lines {"query", "answer" | "answers": [...], "choices"?: [...]}. Per query the top-k
//   passages are retrieved from the corpus, joined by `separator` into {knowledge} of
//   `template` (no_retrieval_template for "none"); the prompt is the context, the answer the
//   target. loglik = mean over queries of the gold answer's mean token log-probability.
//   With "choices" (and "answer" = the index of the right one, or its text) every choice is
//   scored and the highest likelihood (choice_score "sum", the default; or "mean" per token)
//   is the model's pick: accuracy.
// mode "memory" (long-context modelling): data = JSON lines {"text"}. Each text is cut into
//   chunks of chunk_size LM tokens. For every chunk i >= 2 the query is chunk i-1, the
//   candidates are chunks 0..i-2; the top-k candidates (in text order), then chunk i-1, are
//   the context of chunk i. perplexity = exp(-(sum of log p over all scored chunk tokens) /
//   (their count)). Token ids go to the LM as they are (no BOS added); the retriever reads the
//   chunks decoded to text.
// Contexts longer than max_length minus the target are cut from the left.
import path from 'node:path';
import { UserError } from '../errors.ts';
import type { Engine } from '../engine.ts';
import { readJsonLines } from '../formats/jsonl.ts';
import { array, jsonKeys, number, object, optional, parse, string, union } from '../schema.ts';
import { CorpusIndex } from '../search/index.ts';
import { bm25Tokenize } from '../search/bm25.ts';
import { bm25Index, readCorpus } from './bm25.ts';
import type { RagTask } from './schema.ts';
import type { Unit, UnitContext } from './unit.ts';

export const RAG_TEMPLATE = 'Knowledge: {knowledge}\n\nQuestion: {query}\n\nAnswer: ';
export const RAG_NO_RETRIEVAL_TEMPLATE = 'Question: {query}\n\nAnswer: ';

const questionLine = object({
  query: string({ nonEmpty: true }),
  answer: optional(union(string({ nonEmpty: true }), number({ int: true, min: 0 }), 'a non-empty string or a choice index')),
  answers: optional(array(string({ nonEmpty: true }), { nonEmpty: true })),
  choices: optional(array(string({ nonEmpty: true }), { nonEmpty: true })),
}, { unknownKeys: 'keep', expected: 'a JSON object {"query", "answer", "choices"?}' });

interface Question { query: string; targets: string[]; gold: number; multipleChoice: boolean; where: string }

async function readQuestions(file: string): Promise<Question[]> {
  const out: Question[] = [];
  for await (const { value, line } of readJsonLines(file, 'rag queries')) {
    const where = `${file}:${line}`;
    const v = parse(questionLine, value, jsonKeys(where, 'the line'));
    if (v.choices) {
      const gold = typeof v.answer === 'number' ? v.answer : v.answer !== undefined ? v.choices.indexOf(v.answer) : -1;
      if (gold < 0 || gold >= v.choices.length) throw new UserError(`${where}: "answer" must be the index (0..${v.choices.length - 1}) or the text of one of the "choices", got ${JSON.stringify(v.answer ?? null)}`);
      out.push({ query: v.query, targets: v.choices, gold, multipleChoice: true, where });
    } else {
      const answer = typeof v.answer === 'string' ? v.answer : v.answers?.[0];
      if (answer === undefined) throw new UserError(`${where}: needs "answer" (a string) or "answers" (its first is scored)${typeof v.answer === 'number' ? '; a number answer needs "choices"' : ''}`);
      out.push({ query: v.query, targets: [answer], gold: 0, multipleChoice: false, where });
    }
  }
  if (out.length === 0) throw new UserError(`${file}: no queries`);
  return out;
}

function fill(template: string, knowledge: string, query: string): string {
  return template.replace(/\{(knowledge|query)\}/g, (_, k: string) => (k === 'query' ? query : knowledge));
}

function needTokenizer(lm: Engine): NonNullable<Engine['tokenizer']> {
  if (!lm.tokenizer) throw new UserError(`--lm ${lm.modelDir}: rag tasks need its tokenizer.json`);
  return lm.tokenizer;
}

/** Context cut from the left so context + target fit maxLength. */
function fit(context: number[], target: number[], maxLength: number, where: string): number[] {
  const room = maxLength - target.length;
  if (room < 1) throw new UserError(`${where}: the target alone has ${target.length} tokens, leaving no room for context in max_length ${maxLength}`);
  return context.length > room ? context.slice(context.length - room) : context;
}

/** Top-k rows of `candidates` (0..n-1) for each query, best first: dense embeddings (dot), or BM25, or none. */
async function retrieve(ctx: UnitContext, task: RagTask, queries: string[], passages: string[], k: number): Promise<number[][]> {
  const r = ctx.retriever;
  if (r.kind === 'none') return queries.map(() => []);
  if (r.kind === 'bm25') {
    const index = bm25Index(passages);
    return queries.map((q) => index.search(bm25Tokenize(q), k).map((h) => h.index));
  }
  const engine = await r.engine();
  const common = { batchSize: task.batch_size, maxTokens: task.max_tokens, normalize: true };
  const P = await engine.encode(passages, { ...common, instruction: task.passage_instruction, maxLength: task.passage_max_len ?? 256, onProgress: (d, t) => ctx.progress('corpus', d, t) });
  const Q = await engine.encode(queries, { ...common, instruction: task.query_instruction, maxLength: task.query_max_len ?? 64, onProgress: (d, t) => ctx.progress('queries', d, t) });
  const index = new CorpusIndex(engine.dim, { device: ctx.device ?? engine.native.device, capacity: passages.length });
  index.add(P.data, passages.map((_, i) => String(i)));
  const res = await index.search(Q.data, Math.min(k, passages.length));
  return queries.map((_, q) => Array.from(res.rows.subarray(q * res.k, (q + 1) * res.k)).filter((row) => row >= 0));
}

async function runQa(task: RagTask, ctx: UnitContext): Promise<Record<string, number>> {
  const lm = await ctx.lm!();
  const tok = needTokenizer(lm);
  const corpus = await readCorpus(path.join(task.data, 'corpus.jsonl'), task.titles ?? true);
  const questions = await readQuestions(path.join(task.data, 'queries.jsonl'));
  const hits = await retrieve(ctx, task, questions.map((q) => q.query), corpus.map((p) => p.text), task.k ?? 3);
  const maxLength = task.max_length ?? 2048;
  const pairs: { context: { input_ids: number[] }; target: { input_ids: number[] } }[] = [];
  const owner: { q: number; t: number }[] = [];
  questions.forEach((q, qi) => {
    const prompt = ctx.retriever.kind === 'none'
      ? fill(task.no_retrieval_template ?? RAG_NO_RETRIEVAL_TEMPLATE, '', q.query)
      : fill(task.template ?? RAG_TEMPLATE, hits[qi].map((i) => corpus[i].text).join(task.separator ?? '\n'), q.query);
    const context = tok.hf.encode(prompt, { add_special_tokens: true }).ids;
    q.targets.forEach((t, ti) => {
      const target = tok.hf.encode(t, { add_special_tokens: false }).ids;
      if (target.length === 0) throw new UserError(`${q.where}: ${q.multipleChoice ? `choice ${ti}` : 'the answer'} has no tokens`);
      pairs.push({ context: { input_ids: fit(context, target, maxLength, q.where) }, target: { input_ids: target } });
      owner.push({ q: qi, t: ti });
    });
  });
  ctx.progress('lm', 0, pairs.length);
  const scores = await lm.scoreTokens(pairs, { describePair: (i) => questions[owner[i].q].where });
  ctx.progress('lm', pairs.length, pairs.length);
  const byQuestion = questions.map(() => [] as { sum: number; mean: number }[]);
  scores.forEach((s, i) => (byQuestion[owner[i].q][owner[i].t] = s));
  const loglik = questions.reduce((acc, q, qi) => acc + byQuestion[qi][q.gold].mean, 0) / questions.length;
  const out: Record<string, number> = {};
  for (const m of task.metrics!) {
    if (m === 'loglik') out.loglik = loglik;
    if (m === 'accuracy') {
      const mc = questions.map((q, qi) => ({ q, s: byQuestion[qi] })).filter((x) => x.q.multipleChoice);
      if (mc.length === 0) throw new UserError(`${path.join(task.data, 'queries.jsonl')}: metric "accuracy" needs lines with "choices"; none has them`);
      const by = task.choice_score ?? 'sum';
      let right = 0;
      for (const { q, s } of mc) {
        let best = 0;
        for (let c = 1; c < s.length; c++) if (s[c][by] > s[best][by]) best = c; // ties: the first choice
        if (best === q.gold) right++;
      }
      out.accuracy = right / mc.length;
    }
  }
  return out;
}

/** Chunk texts of chunk_size LM tokens (the last may be shorter). */
export function chunkIds(ids: number[], size: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < ids.length; i += size) out.push(ids.slice(i, i + size));
  return out;
}

async function runMemory(task: RagTask, ctx: UnitContext): Promise<Record<string, number>> {
  const lm = await ctx.lm!();
  const tok = needTokenizer(lm);
  const size = task.chunk_size ?? 128;
  const k = task.k ?? 1;
  const maxLength = task.max_length ?? 2048;
  const textLine = object({ text: string() }, { unknownKeys: 'keep', expected: 'a JSON object {"text"}' });
  let sum = 0, count = 0, texts = 0;
  for await (const { value, line } of readJsonLines(task.data, 'rag texts')) {
    const where = `${task.data}:${line}`;
    const { text } = parse(textLine, value, jsonKeys(where, 'the line'));
    const chunks = chunkIds(tok.hf.encode(text, { add_special_tokens: false }).ids, size);
    texts++;
    if (chunks.length < 3) continue; // no earlier chunk to retrieve besides the preceding one
    const decoded = chunks.map((c) => tok.hf.decode(c, { skip_special_tokens: true }));
    // rankings[i-1]: candidates 0..i-2 for query chunk i-1, best first
    const rankings: number[][] = [];
    if (ctx.retriever.kind === 'none') {
      for (let i = 2; i < chunks.length; i++) rankings.push([]);
    } else if (ctx.retriever.kind === 'bm25') {
      for (let i = 2; i < chunks.length; i++) rankings.push(bm25Index(decoded.slice(0, i - 1)).search(bm25Tokenize(decoded[i - 1]), k).map((h) => h.index));
    } else {
      const engine = await ctx.retriever.engine();
      const common = { batchSize: task.batch_size, maxTokens: task.max_tokens, normalize: true };
      const P = await engine.encode(decoded, { ...common, instruction: task.passage_instruction, maxLength: task.passage_max_len ?? 256 });
      const Q = await engine.encode(decoded, { ...common, instruction: task.query_instruction, maxLength: task.query_max_len ?? 256 });
      const H = engine.dim;
      for (let i = 2; i < chunks.length; i++) {
        const scored = Array.from({ length: i - 1 }, (_, c) => {
          let s = 0;
          for (let h = 0; h < H; h++) s += Q.data[(i - 1) * H + h] * P.data[c * H + h];
          return { c, s };
        }).sort((a, b) => b.s - a.s || a.c - b.c);
        rankings.push(scored.slice(0, k).map((x) => x.c));
      }
    }
    const pairs = rankings.map((top, j) => {
      const i = j + 2;
      const context = [...[...top].sort((a, b) => a - b).flatMap((c) => chunks[c]), ...chunks[i - 1]];
      return { context: { input_ids: fit(context, chunks[i], maxLength, `${where} chunk ${i}`) }, target: { input_ids: chunks[i] } };
    });
    for (const s of await lm.scoreTokens(pairs, { describePair: (p) => `${where} chunk ${p + 2}` })) {
      sum += s.sum;
      count += s.count;
    }
    ctx.progress('texts', texts, texts);
  }
  if (count === 0) throw new UserError(`${task.data}: no text has 3 or more chunks of ${size} tokens (nothing to score; lower chunk_size)`);
  return { perplexity: Math.exp(-sum / count) };
}

export function ragUnits(task: RagTask): Unit[] {
  const where = `rag task "${task.name}"`;
  const template = task.template ?? RAG_TEMPLATE;
  if ((task.mode ?? 'qa') === 'qa') {
    if (!template.includes('{knowledge}') || !template.includes('{query}')) throw new UserError(`${where}: "template" must contain {knowledge} and {query}, got ${JSON.stringify(template)}`);
    if (!(task.no_retrieval_template ?? RAG_NO_RETRIEVAL_TEMPLATE).includes('{query}')) throw new UserError(`${where}: "no_retrieval_template" must contain {query}`);
  }
  const { name: _n, description: _d, ...settings } = task;
  return [{
    task, name: task.name, settings: { ...settings, mode: task.mode ?? 'qa' },
    accepts: () => true,
    run: (ctx) => ((task.mode ?? 'qa') === 'qa' ? runQa(task, ctx) : runMemory(task, ctx)),
  }];
}
