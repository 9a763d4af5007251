// rag tasks of lmdr suite against the float64 reference LM (test/reference/model.ts): knowledge
// QA (answer log-likelihood), multiple choice (accuracy by the highest likelihood) and the
// memory setting (perplexity of each chunk given retrieved earlier chunks), for the three kinds
// of rows: no retrieval, BM25 and a dense retriever. Prompts, chunking and retrieval are
// rebuilt here from the definitions in lib/suite/rag.ts's header.
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';

import { Engine } from '../../lib/engine.ts';
import { Bm25Index, bm25Tokenize } from '../../lib/search/bm25.ts';
import { ReferenceModel } from '../reference/model.ts';
import { randInt, uniformRng } from '../helpers/rng.ts';
import { makeTinyModel } from '../helpers/tiny-models.ts';
import { tempDir } from '../helpers/tmp.ts';
import { lmdr, readJson, sentence, writeJson } from './fixtures.ts';

describe('lmdr suite: rag tasks', function () {
  this.timeout(600_000);
  const root = tempDir('lmdr-suite-rag-');
  const u = uniformRng(1420);
  let lm: string;
  let retr: string;
  const corpus = Array.from({ length: 12 }, (_, i) => ({ _id: `p${i}`, text: sentence(u, randInt(u, 3, 8)) }));
  const questions: { query: string; answer: string | number; choices?: string[] }[] = [
    ...Array.from({ length: 4 }, () => ({ query: sentence(u, 4), answer: sentence(u, randInt(u, 1, 4)) })),
    // gold choices one word, the others 1..3: the likelihood (a sum) often, not always, picks the gold one
    ...Array.from({ length: 8 }, (_, i) => ({ query: sentence(u, 4), choices: Array.from({ length: 4 }, (_, c) => sentence(u, c === i % 4 ? 1 : randInt(u, 1, 4))), answer: i % 4 })),
  ];
  const texts = Array.from({ length: 3 }, (_, i) => ({ text: sentence(u, 14 + 5 * i) }));
  const CHUNK = 4;

  before(() => {
    lm = makeTinyModel({ arch: 'qwen2', seed: 1421, tokenizer: true, dir: path.join(root, 'lm') });
    retr = makeTinyModel({ arch: 'llama', seed: 1422, tokenizer: true, dir: path.join(root, 'retr') });
    fs.mkdirSync(path.join(root, 'qa'));
    fs.writeFileSync(path.join(root, 'qa', 'corpus.jsonl'), corpus.map((d) => JSON.stringify(d)).join('\n') + '\n');
    fs.writeFileSync(path.join(root, 'qa', 'queries.jsonl'), questions.map((q) => JSON.stringify(q)).join('\n') + '\n');
    fs.writeFileSync(path.join(root, 'texts.jsonl'), texts.map((t) => JSON.stringify(t)).join('\n') + '\n');
  });

  it('knowledge QA, multiple choice and memory perplexity: one row per retriever, equal to the float64 reference', async () => {
    const suite = writeJson(path.join(root, 'rag.json'), { tasks: [
      { name: 'qa', type: 'rag', data: 'qa', metrics: ['loglik', 'accuracy'], k: 2 },
      { name: 'qamean', type: 'rag', data: 'qa', metrics: ['accuracy'], k: 2, choice_score: 'mean' },
      { name: 'mem', type: 'rag', mode: 'memory', data: 'texts.jsonl', chunk_size: CHUNK, k: 1 },
    ] });
    const out = path.join(root, 'out');
    const r = await lmdr('suite', suite, '--models', 'none,bm25', '--model', retr, '--lm', lm, '--output', out, '--device', 'cpu-f64', '--no-progress');
    expect(r.code, r.err).to.equal(0);
    const res = readJson(path.join(out, 'results.json')).models;
    expect(Object.keys(res)).to.deep.equal(['retr', 'none', 'bm25']); // --model pairs first, then --models

    const ref = new ReferenceModel(lm);
    const lmEngine = await Engine.load(lm, { device: 'cpu-f64' });
    const tok = lmEngine.tokenizer!.hf;
    lmEngine.dispose();
    const logprobs = (ctx: number[], tgt: number[]) => ref.targetLogprobs([...ctx, ...tgt]).slice(ctx.length - 1);
    const retriever = await Engine.load(retr, { device: 'cpu-f64' });
    /** top-k passage positions per query, best first, by the dot product of the retriever's embeddings */
    const dense = async (qs: string[], ps: string[], k: number, qLen: number) => {
      const P = await retriever.encode(ps, { maxLength: 256 });
      const Q = await retriever.encode(qs, { maxLength: qLen });
      const H = retriever.dim;
      return qs.map((_, q) => ps.map((_, p) => { let s = 0; for (let h = 0; h < H; h++) s += Q.data[q * H + h] * P.data[p * H + h]; return { p, s }; })
        .sort((a, b) => b.s - a.s || a.p - b.p).slice(0, k).map((x) => x.p));
    };
    const bm25 = (qs: string[], ps: string[], k: number) => {
      const index = new Bm25Index(ps.map(bm25Tokenize), { k1: 0.9, b: 0.4 });
      return qs.map((q) => index.search(bm25Tokenize(q), k).map((h) => h.index));
    };

    try {
      // knowledge QA and multiple choice
      const passages = corpus.map((d) => d.text);
      const hitsBy: Record<string, number[][]> = {
        none: questions.map(() => []),
        bm25: bm25(questions.map((q) => q.query), passages, 2),
        retr: await dense(questions.map((q) => q.query), passages, 2, 64),
      };
      expect(hitsBy.bm25.some((h) => h.length > 0)).to.equal(true);
      for (const [label, hits] of Object.entries(hitsBy)) {
        let loglik = 0, right = 0, rightMean = 0, mc = 0;
        questions.forEach((q, qi) => {
          const prompt = label === 'none' ? `Question: ${q.query}\n\nAnswer: `
            : `Knowledge: ${hits[qi].map((i) => passages[i]).join('\n')}\n\nQuestion: ${q.query}\n\nAnswer: `;
          const ctx = tok.encode(prompt, { add_special_tokens: true }).ids;
          const targets = q.choices ?? [q.answer as string];
          const sums = targets.map((t) => logprobs(ctx, tok.encode(t, { add_special_tokens: false }).ids));
          const gold = q.choices ? (q.answer as number) : 0;
          loglik += sums[gold].reduce((a, b) => a + b, 0) / sums[gold].length;
          if (q.choices) {
            mc++;
            const totals = sums.map((s) => s.reduce((a, b) => a + b, 0));
            if (totals.indexOf(Math.max(...totals)) === gold) right++;
            const means = sums.map((s) => s.reduce((a, b) => a + b, 0) / s.length);
            if (means.indexOf(Math.max(...means)) === gold) rightMean++;
          }
        });
        expect(res[label].qa.loglik, label).to.be.closeTo(loglik / questions.length, 1e-6);
        expect(res[label].qa.accuracy, label).to.be.closeTo(right / mc, 1e-12);
        expect(res[label].qamean, label).to.deep.equal({ accuracy: rightMean / mc });
        expect(right, label).to.be.above(0);
        expect(right, label).to.be.below(mc);
      }
      expect(res.none.qa.loglik).to.not.equal(res.retr.qa.loglik);

      // memory: chunks of CHUNK LM tokens; chunk i scored after the retrieved earlier chunk and chunk i-1
      for (const label of ['none', 'bm25', 'retr']) {
        let sum = 0, count = 0;
        for (const { text } of texts) {
          const ids = tok.encode(text, { add_special_tokens: false }).ids;
          const chunks: number[][] = [];
          for (let i = 0; i < ids.length; i += CHUNK) chunks.push(ids.slice(i, i + CHUNK));
          const words = chunks.map((c) => tok.decode(c, { skip_special_tokens: true }));
          for (let i = 2; i < chunks.length; i++) {
            const earlier = words.slice(0, i - 1);
            const top = label === 'none' ? [] : label === 'bm25' ? bm25([words[i - 1]], earlier, 1)[0] : (await dense([words[i - 1]], earlier, 1, 256))[0];
            const ctx = [...top.flatMap((c) => chunks[c]), ...chunks[i - 1]];
            for (const lp of logprobs(ctx, chunks[i])) { sum += lp; count++; }
          }
        }
        expect(res[label].mem.perplexity, label).to.be.closeTo(Math.exp(-sum / count), 1e-6 * Math.exp(-sum / count));
      }
      expect(res.none.mem.perplexity).to.not.equal(res.retr.mem.perplexity);
    } finally {
      retriever.dispose();
    }
    const md = fs.readFileSync(path.join(out, 'results.md'), 'utf8');
    expect(md).to.contain('## Retrieval augmentation');
    expect(md).to.contain('| retriever | qa (loglik) | qa (accuracy) | qamean (accuracy) | mem (perplexity) |');
    for (const label of ['retr', 'none', 'bm25']) expect(md).to.match(new RegExp(`^\\| ${label} \\| -?\\d`, 'm'));
  });

  it('bad rag data: a choice index out of range names the line; a template without {knowledge} names the task', async () => {
    fs.mkdirSync(path.join(root, 'badqa'));
    fs.copyFileSync(path.join(root, 'qa', 'corpus.jsonl'), path.join(root, 'badqa', 'corpus.jsonl'));
    fs.writeFileSync(path.join(root, 'badqa', 'queries.jsonl'), '{"query": "a b", "answer": "c"}\n{"query": "x", "choices": ["a", "b"], "answer": 2}\n');
    const suite = writeJson(path.join(root, 'badqa.json'), { tasks: [{ name: 'qa', type: 'rag', data: 'badqa' }] });
    const r = await lmdr('suite', suite, '--model', 'none', '--lm', lm, '--output', path.join(root, 'out-badqa'), '--device', 'cpu', '--no-progress');
    expect(r.code).to.equal(1);
    expect(r.err).to.contain(`${path.join(root, 'badqa', 'queries.jsonl')}:2: "answer" must be the index (0..1) or the text of one of the "choices", got 2`);
    const tpl = writeJson(path.join(root, 'badtpl.json'), { tasks: [{ name: 'qa', type: 'rag', data: 'qa', template: 'Q: {query}' }] });
    const r2 = await lmdr('suite', tpl, '--model', 'none', '--lm', lm, '--output', path.join(root, 'out-badtpl'), '--no-progress');
    expect(r2.code).to.equal(1);
    expect(r2.err).to.contain('rag task "qa": "template" must contain {knowledge} and {query}');
    expect(fs.existsSync(path.join(root, 'out-badtpl'))).to.equal(false);
  });
});
