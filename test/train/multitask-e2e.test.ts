// LLM-Embedder's recipe end to end on a generated two-task set whose relevance differs by task:
// rewards from a tiny decoder LM through `lmdr score --data`, then LoRA training with stable
// distillation, task instructions and homogeneous batches; held-out retrieval of every task
// improves. (bench/multitask-ablation.ts runs the same set with and without instructions and
// homogeneous batches for the README's table.)
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { main } from '../../lib/cli/main.ts';
import { Engine } from '../../lib/engine.ts';
import { readTrainLog } from '../../lib/train/log.ts';
import { tmpDir, tinyModel, writeJsonl } from './fixtures.ts';
import { makeRepeatLm, multiTaskLines, perTaskRetrieval, taskConfig, TASKS } from './multitask-fixtures.ts';

describe('train: multi-task end to end (issue 13)', function () {
  this.timeout(900_000);
  it('score with an LM, train with stable distillation + instructions + homogeneous batches: every task\'s held-out MRR rises', async () => {
    const dir = tmpDir('mt-e2e');
    const lm = makeRepeatLm();
    const data = writeJsonl(path.join(dir, 'train.jsonl'), multiTaskLines(256, 1));
    const scored = path.join(dir, 'scored.jsonl');
    const config = path.join(dir, 'tasks.json');
    fs.writeFileSync(config, JSON.stringify(taskConfig(true)));
    const code = await main(['score', '--model', lm, '--data', data, '--task-config', config, '--output', scored, '--device', 'cpu', '--no-progress']);
    expect(code).to.equal(0);
    const lines = fs.readFileSync(scored, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { teacher_scores: number[] });
    // the LM's reward ranks the relevant passage first on every line
    for (const l of lines) expect(l.teacher_scores.indexOf(Math.max(...l.teacher_scores))).to.equal(0);

    const base = tinyModel();
    const held = multiTaskLines(24, 2);
    const before = await perTaskRetrieval(base, held, true);
    const out = path.join(dir, 'run');
    const e = await Engine.load(base, { device: 'cpu' });
    await e.train({
      data: scored, output: out, taskConfig: config, teacherTemperature: 5, batchSize: 16, groupSize: 4, steps: 1200, lr: 3e-3,
      warmupSteps: 5, loraR: 8, loraAlpha: 16, temperature: 0.05, queryMaxLen: 24, passageMaxLen: 24, saveSteps: 0,
    }).finally(() => e.dispose());
    const log = readTrainLog(path.join(out, 'train_log.jsonl'));
    expect(new Set(log.map((r) => r.task))).to.deep.equal(new Set(TASKS));
    const after = await perTaskRetrieval(base, held, true, out);
    for (const t of TASKS) expect(after[t].mrr, `${t}: held-out MRR ${before[t].mrr} -> ${after[t].mrr}`).to.be.above(before[t].mrr + 0.15);
  });
});
