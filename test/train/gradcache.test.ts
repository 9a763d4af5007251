// GradCache: embedding in chunks without activations, then re-running each chunk with
// activations from its rows of dL/dE, gives the same loss and gradients as one whole-batch pass
// (dropout on: the masks are keyed by each sequence's index in the step).
import { expect } from 'chai';
import { Engine } from '../../lib/engine.ts';
import { engineBackbone } from '../../lib/train/backbone.ts';
import { Sampler, toTrainRecord } from '../../lib/train/data.ts';
import { contrastiveStep, type TrainBackbone } from '../../lib/train/trainer.ts';
import { normalRng } from '../helpers/rng.ts';
import { mappedPairs, maxAbs, maxAbsDiff, tinyModel } from './fixtures.ts';

describe('train: GradCache equivalence', function () {
  let engine: Engine;
  let backbone: TrainBackbone;
  const B = 3;
  const G = 3;
  const opts = { batchSize: B, groupSize: G, temperature: 0.05, similarity: 'cosine' as const };

  before(async () => {
    engine = await Engine.load(tinyModel(), { device: 'cpu' });
    backbone = engineBackbone(engine);
    engine.native.addLora({ targets: ['q_proj', 'v_proj', 'o_proj', 'up_proj', 'down_proj'], r: 4, alpha: 8, dropout: 0.1, seed: 3 });
    engine.native.setTrainable('lora');
    // B = 0 at init would zero every lora_A gradient: give both matrices random values.
    const rnd = normalRng(99);
    for (const p of engine.native.params()) engine.native.setParam(p.name, Float32Array.from(p.data, () => 0.3 * rnd()));
  });
  after(() => engine?.dispose());

  function packed() {
    const recs = mappedPairs(8, 5).map((r, i) => toTrainRecord(r, 'mem', i + 1));
    const batch = new Sampler(recs, B, G, 1).batch(0);
    const q = backbone.tokenize(batch.queries, 16, 'query: ');
    const p = backbone.tokenize(batch.passages, 24, '');
    const cu = new Int32Array(q.cuSeqlens.length + p.cuSeqlens.length - 1);
    cu.set(q.cuSeqlens);
    for (let i = 1; i < p.cuSeqlens.length; i++) cu[q.cuSeqlens.length - 1 + i] = q.ids.length + p.cuSeqlens[i];
    const ids = new Int32Array(q.ids.length + p.ids.length);
    ids.set(q.ids);
    ids.set(p.ids, q.ids.length);
    return { ids, cuSeqlens: cu };
  }

  async function gradsOf(chunkSize: number, dropoutSeed: number, recompute = false) {
    engine.native.zeroGrad();
    engine.native.setRecompute(recompute);
    const loss = await contrastiveStep(backbone, packed(), { ...opts, chunkSize }, dropoutSeed);
    engine.native.setRecompute(false);
    return { loss, grads: engine.native.grads() };
  }

  it('chunked and whole-batch steps give the same loss and LoRA gradients', async () => {
    const whole = await gradsOf(0, 17);
    expect(Number.isFinite(whole.loss) && whole.loss > 0).to.equal(true);
    for (const chunk of [1, 4, 5, 11]) {
      const chunked = await gradsOf(chunk, 17);
      expect(chunked.loss, `chunk ${chunk}`).to.be.closeTo(whole.loss, 1e-5 * Math.abs(whole.loss));
      whole.grads.forEach((g, i) => {
        const scale = maxAbs(g.data);
        expect(scale, g.name).to.be.greaterThan(0);
        expect(maxAbsDiff(chunked.grads[i].data, g.data) / scale, `${g.name}, chunk ${chunk}`).to.be.below(1e-4);
      });
    }
  });

  it('with per-layer recompute too', async () => {
    const whole = await gradsOf(0, 17);
    const chunked = await gradsOf(4, 17, true);
    whole.grads.forEach((g, i) => expect(maxAbsDiff(chunked.grads[i].data, g.data) / maxAbs(g.data), g.name).to.be.below(1e-4));
  });

  it('the check can fail: another dropout seed changes the gradients', async () => {
    const a = await gradsOf(0, 17);
    const b = await gradsOf(4, 18);
    const rel = Math.max(...a.grads.map((g, i) => maxAbsDiff(b.grads[i].data, g.data) / maxAbs(g.data)));
    expect(rel).to.be.above(1e-3);
  });
});
