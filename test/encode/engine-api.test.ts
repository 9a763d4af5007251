// Engine.search and Engine.evaluate: the thin API over the index and evaluation modules.
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';

import { Engine } from '../../lib/engine.ts';
import { CorpusIndex } from '../../lib/search/index.ts';
import { randInt, uniformRng } from '../helpers/rng.ts';
import { makeTinyModel, tinyWords } from '../helpers/tiny-models.ts';
import { tempDir } from '../helpers/tmp.ts';

describe('engine: search and evaluate', function () {
  this.timeout(120000);
  const u = uniformRng(907);
  const sentence = (n: number) => Array.from({ length: n }, () => tinyWords[randInt(u, 0, 70)]).join(' ');
  const docs = Array.from({ length: 30 }, () => sentence(randInt(u, 4, 10)));
  let engine: Engine;

  before(async () => {
    engine = await Engine.load(makeTinyModel({ arch: 'qwen2', seed: 908, tokenizer: true }), { device: 'cpu' });
  });
  after(() => engine?.dispose());

  it('search: a query equal to a passage finds it first, scores are the inner products', async () => {
    const P = await engine.encode(docs, { maxLength: 32 });
    const index = new CorpusIndex(P.dim);
    index.add(P.data);
    const picks = [3, 17, 29, 0];
    const r = await engine.search(picks.map((i) => docs[i]), index, { k: 5, maxLength: 32 });
    expect(r.numQueries).to.equal(picks.length);
    expect(r.k).to.equal(5);
    const Q = await engine.encode(picks.map((i) => docs[i]), { maxLength: 32 });
    picks.forEach((doc, q) => {
      expect(r.rows[q * 5]).to.equal(doc);
      for (let j = 0; j < 5; j++) {
        let dot = 0;
        for (let h = 0; h < P.dim; h++) dot += Q.row(q)[h] * P.row(r.rows[q * 5 + j])[h];
        expect(r.scores[q * 5 + j]).to.be.closeTo(dot, 1e-5);
        if (j > 0) expect(r.scores[q * 5 + j]).to.be.at.most(r.scores[q * 5 + j - 1]);
      }
    });
  });

  it('evaluate: known-item queries copying their passage score MRR@10 = 1 and equal evaluateRetrieval', async () => {
    const beir = path.join(tempDir('lmdr-engine-api-'), 'beir');
    fs.mkdirSync(path.join(beir, 'qrels'), { recursive: true });
    fs.writeFileSync(path.join(beir, 'corpus.jsonl'), docs.map((text, i) => JSON.stringify({ _id: `d${i}`, title: '', text })).join('\n') + '\n');
    fs.writeFileSync(path.join(beir, 'queries.jsonl'), [5, 11, 23].map((i) => JSON.stringify({ _id: `q${i}`, text: docs[i] })).join('\n') + '\n');
    fs.writeFileSync(path.join(beir, 'qrels', 'test.tsv'), ['query-id\tcorpus-id\tscore', ...[5, 11, 23].map((i) => `q${i}\td${i}\t1`)].join('\n') + '\n');
    const options = { beir, split: 'test', k: 10, measures: 'mrr@10,recall@10', queryMaxLen: 32, passageMaxLen: 32 };
    const viaEngine = await engine.evaluate(options);
    expect(viaEngine.metrics['mrr@10']).to.equal(1);
    expect(viaEngine.metrics['recall@10']).to.equal(1);
    const { evaluateRetrieval } = await import('../../lib/eval/evaluate.ts');
    expect((await evaluateRetrieval(engine, options)).metrics).to.deep.equal(viaEngine.metrics);
  });
});
