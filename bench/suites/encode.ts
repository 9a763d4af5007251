// Encode throughput on the CPU: lmdr's f32 CPU backend against two baselines run on the same
// inputs in the same process: the float64 plain-JS reference model (test/reference/model.ts,
// one sequence at a time) and lmdr's own cpu-f64 backend. The reference also checks the output.
// Two models: the generated decoder (EOS pooling, text through its tokenizer) and a random T5
// encoder (issue 12's relative-position-bias encoder; mean pooling) fed the decoder tokenizer's
// ids of the same passages, so both see real token lengths.
import { Engine, type EncodeInput } from '../../lib/engine.ts';
import type { PoolingMode } from '../../lib/native.ts';
import { ReferenceModel } from '../../test/reference/model.ts';
import { makeTinyModel } from '../../test/helpers/tiny-models.ts';
import { benchModel } from './bench-model.ts';
import { bestOf } from '../timing.ts';
import type { Suite, SuiteContext } from './types.ts';

interface EncodeBench {
  dir: string;
  shape: string;
  pooling: PoolingMode;
  inputs: EncodeInput[]; // texts, or ids
  describeInputs: string; // "256 passages <= 128 tokens"
}

async function runEncode(ctx: SuiteContext, b: EncodeBench, referencePassages: number) {
  const maxLength = 128;
  const timeEngine = async (device: string, repeats: number) => {
    const engine = await Engine.load(b.dir, { device });
    try {
      const opts = { maxLength, pooling: b.pooling };
      const ids = engine.tokenize(b.inputs, opts);
      await engine.encode(b.inputs.slice(0, 4), opts); // warm-up
      const { seconds, result: out } = await bestOf(repeats, async () => (await engine.encode(b.inputs, opts)).data);
      return { tokens: ids.reduce((n, s) => n + s.length, 0), seconds, out, ids: ids.slice(0, referencePassages), dim: engine.dim };
    } finally {
      engine.dispose();
    }
  };
  ctx.log(`lmdr cpu (f32): ${b.describeInputs}, ${b.shape}`);
  const f32 = await timeEngine('cpu', 3);
  ctx.log('lmdr cpu-f64 backend');
  const f64 = await timeEngine('cpu-f64', 1);
  ctx.log(`float64 JS reference: ${referencePassages} passages`);
  const reference = new ReferenceModel(b.dir);
  const refTokens = f32.ids.reduce((n, ids) => n + ids.length, 0);
  let worst = 0;
  const { seconds: refSeconds, result: refEmbeddings } = await bestOf(1, () => f32.ids.map((ids) => reference.embed(ids, b.pooling as 'eos' | 'mean', true)));
  refEmbeddings.forEach((ref, i) => {
    let dot = 0;
    for (let h = 0; h < f32.dim; h++) dot += ref[h] * f32.out[i * f32.dim + h];
    worst = Math.max(worst, Math.abs(1 - dot));
  });
  const rate = f32.tokens / f32.seconds;
  const check = `cosine to the f64 reference >= ${(1 - worst).toFixed(6)} on ${referencePassages} passages`;
  return {
    settings: { model: b.shape, inputs: b.describeInputs, pooling: b.pooling, tokens: f32.tokens },
    figures: [
      { name: `encode ${b.describeInputs}`, value: rate, unit: 'tokens/s', baseline: 'float64 JS reference model, one sequence at a time', baselineValue: refTokens / refSeconds, ratio: rate / (refTokens / refSeconds), check },
      { name: `encode ${b.describeInputs}`, value: rate, unit: 'tokens/s', baseline: 'lmdr cpu-f64 backend (same batches)', baselineValue: f64.tokens / f64.seconds, ratio: rate / (f64.tokens / f64.seconds) },
    ],
  };
}

export const encodeSuite: Suite = {
  name: 'encode-cpu',
  needs: 'cpu',
  describe: 'encode throughput of a generated decoder (EOS pooling) on the CPU',
  async run(ctx) {
    const model = benchModel(ctx.tmp, ctx.quick);
    const passages = ctx.quick ? 32 : 256;
    return runEncode(ctx, {
      dir: model.dir, shape: model.shape, pooling: 'eos', inputs: model.texts.slice(0, passages), describeInputs: `${passages} passages <= 128 tokens`,
    }, ctx.quick ? 2 : 4);
  },
};

export const encodeT5Suite: Suite = {
  name: 'encode-cpu-t5',
  needs: 'cpu',
  describe: 'encode throughput of a random T5 encoder (relative position bias, gated-GELU, mean pooling) on the CPU',
  async run(ctx) {
    const model = benchModel(ctx.tmp, ctx.quick);
    const passages = ctx.quick ? 32 : 256;
    const sizes = ctx.quick ? { hidden: 64, layers: 2, heads: 4, intermediate: 256 } : { hidden: 256, layers: 4, heads: 8, intermediate: 1024 };
    const vocab = 4096;
    const dir = makeTinyModel({ arch: 't5', seed: 7, feedForwardProj: 'gated-gelu', vocab, relBuckets: 32, relMaxDistance: 128, ...sizes, dir: `${ctx.tmp}/t5${ctx.quick ? '-quick' : ''}` });
    // the decoder tokenizer's ids of the same passages (real lengths), folded into the T5 vocabulary
    const decoder = await Engine.load(model.dir, { device: 'cpu' });
    let inputs: EncodeInput[];
    try {
      inputs = decoder.tokenize(model.texts.slice(0, passages), { maxLength: 128, pooling: 'mean' }).map((ids) => ({ input_ids: ids.map((id) => id % vocab) }));
    } finally {
      decoder.dispose();
    }
    const shape = `t5 gated-gelu, d_model ${sizes.hidden}, ${sizes.layers} layers, ${sizes.heads} heads, d_ff ${sizes.intermediate}, 32 buckets, vocab ${vocab}`;
    return runEncode(ctx, { dir, shape, pooling: 'mean', inputs, describeInputs: `${passages} passages <= 128 tokens` }, ctx.quick ? 2 : 4);
  },
};
