// The decoder architectures added after the first four (qwen3, gemma, gemma2, phi, phi3), each
// against the float64 reference model (test/reference/model.ts, written from the HF modeling
// files): embeddings on F32 and BF16 checkpoints, batch invariance, LoRA and full gradients by
// central finite differences on cpu-f64, merge = base + adapter, and the causal-LM head's
// log-probabilities (tied and untied).
import { l2RelError } from '../ops/harness.ts';
import { expect } from 'chai';
import { Engine } from '../../lib/engine.ts';
import { readModelConfig, parseModelConfig } from '../../lib/model/config.ts';
import { lmHeadSources } from '../../lib/model/checkpoint.ts';
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

interface Case {
  arch: TinyModelOptions['arch'];
  model: TinyModelOptions;
  what: string;
}

// Sequences up to 12 tokens: past gemma2's window of 4 on layer 0, so the window matters.
const cases: Case[] = [
  { arch: 'qwen3', model: { arch: 'qwen3', seed: 61, headDim: 16 }, what: 'q_norm/k_norm, head_dim 16 != hidden/heads' },
  { arch: 'gemma', model: { arch: 'gemma', seed: 62, hidden: 48, heads: 4, kvHeads: 1, headDim: 16 }, what: '(1 + w) norms, sqrt(hidden) embeddings, GeGLU' },
  { arch: 'gemma2', model: { arch: 'gemma2', seed: 63, hidden: 48, heads: 4, kvHeads: 2, headDim: 16, layers: 3 }, what: 'sandwich norms, soft-capping, window 4 on layers 0 and 2' },
  { arch: 'phi', model: { arch: 'phi', seed: 64, kvHeads: 4 }, what: 'parallel block, LayerNorm, partial rotary 0.5, biases, gelu_new' },
  { arch: 'phi3', model: { arch: 'phi3', seed: 65 }, what: 'fused qkv_proj and gate_up_proj' },
];

async function expectReject(p: Promise<unknown>, message: RegExp): Promise<void> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(UserError);
    expect((err as Error).message).to.match(message);
    return;
  }
  expect.fail(`expected a rejection matching ${message}`);
}

function randomSequences(seed: number, count: number, vocab: number, maxLen = 12): number[][] {
  const u = uniformRng(seed);
  return Array.from({ length: count }, () => Array.from({ length: randInt(u, 1, maxLen + 1) }, () => randInt(u, 0, vocab)));
}


async function checkGradients(m: NativeModel, b: PackedBatch, opts: ForwardOptions, seed: number,
  names: (name: string) => boolean, perParam: number): Promise<number> {
  const values = pinParams(m);
  const p = projection(seed, b.seqs * m.hidden);
  m.zeroGrad();
  await m.forward64(b.ids, b.cu, { ...opts, keep: true });
  await m.backward(p);
  const grads = new Map(m.grads().map((g) => [g.name, g.data]));
  const u = uniformRng(seed + 1);
  let checked = 0;
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
      const fd = (plus - minus) / (2 * h);
      expect(Math.abs(g[i] - fd), `${name}[${i}]: analytic ${g[i]} vs finite difference ${fd}`).to.be.below(1e-6 + 1e-5 * Math.abs(fd));
      checked++;
    }
  }
  return checked;
}

describe('architectures: qwen3, gemma, gemma2, phi, phi3', function () {
  this.timeout(300_000);

  for (const c of cases) {
    describe(`${c.arch} (${c.what})`, () => {
      it('F32: embeddings (eos and mean) and last hidden states equal the float64 reference within 1e-5', async () => {
        const dir = makeTinyModel({ ...c.model, dir: tempDir() });
        const engine = await Engine.load(dir, { device: 'cpu' });
        try {
          const ref = new ReferenceModel(dir);
          const seqs = randomSequences(c.model.seed! * 3, 6, 100);
          for (const pooling of ['eos', 'mean'] as const) {
            const got = await engine.encode(seqs.map((ids) => ({ input_ids: ids })), { pooling });
            seqs.forEach((ids, i) => {
              const err = l2RelError(got.row(i), ref.embed(ids, pooling));
              expect(err, `row ${i} (${ids.length} tokens, ${pooling})`).to.be.below(1e-5);
            });
          }
          const ids = seqs.reduce((a, b) => (b.length > a.length ? b : a));
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
          const seqs = randomSequences(c.model.seed! * 5, 4, 100);
          const got = await engine.encode(seqs.map((ids) => ({ input_ids: ids })), { pooling: 'eos' });
          seqs.forEach((ids, i) => expect(l2RelError(got.row(i), ref.embed(ids, 'eos'))).to.be.below(1e-5));
        } finally {
          engine.dispose();
        }
      });

      it('an embedding never depends on its batch', async () => {
        const t = tiny(c.model);
        const m = await load(t);
        const b = randomBatch(c.model.seed! + 1, [6, 11, 1, 9], t.info.native.vocab);
        const opts: ForwardOptions = { pooling: 'eos', normalize: false };
        const together = await m.forward64(b.ids, b.cu, opts);
        const H = m.hidden;
        for (let s = 0; s < b.seqs; s++) {
          const one = sliceBatch(b, s, s + 1);
          const alone = await m.forward64(one.ids, one.cu, opts);
          expect(maxAbsDiff(alone, together.subarray(s * H, (s + 1) * H)), `sequence ${s}`).to.be.below(1e-12);
        }
        expect(maxAbsDiff(together.subarray(0, H), together.subarray(H, 2 * H))).to.be.above(1e-3);
        m.dispose();
      });

      it('LoRA on the default targets: gradients of A and B equal finite differences (cpu-f64)', async () => {
        const t = tiny(c.model);
        const m = await load(t);
        m.addLora({ targets: t.info.loraTargets, r: 2, alpha: 4, dropout: 0.2, seed: 5 });
        m.setTrainable('lora');
        randomizeLoraB(m, 21);
        const names = m.params().map((x) => x.name);
        // every default target exists in every layer: 2 matrices each
        expect(names.length).to.equal(2 * t.info.loraTargets.length * t.info.native.layers);
        const b = randomBatch(31, [7, 3, 10], t.info.native.vocab);
        const opts: ForwardOptions = { pooling: 'eos', normalize: true, train: true, dropoutSeed: 3, seqKeys: new Int32Array([4, 5, 6]) };
        await checkGradients(m, b, opts, 41, (n) => /layers\.0\./.test(n), 1);
        m.dispose();
      });

      it('full fine-tuning: every base weight of layer 0, the embeddings and the final norm by finite differences', async () => {
        const t = tiny(c.model);
        const m = await load(t);
        m.setTrainable('full');
        expect(m.params().length).to.equal(t.sources.length);
        const b = randomBatch(32, [6, 9, 2], t.info.native.vocab);
        const checked = await checkGradients(m, b, { pooling: 'mean', normalize: true }, 42, (n) => !/layers\.[1-9]\./.test(n), 1);
        expect(checked).to.be.above(10);
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
          const withAdapter = await engine.encode(seqs, { pooling: 'eos' });
          const out = tempDir();
          writeMergedModel(engine.native, t.dir, engine.config, out);
          const merged = await Engine.load(out, { device: 'cpu-f64' });
          const plain = await Engine.load(t.dir, { device: 'cpu-f64' });
          try {
            const got = await merged.encode(seqs, { pooling: 'eos' });
            expect(maxAbsDiff(got.data, withAdapter.data)).to.be.below(1e-6);
            expect(maxAbsDiff((await plain.encode(seqs, { pooling: 'eos' })).data, withAdapter.data)).to.be.above(1e-4);
          } finally {
            merged.dispose();
            plain.dispose();
          }
        } finally {
          engine.dispose();
        }
      });

      for (const tied of [false, true]) {
        it(`LM head (${tied ? 'tied' : 'untied'}): log p(target | context) equals the reference, in vocabulary blocks`, async () => {
          const dir = makeTinyModel({ ...c.model, tieWordEmbeddings: tied, dir: tempDir() });
          const info = readModelConfig(dir);
          expect(info.tieWordEmbeddings).to.equal(tied);
          const engine = await Engine.load(dir, { device: 'cpu-f64' });
          try {
            await engine.native.loadLmHead(lmHeadSources(dir, info));
            const ref = new ReferenceModel(dir);
            const seqs = randomSequences(c.model.seed! * 11, 3, 100).map((s) => (s.length < 2 ? [...s, 7] : s));
            const cu = new Int32Array(seqs.length + 1);
            seqs.forEach((s, i) => { cu[i + 1] = cu[i] + s.length; });
            const ids = Int32Array.from(seqs.flat());
            const starts = Int32Array.from(seqs.map(() => 1));
            const want = Float64Array.from(seqs.flatMap((s) => Array.from(ref.targetLogprobs(s))));
            for (const block of [undefined, 7]) { // whole vocabulary, and 15 blocks of 7 (+ a tail)
              const got = await engine.native.tokenLogprobs(ids, cu, starts, block);
              expect(got.length).to.equal(want.length);
              // (lmdr rounds RoPE angles to float32 like HF; the reference does not: ~1e-8)
              expect(maxAbsDiff(got, want), `vocab block ${block ?? 'all'}`).to.be.below(1e-6);
            }
            // the float32 backend agrees to float32 precision
            const e32 = await Engine.load(dir, { device: 'cpu' });
            try {
              await e32.native.loadLmHead(lmHeadSources(dir, info));
              expect(maxAbsDiff(await e32.native.tokenLogprobs(ids, cu, starts, 13), want)).to.be.below(1e-4);
            } finally {
              e32.dispose();
            }
          } finally {
            engine.dispose();
          }
        });
      }
    });
  }

  it('Engine.scoreTokens: sum, mean and count of log p(target | context) per pair, texts and ids, batched', async () => {
    for (const tied of [true, false]) {
      const dir = makeTinyModel({ arch: 'phi3', seed: 71, tokenizer: true, tieWordEmbeddings: tied, dir: tempDir() });
      const engine = await Engine.load(dir, { device: 'cpu-f64' });
      try {
        const ref = new ReferenceModel(dir);
        const pairs = [
          { context: 'the river is', target: 'deep and long' },
          { context: { input_ids: [5, 9] }, target: { input_ids: [40] } },
          { context: 'what city', target: { input_ids: [33, 34, 35, 36] } },
        ];
        const got = await engine.scoreTokens(pairs, { maxTokens: 8 }); // 3 native calls
        const tok = engine.tokenizer!.hf;
        pairs.forEach((p, i) => {
          const ctx = typeof p.context === 'string' ? tok.encode(p.context, { add_special_tokens: true }).ids : p.context.input_ids;
          const tgt = typeof p.target === 'string' ? tok.encode(p.target, { add_special_tokens: false }).ids : p.target.input_ids;
          const lp = ref.targetLogprobs([...ctx, ...tgt]).slice(ctx.length - 1);
          const sum = lp.reduce((a, b) => a + b, 0);
          expect(got[i].count).to.equal(tgt.length);
          expect(got[i].sum).to.be.closeTo(sum, 1e-6 * tgt.length);
          expect(got[i].mean).to.be.closeTo(sum / tgt.length, 1e-6);
        });
        expect(got[0].count).to.equal(3);
        await expectReject(engine.scoreTokens([{ context: { input_ids: [] }, target: 'deep' }]), /pair 0: the context has no tokens/);
        await expectReject(engine.scoreTokens([{ context: 'the', target: { input_ids: [100] } }]), /pair 0: token id 100 at position \d+ is outside the vocabulary/);
      } finally {
        engine.dispose();
      }
    }
    const bert = await Engine.load(makeTinyModel({ arch: 'bert', seed: 72, dir: tempDir() }), { device: 'cpu' });
    try {
      await expectReject(bert.scoreTokens([{ context: { input_ids: [1] }, target: { input_ids: [2] } }]), /a bert model has no LM head/);
    } finally {
      bert.dispose();
    }
  });

  it('unsupported config values are one clear error naming the key and the value', () => {
    const base = JSON.parse(JSON.stringify({
      model_type: 'phi3', hidden_size: 32, num_attention_heads: 4, num_hidden_layers: 1, intermediate_size: 64, vocab_size: 100,
    }));
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ rope_scaling: { type: 'longrope', short_factor: [1], long_factor: [1] } }, /rope_scaling type "longrope" is not supported/],
      [{ model_type: 'phi', qk_layernorm: true }, /"qk_layernorm": true is not supported/],
      [{ model_type: 'gemma', hidden_activation: 'gelu_fast' }, /hidden_activation "gelu_fast" is not supported/],
      [{ model_type: 'phi', hidden_act: 'quick_gelu' }, /hidden_act "quick_gelu" is not supported/],
      [{ model_type: 'phi', partial_rotary_factor: 0.1 }, /partial_rotary_factor 0.1 gives 0 rotary dims of head_dim 8/],
      [{ model_type: 'gemma2', head_dim: 8, layer_types: ['chunked_attention'] }, /layer_types\[0\] "chunked_attention" is not supported/],
      [{ model_type: 'gemma2', head_dim: 8, attn_logit_softcapping: -1 }, /"attn_logit_softcapping" must be a positive number or null, got -1/],
    ];
    for (const [patch, message] of bad) {
      expect(() => parseModelConfig({ ...base, ...patch }, 'config.json'), JSON.stringify(patch)).to.throw(UserError, message);
    }
  });
});
