// Training state of the native model: optimiser steps against a host implementation of
// PyTorch's AdamW / SGD formulas, checkpointable optimiser state, gradient bookkeeping and the
// PEFT merge W + alpha/r * B A.
import { expect } from 'chai';
import type { ForwardOptions, NativeModel, OptimizerStep } from '../../lib/native.ts';
import { load, maxAbsDiff, pinParams, projection, randomBatch, randomizeLoraB, tiny, type PackedBatch } from './model-fixtures.ts';

const lora = { targets: ['q_proj', 'v_proj', 'down_proj'], r: 2, alpha: 8, dropout: 0, seed: 17 };
const fwd: ForwardOptions = { pooling: 'eos', normalize: true };

async function accumulate(m: NativeModel, b: PackedBatch, seed: number): Promise<void> {
  await m.forward(b.ids, b.cu, { ...fwd, keep: true });
  await m.backward(projection(seed, b.seqs * m.hidden));
}

const byName = (m: NativeModel, which: 'params' | 'grads') => new Map(m[which]().map((t) => [t.name, Float64Array.from(t.data)]));

describe('native model training state', function () {
  this.timeout(60_000);
  const t = tiny({ arch: 'qwen2', seed: 41 });
  const b1 = randomBatch(71, [6, 4, 9], t.info.native.vocab);
  const b2 = randomBatch(72, [3, 8], t.info.native.vocab);

  it('gradients: zeroGrad, accumulation over backward calls, gradSumSquares', async () => {
    const m = await load(t);
    m.addLora(lora);
    m.setTrainable('lora');
    randomizeLoraB(m, 1);
    m.zeroGrad();
    await accumulate(m, b1, 3);
    const once = byName(m, 'grads');
    await accumulate(m, b1, 3);
    const twice = byName(m, 'grads');
    let ss = 0;
    for (const [name, g] of once) {
      expect(maxAbsDiff(twice.get(name)!, g.map((x) => 2 * x))).to.be.below(1e-6 * (1 + Math.max(...g.map(Math.abs))));
      for (const x of twice.get(name)!) ss += x * x;
    }
    expect(ss).to.be.above(0);
    expect(Math.abs(m.gradSumSquares() - ss) / ss).to.be.below(1e-6);
    m.zeroGrad();
    expect(m.gradSumSquares()).to.equal(0);
    expect(m.grads().every((g) => g.data.every((x) => x === 0))).to.equal(true);
    m.dispose();
  });

  it('AdamW over two steps matches the PyTorch formulas (decoupled decay, bias correction, gradScale)', async () => {
    const m = await load(t);
    m.addLora(lora);
    m.setTrainable('lora');
    randomizeLoraB(m, 2);
    const p = pinParams(m);
    const mom = new Map([...p].map(([n, v]) => [n, { m: new Float64Array(v.length), v: new Float64Array(v.length) }]));
    const step = (n: number): OptimizerStep => ({ kind: 'adamw', lr: 0.01, beta1: 0.8, beta2: 0.9, eps: 1e-2, weightDecay: 0.3, step: n, gradScale: 0.5 });
    for (const [n, batch] of [[1, b1], [2, b2]] as const) {
      m.zeroGrad();
      await accumulate(m, batch, 10 + n);
      const grads = byName(m, 'grads');
      const s = step(n);
      m.optimizerStep(s);
      for (const [name, w] of p) {
        const g = grads.get(name)!;
        const st = mom.get(name)!;
        for (let i = 0; i < w.length; i++) {
          const gi = g[i] * s.gradScale;
          w[i] *= 1 - s.lr * s.weightDecay;
          st.m[i] = s.beta1 * st.m[i] + (1 - s.beta1) * gi;
          st.v[i] = s.beta2 * st.v[i] + (1 - s.beta2) * gi * gi;
          const mhat = st.m[i] / (1 - s.beta1 ** n);
          const vhat = st.v[i] / (1 - s.beta2 ** n);
          w[i] -= s.lr * mhat / (Math.sqrt(vhat) + s.eps);
        }
      }
      const now = byName(m, 'params');
      for (const [name, w] of p) expect(maxAbsDiff(now.get(name)!, w), `${name} after step ${n}`).to.be.below(1e-6);
    }
    // moments are checkpointed under PEFT-independent names, with the step count
    const state = m.optimizerState();
    expect(state.map((x) => x.name)).to.include.members([
      'layers.0.self_attn.q_proj.lora_A.weight.exp_avg', 'layers.0.self_attn.q_proj.lora_A.weight.exp_avg_sq', 'step',
    ]);
    expect(state.find((x) => x.name === 'step')!.data[0]).to.equal(2);
    const expAvg = state.find((x) => x.name === 'layers.1.mlp.down_proj.lora_B.weight.exp_avg')!;
    expect(maxAbsDiff(expAvg.data, mom.get('layers.1.mlp.down_proj.lora_B.weight')!.m)).to.be.below(1e-7);
    m.dispose();
  });

  it('SGD: param -= lr * (grad * gradScale + weightDecay * param)', async () => {
    const m = await load(t);
    m.setTrainable('full');
    const before = byName(m, 'params');
    m.zeroGrad();
    await accumulate(m, b1, 4);
    const grads = byName(m, 'grads');
    m.optimizerStep({ kind: 'sgd', lr: 0.05, beta1: 0, beta2: 0, eps: 0, weightDecay: 0.1, step: 1, gradScale: 2 });
    const after = byName(m, 'params');
    let moved = 0;
    for (const [name, w] of before) {
      const expected = w.map((x, i) => x - 0.05 * (grads.get(name)![i] * 2 + 0.1 * x));
      expect(maxAbsDiff(after.get(name)!, expected), name).to.be.below(1e-6);
      moved = Math.max(moved, maxAbsDiff(after.get(name)!, w));
    }
    expect(moved).to.be.above(1e-3);
    expect(m.optimizerState().map((x) => x.name)).to.deep.equal(['step']);
    m.dispose();
  });

  it('optimizer state round trip: a restored model takes the identical next step', async () => {
    const a = await load(t);
    a.addLora(lora);
    a.setTrainable('lora');
    randomizeLoraB(a, 3);
    const step = (n: number): OptimizerStep => ({ kind: 'adamw', lr: 0.02, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.01, step: n, gradScale: 1 });
    a.zeroGrad();
    await accumulate(a, b1, 5);
    a.optimizerStep(step(1));
    const saved = a.optimizerState();
    const params = a.params();
    const c = await load(t);
    c.addLora(lora);
    c.setTrainable('lora');
    for (const x of params) c.setParam(x.name, x.data);
    c.setOptimizerState(saved);
    expect(c.optimizerState().find((x) => x.name === 'step')!.data[0]).to.equal(1);
    for (const m of [a, c]) {
      m.zeroGrad();
      await accumulate(m, b2, 6);
      m.optimizerStep(step(2));
    }
    const pa = a.params();
    const pc = c.params();
    for (let i = 0; i < pa.length; i++) expect(maxAbsDiff(pa[i].data, pc[i].data), pa[i].name).to.be.below(1e-7);
    // and without the restored moments the step would differ (the check can fail)
    const fresh = await load(t);
    fresh.addLora(lora);
    fresh.setTrainable('lora');
    for (const x of params) fresh.setParam(x.name, x.data);
    fresh.zeroGrad();
    await accumulate(fresh, b2, 6);
    fresh.optimizerStep(step(2));
    expect(Math.max(...fresh.params().map((x, i) => maxAbsDiff(x.data, pa[i].data)))).to.be.above(1e-4);
    expect(() => c.setOptimizerState([{ name: 'norm.weight.exp_avg', shape: [t.info.native.hidden], data: new Float32Array(t.info.native.hidden) }]))
      .to.throw(/norm\.weight\.exp_avg/);
    for (const m of [a, c, fresh]) m.dispose();
  });

  it('baseWeight(merged) = W + alpha/r * B A; unmerged and non-LoRA weights are the checkpoint values', async () => {
    const m = await load(t);
    m.addLora(lora);
    m.setTrainable('lora');
    randomizeLoraB(m, 4);
    const p = pinParams(m);
    const name = 'layers.1.self_attn.v_proj';
    const W = m.baseWeight(`${name}.weight`, false);
    const A = p.get(`${name}.lora_A.weight`)!;
    const B = p.get(`${name}.lora_B.weight`)!;
    const out = t.info.native.kvHeads * t.info.native.headDim;
    const inp = t.info.native.hidden;
    const r = lora.r;
    const expected = Float64Array.from(W);
    for (let o = 0; o < out; o++)
      for (let i = 0; i < inp; i++)
        for (let k = 0; k < r; k++) expected[o * inp + i] += (lora.alpha / r) * B[o * r + k] * A[k * inp + i];
    const merged = m.baseWeight(`${name}.weight`, true);
    expect(maxAbsDiff(merged, expected)).to.be.below(1e-6);
    expect(maxAbsDiff(merged, W)).to.be.above(1e-3);
    // the bias has no adapter; merging leaves it alone
    expect(Array.from(m.baseWeight(`${name}.bias`, true))).to.deep.equal(Array.from(m.baseWeight(`${name}.bias`, false)));
    // a merged model without LoRA gives the same embeddings as the adapted one
    const plain = await load(t, 'cpu-f64');
    for (const src of t.sources) {
      if (/\.(q_proj|v_proj|down_proj)\.weight$/.test(src.name)) plain.setParam(src.name, Float64Array.from(m.baseWeight(src.name, true)));
    }
    const e1 = await m.forward64(b1.ids, b1.cu, fwd);
    const e2 = await plain.forward64(b1.ids, b1.cu, fwd);
    expect(maxAbsDiff(e1, e2)).to.be.below(1e-5);
    m.dispose();
    plain.dispose();
  });
});
