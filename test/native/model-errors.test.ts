// Bad input reaching the native model gives one clear JS exception naming what is wrong.
import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { native, type NativeModel, type TensorSource } from '../../lib/native.ts';
import { load, randomBatch, tiny } from './model-fixtures.ts';

async function rejection(p: Promise<unknown> | (() => unknown)): Promise<Error> {
  try {
    if (typeof p === 'function') p();
    else await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error, none was raised');
}

describe('native model errors', function () {
  this.timeout(60_000);
  const t = tiny({ arch: 'qwen2', seed: 31 });
  const bert = tiny({ arch: 'bert', seed: 32, maxPositions: 16 });

  it('missing tensor: names it and its expected shape', async () => {
    const sources = t.sources.filter((s) => s.name !== 'layers.1.mlp.up_proj.weight');
    const err = await rejection(native().loadModel(t.info.native, sources, 'cpu'));
    expect(err.message).to.contain("'layers.1.mlp.up_proj.weight'");
    expect(err.message).to.contain(`[${t.info.native.intermediate},${t.info.native.hidden}]`);
  });

  it('wrong shape: names the tensor, its file, its shape and the expected one', async () => {
    const sources: TensorSource[] = t.sources.map((s) =>
      s.name === 'layers.0.self_attn.k_proj.bias' ? { ...s, shape: [s.shape[0] - 1] } : s);
    const err = await rejection(native().loadModel(t.info.native, sources, 'cpu'));
    const kv = t.info.native.kvHeads * t.info.native.headDim;
    expect(err.message).to.contain("'layers.0.self_attn.k_proj.bias'");
    expect(err.message).to.contain(`[${kv - 1}]`);
    expect(err.message).to.contain(`expected [${kv}]`);
  });

  it('byte range outside the file (truncated checkpoint) is refused, never read', async () => {
    const copy = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'lmdr-trunc-')), 'model.safetensors');
    const file = t.sources[0].file;
    // cut inside the tensor that ends last among those loaded (lm_head may follow it)
    const end = Math.max(...t.sources.map((s) => s.offset + 4 * s.shape.reduce((a, b) => a * b, 1)));
    fs.writeFileSync(copy, fs.readFileSync(file).subarray(0, end - 10));
    const sources = t.sources.map((s) => ({ ...s, file: copy }));
    const err = await rejection(native().loadModel(t.info.native, sources, 'cpu'));
    expect(err.message).to.contain(copy);
    expect(err.message).to.match(/outside the file/);
    const gone = await rejection(native().loadModel(t.info.native, t.sources.map((s) => ({ ...s, file: copy + '.nope' })), 'cpu'));
    expect(gone.message).to.contain('.nope');
  });

  it('unknown device and malformed config are clear errors', async () => {
    expect((await rejection(native().loadModel(t.info.native, t.sources, 'tpu'))).message).to.contain("'tpu'");
    const bad = { ...t.info.native, kvHeads: 3 };
    expect((await rejection(native().loadModel(bad, t.sources, 'cpu'))).message).to.match(/kvHeads 3/);
    expect((await rejection(() => native().loadModel({ ...t.info.native, hidden: 'x' as unknown as number }, t.sources, 'cpu'))).message)
      .to.contain('config.hidden');
  });

  describe('on a loaded model', () => {
    let m: NativeModel;
    before(async () => {
      m = await load(t, 'cpu');
    });
    after(() => m.dispose());

    it('token id outside the vocabulary: names the id and its position', async () => {
      const vocab = t.info.native.vocab;
      const ids = new Int32Array([1, 2, 3, 4, vocab, 5]);
      const err = await rejection(m.forward(ids, new Int32Array([0, 3, 6]), { pooling: 'eos', normalize: true }));
      expect(err.message).to.contain(`token id ${vocab}`);
      expect(err.message).to.contain('position 1 of sequence 1');
      expect((await rejection(m.forward(new Int32Array([-1]), new Int32Array([0, 1]), { pooling: 'eos', normalize: true }))).message)
        .to.contain('token id -1');
    });

    it('malformed cuSeqlens, seqKeys and dPooled', async () => {
      const ids = new Int32Array([1, 2, 3]);
      const opts = { pooling: 'eos' as const, normalize: true };
      expect((await rejection(m.forward(ids, new Int32Array([0, 2]), opts))).message).to.contain('ids holds 3');
      expect((await rejection(m.forward(ids, new Int32Array([0, 2, 2, 3]), opts))).message).to.contain('sequence 1 is empty');
      expect((await rejection(m.forward(ids, new Int32Array([0, 3]), { ...opts, seqKeys: new Int32Array([1, 2]) }))).message)
        .to.contain('seqKeys');
      expect((await rejection(() => m.forward(ids, new Int32Array([0, 3]), { ...opts, pooling: 'max' as 'eos' }))).message)
        .to.contain('opts.pooling');
      expect((await rejection(m.backward(new Float32Array(m.hidden)))).message).to.contain('keep: true');
      await m.forward(ids, new Int32Array([0, 3]), { ...opts, keep: true });
      expect((await rejection(m.backward(new Float32Array(2 * m.hidden)))).message).to.contain('expected [1,');
    });

    it('unknown LoRA target lists the valid module names', async () => {
      const err = await rejection(() => m.addLora({ targets: ['q_proj', 'qkv'], r: 4, alpha: 8, dropout: 0, seed: 1 }));
      expect(err.message).to.contain("'qkv'");
      for (const name of ['self_attn.q_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.down_proj']) expect(err.message).to.contain(name);
      // nothing half-attached: a valid spec still works afterwards
      expect(m.params()).to.have.length(0);
      expect((await rejection(() => m.setTrainable('lora'))).message).to.contain('addLora');
    });

    it('training calls in the wrong state', async () => {
      expect((await rejection(() => m.optimizerStep({ kind: 'sgd', lr: 1, beta1: 0, beta2: 0, eps: 0, weightDecay: 0, step: 1, gradScale: 1 }))).message)
        .to.contain('nothing trains');
      expect((await rejection(() => m.setParam('layers.0.nope.weight', new Float32Array(1)))).message).to.contain("'layers.0.nope.weight'");
      expect((await rejection(() => m.setParam('norm.weight', new Float32Array(3)))).message).to.contain(`[${m.hidden}]`);
      expect((await rejection(() => m.baseWeight('norm.bias', false))).message).to.contain("'norm.bias'");
    });

    it('a second call while one is in flight is refused, and the model stays usable', async () => {
      // long enough (attention is quadratic) that the first call is surely still running
      const b = randomBatch(61, [1500, 1500], t.info.native.vocab);
      const opts = { pooling: 'eos' as const, normalize: true };
      const first = m.forward(b.ids, b.cu, opts);
      const sync = rejection(() => m.params());
      const second = rejection(m.forward(b.ids, b.cu, opts));
      expect((await sync).message).to.contain('still running');
      expect((await second).message).to.contain('still running');
      const out = await first;
      expect(out.length).to.equal(2 * m.hidden);
      expect(await m.forward(b.ids, b.cu, opts)).to.deep.equal(out);
    });
  });

  it('bert: a sequence longer than max_position_embeddings', async () => {
    const m = await load(bert, 'cpu');
    const b = randomBatch(62, [5, 17], bert.info.native.vocab);
    const err = await rejection(m.forward(b.ids, b.cu, { pooling: 'cls', normalize: true }));
    expect(err.message).to.contain('sequence 1 has 17 tokens');
    expect(err.message).to.contain('16 positions');
    m.dispose();
    expect((await rejection(m.forward(b.ids, b.cu, { pooling: 'cls', normalize: true }))).message).to.contain('disposed');
  });
});
