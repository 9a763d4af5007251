// Forward properties of the native model that need no reference implementation: float32 vs
// float64 backends, batching/packing invariance, LoRA initialisation (B = 0 changes nothing),
// and LoRA dropout masks that depend on the sequence keys only (stable under chunking).
// Correctness against the float64 reference model lives in test/reference/.
import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { native, type ForwardOptions } from '../../lib/native.ts';
import { load, maxAbsDiff, randomBatch, randomizeLoraB, sliceBatch, tiny } from './model-fixtures.ts';

const archs = [
  { label: 'qwen2', model: { arch: 'qwen2' as const, seed: 21 }, pooling: 'eos' as const },
  { label: 'llama + llama3 rope_scaling', model: { arch: 'llama' as const, seed: 22, ropeScaling: 'llama3' as const }, pooling: 'eos' as const },
  { label: 'bert', model: { arch: 'bert' as const, seed: 23 }, pooling: 'cls' as const },
];

describe('native model forward', function () {
  this.timeout(120_000);

  for (const a of archs) {
    it(`${a.label}: "cpu" (float32) agrees with "cpu-f64" to ~1e-5`, async () => {
      const t = tiny(a.model);
      const b = randomBatch(51, [9, 4, 15], t.info.native.vocab);
      const m32 = await load(t, 'cpu');
      const m64 = await load(t, 'cpu-f64');
      expect(m32.device).to.equal('cpu');
      expect(m64.device).to.equal('cpu-f64');
      for (const pooling of [a.pooling, 'mean'] as const) {
        const opts: ForwardOptions = { pooling, normalize: true };
        const e32 = await m32.forward(b.ids, b.cu, opts);
        const e64 = await m64.forward64(b.ids, b.cu, opts);
        expect(e32.length).to.equal(3 * t.info.native.hidden);
        expect(maxAbsDiff(e32, e64)).to.be.below(1e-5);
        // unit rows
        for (let s = 0; s < 3; s++) {
          let n = 0;
          for (let j = 0; j < m64.hidden; j++) n += e64[s * m64.hidden + j] ** 2;
          expect(Math.abs(n - 1)).to.be.below(1e-12);
        }
      }
      const h32 = await m32.hiddenStates(b.ids, b.cu);
      const h64 = await m64.hiddenStates(b.ids, b.cu);
      expect(h32.length).to.equal(b.ids.length * t.info.native.hidden);
      expect(maxAbsDiff(h32, h64)).to.be.below(1e-4);
      m32.dispose();
      m64.dispose();
    });

    it(`${a.label}: an embedding never depends on its batch`, async () => {
      const t = tiny(a.model);
      const m = await load(t);
      const b = randomBatch(52, [6, 13, 1, 8], t.info.native.vocab);
      const opts: ForwardOptions = { pooling: a.pooling, normalize: false };
      const together = await m.forward64(b.ids, b.cu, opts);
      const H = m.hidden;
      for (let s = 0; s < b.seqs; s++) {
        const one = sliceBatch(b, s, s + 1);
        const alone = await m.forward64(one.ids, one.cu, opts);
        expect(maxAbsDiff(alone, together.subarray(s * H, (s + 1) * H)), `sequence ${s}`).to.be.below(1e-12);
      }
      // and the sequences really differ (the check above can fail)
      expect(maxAbsDiff(together.subarray(0, H), together.subarray(H, 2 * H))).to.be.above(1e-3);
      m.dispose();
    });
  }

  it('tensors at unaligned byte offsets load exactly like aligned ones', async () => {
    const t = tiny({ arch: 'qwen2', seed: 26 });
    const file = t.sources[0].file;
    const shifted = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'lmdr-unaligned-')), 'model.safetensors');
    fs.writeFileSync(shifted, Buffer.concat([Buffer.from([1, 2, 3]), fs.readFileSync(file)]));
    const sources = t.sources.map((s) => ({ ...s, file: shifted, offset: s.offset + 3 }));
    const b = randomBatch(55, [4, 6], t.info.native.vocab);
    const opts: ForwardOptions = { pooling: 'eos', normalize: true };
    const a = await load(t, 'cpu');
    const u = await native().loadModel(t.info.native, sources, 'cpu');
    expect(Array.from(await u.forward(b.ids, b.cu, opts))).to.deep.equal(Array.from(await a.forward(b.ids, b.cu, opts)));
    a.dispose();
    u.dispose();
  });

  it('LoRA starts as the identity (B = 0) and its A is Kaiming-uniform from the seed', async () => {
    const t = tiny({ arch: 'qwen2', seed: 24 });
    const b = randomBatch(53, [5, 7], t.info.native.vocab);
    const opts: ForwardOptions = { pooling: 'eos', normalize: true };
    const base = await load(t);
    const plain = await base.forward64(b.ids, b.cu, opts);
    const m = await load(t);
    m.addLora({ targets: ['q_proj', 'down_proj'], r: 4, alpha: 16, dropout: 0.1, seed: 99 });
    m.setTrainable('lora');
    expect(maxAbsDiff(await m.forward64(b.ids, b.cu, opts), plain)).to.equal(0);
    const params = m.params();
    const names = params.map((p) => p.name);
    expect(names.slice(0, 4)).to.deep.equal([
      'layers.0.self_attn.q_proj.lora_A.weight', 'layers.0.self_attn.q_proj.lora_B.weight',
      'layers.0.mlp.down_proj.lora_A.weight', 'layers.0.mlp.down_proj.lora_B.weight',
    ]);
    const { hidden, intermediate } = t.info.native;
    const qA = params[0];
    expect(qA.shape).to.deep.equal([4, hidden]);
    expect(params[1].shape).to.deep.equal([t.info.native.heads * t.info.native.headDim, 4]);
    expect(params[2].shape).to.deep.equal([4, intermediate]);
    expect(params[1].data.every((x) => x === 0)).to.equal(true);
    const bound = 1 / Math.sqrt(hidden);
    expect(qA.data.every((x) => Math.abs(x) <= bound)).to.equal(true);
    expect(Math.max(...qA.data)).to.be.above(bound * 0.7);
    expect(Math.min(...qA.data)).to.be.below(-bound * 0.7);
    // same seed, same A; another seed, another A
    const again = await load(t);
    again.addLora({ targets: ['q_proj', 'down_proj'], r: 4, alpha: 16, dropout: 0.1, seed: 99 });
    again.setTrainable('lora');
    expect(Array.from(again.params()[0].data)).to.deep.equal(Array.from(qA.data));
    const other = await load(t);
    other.addLora({ targets: ['q_proj', 'down_proj'], r: 4, alpha: 16, dropout: 0.1, seed: 100 });
    other.setTrainable('lora');
    expect(maxAbsDiff(other.params()[0].data, qA.data)).to.be.above(1e-3);
    for (const x of [base, m, again, other]) x.dispose();
  });

  it('LoRA dropout: masks follow seqKeys, identical in one forward or split into chunks', async () => {
    const t = tiny({ arch: 'llama', seed: 25 });
    const m = await load(t);
    m.addLora({ targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], r: 4, alpha: 8, dropout: 0.5, seed: 7 });
    m.setTrainable('lora');
    randomizeLoraB(m, 8, 0.5);
    const b = randomBatch(54, [5, 9, 6], t.info.native.vocab);
    const keys = new Int32Array([40, 41, 42]);
    const train: ForwardOptions = { pooling: 'eos', normalize: false, train: true, dropoutSeed: 5 };
    const whole = await m.forward64(b.ids, b.cu, { ...train, seqKeys: keys });
    const H = m.hidden;
    const first = sliceBatch(b, 0, 1);
    const rest = sliceBatch(b, 1, 3);
    const a1 = await m.forward64(first.ids, first.cu, { ...train, seqKeys: keys.slice(0, 1) });
    const a2 = await m.forward64(rest.ids, rest.cu, { ...train, seqKeys: keys.slice(1, 3) });
    expect(maxAbsDiff(a1, whole.subarray(0, H))).to.be.below(1e-12);
    expect(maxAbsDiff(a2, whole.subarray(H))).to.be.below(1e-12);
    // the masks are real: another key, another seed, or eval mode change the output
    const otherKeys = await m.forward64(b.ids, b.cu, { ...train, seqKeys: new Int32Array([40, 50, 42]) });
    expect(maxAbsDiff(otherKeys.subarray(0, H), whole.subarray(0, H))).to.be.below(1e-12);
    expect(maxAbsDiff(otherKeys.subarray(H, 2 * H), whole.subarray(H, 2 * H))).to.be.above(1e-6);
    const otherSeed = await m.forward64(b.ids, b.cu, { ...train, seqKeys: keys, dropoutSeed: 6 });
    expect(maxAbsDiff(otherSeed, whole)).to.be.above(1e-6);
    const evalMode = await m.forward64(b.ids, b.cu, { pooling: 'eos', normalize: false });
    expect(maxAbsDiff(evalMode, whole)).to.be.above(1e-6);
    // eval mode has no dropout at all: deterministic regardless of keys
    const evalAgain = await m.forward64(b.ids, b.cu, { pooling: 'eos', normalize: false, dropoutSeed: 9, seqKeys: new Int32Array([1, 2, 3]) });
    expect(maxAbsDiff(evalAgain, evalMode)).to.equal(0);
    m.dispose();
  });
});
