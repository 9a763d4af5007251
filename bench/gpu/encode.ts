// Encode throughput on a Qwen2.5-0.5B-shaped model (hidden 896, 24 layers, 14/2 heads,
// intermediate 4864, vocab 151936, random bf16 weights), 256-token passages, EOS pooling:
// lmdr on cuda:0 vs PyTorch + transformers (bf16, SDPA) on the same weights, same run.
// Usage: npx tsx bench/gpu/encode.ts [--model DIR] [--passages 2048] [--length 256] [--batch 256] [--lmdr-only]
// (--lmdr-only: no baseline and no RESULTS.md row, e.g. under LMDR_CUDA_PROFILE=1)
// (without --model the random model is created once under $TMPDIR/lmdr-bench-qwen2.5-0.5b).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Engine } from '../../lib/engine.ts';
import { uniformRng, randInt } from '../../test/helpers/rng.ts';
import { appendResult, requireGpu, today, torchBaseline } from './common.ts';
import { bestOf } from '../timing.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    passages: { type: 'string', default: '2048' },
    length: { type: 'string', default: '256' },
    batch: { type: 'string', default: '256' },
    repeats: { type: 'string', default: '2' },
    'lmdr-only': { type: 'boolean', default: false },
  },
});
const gpuName = requireGpu();
const N = Number(values.passages), L = Number(values.length), batch = Number(values.batch), repeats = Number(values.repeats);
const model = values.model ?? path.join(os.tmpdir(), 'lmdr-bench-qwen2.5-0.5b');
if (!fs.existsSync(path.join(model, 'config.json'))) torchBaseline(['make-model', '--out', model]);

const u = uniformRng(1);
const seqs = Array.from({ length: N }, () => {
  const s = Array.from({ length: L }, () => randInt(u, 0, 151643));
  s[L - 1] = 151643;
  return s;
});
const engine = await Engine.load(model, { device: 'cuda:0' });
const lmdr = await bestOf(repeats, () => engine.encodeIds(seqs, { pooling: 'eos', batchSize: batch, maxTokens: batch * L }), { warmup: true });
engine.dispose();
if (values['lmdr-only']) {
  process.stdout.write(`lmdr encode: ${(N / lmdr.seconds).toFixed(0)} passages/s (${N} x ${L} tokens, batch ${batch}), no baseline run\n`);
  process.exit(0);
}
const torch = torchBaseline(['encode', '--model', model, '--passages', String(N), '--length', String(L), '--batch', String(batch), '--repeats', String(repeats)]);
const lmdrRate = N / lmdr.seconds, torchRate = Number(torch.passages_per_s);
const command = `npx tsx bench/gpu/encode.ts --passages ${N} --length ${L} --batch ${batch}`;
appendResult('GPU encode throughput',
  '| benchmark | device | date | lmdr | baseline | speed-up | command |\n|---|---|---|---|---|---|---|\n',
  `| encode, Qwen2.5-0.5B shape, ${N} x ${L}-token passages, batch ${batch} | ${gpuName} | ${today()} | ${lmdrRate.toFixed(0)} passages/s | PyTorch ${torch.torch} + transformers, bf16, SDPA: ${torchRate.toFixed(0)} passages/s | ${(lmdrRate / torchRate).toFixed(2)}x | \`${command}\` |`);
