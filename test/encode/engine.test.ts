// Native CPU embeddings against the float64 reference model, for every architecture,
// dtype, checkpoint layout and pooling; batching must not change an embedding.
import { l2RelError } from '../ops/harness.ts';
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { Engine } from '../../lib/engine.ts';
import { UserError } from '../../lib/errors.ts';
import { ReferenceModel, type ReferencePooling } from '../reference/model.ts';
import { randInt, uniformRng } from '../helpers/rng.ts';
import { makeTinyModel, tinyWords, type TinyModelOptions } from '../helpers/tiny-models.ts';
import { tempDir } from '../helpers/tmp.ts';
import { qwen3TokenizerDir } from '../helpers/qwen3-tokenizer.ts';
import { loopTurnsDuring } from '../helpers/event-loop.ts';

/** Seeded sequences of varied lengths (1..maxLen) with ids below vocab. */
function randomSequences(seed: number, count: number, vocab: number, maxLen = 20): number[][] {
  const u = uniformRng(seed);
  return Array.from({ length: count }, () => Array.from({ length: randInt(u, 1, maxLen + 1) }, () => randInt(u, 0, vocab)));
}

function randomTexts(seed: number, count: number): string[] {
  const u = uniformRng(seed);
  return Array.from({ length: count }, () => Array.from({ length: randInt(u, 1, 15) }, () => tinyWords[randInt(u, 0, tinyWords.length)]).join(' '));
}


/** Embed `seqs` natively and compare every row with the reference. */
async function expectMatchesReference(engine: Engine, ref: ReferenceModel, seqs: number[][], pooling: ReferencePooling,
  normalize = true, tolerance = 1e-5): Promise<void> {
  const got = await engine.encode(seqs.map((ids) => ({ input_ids: ids })), { pooling, normalize });
  expect(got.rows).to.equal(seqs.length);
  seqs.forEach((ids, i) => {
    const err = l2RelError(got.row(i), ref.embed(ids, pooling, normalize));
    expect(err, `row ${i} (${ids.length} tokens, ${pooling})`).to.be.below(tolerance);
  });
}

const cases: { title: string; opts: TinyModelOptions; poolings: ReferencePooling[] }[] = [
  { title: 'qwen2 F32', opts: { arch: 'qwen2', seed: 21 }, poolings: ['eos', 'cls', 'mean'] },
  { title: 'llama F32 with llama3 rope scaling', opts: { arch: 'llama', ropeScaling: 'llama3', seed: 22 }, poolings: ['eos', 'mean'] },
  { title: 'mistral F32, head_dim 16 != hidden/heads', opts: { arch: 'mistral', headDim: 16, seed: 23 }, poolings: ['eos'] },
  { title: 'bert F32 (BertModel names)', opts: { arch: 'bert', seed: 24 }, poolings: ['cls', 'mean'] },
  { title: 'bert F32 ("bert." prefix + MLM head)', opts: { arch: 'bert', bertPrefix: true, seed: 25 }, poolings: ['cls'] },
  { title: 'llama sharded', opts: { arch: 'llama', sharded: true, seed: 26 }, poolings: ['eos'] },
  { title: 'qwen2 BF16 (reference on the bf16-decoded weights)', opts: { arch: 'qwen2', dtype: 'BF16', seed: 27 }, poolings: ['eos', 'mean'] },
  { title: 'bert BF16', opts: { arch: 'bert', dtype: 'BF16', seed: 28 }, poolings: ['cls'] },
  { title: 'mistral F16', opts: { arch: 'mistral', dtype: 'F16', seed: 29 }, poolings: ['eos'] },
];

describe('encode: native CPU embeddings == float64 reference', function () {
  for (const c of cases) {
    it(`${c.title}: ${c.poolings.join(', ')} pooling`, async () => {
      const dir = makeTinyModel({ ...c.opts, dir: tempDir() });
      const engine = await Engine.load(dir, { device: 'cpu' });
      try {
        const ref = new ReferenceModel(dir);
        const seqs = randomSequences(c.opts.seed! * 7, 9, 100);
        for (const pooling of c.poolings) await expectMatchesReference(engine, ref, seqs, pooling);
      } finally {
        engine.dispose();
      }
    });
  }

  it('--no-normalize returns the raw pooled vectors', async () => {
    const dir = makeTinyModel({ arch: 'llama', seed: 31, dir: tempDir() });
    const engine = await Engine.load(dir, { device: 'cpu' });
    try {
      await expectMatchesReference(engine, new ReferenceModel(dir), randomSequences(32, 5, 100), 'eos', false);
    } finally {
      engine.dispose();
    }
  });

  it('text inputs with instruction: tokenized with the template, EOS appended, order kept', async () => {
    const dir = makeTinyModel({ arch: 'llama', seed: 33, tokenizer: true, dir: tempDir() });
    const engine = await Engine.load(dir, { device: 'cpu' });
    try {
      const ref = new ReferenceModel(dir);
      const texts = randomTexts(34, 7);
      const got = await engine.encode(texts.map((text, i) => (i % 2 ? text : { text })), { instruction: 'what is ', maxLength: 12 });
      texts.forEach((text, i) => {
        const ids = engine.tokenizer!.encode(`what is ${text}`, 'eos', 12);
        expect(ids.length).to.be.at.most(12);
        expect(ids[ids.length - 1]).to.equal(1); // "</s>" appended last
        expect(l2RelError(got.row(i), ref.embed(ids, 'eos'))).to.be.below(1e-5);
      });
    } finally {
      engine.dispose();
    }
  });

  it('the real Qwen3 tokenizer with a tiny random qwen2 whose vocab covers it', async () => {
    const dir = makeTinyModel({ arch: 'qwen2', seed: 35, vocab: 151936, hidden: 16, heads: 2, kvHeads: 1, intermediate: 32,
      dtype: 'BF16', tieWordEmbeddings: true, dir: tempDir() });
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(qwen3TokenizerDir(), f), path.join(dir, f));
    const engine = await Engine.load(dir, { device: 'cpu' });
    try {
      const ref = new ReferenceModel(dir);
      const texts = ['Dense retrieval with large language models', 'naïve café — 東京', 'x'];
      const got = await engine.encode(texts, { maxLength: 6 });
      texts.forEach((text, i) => {
        const ids = engine.tokenizer!.encode(text, 'eos', 6);
        expect(ids[ids.length - 1]).to.equal(151645); // <|im_end|> after truncation
        expect(l2RelError(got.row(i), ref.embed(ids, 'eos'))).to.be.below(1e-5);
      });
    } finally {
      engine.dispose();
    }
  });
});

describe('encode: batching never changes an embedding', () => {
  for (const arch of ['qwen2', 'bert'] as const) {
    it(`${arch}: a mixed-length batch equals one sequence at a time; token budgets split batches`, async () => {
      const dir = makeTinyModel({ arch, seed: 41, dir: tempDir() });
      const engine = await Engine.load(dir, { device: 'cpu' });
      try {
        const inputs = randomSequences(42, 23, 100, 40).map((ids) => ({ input_ids: ids }));
        const together = await engine.encode(inputs, { batchSize: 64 });
        const alone = await engine.encode(inputs, { batchSize: 1 });
        const budget = await engine.encode(inputs, { batchSize: 64, maxTokens: 50 });
        let maxDiff = 0;
        for (let i = 0; i < together.data.length; i++) {
          maxDiff = Math.max(maxDiff, Math.abs(together.data[i] - alone.data[i]), Math.abs(budget.data[i] - alone.data[i]));
        }
        expect(maxDiff).to.be.below(1e-6);
        expect(together.data.every(Number.isFinite)).to.equal(true);
      } finally {
        engine.dispose();
      }
    });
  }

  it('reports progress per batch', async () => {
    const dir = makeTinyModel({ arch: 'mistral', seed: 43, dir: tempDir() });
    const engine = await Engine.load(dir, { device: 'cpu' });
    try {
      const calls: [number, number][] = [];
      await engine.encode(randomSequences(44, 10, 100).map((ids) => ({ input_ids: ids })), { batchSize: 4, onProgress: (d, t) => calls.push([d, t]) });
      expect(calls).to.deep.equal([[4, 10], [8, 10], [10, 10]]);
    } finally {
      engine.dispose();
    }
  });
});

describe('encode: heavy native calls are asynchronous', () => {
  it('loadModel and forward return Promises and the event loop keeps running during forward', async () => {
    const dir = makeTinyModel({ arch: 'qwen2', seed: 45, hidden: 64, dir: tempDir() });
    let engine: Engine | undefined;
    await loopTurnsDuring(() => Engine.load(dir, { device: 'cpu' }).then((e) => (engine = e)));
    try {
      // 32 sequences of 512 tokens: long enough that a synchronous forward could not hide
      const seqs = randomSequences(46, 32, 100, 512).map((ids) => (ids.length < 256 ? [...ids, ...ids, ...ids].slice(0, 512) : ids));
      const cu = new Int32Array(seqs.length + 1);
      seqs.forEach((s, i) => (cu[i + 1] = cu[i] + s.length));
      const ids = Int32Array.from(seqs.flat());
      const turns = await loopTurnsDuring(() => engine!.native.forward(ids, cu, { pooling: 'eos', normalize: true }));
      expect(turns).to.be.above(0);
    } finally {
      engine?.dispose();
    }
  });
});

describe('encode: Engine input errors', () => {
  let engine: Engine;
  before(async () => {
    engine = await Engine.load(makeTinyModel({ arch: 'qwen2', seed: 51, dir: tempDir() }), { device: 'cpu' });
  });
  after(() => engine.dispose());

  it('an id outside the vocab names the input and position', async () => {
    let err: unknown;
    try { await engine.encode([{ input_ids: [1, 2] }, { input_ids: [3, 100] }]); } catch (e) { err = e; }
    expect(err).to.be.instanceOf(UserError);
    expect((err as Error).message).to.equal('input 1: token id 100 at position 1 is outside the vocabulary (0..99)');
  });

  it('text without tokenizer.json, empty sequences and bad shapes are UserErrors', async () => {
    for (const [inputs, message] of [
      [['hello'], /input 0: .* has no tokenizer\.json/],
      [[{ input_ids: [] }], /input 0: empty sequence/],
      [[{ input_ids: [1.5] }], /input 0: token id 1\.5/],
      [[42], /input 0: expected a string/],
    ] as [unknown[], RegExp][]) {
      let err: unknown;
      try { await engine.encode(inputs as never); } catch (e) { err = e; }
      expect(err, String(message)).to.be.instanceOf(UserError);
      expect((err as Error).message).to.match(message);
    }
  });

  it('BERT caps max-length at max_position_embeddings; a sliding window is never exceeded silently', async () => {
    const bertDir = makeTinyModel({ arch: 'bert', seed: 52, maxPositions: 16, dir: tempDir() });
    const bert = await Engine.load(bertDir, { device: 'cpu' });
    try {
      const long = Array.from({ length: 30 }, (_, i) => (i * 11) % 100);
      expect(bert.tokenize([{ input_ids: long }], { maxLength: 512 })[0]).to.deep.equal(long.slice(0, 16));
      const e = await bert.encode([{ input_ids: long }]);
      expect(l2RelError(e.row(0), new ReferenceModel(bertDir).embed(long.slice(0, 16), 'cls'))).to.be.below(1e-5);
    } finally {
      bert.dispose();
    }
    const mistralDir = makeTinyModel({ arch: 'mistral', seed: 53, dir: tempDir() });
    const cfgFile = path.join(mistralDir, 'config.json');
    fs.writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfgFile, 'utf8')), sliding_window: 8 }));
    const mistral = await Engine.load(mistralDir, { device: 'cpu' });
    try {
      let err: unknown;
      try { await mistral.encode([{ input_ids: [1, 2, 3] }, { input_ids: Array(9).fill(4) }]); } catch (x) { err = x; }
      expect((err as Error).message).to.match(/input 1: 9 tokens exceed the model's sliding window 8/);
    } finally {
      mistral.dispose();
    }
  });

  it('a tokenizer whose ids exceed the model vocab is named, not passed to the native forward', async () => {
    const dir = makeTinyModel({ arch: 'qwen2', seed: 54, tokenizer: true, dir: tempDir() });
    const cfgFile = path.join(dir, 'config.json');
    fs.writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfgFile, 'utf8')), vocab_size: 20 }));
    fs.rmSync(path.join(dir, 'model.safetensors'));
    const small = makeTinyModel({ arch: 'qwen2', seed: 54, vocab: 20, dir: tempDir() });
    fs.copyFileSync(path.join(small, 'model.safetensors'), path.join(dir, 'model.safetensors'));
    const e = await Engine.load(dir, { device: 'cpu' });
    try {
      let err: unknown;
      try { await e.encode(['the a of', 'gold']); } catch (x) { err = x; }
      expect(err).to.be.instanceOf(UserError);
      // "gold" is far down the tiny vocab: beyond id 19
      expect((err as Error).message).to.match(/^input 1: the tokenizer gave id \d+ at position 0, outside the model's vocabulary \(0\.\.19\).*tokenizer\.json/);
    } finally {
      e.dispose();
    }
  });

  it('input_ids longer than maxLength are truncated, not rejected', async () => {
    const long = Array.from({ length: 30 }, (_, i) => (i * 7) % 100);
    const a = await engine.encode([{ input_ids: long }], { maxLength: 10, pooling: 'mean' });
    const b = await engine.encode([{ input_ids: long.slice(0, 10) }], { pooling: 'mean' });
    expect([...a.data]).to.deep.equal([...b.data]);
  });
});
