// Backward through the whole model against central finite differences of a scalar loss
// (a fixed random projection of the pooled embeddings) on "cpu-f64".
import { expect } from 'chai';
import type { TinyModelOptions } from '../helpers/tiny-models.ts';
import { uniformRng, randInt } from '../helpers/rng.ts';
import type { ForwardOptions, NativeModel } from '../../lib/native.ts';
import {
  load, loss, pinParams, projection, randomBatch, randomizeLoraB, sliceBatch, tiny, type PackedBatch,
} from './model-fixtures.ts';

const EPS = 1e-5;

/** Compares analytic gradients with central differences on a few entries of each named param:
 * the entry with the largest gradient plus random ones. Returns how many entries were checked. */
async function checkGradients(m: NativeModel, b: PackedBatch, opts: ForwardOptions, seed: number,
  names?: (name: string) => boolean, randomPerParam = 2): Promise<number> {
  const values = pinParams(m);
  const p = projection(seed, b.seqs * m.hidden);
  m.zeroGrad();
  await m.forward64(b.ids, b.cu, { ...opts, keep: true });
  await m.backward(p);
  const grads = new Map(m.grads().map((g) => [g.name, g.data]));
  const u = uniformRng(seed + 1);
  let checked = 0;
  for (const [name, value] of values) {
    if (names && !names(name)) continue;
    const g = grads.get(name);
    expect(g, `gradient of ${name}`).to.not.equal(undefined);
    let best = 0;
    for (let i = 1; i < g!.length; i++) if (Math.abs(g![i]) > Math.abs(g![best])) best = i;
    const entries = [best];
    for (let k = 0; k < randomPerParam; k++) entries.push(randInt(u, 0, g!.length));
    for (const i of entries) {
      const x = value[i];
      value[i] = x + EPS;
      m.setParam(name, value);
      const plus = await loss(m, b, p, opts);
      value[i] = x - EPS;
      m.setParam(name, value);
      const minus = await loss(m, b, p, opts);
      value[i] = x;
      m.setParam(name, value);
      const fd = (plus - minus) / (2 * EPS);
      const tol = 1e-6 + 1e-5 * Math.abs(fd);
      expect(Math.abs(g![i] - fd), `${name}[${i}]: analytic ${g![i]} vs finite difference ${fd}`).to.be.below(tol);
      checked++;
    }
    // BERT's key bias shifts every score of a query equally: softmax ignores it (gradient 0).
    if (!name.endsWith('attention.self.key.bias')) expect(Math.abs(g![best]), `${name}: all-zero gradient`).to.be.above(1e-8);
  }
  return checked;
}

const cases: { label: string; model: TinyModelOptions; opts: ForwardOptions; dropout: number; targets: string[] }[] = [
  {
    label: 'qwen2 (q/k/v bias, GQA), eos pooling, normalized',
    model: { arch: 'qwen2', seed: 11 },
    opts: { pooling: 'eos', normalize: true },
    dropout: 0,
    targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  },
  {
    label: 'llama (llama3 rope_scaling), mean pooling, LoRA dropout in train mode',
    model: { arch: 'llama', seed: 12, ropeScaling: 'llama3', headDim: 16, hidden: 32, heads: 4, kvHeads: 1 },
    opts: { pooling: 'mean', normalize: false, train: true, dropoutSeed: 77, seqKeys: new Int32Array([3, 9, 4]) },
    dropout: 0.3,
    targets: ['self_attn.q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  },
  {
    label: 'bert, cls pooling, normalized',
    model: { arch: 'bert', seed: 13 },
    opts: { pooling: 'cls', normalize: true },
    dropout: 0,
    targets: ['query', 'key', 'value', 'dense'],
  },
];

describe('native model gradients (finite differences, cpu-f64)', function () {
  this.timeout(300_000);

  for (const c of cases) {
    it(`LoRA A and B: ${c.label}`, async () => {
      const t = tiny(c.model);
      const m = await load(t);
      m.addLora({ targets: c.targets, r: 3, alpha: 6, dropout: c.dropout, seed: 5 });
      m.setTrainable('lora');
      randomizeLoraB(m, 21);
      // Lengths long enough that positions pass the llama3 low/medium/high frequency bands.
      const b = randomBatch(31, [7, 3, 12], t.info.native.vocab);
      const names = m.params().map((x) => x.name);
      expect(names.some((n) => n.endsWith('lora_A.weight'))).to.equal(true);
      expect(names.every((n) => n.includes('.lora_'))).to.equal(true);
      const checked = await checkGradients(m, b, c.opts, 41, undefined, 1);
      expect(checked).to.be.at.least(names.length * 2);
      m.dispose();
    });

    it(`full fine-tuning, every base weight kind: ${c.label}`, async () => {
      const t = tiny(c.model);
      const m = await load(t);
      m.setTrainable('full');
      const b = randomBatch(32, [6, 11, 2], t.info.native.vocab);
      const names = m.params().map((x) => x.name);
      expect(names.length).to.equal(t.sources.length);
      // Every kind: all tensors of layer 0 (and the embeddings / final norm); layer 1 sampled lightly.
      await checkGradients(m, b, { ...c.opts, train: false }, 42, (n) => !/layers?\.1\./.test(n), 2);
      await checkGradients(m, b, { ...c.opts, train: false }, 43, (n) => /layers?\.1\./.test(n), 0);
      m.dispose();
    });
  }
});

describe('native model backward: recompute, frozen weights, accumulation', function () {
  this.timeout(120_000);

  async function gradsOf(m: NativeModel, b: PackedBatch, opts: ForwardOptions, p: Float32Array) {
    m.zeroGrad();
    await m.forward(b.ids, b.cu, { ...opts, keep: true });
    await m.backward(p);
    return m.grads();
  }

  for (const arch of ['qwen2', 'bert'] as const) {
    it(`${arch}: per-layer recompute gives identical gradients (lora with dropout, and full)`, async () => {
      const t = tiny({ arch, seed: 14 });
      const b = randomBatch(33, [5, 9, 4], t.info.native.vocab);
      const opts: ForwardOptions = { pooling: arch === 'bert' ? 'cls' : 'eos', normalize: true, train: true, dropoutSeed: 9 };
      const p = projection(44, b.seqs * t.info.native.hidden);
      for (const mode of ['lora', 'full'] as const) {
        const m = await load(t, 'cpu');
        if (mode === 'lora') {
          m.addLora({ targets: arch === 'bert' ? ['query', 'value', 'dense'] : ['q_proj', 'v_proj', 'down_proj'], r: 4, alpha: 8, dropout: 0.25, seed: 1 });
        }
        m.setTrainable(mode);
        if (mode === 'lora') randomizeLoraB(m, 2);
        m.setRecompute(false);
        const kept = await gradsOf(m, b, opts, p);
        m.setRecompute(true);
        const recomputed = await gradsOf(m, b, opts, p);
        expect(recomputed.map((g) => g.name)).to.deep.equal(kept.map((g) => g.name));
        for (let i = 0; i < kept.length; i++) {
          expect(kept[i].data.some((x) => x !== 0), `${kept[i].name} has a gradient`).to.equal(true);
          expect(Buffer.from(recomputed[i].data.buffer).equals(Buffer.from(kept[i].data.buffer)),
            `${kept[i].name}: recompute changed the gradient`).to.equal(true);
        }
        m.dispose();
      }
    });
  }

  it('LoRA mode: base weights are frozen (no grads, unchanged by the optimizer)', async () => {
    const t = tiny({ arch: 'llama', seed: 15 });
    const m = await load(t);
    m.addLora({ targets: ['q_proj', 'up_proj'], r: 2, alpha: 4, dropout: 0, seed: 3 });
    m.setTrainable('lora');
    randomizeLoraB(m, 4);
    const names = m.grads().map((g) => g.name);
    expect(names).to.have.length(2 * 2 * t.info.native.layers);
    expect(names.every((n) => /\.(q_proj|up_proj)\.lora_[AB]\.weight$/.test(n))).to.equal(true);
    const before = m.baseWeight('layers.0.self_attn.q_proj.weight', false);
    const b = randomBatch(34, [4, 6], t.info.native.vocab);
    await gradsOf(m, b, { pooling: 'eos', normalize: false }, projection(45, 2 * m.hidden));
    m.optimizerStep({ kind: 'adamw', lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, step: 1, gradScale: 1 });
    expect(Array.from(m.baseWeight('layers.0.self_attn.q_proj.weight', false))).to.deep.equal(Array.from(before));
    const after = m.params().find((x) => x.name === 'layers.0.self_attn.q_proj.lora_A.weight')!;
    expect(after).to.not.equal(undefined);
    m.dispose();
  });

  it('gradients accumulate over backward calls and chunks equal the whole batch (GradCache)', async () => {
    const t = tiny({ arch: 'qwen2', seed: 16 });
    const m = await load(t);
    m.addLora({ targets: ['k_proj', 'o_proj', 'gate_proj'], r: 2, alpha: 2, dropout: 0.2, seed: 8 });
    m.setTrainable('lora');
    randomizeLoraB(m, 5);
    const b = randomBatch(35, [5, 8, 3, 6], t.info.native.vocab);
    const keys = new Int32Array([100, 101, 102, 103]);
    const opts: ForwardOptions = { pooling: 'eos', normalize: true, train: true, dropoutSeed: 1234 };
    const p = projection(46, 4 * m.hidden);
    m.zeroGrad();
    await m.forward(b.ids, b.cu, { ...opts, seqKeys: keys, keep: true });
    await m.backward(p);
    const whole = m.grads();
    m.zeroGrad();
    for (const [from, to] of [[0, 1], [1, 4]]) {
      const part = sliceBatch(b, from, to);
      await m.forward(part.ids, part.cu, { ...opts, seqKeys: keys.slice(from, to), keep: true });
      await m.backward(p.slice(from * m.hidden, to * m.hidden));
    }
    const chunked = m.grads();
    for (let i = 0; i < whole.length; i++) {
      let diff = 0;
      let scale = 0;
      for (let j = 0; j < whole[i].data.length; j++) {
        diff = Math.max(diff, Math.abs(whole[i].data[j] - chunked[i].data[j]));
        scale = Math.max(scale, Math.abs(whole[i].data[j]));
      }
      expect(scale, `${whole[i].name} has a gradient`).to.be.above(0);
      expect(diff, whole[i].name).to.be.below(1e-9 + 1e-6 * scale);
    }
    m.dispose();
  });
});
