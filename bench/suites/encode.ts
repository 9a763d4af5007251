// Encode throughput on the CPU: lmdr's f32 CPU backend against two baselines run on the same
// inputs in the same process: the float64 plain-JS reference model (test/reference/model.ts,
// one sequence at a time) and lmdr's own cpu-f64 backend. The reference also checks the output.
import { Engine } from '../../lib/engine.ts';
import { ReferenceModel } from '../../test/reference/model.ts';
import { benchModel } from './bench-model.ts';
import { bestOf } from '../timing.ts';
import type { Suite } from './types.ts';

export const encodeSuite: Suite = {
  name: 'encode-cpu',
  needs: 'cpu',
  describe: 'encode throughput of a generated decoder (EOS pooling) on the CPU',
  async run(ctx) {
    const model = benchModel(ctx.tmp, ctx.quick);
    const passages = ctx.quick ? 32 : 256;
    const referencePassages = ctx.quick ? 2 : 4;
    const maxLength = 128;
    const texts = model.texts.slice(0, passages);

    const timeEngine = async (device: string, repeats: number) => {
      const engine = await Engine.load(model.dir, { device });
      try {
        const tokens = engine.tokenize(texts, { maxLength }).reduce((n, s) => n + s.length, 0);
        await engine.encode(texts.slice(0, 4), { maxLength }); // warm-up
        const { seconds, result: out } = await bestOf(repeats, async () => (await engine.encode(texts, { maxLength })).data);
        return { tokens, seconds, out, ids: engine.tokenize(texts.slice(0, referencePassages), { maxLength }), dim: engine.dim };
      } finally {
        engine.dispose();
      }
    };
    ctx.log(`lmdr cpu (f32): ${passages} passages of up to ${maxLength} tokens, ${model.shape}`);
    const f32 = await timeEngine('cpu', 3);
    ctx.log('lmdr cpu-f64 backend');
    const f64 = await timeEngine('cpu-f64', 1);
    ctx.log(`float64 JS reference: ${referencePassages} passages`);
    const reference = new ReferenceModel(model.dir);
    const refTokens = f32.ids.reduce((n, ids) => n + ids.length, 0);
    let worst = 0;
    const { seconds: refSeconds, result: refEmbeddings } = await bestOf(1, () => f32.ids.map((ids) => reference.embed(ids, 'eos', true)));
    refEmbeddings.forEach((ref, i) => {
      let dot = 0;
      for (let h = 0; h < f32.dim; h++) dot += ref[h] * f32.out[i * f32.dim + h];
      worst = Math.max(worst, Math.abs(1 - dot));
    });
    const rate = f32.tokens / f32.seconds;
    const check = `cosine to the f64 reference >= ${(1 - worst).toFixed(6)} on ${referencePassages} passages`;
    return {
      settings: { model: model.shape, passages, maxLength, tokens: f32.tokens },
      figures: [
        { name: `encode ${passages} passages <= ${maxLength} tokens`, value: rate, unit: 'tokens/s', baseline: 'float64 JS reference model, one sequence at a time', baselineValue: refTokens / refSeconds, ratio: rate / (refTokens / refSeconds), check },
        { name: `encode ${passages} passages <= ${maxLength} tokens`, value: rate, unit: 'tokens/s', baseline: 'lmdr cpu-f64 backend (same batches)', baselineValue: f64.tokens / f64.seconds, ratio: rate / (f64.tokens / f64.seconds) },
      ],
    };
  },
};
