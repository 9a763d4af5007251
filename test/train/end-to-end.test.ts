// A small real run: a tiny decoder learns a word-mapping retrieval task it cannot solve at
// initialisation. The loss falls and retrieval on held-out pairs (unseen queries) improves.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { Engine } from '../../lib/engine.ts';
import { readTrainLog } from '../../lib/train/log.ts';
import { EVAL_LOG } from '../../lib/plot/training-curves.ts';
import { mappedPairs, tmpDir, tinyModel, writeJsonl } from './fixtures.ts';

/** The held-out pairs as a BEIR folder: one relevant passage per query. */
function beirFolder(held: { query: string; pos: string[] }[]): string {
  const dir = tmpDir('beir');
  writeJsonl(path.join(dir, 'corpus.jsonl'), held.map((h, i) => ({ _id: `d${i}`, title: '', text: h.pos[0] })));
  writeJsonl(path.join(dir, 'queries.jsonl'), held.map((h, i) => ({ _id: `q${i}`, text: h.query })));
  fs.mkdirSync(path.join(dir, 'qrels'));
  fs.writeFileSync(path.join(dir, 'qrels', 'test.tsv'), 'query-id\tcorpus-id\tscore\n' + held.map((_, i) => `q${i}\td${i}\t1\n`).join(''));
  return dir;
}

/** MRR and top-1 accuracy of each query's own positive among all held-out passages (cosine). */
async function heldOutRetrieval(modelDir: string, held: { query: string; pos: string[] }[], adapter?: string) {
  const e = await Engine.load(modelDir, { device: 'cpu', adapter });
  try {
    const q = await e.encode(held.map((h) => h.query), { maxLength: 16 });
    const p = await e.encode(held.map((h) => h.pos[0]), { maxLength: 16 });
    let mrr = 0;
    let top1 = 0;
    for (let i = 0; i < held.length; i++) {
      const scores = held.map((_, j) => q.row(i).reduce((s, x, k) => s + x * p.row(j)[k], 0));
      const rank = 1 + scores.filter((s) => s > scores[i]).length;
      mrr += 1 / rank;
      if (rank === 1) top1++;
    }
    return { mrr: mrr / held.length, top1: top1 / held.length };
  } finally {
    e.dispose();
  }
}

describe('train: end to end', function () {
  it('LoRA training on generated pairs: loss falls, held-out MRR rises', async () => {
    const base = tinyModel();
    const data = writeJsonl(path.join(tmpDir(), 'train.jsonl'), mappedPairs(256, 1));
    const held = mappedPairs(40, 2); // other queries, same word mapping
    const before = await heldOutRetrieval(base, held);

    const out = tmpDir('e2e');
    const e = await Engine.load(base, { device: 'cpu' });
    const summary = await e.train({
      data, output: out, batchSize: 16, groupSize: 4, steps: 300, lr: 1e-2, warmupSteps: 5, loraR: 8, loraAlpha: 16,
      temperature: 0.05, queryMaxLen: 16, passageMaxLen: 16, saveSteps: 0, evalBeir: beirFolder(held), evalSteps: 150,
    }).finally(() => e.dispose());
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const first = mean(summary.losses.slice(0, 20));
    const last = mean(summary.losses.slice(-20));
    expect(last, `loss ${first} -> ${last}`).to.be.below(first / 3);

    const after = await heldOutRetrieval(base, held, out);
    expect(after.mrr, `held-out MRR ${before.mrr} -> ${after.mrr}`).to.be.above(before.mrr + 0.15);
    expect(after.top1).to.be.above(before.top1);

    // --eval-beir: the same held-out pairs through lmdr's evaluation, at steps 0, 150 and 300
    const evals = readTrainLog(path.join(out, EVAL_LOG)) as unknown as Record<string, number>[];
    expect(evals.map((r) => r.step)).to.deep.equal([0, 150, 300]);
    expect(summary.evaluations).to.deep.equal(evals);
    expect(evals[0]['mrr@10']).to.be.closeTo(before.mrr, 0.05); // MRR@10 vs full MRR: nearly equal on 40 passages
    expect(evals[2]['mrr@10']).to.be.above(evals[0]['mrr@10'] + 0.15);
    expect(fs.existsSync(path.join(out, 'curves.svg'))).to.equal(true);
  });
});
