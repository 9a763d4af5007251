// lmdr merge and adapters at inference: a merged model embeds like base + adapter; the merged
// dir keeps the HF layout, names and dtypes; both PEFT key forms load.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { main } from '../../lib/cli/main.ts';
import { ADAPTER_WEIGHTS, readAdapterTensors, writeAdapter } from '../../lib/adapters/peft.ts';
import { Engine } from '../../lib/engine.ts';
import { readSafetensorsHeader, readTensorValues, writeSafetensors } from '../../lib/model/safetensors.ts';
import { normalRng } from '../helpers/rng.ts';
import { makeTinyModel, type TinyArch } from '../helpers/tiny-models.ts';
import { MERGE_MANIFEST } from '../../lib/merge.ts';
import { maxAbs, maxAbsDiff, tmpDir } from './fixtures.ts';

const texts = ['the river flows to the ocean', 'a king and a queen', 'how does iron grow ?', 'blue light', 'old stone bridge'];

async function embed(modelDir: string, adapter?: string): Promise<Float32Array> {
  const e = await Engine.load(modelDir, { device: 'cpu', adapter });
  try {
    return (await e.encode(texts, { maxLength: 32 })).data;
  } finally {
    e.dispose();
  }
}

/** A random PEFT adapter for `modelDir` on `targets`. */
async function randomAdapter(modelDir: string, targets: string[], seed: number): Promise<string> {
  const dir = tmpDir('merge-adapter');
  const e = await Engine.load(modelDir, { device: 'cpu' });
  try {
    e.native.addLora({ targets, r: 4, alpha: 12, dropout: 0.1, seed: 1 });
    e.native.setTrainable('lora');
    const rnd = normalRng(seed);
    const params = e.native.params().map((p) => ({ ...p, data: Float32Array.from(p.data, () => 0.1 * rnd()) }));
    writeAdapter(dir, { r: 4, alpha: 12, dropout: 0.1, targets, baseModel: modelDir }, params);
  } finally {
    e.dispose();
  }
  return dir;
}

async function merge(modelDir: string, adapter: string): Promise<string> {
  const out = path.join(tmpDir('merged'), 'model');
  const code = await main(['merge', '--model', modelDir, '--adapter', adapter, '--output', out]);
  expect(code).to.equal(0);
  return out;
}

function tensorsOf(dir: string) {
  const out = new Map<string, { file: string; dtype: string; shape: number[]; values: Float64Array }>();
  for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.safetensors'))) {
    for (const t of readSafetensorsHeader(path.join(dir, f)).tensors.values()) {
      out.set(t.name, { file: f, dtype: t.dtype, shape: t.shape, values: readTensorValues(path.join(dir, f), t) });
    }
  }
  return out;
}

describe('train: merge and adapters at inference', function () {
  const cases: { arch: TinyArch; targets: string[]; bertPrefix?: boolean }[] = [
    { arch: 'qwen2', targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] },
    { arch: 'llama', targets: ['q_proj', 'v_proj', 'down_proj'] },
    { arch: 'bert', targets: ['query', 'value', 'dense'], bertPrefix: true },
  ];
  for (const c of cases) {
    it(`${c.arch}: merged model embeds like base + adapter (1e-5); untouched tensors are copied exactly`, async () => {
      const base = makeTinyModel({ arch: c.arch, tokenizer: true, seed: 11, bertPrefix: c.bertPrefix });
      const adapter = await randomAdapter(base, c.targets, 5);
      const merged = await merge(base, adapter);
      const plain = await embed(base);
      const withAdapter = await embed(base, adapter);
      const fromMerged = await embed(merged);
      expect(maxAbsDiff(withAdapter, plain)).to.be.above(1e-3); // the adapter matters
      expect(maxAbsDiff(fromMerged, withAdapter)).to.be.below(1e-5);

      // Same files (config, tokenizer), same HF names, shapes and dtypes.
      expect(fs.readdirSync(merged).filter((f) => f !== MERGE_MANIFEST).sort()).to.deep.equal(fs.readdirSync(base).sort());
      expect(fs.readFileSync(path.join(merged, 'config.json'), 'utf8')).to.equal(fs.readFileSync(path.join(base, 'config.json'), 'utf8'));
      const before = tensorsOf(base);
      const after = tensorsOf(merged);
      expect([...after.keys()].sort()).to.deep.equal([...before.keys()].sort());
      const lora = readAdapterTensors(adapter);
      let changed = 0;
      for (const [name, t] of before) {
        const m = after.get(name)!;
        expect([m.dtype, m.shape]).to.deep.equal([t.dtype, t.shape]);
        const canonical = c.arch === 'bert' ? name.replace(/^bert\./, '') : name.replace(/^model\./, '');
        const A = lora.get(canonical.replace(/\.weight$/, '.lora_A.weight'));
        const B = lora.get(canonical.replace(/\.weight$/, '.lora_B.weight'));
        if (!A || !B) {
          expect(Array.from(m.values), name).to.deep.equal(Array.from(t.values));
          continue;
        }
        // W + (alpha / r) B A in float64 here, rounded to F32 by the file
        changed++;
        const [out, inF] = t.shape;
        const want = new Float64Array(out * inF);
        for (let o = 0; o < out; o++) for (let i = 0; i < inF; i++) {
          let s = 0;
          for (let k = 0; k < 4; k++) s += B.data[o * 4 + k] * A.data[k * inF + i];
          want[o * inF + i] = t.values[o * inF + i] + 3 * s;
        }
        expect(maxAbsDiff(m.values, want) / maxAbs(want), name).to.be.below(1e-6);
      }
      expect(changed).to.be.greaterThan(c.targets.length);
    });
  }

  // (a merge killed at any point: test/train/merge-safety.test.ts kills real `lmdr merge` processes)

  it('a BF16 sharded model merges into BF16 shards under the same index', async () => {
    const base = makeTinyModel({ arch: 'qwen2', tokenizer: true, seed: 12, dtype: 'BF16', sharded: true });
    const adapter = await randomAdapter(base, ['q_proj', 'down_proj'], 6);
    const merged = await merge(base, adapter);
    const before = tensorsOf(base);
    const after = tensorsOf(merged);
    for (const [name, t] of before) expect([after.get(name)!.dtype, after.get(name)!.file], name).to.deep.equal([t.dtype, t.file]);
    const index = JSON.parse(fs.readFileSync(path.join(merged, 'model.safetensors.index.json'), 'utf8'));
    expect(index.weight_map).to.deep.equal(JSON.parse(fs.readFileSync(path.join(base, 'model.safetensors.index.json'), 'utf8')).weight_map);
    // bf16 rounding of the merged weights only: embeddings stay close
    expect(maxAbsDiff(await embed(merged), await embed(base, adapter))).to.be.below(5e-2);
  });

  it('adapters written with base_model.model.model.<path> keys (PEFT over a CausalLM) load the same', async () => {
    const base = makeTinyModel({ arch: 'qwen2', tokenizer: true, seed: 13 });
    const adapter = await randomAdapter(base, ['q_proj', 'up_proj'], 7);
    const causal = tmpDir('causal-adapter');
    fs.copyFileSync(path.join(adapter, 'adapter_config.json'), path.join(causal, 'adapter_config.json'));
    const tensors = [...readAdapterTensors(adapter)].map(([k, t]) => ({ name: `base_model.model.model.${k}`, dtype: 'F32' as const, shape: t.shape, data: t.data }));
    writeSafetensors(path.join(causal, ADAPTER_WEIGHTS), tensors);
    expect(Array.from(await embed(base, causal))).to.deep.equal(Array.from(await embed(base, adapter)));
  });
});
