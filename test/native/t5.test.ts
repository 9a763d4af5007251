// T5 encoders (sentence-T5 / GTR style) against the float64 reference model
// (test/reference/model.ts, written from transformers' modeling_t5.py): the ReLU and gated-GELU
// feed-forwards, checkpoints saved as T5EncoderModel and as T5ForConditionalGeneration (decoder
// weights ignored), F32 and BF16, sequences longer than relative_attention_max_distance (so the
// log-spaced buckets and the clamp are used), batch invariance, LoRA and full-mode gradients
// (incl. the shared relative_attention_bias table) by central finite differences on cpu-f64,
// merge = base + adapter, texts through a tokenizer, and config errors.
import { l2RelError } from '../ops/harness.ts';
import { expect } from 'chai';
import { Engine } from '../../lib/engine.ts';
import { parseModelConfig, readModelConfig } from '../../lib/model/config.ts';
import { loadCheckpoint } from '../../lib/model/checkpoint.ts';
import { writeMergedModel } from '../../lib/merge.ts';
import { UserError } from '../../lib/errors.ts';
import type { ForwardOptions, NativeModel } from '../../lib/native.ts';
import { ReferenceModel } from '../reference/model.ts';
import { makeTinyModel, type TinyModelOptions } from '../helpers/tiny-models.ts';
import { tempDir } from '../helpers/tmp.ts';
import { randInt, uniformRng } from '../helpers/rng.ts';
import {
  load, loss, maxAbsDiff, pinParams, projection, randomBatch, randomizeLoraB, sliceBatch, tiny, type PackedBatch,
} from './model-fixtures.ts';

const cases: { label: string; model: TinyModelOptions }[] = [
  { label: 'relu, T5ForConditionalGeneration file', model: { arch: 't5', seed: 81, t5Conditional: true } },
  { label: 'gated-gelu, T5EncoderModel file, d_kv 16 != d_model / heads', model: { arch: 't5', seed: 82, feedForwardProj: 'gated-gelu', headDim: 16, hidden: 48 } },
];

// up to 30 tokens: relative distances up to 29, past relative_attention_max_distance 12
function randomSequences(seed: number, count: number, vocab: number, maxLen = 30): number[][] {
  const u = uniformRng(seed);
  return Array.from({ length: count }, (_, i) => Array.from({ length: i === 0 ? maxLen : randInt(u, 1, maxLen + 1) }, () => randInt(u, 0, vocab)));
}


async function checkGradients(m: NativeModel, b: PackedBatch, opts: ForwardOptions, seed: number,
  names: (name: string) => boolean, perParam: number): Promise<string[]> {
  const values = pinParams(m);
  const p = projection(seed, b.seqs * m.hidden);
  m.zeroGrad();
  await m.forward64(b.ids, b.cu, { ...opts, keep: true });
  await m.backward(p);
  const grads = new Map(m.grads().map((g) => [g.name, g.data]));
  const u = uniformRng(seed + 1);
  const checked: string[] = [];
  for (const [name, value] of values) {
    if (!names(name)) continue;
    const g = grads.get(name)!;
    let best = 0;
    for (let i = 1; i < g.length; i++) if (Math.abs(g[i]) > Math.abs(g[best])) best = i;
    expect(Math.abs(g[best]), `${name}: all-zero gradient`).to.be.above(1e-8);
    const entries = [best];
    for (let k = 0; k < perParam; k++) entries.push(randInt(u, 0, g.length));
    for (const i of entries) {
      const x = value[i];
      const h = 1e-5;
      value[i] = x + h;
      m.setParam(name, value);
      const plus = await loss(m, b, p, opts);
      value[i] = x - h;
      m.setParam(name, value);
      const minus = await loss(m, b, p, opts);
      value[i] = x;
      m.setParam(name, value);
      const fdv = (plus - minus) / (2 * h);
      expect(Math.abs(g[i] - fdv), `${name}[${i}]: analytic ${g[i]} vs finite difference ${fdv}`).to.be.below(1e-6 + 1e-5 * Math.abs(fdv));
    }
    checked.push(name);
  }
  return checked;
}

describe('t5 encoders', function () {
  this.timeout(300_000);

  for (const c of cases) {
    describe(c.label, () => {
      it('F32: mean/cls pooled embeddings and last hidden states equal the float64 reference within 1e-5', async () => {
        const dir = makeTinyModel({ ...c.model, dir: tempDir() });
        const engine = await Engine.load(dir, { device: 'cpu' });
        try {
          expect(engine.config.defaultPooling).to.equal('mean');
          const ref = new ReferenceModel(dir);
          const seqs = randomSequences(c.model.seed! * 3, 5, 100);
          for (const pooling of ['mean', 'cls'] as const) {
            const got = await engine.encode(seqs.map((ids) => ({ input_ids: ids })), { pooling });
            seqs.forEach((ids, i) => {
              const err = l2RelError(got.row(i), ref.embed(ids, pooling));
              expect(err, `row ${i} (${ids.length} tokens, ${pooling})`).to.be.below(1e-5);
            });
          }
          const ids = seqs[0];
          const h = await engine.native.hiddenStates(Int32Array.from(ids), Int32Array.from([0, ids.length]));
          expect(l2RelError(h, ref.hiddenStates(ids))).to.be.below(1e-5);
        } finally {
          engine.dispose();
        }
      });

      it('BF16 checkpoint: equals the reference on the bf16-decoded weights', async () => {
        const dir = makeTinyModel({ ...c.model, dtype: 'BF16', dir: tempDir() });
        const engine = await Engine.load(dir, { device: 'cpu' });
        try {
          const ref = new ReferenceModel(dir);
          const seqs = randomSequences(c.model.seed! * 5, 3, 100);
          const got = await engine.encode(seqs.map((ids) => ({ input_ids: ids })), { pooling: 'mean' });
          seqs.forEach((ids, i) => expect(l2RelError(got.row(i), ref.embed(ids, 'mean'))).to.be.below(1e-5));
        } finally {
          engine.dispose();
        }
      });

      it('an embedding never depends on its batch (the bias span follows the longest sequence)', async () => {
        const t = tiny(c.model);
        const m = await load(t);
        const b = randomBatch(c.model.seed! + 1, [6, 25, 1, 9], t.info.native.vocab);
        const opts: ForwardOptions = { pooling: 'mean', normalize: false };
        const together = await m.forward64(b.ids, b.cu, opts);
        const H = m.hidden;
        for (let s = 0; s < b.seqs; s++) {
          const one = sliceBatch(b, s, s + 1);
          const alone = await m.forward64(one.ids, one.cu, opts);
          expect(maxAbsDiff(alone, together.subarray(s * H, (s + 1) * H)), `sequence ${s}`).to.be.below(1e-12);
        }
        m.dispose();
      });

      it('LoRA on the default targets: gradients of A and B equal finite differences (cpu-f64)', async () => {
        const t = tiny(c.model);
        const gated = c.model.feedForwardProj === 'gated-gelu';
        expect(t.info.loraTargets).to.deep.equal(gated ? ['q', 'k', 'v', 'o', 'wi_0', 'wi_1', 'wo'] : ['q', 'k', 'v', 'o', 'wi', 'wo']);
        const m = await load(t);
        m.addLora({ targets: t.info.loraTargets, r: 2, alpha: 4, dropout: 0.2, seed: 5 });
        m.setTrainable('lora');
        randomizeLoraB(m, 21);
        const names = m.params().map((x) => x.name);
        expect(names.length).to.equal(2 * t.info.loraTargets.length * t.info.native.layers);
        expect(names).to.include('encoder.block.0.layer.0.SelfAttention.q.lora_A.weight');
        const b = randomBatch(31, [7, 3, 20], t.info.native.vocab);
        const opts: ForwardOptions = { pooling: 'mean', normalize: true, train: true, dropoutSeed: 3, seqKeys: new Int32Array([4, 5, 6]) };
        const checked = await checkGradients(m, b, opts, 41, (n) => /block\.0\./.test(n), 1);
        expect(checked.length).to.equal(2 * t.info.loraTargets.length);
        m.dispose();
      });

      it('full fine-tuning: layer 0 (incl. relative_attention_bias), shared embeddings and the final norm by finite differences', async () => {
        const t = tiny(c.model);
        const m = await load(t);
        m.setTrainable('full');
        expect(m.params().length).to.equal(t.sources.length);
        const b = randomBatch(32, [6, 20, 2], t.info.native.vocab);
        const checked = await checkGradients(m, b, { pooling: 'mean', normalize: true }, 42, (n) => !/block\.[1-9]\./.test(n), 2);
        expect(checked).to.include('encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight');
        expect(checked).to.include('shared.weight');
        expect(checked).to.include('encoder.final_layer_norm.weight');
        m.dispose();
      });

      it('merge: the merged model dir embeds exactly like base + adapter', async () => {
        const t = tiny(c.model);
        const engine = await Engine.load(t.dir, { device: 'cpu-f64' });
        try {
          engine.native.addLora({ targets: t.info.loraTargets, r: 2, alpha: 4, dropout: 0, seed: 9 });
          engine.native.setTrainable('lora');
          randomizeLoraB(engine.native, 10, 0.3);
          const seqs = randomSequences(77, 4, 100).map((ids) => ({ input_ids: ids }));
          const withAdapter = await engine.encode(seqs);
          const out = tempDir();
          writeMergedModel(engine.native, t.dir, engine.config, out);
          const merged = await Engine.load(out, { device: 'cpu-f64' });
          const plain = await Engine.load(t.dir, { device: 'cpu-f64' });
          try {
            expect(maxAbsDiff((await merged.encode(seqs)).data, withAdapter.data)).to.be.below(1e-6);
            expect(maxAbsDiff((await plain.encode(seqs)).data, withAdapter.data)).to.be.above(1e-4);
          } finally {
            merged.dispose();
            plain.dispose();
          }
        } finally {
          engine.dispose();
        }
      });
    });
  }

  it('a T5ForConditionalGeneration file: only the encoder and shared.weight are loaded (decoder and lm_head ignored)', () => {
    const t = tiny(cases[0].model);
    const names = t.sources.map((s) => s.name);
    expect(names).to.include('shared.weight');
    expect(names.filter((n) => n.startsWith('decoder.') || n.startsWith('lm_head'))).to.deep.equal([]);
    expect(names.filter((n) => n.includes('relative_attention_bias'))).to.deep.equal(['encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight']);
  });

  it('texts: the tokenizer appends </s> and mean pooling is the default', async () => {
    const dir = makeTinyModel({ arch: 't5', seed: 83, tokenizer: true, dir: tempDir() });
    const engine = await Engine.load(dir, { device: 'cpu' });
    try {
      const ref = new ReferenceModel(dir);
      const texts = ['the river flows to the ocean', 'what is a mountain?'];
      const got = await engine.encode(texts);
      const tok = engine.tokenizer!.hf;
      texts.forEach((text, i) => {
        const ids = tok.encode(text, { add_special_tokens: true }).ids;
        expect(ids[ids.length - 1]).to.equal(tok.token_to_id('</s>'));
        expect(l2RelError(got.row(i), ref.embed(ids, 'mean'))).to.be.below(1e-5);
      });
    } finally {
      engine.dispose();
    }
  });

  it('config.json: t5 keys read like T5Config; unsupported values are one clear error naming the key', () => {
    const base = { model_type: 't5', d_model: 32, d_kv: 8, d_ff: 64, num_heads: 4, num_layers: 2, vocab_size: 100 };
    const info = parseModelConfig({ ...base, feed_forward_proj: 'gated-gelu' }, 'config.json');
    expect(info.native).to.include({ arch: 't5', hidden: 32, headDim: 8, intermediate: 64, heads: 4, layers: 2, gatedMlp: true, activation: 'gelu_tanh', relBuckets: 32, relMaxDistance: 128, normEps: 1e-6 });
    expect(parseModelConfig(base, 'config.json').native).to.include({ gatedMlp: false, activation: 'relu' });
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ feed_forward_proj: 'gated-quick_gelu' }, /feed_forward_proj "gated-quick_gelu": activation "quick_gelu" is not supported/],
      [{ feed_forward_proj: 'dense-relu' }, /feed_forward_proj "dense-relu" is not supported/],
      [{ is_decoder: true }, /"is_decoder": true: lmdr loads T5 encoders only/],
      [{ relative_attention_num_buckets: 0 }, /"relative_attention_num_buckets" must be a positive integer/],
    ];
    for (const [patch, message] of bad) {
      expect(() => parseModelConfig({ ...base, ...patch }, 'config.json'), JSON.stringify(patch)).to.throw(UserError, message);
    }
  });

  it('a checkpoint without the relative bias table is a clear error naming the tensor', () => {
    const dir = makeTinyModel({ arch: 't5', seed: 84, relBuckets: 16, dir: tempDir() });
    const info = readModelConfig(dir);
    info.native.relBuckets = 8; // config and file disagree
    expect(() => loadCheckpoint(dir, info)).to.throw(UserError, /relative_attention_bias\.weight" has shape \[16,4\], expected \[8,4\]/);
  });
});
