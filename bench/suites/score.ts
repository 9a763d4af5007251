// LLM reward scoring throughput on the CPU (`lmdr score` through engine.score: length-sorted,
// token-budget varlen batches, the LM head in vocabulary blocks) against the float64 plain-JS
// reference LM (test/reference/model.ts, one pair at a time), which also checks the scores; and
// against PyTorch eager float32 (bench/cpu/torch_peer.py's Qwen2 forward + LM head, length-sorted
// padded batches of 32, 2 threads like lmdr here) when a python3 imports torch.
import os from 'node:os';
import fs from 'node:fs';
import path from 'node:path';
import { Engine } from '../../lib/engine.ts';
import { ReferenceModel } from '../../test/reference/model.ts';
import { benchModel } from './bench-model.ts';
import { bestOf } from '../timing.ts';
import { pythonWith, pythonWorker, workerEnv } from '../cpu/workers.ts';
import type { Figure, Suite } from './types.ts';

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
    const { python, reason } = pythonWith('torch');
    if (python) {
      const threads = Number(process.env.LMDR_NUM_THREADS ?? os.availableParallelism());
      ctx.log(`PyTorch eager float32 (${python}, ${threads} threads, length-sorted padded batches of 32)`);
      const peer = pythonWorker('torch', python, 'bench/cpu/torch_peer.py', workerEnv('default', threads, true));
      try {
        const out = path.join(ctx.tmp, 'torch-scores.json');
        const info = await peer.request<{ torch: string }>({ cmd: 'setup', task: 'score', model: model.dir, pairs: input, batch: 32, out, threads });
        const peerSums = JSON.parse(fs.readFileSync(out, 'utf8')) as number[];
        const diff = Math.max(...peerSums.map((s, i) => Math.abs(s - sums[i]) / Math.max(1, Math.abs(s))));
        if (!(diff < 1e-3)) throw new Error(`PyTorch's log-likelihoods differ from lmdr's by ${diff} (relative): not timed`);
        let best = Infinity;
        for (let r = 0; r < 3; r++) best = Math.min(best, (await peer.request<{ seconds: number }>({ cmd: 'run' })).seconds);
        figures.push({ name: figures[0].name, value: rate, unit: 'tokens/s', baseline: `PyTorch ${info.torch} eager float32, ${threads} threads, padded batches of 32 (best of 3)`, baselineValue: tokens / best, ratio: rate / (tokens / best), check: `max relative |sum log p - PyTorch| ${diff.toExponential(1)}` });
      } catch (err) {
        ctx.log(`PyTorch baseline failed: ${(err as Error).message}`);
      } finally {
        await peer.close();
      }
    } else ctx.log(`PyTorch baseline skipped: ${reason}`);
    return { settings: { model: model.shape, pairs: n, tokens }, figures };
  },
};
