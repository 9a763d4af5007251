// Both backends against golden outputs of Hugging Face transformers and PEFT
// (test/fixtures/make_golden.py): last hidden states and eos/cls/mean pooled embeddings of tiny
// random checkpoints of every architecture lmdr loads, and a PEFT LoRA adapter's embeddings and
// LoRA gradients. Fixtures of architectures lmdr does not load yet are listed as pending with
// that reason; with no fixtures at all the suite says "skipped: no fixtures".
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { Engine } from '../../lib/engine.ts';
import { supportedModelTypes } from '../../lib/model/config.ts';
import { lmHeadSources } from '../../lib/model/checkpoint.ts';
import { l2RelError, relError } from '../ops/harness.ts';
import { gpuDevice, itOnDevice } from './gpu.ts';

interface ModelGolden {
  model: string;
  model_type: string;
  hidden: number;
  sequences: { input_ids: number[]; last_hidden_state: number[]; pooled: Record<'eos' | 'cls' | 'mean', number[]>; target_logprobs?: number[] }[];
}

interface PeftGolden {
  base: string;
  sequences: { input_ids: number[]; pooled_eos: number[] }[];
  loss_weights: number[][];
  grads: Record<string, number[]>;
  /** the same pass under PyTorch's bf16 autocast: how far bf16 arithmetic alone moves each value */
  bf16_reference?: { pooled_eos: number[][]; grads: Record<string, number[]> };
}

const goldenDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/golden');
const fixtures = fs.existsSync(goldenDir)
  ? fs.readdirSync(goldenDir).filter((d) => fs.existsSync(path.join(goldenDir, d, 'expected.json'))).sort()
  : [];
const readJson = (name: string) => JSON.parse(fs.readFileSync(path.join(goldenDir, name, 'expected.json'), 'utf8'));

// CPU (float32 like the reference): max-abs error over max |expected|. CUDA (bf16 activations,
// rounded at every op): the normwise L2 error. On an H200 (2026-12-04) every architecture landed
// at 0.4-1.4% (bf16 keeps 8 bits; these tiny random models have large weights and two layers of
// rounding), so the bar is 2e-2; a wrong kernel is off by far more. The PEFT fixture's adapter
// moves the embeddings by 40-92% of their norm, so the adapted model's bf16 noise is larger: 0.7-3.5%
// on the H200 and the same figures under the SIMT emulator, where the adapter's own contribution
// (with minus without) is within 3-4% of the CPU's, i.e. at the base model's noise. Its fixed bar
// was 5e-2, and a LoRA gradient measured 5.06% on the H200 (run 4). So where the fixture carries
// PyTorch's own bf16-autocast pass of the same adapter (bf16_reference), each embedding's and each
// gradient's bar on the GPU is twice PyTorch's own bf16 error on that value (at least 2e-2):
// lmdr's bf16 backend may be at most twice as far from float32 as PyTorch's mixed precision is.
type ErrorFn = (a: Float64Array, b: Float64Array) => number;
const devices: { device: string; tol: number; peftTol: number; gradTol: number; err: ErrorFn }[] = [
  { device: 'cpu', tol: 1e-4, peftTol: 1e-4, gradTol: 1e-4, err: relError },
  { device: gpuDevice, tol: 2e-2, peftTol: 5e-2, gradTol: 5e-2, err: l2RelError },
];

/**
 * T5 on the GPU: its attention scores are not scaled by 1/sqrt(d), so bf16 rounding of q and k
 * moves the softmax more than in other architectures. The float64 reference with every
 * activation rounded to bf16 where the GPU stores one lands at 1.2-1.3% normwise error on the
 * t5-gated fixture (0.6-0.8% on t5), so the bar there is 2e-2 instead of 1e-2.
 */
function bf16Tolerance(modelType: string, device: string, tol: number): number {
  return device !== 'cpu' && modelType === 't5' ? 2e-2 : tol;
}

const packed = (seqs: number[][]) => {
  const cu = new Int32Array(seqs.length + 1);
  seqs.forEach((s, i) => (cu[i + 1] = cu[i] + s.length));
  return { ids: Int32Array.from(seqs.flat()), cu };
};

async function checkModel(dir: string, golden: ModelGolden, device: string, tol: number, err: ErrorFn): Promise<void> {
  const engine = await Engine.load(dir, { device });
  try {
    expect(engine.dim).to.equal(golden.hidden);
    for (const [i, s] of golden.sequences.entries()) {
      const ids = Int32Array.from(s.input_ids);
      const h = await engine.native.hiddenStates(ids, new Int32Array([0, ids.length]));
      const eh = err(Float64Array.from(h), Float64Array.from(s.last_hidden_state));
      expect(eh, `sequence ${i} (${ids.length} tokens): hidden states error ${eh}`).to.be.below(tol);
    }
    // the causal-LM head: log p(ids[t+1] | ids[..t]) (Engine.scoreTokens' op)
    if (golden.sequences.some((s) => Array.isArray(s.target_logprobs))) {
      await engine.native.loadLmHead(lmHeadSources(dir, engine.config));
      for (const [i, s] of golden.sequences.entries()) {
        if (!s.target_logprobs) continue;
        const lp = await engine.native.tokenLogprobs(Int32Array.from(s.input_ids), new Int32Array([0, s.input_ids.length]), new Int32Array([1]));
        const e = err(lp, Float64Array.from(s.target_logprobs));
        expect(e, `sequence ${i}: target log-probabilities error ${e}`).to.be.below(tol);
      }
    }
    for (const mode of ['eos', 'cls', 'mean'] as const) {
      const emb = await engine.encodeIds(golden.sequences.map((s) => s.input_ids), { pooling: mode });
      golden.sequences.forEach((s, i) => {
        const e = err(Float64Array.from(emb.row(i)), Float64Array.from(s.pooled[mode]));
        expect(e, `${mode} pooling, sequence ${i}: error ${e}`).to.be.below(tol);
      });
    }
  } finally {
    engine.dispose();
  }
}

async function checkPeft(dir: string, golden: PeftGolden, device: string, tol: number, gradTol: number, err: ErrorFn): Promise<void> {
  const engine = await Engine.load(path.join(goldenDir, golden.base), { device, adapter: dir });
  try {
    const seqs = golden.sequences.map((s) => s.input_ids);
    const emb = await engine.encodeIds(seqs, { pooling: 'eos' });
    const ref = device === 'cpu' ? undefined : golden.bf16_reference;
    // the bar of one value: fixed on the CPU (and for fixtures without a bf16 reference), else scaled by PyTorch's bf16 error
    const bar = (expected: number[], bf16: number[] | undefined, fixed: number) =>
      bf16 === undefined ? { bar: fixed, why: '' } : (() => {
        const spread = err(Float64Array.from(bf16), Float64Array.from(expected));
        return { bar: Math.max(2e-2, 2 * spread), why: ` (PyTorch bf16 autocast: ${spread.toFixed(4)})` };
      })();
    golden.sequences.forEach((s, i) => {
      const e = err(Float64Array.from(emb.row(i)), Float64Array.from(s.pooled_eos));
      const b = bar(s.pooled_eos, ref?.pooled_eos[i], tol);
      expect(e, `adapter embedding ${i}: error ${e}${b.why}`).to.be.below(b.bar);
    });
    // d/d(LoRA weights) of sum_i <w_i, e_i>: forward keeping activations, backward from w
    const model = engine.native;
    model.setTrainable('lora');
    model.zeroGrad();
    const { ids, cu } = packed(seqs);
    await model.forward(ids, cu, { pooling: 'eos', normalize: true, train: true, keep: true });
    await model.backward(Float32Array.from(golden.loss_weights.flat()));
    const grads = model.grads();
    const keys = Object.keys(golden.grads);
    expect(keys.length, 'fixture has LoRA gradients').to.be.above(0);
    for (const key of keys) {
      const suffix = key.replace(/^base_model\.model\./, '');
      const g = grads.find((t) => t.name === suffix || t.name.endsWith('.' + suffix));
      expect(g, `lmdr has a gradient for ${key} (lmdr names: ${grads.slice(0, 3).map((t) => t.name).join(', ')}, ...)`).to.not.equal(undefined);
      const e = err(Float64Array.from(g!.data), Float64Array.from(golden.grads[key]));
      const b = bar(golden.grads[key], ref?.grads[key], gradTol);
      expect(e, `gradient of ${key}: error ${e}${b.why}`).to.be.below(b.bar);
    }
    expect(grads.length, 'lmdr trains exactly the LoRA tensors PEFT trains').to.equal(keys.length);
  } finally {
    engine.dispose();
  }
}

describe('golden outputs from Hugging Face transformers and PEFT', function () {
  this.timeout(120_000);
  if (fixtures.length === 0) {
    it.skip('skipped: no fixtures (run python3 test/fixtures/make_golden.py on a host with torch)', () => {});
    return;
  }
  for (const name of fixtures) {
    const golden = readJson(name);
    const dir = path.join(goldenDir, name);
    if (Array.isArray(golden.loss_weights)) {
      for (const { device, peftTol, gradTol, err } of devices)
        itOnDevice(device, `${name} on ${device}: LoRA adapter embeddings and gradients match PEFT`, () =>
          checkPeft(dir, golden as PeftGolden, device, peftTol, gradTol, err));
      continue;
    }
    if (!Array.isArray(golden.sequences)) continue; // other fixture kinds are checked by their own tests
    if (!(supportedModelTypes as readonly string[]).includes(golden.model_type)) {
      it.skip(`${name}: model_type ${golden.model_type} is not supported by lmdr yet`, () => {});
      continue;
    }
    for (const { device, tol, err } of devices)
      itOnDevice(device, `${name} on ${device}: last hidden states and pooled embeddings`, () =>
        checkModel(dir, golden as ModelGolden, device, bf16Tolerance(golden.model_type, device, tol), err));
  }
});
