// LLM reward scoring on the GPU (engine.scoreTokens, what `lmdr score` runs): log p(target |
// context) through the causal-LM head of a Qwen2.5-0.5B-shaped model (random bf16 weights, tied
// 151,936-word head), N pairs of a 224-token context and a 32-token target, vs PyTorch +
// transformers (AutoModelForCausalLM, bf16, SDPA: full logits, log_softmax, gather) on the same
// weights and ids in the same run; the two sides' mean log-probs are compared as a check.
// Usage: npx tsx bench/gpu/score.ts [--model DIR] [--pairs 1024] [--context 224] [--target 32] [--batch 32]
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
    pairs: { type: 'string', default: '1024' },
    context: { type: 'string', default: '224' },
    target: { type: 'string', default: '32' },
    batch: { type: 'string', default: '32' },
    repeats: { type: 'string', default: '2' },
  },
});
const gpuName = requireGpu();
const N = Number(values.pairs), C = Number(values.context), T = Number(values.target), batch = Number(values.batch);
const model = values.model ?? path.join(os.tmpdir(), 'lmdr-bench-qwen2.5-0.5b');
if (!fs.existsSync(path.join(model, 'config.json'))) torchBaseline(['make-model', '--out', model]);

const u = uniformRng(7);
const ids = (n: number) => Array.from({ length: n }, () => randInt(u, 0, 151643));
const pairs = Array.from({ length: N }, () => ({ context: { input_ids: ids(C) }, target: { input_ids: ids(T) } }));
const pairsFile = path.join(os.tmpdir(), 'lmdr-bench-score-pairs.jsonl');
fs.writeFileSync(pairsFile, pairs.map((p) => JSON.stringify({ context_ids: p.context.input_ids, target_ids: p.target.input_ids })).join('\n') + '\n');

// PyTorch first: lmdr's caching allocator keeps its GPU memory until the process ends
const torch = torchBaseline(['score', '--model', model, '--pairs', pairsFile, '--batch', String(batch), '--repeats', values.repeats!]);
const engine = await Engine.load(model, { device: 'cuda:0' });
let ours;
try {
  ours = await bestOf(Number(values.repeats), () => engine.scoreTokens(pairs, { maxTokens: batch * (C + T) }), { warmup: true });
} finally {
  engine.dispose();
}
const torchMeans = torch.means as number[];
let maxDiff = 0;
ours.result.forEach((s, i) => (maxDiff = Math.max(maxDiff, Math.abs(s.mean - torchMeans[i]))));
const tokens = N * (C + T);
const lmdrRate = tokens / ours.seconds, torchRate = tokens / Number(torch.seconds);
const command = `npx tsx bench/gpu/score.ts --pairs ${N} --context ${C} --target ${T} --batch ${batch}`;
appendResult('GPU LM scoring',
  '| benchmark | device | date | lmdr | baseline | speed-up | check | command |\n|---|---|---|---|---|---|---|---|\n',
  `| score ${N} pairs (${C}-token context + ${T}-token target), Qwen2.5-0.5B shape | ${gpuName} | ${today()} | ${lmdrRate.toFixed(0)} tokens/s | PyTorch ${torch.torch} + transformers, bf16 SDPA, full logits: ${torchRate.toFixed(0)} tokens/s | ${(lmdrRate / torchRate).toFixed(2)}x | max abs diff of mean log-prob ${maxDiff.toPrecision(2)} (bf16 both) | \`${command}\` |`);
