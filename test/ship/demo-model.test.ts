// The demo's generated BERT with IDF-weighted token embeddings: untrained and mean-pooled it is
// an IDF-weighted bag of random word vectors, checked through the real engine.
import { expect } from 'chai';
import path from 'node:path';
import { idfEmbeddings, vocabIdf, writeDemoModel, U_COORDINATES } from '../../lib/demo/demo-model.ts';
import { Engine } from '../../lib/engine.ts';
import { readSafetensorsHeader, readTensorValues } from '../../lib/model/safetensors.ts';
import { normalRng } from '../../lib/train/random.ts';
import { tempDir } from '../helpers/tmp.ts';

const texts = [
  'the union is strong', 'the economy grows', 'the budget is balanced', 'the army and the navy',
  'the schools need teachers', 'the union of states', 'the farmers and the workers', 'the deficit falls',
];

describe('ship: demo model IDF-weighted embeddings', function () {
  this.timeout(60000);

  it('vocabIdf counts documents (each text one), words outside the vocabulary as [UNK]', () => {
    const idf = vocabIdf(['[UNK]', 'the', 'cat', 'dog'], ['The cat.', 'the dog', 'zebra zebra', 'the THE']);
    // N = 4; df: [UNK] 2 ("." and "zebra"), the 3, cat 1, dog 1
    expect(idf[0]).to.be.closeTo(Math.log(1 + 2.5 / 2.5), 1e-12);
    expect(idf[1]).to.be.closeTo(Math.log(1 + 1.5 / 3.5), 1e-12);
    expect(idf[2]).to.be.closeTo(Math.log(1 + 3.5 / 1.5), 1e-12);
    expect(idf[3]).to.be.closeTo(idf[2], 1e-12);
  });

  it('rows are alpha u + beta r with beta^2 = (idf / max idf)^power; specials are u alone', () => {
    const idf = Float64Array.from([0.5, 1, 2, 4]);
    const hidden = 8;
    const rows = idfEmbeddings(idf, new Set([0]), hidden, 0.5, normalRng(3), 2);
    for (let t = 0; t < 4; t++) {
      const row = Array.from(rows.subarray(t * hidden, (t + 1) * hidden));
      const scale = 0.5 * Math.sqrt(hidden);
      const beta2 = t === 0 ? 0 : (idf[t] / 4) ** 2;
      // u = (e0 - e1) / sqrt 2 carries alpha; the rest, zero-mean, carries beta
      expect(row[0]).to.be.closeTo((scale * Math.sqrt(1 - beta2)) / Math.SQRT2, 1e-6);
      expect(row[1]).to.be.closeTo(-row[0], 1e-6);
      const rest = row.slice(2);
      expect(Math.hypot(...rest)).to.be.closeTo(scale * Math.sqrt(beta2), 1e-6);
      expect(rest.reduce((a, b) => a + b, 0)).to.be.closeTo(0, 1e-5);
    }
  });

  it('untrained, mean pooling gives each word its r direction and IDF weight; the last LayerNorm removes u', async () => {
    const dir = path.join(tempDir('lmdr-demo-model-'), 'model');
    writeDemoModel(dir, texts, { hidden: 32, layers: 2, heads: 4, minCount: 1, seed: 9 });
    const st = readSafetensorsHeader(path.join(dir, 'model.safetensors'));
    const emb = readTensorValues(path.join(dir, 'model.safetensors'), st.tensors.get('embeddings.word_embeddings.weight')!);
    const gamma = readTensorValues(path.join(dir, 'model.safetensors'), st.tensors.get('encoder.layer.1.output.LayerNorm.weight')!);
    expect(U_COORDINATES.map((i) => gamma[i])).to.deep.equal([0, 0]);
    expect(readTensorValues(path.join(dir, 'model.safetensors'), st.tensors.get('encoder.layer.0.output.LayerNorm.weight')!).every((g) => g === 1)).to.equal(true);
    const engine = await Engine.load(dir, { device: 'cpu' });
    try {
      const id = (w: string) => engine.tokenize([w])[0][1];
      const row = (t: number) => Array.from(emb.subarray(t * 32, (t + 1) * 32));
      // one word between [CLS] and [SEP] (both u alone, removed): the pooled embedding is that
      // word's r direction, zero on the u coordinates
      const union = row(id('union'));
      const expected = union.map((v, i) => (U_COORDINATES.includes(i) ? 0 : v));
      const norm = Math.hypot(...expected);
      const got = Array.from((await engine.encode(['union'], { pooling: 'mean' })).row(0));
      got.forEach((v, i) => expect(v).to.be.closeTo(expected[i] / norm, 1e-5));
      // "the" (in every text) weighs almost nothing next to "union" (in two): adding it three
      // times barely moves the embedding; with random embeddings it would dominate
      const [a, b] = [await engine.encode(['the the the union'], { pooling: 'mean' }), await engine.encode(['union'], { pooling: 'mean' })];
      const cos = Array.from(a.row(0)).reduce((s, v, i) => s + v * b.row(0)[i], 0);
      expect(cos).to.be.above(0.97);
      const restNorm = (t: number) => Math.hypot(...row(t).slice(2));
      expect(restNorm(id('the'))).to.be.below(0.2 * restNorm(id('union')));
    } finally {
      engine.dispose();
    }
  });
});
