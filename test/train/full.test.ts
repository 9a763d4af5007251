// --full: every base weight trains (BERT baselines). Output and checkpoints are plain HF model
// dirs under the source's tensor names; resume is exact here too.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { Engine } from '../../lib/engine.ts';
import { listCheckpoints } from '../../lib/train/checkpoint.ts';
import { readSafetensorsHeader, readTensorValues } from '../../lib/model/safetensors.ts';
import { makeTinyModel } from '../helpers/tiny-models.ts';
import { mappedPairs, maxAbsDiff, tmpDir, writeJsonl } from './fixtures.ts';

function weights(dir: string): Map<string, { dtype: string; values: Float64Array }> {
  const file = path.join(dir, 'model.safetensors');
  return new Map([...readSafetensorsHeader(file).tensors.values()].map((t) => [t.name, { dtype: t.dtype, values: readTensorValues(file, t) }]));
}

describe('train: full fine-tuning', function () {
  it('bert --full: HF model dir output, exact resume, the trained model loads and differs', async () => {
    const base = makeTinyModel({ arch: 'bert', tokenizer: true, seed: 3, bertPrefix: true });
    const data = writeJsonl(path.join(tmpDir(), 'train.jsonl'), mappedPairs(12, 8));
    const opts = { data, full: true, batchSize: 4, groupSize: 2, steps: 4, saveSteps: 2, lr: 1e-3, queryMaxLen: 16, passageMaxLen: 16, seed: 4 };
    const run = async (output: string, extra: object = {}) => {
      const e = await Engine.load(base, { device: 'cpu' });
      try {
        return await e.train({ ...opts, output, ...extra });
      } finally {
        e.dispose();
      }
    };
    const a = tmpDir('full-a');
    const sa = await run(a);
    const b = tmpDir('full-b');
    let killed = false;
    await run(b, { onStep: (r: { step: number }) => { if (r.step === 3) throw new Error('killed'); } }).catch(() => { killed = true; });
    expect(killed).to.equal(true);
    expect(listCheckpoints(b).map((c) => c.step)).to.deep.equal([2]);
    const sb = await run(b, { resume: true });
    expect(sb.losses).to.deep.equal(sa.losses.slice(2));

    // The output dir is the source dir's layout: config + tokenizer + weights under "bert." names.
    const src = weights(base);
    const wa = weights(a);
    const wb = weights(b);
    expect([...wa.keys()].sort()).to.deep.equal([...src.keys()].sort());
    for (const f of fs.readdirSync(base)) expect(fs.existsSync(path.join(a, f)), f).to.equal(true);
    let trained = 0;
    for (const [name, t] of wa) {
      expect(Array.from(wb.get(name)!.values), name).to.deep.equal(Array.from(t.values));
      if (maxAbsDiff(t.values, src.get(name)!.values) > 0) trained++;
    }
    expect(trained).to.be.greaterThan(20); // encoder weights, norms and embeddings all moved

    const embed = async (dir: string) => {
      const e = await Engine.load(dir, { device: 'cpu' });
      try {
        return (await e.encode(['the river', 'a king'], { maxLength: 16 })).data;
      } finally {
        e.dispose();
      }
    };
    expect(maxAbsDiff(await embed(a), await embed(base))).to.be.above(1e-4);
  });

  it('refuses to write over the model dir or another model dir, before training', async () => {
    const base = makeTinyModel({ arch: 'bert', tokenizer: true, seed: 3 });
    const data = writeJsonl(path.join(tmpDir(), 'train.jsonl'), mappedPairs(6, 8));
    const other = makeTinyModel({ arch: 'bert', tokenizer: true, seed: 4 });
    const e = await Engine.load(base, { device: 'cpu' });
    const attempt = async (output: string) => {
      try {
        await e.train({ data, output, full: true, batchSize: 2, groupSize: 2, steps: 1, queryMaxLen: 8, passageMaxLen: 8 });
        return 'no error';
      } catch (err) {
        return (err as Error).message;
      }
    };
    try {
      expect(await attempt(base)).to.equal(`--output ${base} is the model dir itself; --full writes a new model dir there, choose another --output`);
      expect(await attempt(other)).to.match(/already holds a training run \(or a model\)/);
    } finally {
      e.dispose();
    }
    expect(fs.readdirSync(base).sort()).to.deep.equal(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
  });

  it('rejects --full with --init-adapter', async () => {
    const base = makeTinyModel({ arch: 'bert', tokenizer: true, seed: 3 });
    const e = await Engine.load(base, { device: 'cpu' });
    try {
      await e.train({ data: 'x.jsonl', output: tmpDir(), full: true, initAdapter: 'a' });
      expect.fail('no error');
    } catch (err) {
      expect((err as Error).message).to.match(/^engine\.train: full and initAdapter exclude each other/); // the API's names
    } finally {
      e.dispose();
    }
  });
});
