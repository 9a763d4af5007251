// LLM reward scoring throughput on the CPU (`lmdr score` through engine.score: length-sorted,
// token-budget varlen batches, the LM head in vocabulary blocks) against the float64 plain-JS
// reference LM (test/reference/model.ts, one pair at a time), which also checks the scores; and
// against PyTorch + transformers (AutoModelForCausalLM, float32, padded batches) when
// `python3 -c "import torch, transformers"` works.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Engine } from '../../lib/engine.ts';
import { ReferenceModel } from '../../test/reference/model.ts';
import { benchModel } from './bench-model.ts';
import { bestOf } from '../timing.ts';
import type { Figure, Suite } from './types.ts';

const TORCH_SCRIPT = `
import json, sys, time, torch
from transformers import AutoModelForCausalLM
model_dir, pairs_file, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_grad_enabled(False)
m = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
pairs = [json.loads(l) for l in open(pairs_file)]
def run():
    out = []
    for i in range(0, len(pairs), batch):
        chunk = pairs[i:i + batch]
        seqs = [p["context_ids"] + p["target_ids"] for p in chunk]
        L = max(len(s) for s in seqs)
        ids = torch.zeros(len(seqs), L, dtype=torch.long); mask = torch.zeros(len(seqs), L, dtype=torch.long)
        for j, s in enumerate(seqs): ids[j, :len(s)] = torch.tensor(s); mask[j, :len(s)] = 1
        lp = torch.log_softmax(m(input_ids=ids, attention_mask=mask).logits.float(), -1)
        for j, p in enumerate(chunk):
            c, t = len(p["context_ids"]), len(p["target_ids"])
            out.append(sum(lp[j, c - 1 + k, p["target_ids"][k]].item() for k in range(t)))
    return out
run()
t0 = time.perf_counter(); out = run(); dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "sums": out}))
`;

export const scoreSuite: Suite = {
  name: 'score-cpu',
  needs: 'cpu',
  describe: 'lmdr score (LLM reward log-likelihoods) throughput of a generated decoder on the CPU',
  async run(ctx) {
    const model = benchModel(ctx.tmp, ctx.quick);
    const n = ctx.quick ? 32 : 256;
    const referencePairs = ctx.quick ? 2 : 4;
    const engine = await Engine.load(model.dir, { device: 'cpu' });
    const tok = engine.tokenizer!.hf;
    // context = a passage (<= 112 tokens), target = the first sentence of the next one (<= 16 tokens)
    const pairs = Array.from({ length: n }, (_, i) => ({
      context_ids: tok.encode(model.texts[i % model.texts.length], { add_special_tokens: true }).ids.slice(0, 112),
      target_ids: tok.encode(model.texts[(i + 1) % model.texts.length], { add_special_tokens: false }).ids.slice(0, 16),
    }));
    const input = path.join(ctx.tmp, 'score-pairs.jsonl');
    fs.writeFileSync(input, pairs.map((p) => JSON.stringify(p)).join('\n') + '\n');
    const tokens = pairs.reduce((s, p) => s + p.context_ids.length + p.target_ids.length, 0);
    let sums: number[] = [];
    let seconds: number;
    try {
      await engine.score({ input, output: path.join(ctx.tmp, 'warm.jsonl') });
      ctx.log(`lmdr score: ${n} pairs, ${tokens} tokens, ${model.shape}`);
      ({ seconds } = await bestOf(3, async () => {
        const out = path.join(ctx.tmp, 'scores.jsonl');
        await engine.score({ input, output: out });
        sums = fs.readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l).sum_logprob as number);
      }));
    } finally {
      engine.dispose();
    }
    const rate = tokens / seconds;
    ctx.log(`float64 JS reference: ${referencePairs} pairs`);
    const reference = new ReferenceModel(model.dir);
    const refPairs = pairs.slice(0, referencePairs);
    const refTokens = refPairs.reduce((s, p) => s + p.context_ids.length + p.target_ids.length, 0);
    const { seconds: refSeconds, result: refSums } = await bestOf(1, () => refPairs.map((p) =>
      reference.targetLogprobs([...p.context_ids, ...p.target_ids]).slice(p.context_ids.length - 1).reduce((a, b) => a + b, 0)));
    const worst = Math.max(...refSums.map((s, i) => Math.abs(s - sums[i]) / Math.max(1, Math.abs(s))));
    const figures: Figure[] = [{
      name: `score ${n} pairs (context <= 112, target <= 16 tokens)`, value: rate, unit: 'tokens/s', baseline: 'float64 JS reference LM, one pair at a time',
      baselineValue: refTokens / refSeconds, ratio: rate / (refTokens / refSeconds), check: `max relative |sum log p - reference| ${worst.toExponential(1)} on ${referencePairs} pairs`,
    }];
    const torch = spawnSync('python3', ['-c', 'import torch, transformers'], { stdio: 'ignore' });
    if (torch.status === 0) {
      ctx.log('PyTorch + transformers (float32, padded batches of 32)');
      const r = spawnSync('python3', ['-c', TORCH_SCRIPT, model.dir, input, '32'], { encoding: 'utf8', maxBuffer: 1 << 26 });
      if (r.status === 0) {
        const t = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { seconds: number; sums: number[] };
        const diff = Math.max(...t.sums.map((s, i) => Math.abs(s - sums[i]) / Math.max(1, Math.abs(s))));
        figures.push({ name: figures[0].name, value: rate, unit: 'tokens/s', baseline: 'PyTorch + transformers, float32, padded batches of 32', baselineValue: tokens / t.seconds, ratio: rate / (tokens / t.seconds), check: `max relative |sum log p - PyTorch| ${diff.toExponential(1)}` });
      } else ctx.log(`PyTorch baseline failed: ${r.stderr.trim().split('\n').at(-1)}`);
    } else ctx.log('PyTorch baseline skipped: python3 -c "import torch, transformers" fails here');
    return { settings: { model: model.shape, pairs: n, tokens }, figures };
  },
};
