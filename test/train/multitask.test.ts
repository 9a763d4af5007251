// Issue 13 in training: homogeneous per-task batches (Sampler and train_log.jsonl), task configs
// (the one table, unknown keys and missing tasks), distillation against teacher_scores (GradCache
// chunks give the same gradients; bad teacher scores named by file:line), instructions drawn from
// a file.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { Engine } from '../../lib/engine.ts';
import { parseTrainFlags } from '../../lib/cli/train.ts';
import { main } from '../../lib/cli/main.ts';
import { engineBackbone } from '../../lib/train/backbone.ts';
import { Sampler, toTrainRecord, type TrainRecord } from '../../lib/train/data.ts';
import { readTrainLog } from '../../lib/train/log.ts';
import { LLM_EMBEDDER_TASKS, readInstructions, readTaskConfig } from '../../lib/train/task-config.ts';
import { retrievalStep, train, type TrainBackbone } from '../../lib/train/trainer.ts';
import type { LossModes } from '../../lib/native.ts';
import { normalRng } from '../helpers/rng.ts';
import { expectReject } from '../helpers/reject.ts';
import { mappedPairs, maxAbs, maxAbsDiff, tinyModel, tmpDir, writeJsonl } from './fixtures.ts';

/** Lines of three tasks (6, 4 and 5 lines), each with teacher scores for pos ++ neg. */
function taskRows() {
  const base = mappedPairs(15, 21, { negs: 3 });
  return base.map((r, i) => ({ ...r, task: i < 6 ? 'alpha' : i < 10 ? 'beta' : 'gamma', teacher_scores: [0.5, -1 - i / 10, -2, -0.5] }));
}

describe('train: multi-task (issue 13)', function () {
  this.timeout(300_000);

  it('homogeneous batches: every step holds one task; an epoch uses each task\'s lines once (short batches filled from the same task)', () => {
    const records = taskRows().map((r, i) => toTrainRecord(r, 'mem', i + 1));
    const plan = { homogeneous: true, groupSize: (t?: string) => (t === 'beta' ? 3 : 2), distilled: (t?: string) => t !== 'gamma' };
    const B = 2;
    const sampler = new Sampler(records, B, 2, 7, 'mem', plan);
    // ceil(6/2) + ceil(4/2) + ceil(5/2)
    expect(sampler.stepsPerEpoch).to.equal(3 + 2 + 3);
    for (const epoch of [0, 1]) {
      const seen = new Map<string, number[]>();
      const tasksInOrder: string[] = [];
      for (let k = 0; k < sampler.stepsPerEpoch; k++) {
        const b = sampler.batch(epoch * sampler.stepsPerEpoch + k);
        const tasks = new Set(b.records.map((r) => records[r].task));
        expect(tasks.size, `step ${k}`).to.equal(1);
        expect(b.task).to.equal(records[b.records[0]].task);
        expect(b.groupSize).to.equal(b.task === 'beta' ? 3 : 2);
        expect(b.passages.length).to.equal(B * b.groupSize);
        // teacher scores travel with the candidates: the positive's is 0.5, a negative's is the line's own
        if (b.task === 'gamma') expect(b.teacher).to.equal(undefined);
        else {
          expect(b.teacher!.length).to.equal(B * b.groupSize);
          b.records.forEach((r, slot) => {
            expect(b.teacher![slot * b.groupSize]).to.equal(0.5);
            for (let j = 1; j < b.groupSize; j++) {
              const src = b.passageSources[slot * b.groupSize + j];
              const k2 = Number(/neg\[(\d+)\]/.exec(src)![1]);
              expect(b.teacher![slot * b.groupSize + j]).to.equal(records[r].teacherScores![1 + k2]);
            }
          });
        }
        tasksInOrder.push(b.task!);
        seen.set(b.task!, [...(seen.get(b.task!) ?? []), ...b.records]);
      }
      for (const [task, n] of [['alpha', 6], ['beta', 4], ['gamma', 5]] as const) {
        const used = seen.get(task)!;
        const distinct = new Set(used);
        expect(distinct.size, task).to.equal(n); // every line of the task
        expect(used.length, task).to.equal(Math.ceil(n / B) * B); // once each, plus the short batch's fill
      }
      // tasks interleave (shuffled batches), they are not run one after another
      const switches = tasksInOrder.filter((t, i) => i > 0 && t !== tasksInOrder[i - 1]).length;
      expect(switches).to.be.above(2);
    }
    // a task with fewer lines than a batch is refused
    expect(() => new Sampler(records, 5, 2, 7, 'mem', plan)).to.throw(/task "beta" has 4 lines in mem, fewer than --batch-size 5/);
  });

  describe('with a tiny model', () => {
    let modelDir: string;
    let dir: string;
    before(() => {
      modelDir = tinyModel();
      dir = tmpDir('multitask');
    });

    it('lmdr train with a task config: train_log.jsonl names each step\'s task and its loss parts; every task appears once per epoch per batch', async () => {
      const data = writeJsonl(path.join(dir, 'tasks.jsonl'), taskRows());
      const config = path.join(dir, 'tasks.json');
      fs.writeFileSync(config, JSON.stringify({
        alpha: { query_instruction: 'find: ', distill: 'stable', group_size: 3, contrastive_weight: 0.5 },
        beta: { distill: 'kl', teacher_temperature: 0.5, student_temperature: 2 },
        gamma: { temperature: 0.1, in_batch_negatives: false },
      }));
      const engine = await Engine.load(modelDir, { device: 'cpu' });
      try {
        const out = path.join(dir, 'run');
        const s = await train(engineBackbone(engine), {
          data, output: out, taskConfig: config, batchSize: 2, groupSize: 2, queryMaxLen: 12, passageMaxLen: 12, epochs: 2, saveSteps: 0, lr: 1e-3,
        });
        expect(s.steps).to.equal(16);
        const log = readTrainLog(path.join(out, 'train_log.jsonl'));
        expect(log.length).to.equal(16);
        for (const epoch of [0, 1]) {
          const steps = log.slice(epoch * 8, epoch * 8 + 8);
          const count = (t: string) => steps.filter((r) => r.task === t).length;
          expect([count('alpha'), count('beta'), count('gamma')]).to.deep.equal([3, 2, 3]);
          // From the log alone: every query of a step is a line of the step's task, and the epoch
          // uses each task's lines once; a short last batch repeats lines of its own task only.
          const taskOfLine = (line: number) => (line <= 6 ? 'alpha' : line <= 10 ? 'beta' : 'gamma');
          for (const [task, first, n] of [['alpha', 1, 6], ['beta', 7, 4], ['gamma', 11, 5]] as const) {
            const seen = steps.filter((r) => r.task === task).flatMap((r) => r.lines);
            for (const line of seen) expect(taskOfLine(line), `epoch ${epoch} step line ${line}`).to.equal(task);
            expect(new Set(seen), `epoch ${epoch} task ${task}`).to.deep.equal(new Set(Array.from({ length: n }, (_, i) => first + i)));
            expect(seen.length).to.equal(Math.ceil(n / 2) * 2);
          }
        }
        for (const r of log) expect(r.lines.length).to.equal(2);
        for (const r of log) {
          expect(Number.isFinite(r.loss)).to.equal(true);
          if (r.task === 'gamma') expect(r.distill_loss).to.equal(undefined);
          else {
            const cw = r.task === 'alpha' ? 0.5 : 1;
            expect(r.loss).to.be.closeTo(cw * r.contrastive_loss! + r.distill_loss!, 1e-9 * Math.max(1, r.loss));
          }
        }
        expect(fs.readFileSync(path.join(out, 'curves.svg'), 'utf8')).to.contain('Training loss per task');
      } finally {
        engine.dispose();
      }
    });

    it('--query-instruction FILE: each query takes one of its instructions, drawn from the seed (the same run draws the same)', async () => {
      const data = writeJsonl(path.join(dir, 'plain-instr.jsonl'), mappedPairs(8, 4));
      const instructions = path.join(dir, 'instructions.txt');
      fs.writeFileSync(instructions, 'how does\nwhy did\nwhat\n');
      let runs = 0;
      const run = async (seed: number) => {
        const engine = await Engine.load(modelDir, { device: 'cpu' });
        try {
          const texts: string[] = [];
          const real = engineBackbone(engine);
          const spy: TrainBackbone = { ...real, tokenize: (t, max, instr, d) => ((max === 12 ? texts.push(...t) : 0), real.tokenize(t, max, instr, d)) };
          await train(spy, { data, output: path.join(dir, `instr-${seed}-${runs++}`), queryInstruction: instructions, passageInstruction: 'read ', batchSize: 4, groupSize: 2, queryMaxLen: 12, passageMaxLen: 10, steps: 4, saveSteps: 0, seed });
          return texts;
        } finally {
          engine.dispose();
        }
      };
      const a = await run(3);
      expect(a.length).to.equal(16);
      const prefixes = a.map((t) => ['how does', 'why did', 'what'].find((p) => t.startsWith(p)));
      expect(prefixes.every((p) => p !== undefined), a.join(' | ')).to.equal(true);
      expect(new Set(prefixes).size).to.equal(3);
      expect(await run(3)).to.deep.equal(a);
      expect(await run(4)).to.not.deep.equal(a);
    });

    it('lmdr train --task-config: errors name the flag and FILE:LINE, and a good run writes per-task steps', async () => {
      const data = writeJsonl(path.join(dir, 'cli.jsonl'), taskRows());
      const config = path.join(dir, 'cli-tasks.json');
      fs.writeFileSync(config, JSON.stringify({ alpha: { distill: 'kl' }, beta: {} }));
      const write = process.stderr.write;
      let stderr = '';
      process.stderr.write = ((c: string | Uint8Array) => ((stderr += c.toString()), true)) as typeof process.stderr.write;
      const args = ['train', '--model', modelDir, '--data', data, '--task-config', config, '--batch-size', '2', '--group-size', '2',
        '--query-max-len', '8', '--passage-max-len', '8', '--steps', '2', '--no-progress', '--save-steps', '0'];
      let code: number;
      try {
        code = await main([...args, '--output', path.join(dir, 'cli-bad')]);
      } finally {
        process.stderr.write = write;
      }
      expect(code).to.equal(1);
      expect(stderr).to.equal(`lmdr train: ${data}:11: task "gamma" is not in --task-config ${config} (tasks: alpha, beta)\n`);
      fs.writeFileSync(config, JSON.stringify({ alpha: { distill: 'kl' }, beta: {}, gamma: { group_size: 3 } }));
      stderr = '';
      process.stderr.write = ((c: string | Uint8Array) => ((stderr += c.toString()), true)) as typeof process.stderr.write;
      try {
        code = await main([...args, '--output', path.join(dir, 'cli-good')]);
      } finally {
        process.stderr.write = write;
      }
      expect(code, stderr).to.equal(0);
      const log = readTrainLog(path.join(dir, 'cli-good', 'train_log.jsonl'));
      expect(log.every((r) => ['alpha', 'beta', 'gamma'].includes(r.task!))).to.equal(true);
    });

    it('bad task data is one error naming file:line: no teacher_scores, a wrong count, a task missing from the config, an unknown key', async () => {
      const engine = await Engine.load(modelDir, { device: 'cpu' });
      try {
        const rows = taskRows();
        const config = path.join(dir, 'cfg.json');
        fs.writeFileSync(config, JSON.stringify({ alpha: { distill: 'stable' }, beta: {}, gamma: {} }));
        const run = (rs: unknown[], extra: Record<string, unknown> = {}) => train(engineBackbone(engine), {
          data: writeJsonl(path.join(dir, 'bad.jsonl'), rs), output: path.join(dir, `bad-${Math.random()}`), taskConfig: config,
          batchSize: 2, groupSize: 2, queryMaxLen: 8, passageMaxLen: 8, steps: 1, ...extra,
        });
        const bad = path.join(dir, 'bad.jsonl');
        const noScores = rows.map((r, i) => (i === 2 ? { ...r, teacher_scores: undefined } : r));
        await expectReject(run(noScores), new RegExp(`^${bad}:3: no "teacher_scores", but task "alpha" distils \\(distill stable\\)`));
        const wrong = rows.map((r, i) => (i === 4 ? { ...r, teacher_scores: [1, 2] } : r));
        await expectReject(run(wrong), new RegExp(`^${bad}:5: 2 teacher_scores for 4 candidates`));
        const unknownTask = rows.map((r, i) => (i === 7 ? { ...r, task: 'delta' } : r));
        await expectReject(run(unknownTask), new RegExp(`^${bad}:8: task "delta" is not in taskConfig ${config} \\(tasks: alpha, beta, gamma\\)`));
        // the rows without tasks in beta/gamma need no teacher scores
        await run(rows.map((r) => (r.task === 'alpha' ? r : { ...r, teacher_scores: undefined })));
        fs.writeFileSync(config, JSON.stringify({ alpha: { distil: 'stable' } }));
        await expectReject(run(rows), /taskConfig .*cfg\.json: unknown key in alpha: "alpha\.distil" \(did you mean "alpha\.distill"\?\)/);
        fs.writeFileSync(config, JSON.stringify({ alpha: { group_size: 3 }, beta: {}, gamma: {} }));
        await expectReject(run(rows, { mixedBatches: true }), /task "alpha" sets group_size, which needs one task per step; drop mixedBatches/);
        // a global --distill needs teacher scores on every line
        await expectReject(train(engineBackbone(engine), {
          data: writeJsonl(path.join(dir, 'plain.jsonl'), mappedPairs(6, 3)), output: path.join(dir, 'plain'), distill: 'kl',
          batchSize: 2, groupSize: 2, queryMaxLen: 8, passageMaxLen: 8, steps: 1,
        }), new RegExp(`plain\\.jsonl:1: no "teacher_scores", but distill kl`));
      } finally {
        engine.dispose();
      }
    });
  });

  describe('distillation with GradCache', () => {
    let engine: Engine;
    let backbone: TrainBackbone;
    const B = 3, G = 3;
    before(async () => {
      engine = await Engine.load(tinyModel(), { device: 'cpu' });
      backbone = engineBackbone(engine);
      engine.native.addLora({ targets: ['q_proj', 'v_proj', 'up_proj'], r: 4, alpha: 8, dropout: 0.1, seed: 3 });
      engine.native.setTrainable('lora');
      const rnd = normalRng(98);
      for (const p of engine.native.params()) engine.native.setParam(p.name, Float32Array.from(p.data, () => 0.3 * rnd()));
    });
    after(() => engine?.dispose());

    function packed() {
      const rows = taskRows().slice(0, 8);
      const recs: TrainRecord[] = rows.map((r, i) => toTrainRecord(r, 'mem', i + 1));
      const batch = new Sampler(recs, B, G, 1, 'mem', { homogeneous: false, groupSize: () => G, distilled: () => true }).batch(0);
      const q = backbone.tokenize(batch.queries, 16, 'query: ');
      const p = backbone.tokenize(batch.passages, 24, '');
      const cu = new Int32Array(q.cuSeqlens.length + p.cuSeqlens.length - 1);
      cu.set(q.cuSeqlens);
      for (let i = 1; i < p.cuSeqlens.length; i++) cu[q.cuSeqlens.length - 1 + i] = q.ids.length + p.cuSeqlens[i];
      const ids = new Int32Array(q.ids.length + p.ids.length);
      ids.set(q.ids);
      ids.set(p.ids, q.ids.length);
      return { packed: { ids, cuSeqlens: cu }, teacher: batch.teacher! };
    }

    for (const distill of ['kl', 'stable'] as const) {
      it(`${distill}: chunked and whole-batch steps give the same loss parts and LoRA gradients; the teacher changes them`, async () => {
        const { packed: pk, teacher } = packed();
        const run = async (chunkSize: number, t: Float64Array) => {
          engine.native.zeroGrad();
          const modes: LossModes = { distill, teacher: t, contrastiveWeight: 0.4, distillWeight: 1.3, teacherTemperature: 0.5, studentTemperature: 2 };
          const parts = await retrievalStep(backbone, pk, { batchSize: B, groupSize: G, temperature: 0.05, similarity: 'cosine', chunkSize }, 17, modes);
          return { parts, grads: engine.native.grads() };
        };
        const whole = await run(0, teacher);
        expect(whole.parts.distill).to.be.above(0);
        for (const chunk of [1, 5]) {
          const c = await run(chunk, teacher);
          expect(c.parts.loss).to.be.closeTo(whole.parts.loss, 1e-5 * whole.parts.loss);
          expect(c.parts.distill).to.be.closeTo(whole.parts.distill, 1e-5 * whole.parts.distill);
          whole.grads.forEach((g, i) => expect(maxAbsDiff(c.grads[i].data, g.data) / maxAbs(g.data), `${g.name} chunk ${chunk}`).to.be.below(1e-4));
        }
        const other = await run(0, Float64Array.from(teacher, (x, i) => (i % G === 2 ? x + 5 : x)));
        const rel = Math.max(...whole.grads.map((g, i) => maxAbsDiff(other.grads[i].data, g.data) / maxAbs(g.data)));
        expect(rel).to.be.above(1e-3);
      });
    }
  });

  it('lmdr train maps the issue-13 flags onto the options', () => {
    const { options } = parseTrainFlags(['--model', 'm', '--data', 'd', '--output', 'o', '--task-config', 'llm-embedder', '--mixed-batches',
      '--distill', 'stable', '--contrastive-weight', '0.5', '--distill-weight', '2', '--teacher-temperature', '0.1', '--student-temperature', '3',
      '--no-in-batch-negatives']);
    expect(options).to.include({ taskConfig: 'llm-embedder', mixedBatches: true, distill: 'stable', contrastiveWeight: 0.5, distillWeight: 2,
      teacherTemperature: 0.1, studentTemperature: 3, inBatchNegatives: false });
    const plain = parseTrainFlags(['--model', 'm', '--data', 'd', '--output', 'o']).options;
    expect([plain.taskConfig, plain.mixedBatches, plain.distill, plain.inBatchNegatives]).to.deep.equal([undefined, undefined, undefined, undefined]);
  });

  it('task configs: the llm-embedder preset carries the six tasks and their instructions; instruction files', () => {
    const preset = readTaskConfig('llm-embedder');
    expect(Object.keys(preset)).to.deep.equal(['qa', 'convsearch', 'chat', 'lrlm', 'icl', 'tool']);
    expect(preset.tool.query_instruction).to.equal('Transform this user request for fetching helpful tool descriptions: ');
    expect(preset.qa.passage_instruction).to.equal('Represent this document for retrieval: ');
    expect(preset).to.equal(LLM_EMBEDDER_TASKS);
    expect(() => readTaskConfig('/nonexistent/tasks.json')).to.throw(/--task-config \/nonexistent\/tasks.json: no such file \(and not a preset: llm-embedder\)/);
    const dir = tmpDir('instr');
    const f = path.join(dir, 'instructions.txt');
    fs.writeFileSync(f, 'query: \r\n\nsearch for: \n');
    expect(readInstructions(f, '--query-instruction')).to.deep.equal(['query: ', 'search for: ']);
    expect(readInstructions('query: ', '--query-instruction')).to.deep.equal(['query: ']);
    fs.writeFileSync(f, '\n\n');
    expect(() => readInstructions(f, '--query-instruction')).to.throw(/holds no instructions/);
  });
});
