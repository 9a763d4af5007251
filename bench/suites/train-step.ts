// One contrastive training step on the CPU (LoRA r 16 on every projection, InfoNCE over
// in-batch + hard negatives), in tokens/s. Baseline: the same step on the whole batch at
// once; lmdr runs it with GradCache chunking, and chunking + per-layer recompute (the
// memory-saving forms), so the ratios are what the memory savings cost.
import fs from 'node:fs';
import path from 'node:path';
import { Engine } from '../../lib/engine.ts';
import { buildDataset, loadAddresses } from '../../lib/demo/sotu-dataset.ts';
import { benchModel } from './bench-model.ts';
import type { Suite } from './types.ts';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export const trainStepSuite: Suite = {
  name: 'train-step-cpu',
  needs: 'cpu',
  describe: 'one LoRA InfoNCE training step (tokens/s): whole batch vs GradCache chunks',
  async run(ctx) {
    const model = benchModel(ctx.tmp, ctx.quick);
    const batchSize = ctx.quick ? 4 : 16;
    const groupSize = 4;
    const steps = ctx.quick ? 3 : 5; // the first is a warm-up and not counted
    const sequences = batchSize * (1 + groupSize);
    const chunk = Math.ceil(sequences / 4);
    const data = path.join(ctx.tmp, 'train.jsonl');
    const examples = buildDataset(loadAddresses([2001, 2021]), { maxTrainQueries: batchSize * steps * 2, seed: 3 }).train;
    fs.writeFileSync(data, examples.map((e) => JSON.stringify(e)).join('\n') + '\n');

    const measure = async (label: string, chunkSize: number, recompute: boolean) => {
      ctx.log(`${label}: ${steps} steps of ${batchSize} queries x ${groupSize} passages`);
      const engine = await Engine.load(model.dir, { device: 'cpu' });
      const rates: number[] = [];
      try {
        await engine.train({
          data, output: path.join(ctx.tmp, `train-${label.replace(/\W+/g, '-')}`), steps, batchSize, groupSize,
          loraR: 16, loraAlpha: 32, chunkSize, recompute, queryMaxLen: 64, passageMaxLen: 128, saveSteps: 0,
          lr: 1e-4, device: 'cpu', onStep: (r) => { if (r.step > 1) rates.push(r.tokens_per_s); },
        });
      } finally {
        engine.dispose();
      }
      return median(rates);
    };
    const whole = await measure('whole batch', 0, false);
    const chunked = await measure(`GradCache chunks of ${chunk}`, chunk, false);
    const recompute = await measure(`GradCache chunks of ${chunk} + recompute`, chunk, true);
    const baseline = `the same step on the whole batch (${sequences} sequences at once)`;
    return {
      settings: { model: model.shape, batchSize, groupSize, loraR: 16, measuredSteps: steps - 1, chunk },
      figures: [
        { name: `train step, GradCache chunks of ${chunk}`, value: chunked, unit: 'tokens/s', baseline, baselineValue: whole, ratio: chunked / whole },
        { name: `train step, chunks of ${chunk} + recompute`, value: recompute, unit: 'tokens/s', baseline, baselineValue: whole, ratio: recompute / whole },
      ],
    };
  },
};
