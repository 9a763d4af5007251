// Whole-model embeddings on the GPU against the CPU backend, on tiny random qwen2 (qkv bias),
// llama (llama3 rope scaling), bert, qwen3, gemma, gemma2, phi, phi3 and t5 checkpoints: the
// same packed batch, the same pooled and normalised embeddings up to bf16 rounding; GPU
// training steps (LoRA) run and move the loss like the CPU's.
import { expect } from 'chai';
import { Engine } from '../../lib/engine.ts';
import { makeTinyModel, type TinyModelOptions } from '../helpers/tiny-models.ts';
import { randInt, uniformRng } from '../helpers/rng.ts';
import { relError } from '../ops/harness.ts';
import { describeGpu, gpuDevice } from './gpu.ts';

// hiddenTol: the bar for the last hidden states' max-abs relative error (default 3e-2)
const models: { label: string; opts: TinyModelOptions; hiddenTol?: number }[] = [
  { label: 'qwen2', opts: { arch: 'qwen2', seed: 31, hidden: 64, heads: 4, kvHeads: 2, intermediate: 96 } },
  { label: 'llama + llama3 rope_scaling', opts: { arch: 'llama', seed: 32, hidden: 64, heads: 4, kvHeads: 1, ropeScaling: 'llama3' } },
  { label: 'llama, bf16 checkpoint', opts: { arch: 'llama', seed: 33, dtype: 'BF16' } },
  { label: 'bert', opts: { arch: 'bert', seed: 34, hidden: 64, heads: 4, intermediate: 128 } },
  // issue 12's decoders: each one's new ops inside a whole model
  { label: 'qwen3 (q/k norms, head_dim 16)', opts: { arch: 'qwen3', seed: 35, headDim: 16 } },
  { label: 'gemma ((1 + w) norms, GeGLU), bf16 checkpoint', opts: { arch: 'gemma', seed: 36, hidden: 48, heads: 4, kvHeads: 1, dtype: 'BF16' } },
  { label: 'gemma2 (soft-caps, 37-token window)', opts: { arch: 'gemma2', seed: 37, hidden: 48, heads: 4, kvHeads: 2, layers: 3, slidingWindow: 37 } },
  { label: 'phi (parallel block, partial rotary, gelu_new)', opts: { arch: 'phi', seed: 38, kvHeads: 4 } },
  { label: 'phi3 (fused qkv / gate_up)', opts: { arch: 'phi3', seed: 39 } },
  // T5 scores are not scaled by 1/sqrt(d): bf16 moves them more. The float64 reference with
  // every activation and weight rounded to bf16 is itself 2.6% (max-abs) from the CPU on the
  // 33-token sequence here (the emulated GPU: 3.9%, 1.6% normwise), so the bar is 6e-2.
  { label: 't5 (relative position bias, gated-gelu)', opts: { arch: 't5', seed: 40, hidden: 64, heads: 4, feedForwardProj: 'gated-gelu' }, hiddenTol: 6e-2 },
];

function sequences(seed: number, lengths: number[], vocab: number): number[][] {
  const u = uniformRng(seed);
  return lengths.map((l) => Array.from({ length: l }, () => randInt(u, 0, vocab)));
}

function cosine(a: Float32Array, b: Float32Array): number {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / Math.sqrt(aa * bb);
}

describeGpu('CUDA whole-model embeddings vs the CPU backend', function () {
  this.timeout(300_000);

  for (const m of models) {
    it(`${m.label}: pooled embeddings and last hidden states agree within bf16 tolerance`, async () => {
      const dir = makeTinyModel(m.opts);
      const cpu = await Engine.load(dir, { device: 'cpu' });
      const gpu = await Engine.load(dir, { device: gpuDevice });
      try {
        expect(gpu.native.device).to.match(/^cuda/);
        const vocab = cpu.config.native.vocab;
        const maxLen = m.opts.arch === 'bert' ? 60 : 200;
        const seqs = sequences(7, [1, 9, maxLen, 33, 4], vocab);
        const poolings = m.opts.arch === 'bert' ? (['cls', 'mean'] as const) : (['eos', 'mean'] as const);
        for (const pooling of poolings) {
          const a = await cpu.encodeIds(seqs, { pooling });
          const b = await gpu.encodeIds(seqs, { pooling });
          for (let i = 0; i < seqs.length; i++) {
            const c = cosine(a.row(i), b.row(i));
            expect(c, `${pooling} row ${i}: cosine ${c}`).to.be.above(0.999);
          }
        }
        // last hidden states of one packed batch
        const cu = new Int32Array(seqs.length + 1);
        seqs.forEach((s, i) => (cu[i + 1] = cu[i] + s.length));
        const ids = Int32Array.from(seqs.flat());
        const hc = await cpu.native.hiddenStates(ids, cu);
        const hg = await gpu.native.hiddenStates(ids, cu);
        for (const x of hg) expect(Number.isFinite(x)).to.equal(true);
        const err = relError(Float64Array.from(hg), Float64Array.from(hc));
        expect(err, `hidden states normwise relative error ${err}`).to.be.below(m.hiddenTol ?? 3e-2);
      } finally {
        cpu.dispose();
        gpu.dispose();
      }
    });
  }

  it('batching does not change a GPU embedding (beyond bf16 GEMM rounding)', async () => {
    const dir = makeTinyModel(models[0].opts);
    const gpu = await Engine.load(dir, { device: gpuDevice });
    try {
      const seqs = sequences(8, [5, 40, 17, 90, 2, 33], gpu.config.native.vocab);
      const together = await gpu.encodeIds(seqs, { batchSize: 6 });
      const alone = await gpu.encodeIds(seqs, { batchSize: 1 });
      for (let i = 0; i < seqs.length; i++) expect(cosine(together.row(i), alone.row(i))).to.be.above(0.9995);
    } finally {
      gpu.dispose();
    }
  });

  it('a LoRA training step runs on the GPU and matches the CPU gradient direction', async () => {
    const dir = makeTinyModel(models[0].opts);
    const seqs = sequences(9, [6, 11, 8, 5], 100);
    const cu = new Int32Array(seqs.length + 1);
    seqs.forEach((s, i) => (cu[i + 1] = cu[i] + s.length));
    const ids = Int32Array.from(seqs.flat());
    const grads: Float32Array[] = [];
    for (const device of ['cpu', gpuDevice]) {
      const e = await Engine.load(dir, { device });
      try {
        e.native.addLora({ targets: ['q_proj', 'v_proj'], r: 4, alpha: 8, dropout: 0, seed: 5 });
        e.native.setTrainable('lora');
        // B = 0 after init gives A no gradient: set B to fixed non-zero values
        for (const p of e.native.params())
          if (p.name.endsWith('lora_B.weight')) e.native.setParam(p.name, p.data.map((_, i) => Math.sin(i + 1) * 0.1));
        const pooled = await e.native.forward(ids, cu, { pooling: 'eos', normalize: false, train: true, keep: true });
        const d = pooled.map((_, i) => Math.cos(i) * 0.01);
        await e.native.backward(d);
        const all = e.native.grads().map((g) => g.data);
        const flat = new Float32Array(all.reduce((n, g) => n + g.length, 0));
        let o = 0;
        for (const g of all) flat.set(g, o), (o += g.length);
        grads.push(flat);
      } finally {
        e.dispose();
      }
    }
    expect(grads[1].length).to.equal(grads[0].length);
    expect(cosine(grads[0], grads[1])).to.be.above(0.99);
  });
});
