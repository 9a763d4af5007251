// One LoRA InfoNCE training step on a Qwen2.5-0.5B-shaped model (random bf16 weights): LoRA r 32,
// alpha 64, dropout 0.1 on every linear module of attention and MLP; 32 queries x 8 passages
// (1 positive + 7 hard negatives), 64-token queries and 256-token passages, EOS pooling, cosine
// / 0.02, in-batch + hard negatives, AdamW. lmdr (contrastiveStep on the whole batch + AdamW)
// vs PyTorch + PEFT (transformers bf16 SDPA, adapters in fp32, torch.optim.AdamW) on the same
// weights and batch shape, same run. Reports tokens/s, the ratio, and each side's MFU.
// Usage: npx tsx bench/gpu/train-step.ts [--model DIR] [--batch 32] [--group 8] [--steps 4] [--lmdr-only]
// (--lmdr-only: no baseline and no RESULTS.md row, e.g. under LMDR_CUDA_PROFILE=1)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Engine } from '../../lib/engine.ts';
import { addLora } from '../../lib/adapters/peft.ts';
import { contrastiveStep, type TrainBackbone } from '../../lib/train/trainer.ts';
import { uniformRng, randInt } from '../../test/helpers/rng.ts';
import { appendResult, requireGpu, today, torchBaseline } from './common.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    batch: { type: 'string', default: '32' },
    group: { type: 'string', default: '8' },
    'query-length': { type: 'string', default: '64' },
    'passage-length': { type: 'string', default: '256' },
    steps: { type: 'string', default: '4' },
    'lmdr-only': { type: 'boolean', default: false },
  },
});
const gpuName = requireGpu();
const B = Number(values.batch), G = Number(values.group), Lq = Number(values['query-length']), Lp = Number(values['passage-length']);
const steps = Number(values.steps);
const model = values.model ?? path.join(os.tmpdir(), 'lmdr-bench-qwen2.5-0.5b');
if (!fs.existsSync(path.join(model, 'config.json'))) torchBaseline(['make-model', '--out', model]);
const targets = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

const EOS = 151643;
const u = uniformRng(5);
const seq = (L: number) => {
  const s = Array.from({ length: L }, () => randInt(u, 0, EOS));
  s[L - 1] = EOS;
  return s;
};
const seqs = [...Array.from({ length: B }, () => seq(Lq)), ...Array.from({ length: B * G }, () => seq(Lp))];
const cuSeqlens = new Int32Array(seqs.length + 1);
seqs.forEach((s, i) => (cuSeqlens[i + 1] = cuSeqlens[i] + s.length));
const packed = { ids: Int32Array.from(seqs.flat()), cuSeqlens };
const tokens = packed.ids.length;

// PyTorch first: lmdr's caching allocator keeps its GPU memory until the process ends
const torch = values['lmdr-only'] ? undefined : torchBaseline(['train-step', '--model', model, '--batch', String(B), '--group', String(G),
  '--query-length', String(Lq), '--passage-length', String(Lp), '--steps', String(steps)]);
const engine = await Engine.load(model, { device: 'cuda:0' });
const times: number[] = [];
let loss = NaN;
try {
  addLora(engine.native, { targets, r: 32, alpha: 64, dropout: 0.1, seed: 1 });
  engine.native.setTrainable('lora');
  const backbone = { model: engine.native, pooling: 'eos' } as TrainBackbone;
  for (let step = 1; step <= steps + 1; step++) { // step 1 is a warm-up
    const t0 = process.hrtime.bigint();
    loss = await contrastiveStep(backbone, packed, { batchSize: B, groupSize: G, temperature: 0.02, similarity: 'cosine', chunkSize: 0 }, step);
    const norm = Math.sqrt(engine.native.gradSumSquares());
    engine.native.optimizerStep({ kind: 'adamw', lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step, gradScale: norm > 1 ? 1 / norm : 1 });
    engine.native.zeroGrad();
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    if (step > 1) times.push(s);
    process.stderr.write(`lmdr step ${step}: loss ${loss.toFixed(4)}, ${s.toFixed(3)} s\n`);
  }
} finally {
  engine.dispose();
}
if (!Number.isFinite(loss)) throw new Error(`lmdr's loss is ${loss}`);
const lmdrS = [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)];
if (!torch) {
  process.stdout.write(`lmdr train step: ${(tokens / lmdrS).toFixed(0)} tokens/s, ${lmdrS.toFixed(3)} s/step, no baseline run\n`);
  process.exit(0);
}
const torchS = Number(torch.seconds);
const flops = Number(torch.flops_per_step), peak = Number(torch.peak_tflops) * 1e12;
const mfu = (s: number) => `${((flops / s / peak) * 100).toFixed(1)}% MFU`;
const command = `npx tsx bench/gpu/train-step.ts --batch ${B} --group ${G} --steps ${steps}`;
appendResult('GPU LoRA training step',
  '| benchmark | device | date | lmdr | baseline | speed-up | command |\n|---|---|---|---|---|---|---|\n',
  `| LoRA r32 InfoNCE step, Qwen2.5-0.5B shape, ${B} queries x ${G} passages (${Lq}/${Lp} tokens, ${tokens} tokens/step), whole batch | ${gpuName} | ${today()} | ${(tokens / lmdrS).toFixed(0)} tokens/s, ${lmdrS.toFixed(3)} s/step, ${mfu(lmdrS)} | PyTorch ${torch.torch} + PEFT ${torch.peft}, bf16 SDPA: ${(tokens / torchS).toFixed(0)} tokens/s, ${torchS.toFixed(3)} s/step, ${mfu(torchS)} (loss ${Number(torch.loss).toFixed(3)} vs lmdr ${loss.toFixed(3)}) | ${(torchS / lmdrS).toFixed(2)}x | \`${command}\` |`);
