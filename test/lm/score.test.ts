// lmdr score / engine.score: LLM reward scoring against the float64 reference LM, every decoder
// architecture (tied and untied heads), batch invariance, left truncation, training-data mode
// with templates and task configs, resume after a kill, and bad input named by file:line.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { runCli as lmdr } from '../helpers/run-cli.ts';
import { Engine } from '../../lib/engine.ts';
import { ReferenceModel } from '../reference/model.ts';
import { makeTinyModel, type TinyArch } from '../helpers/tiny-models.ts';
import { tempDir } from '../helpers/tmp.ts';
import { randInt, uniformRng } from '../helpers/rng.ts';
import { expectReject } from '../helpers/reject.ts';
import { writeJsonl } from '../train/fixtures.ts';


const readLines = (file: string) => fs.readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
const sumRef = (ref: ReferenceModel, ctx: number[], tgt: number[]) => ref.targetLogprobs([...ctx, ...tgt]).slice(ctx.length - 1).reduce((a, b) => a + b, 0);

describe('lmdr score', function () {
  this.timeout(300_000);
  const dir = tempDir();

  const archs: TinyArch[] = ['qwen2', 'llama', 'mistral', 'qwen3', 'gemma', 'gemma2', 'phi', 'phi3'];
  for (const arch of archs) {
    it(`${arch}: id pairs = float64 reference log-likelihood, tied and untied heads`, async () => {
      for (const tied of [false, true]) {
        const model = makeTinyModel({ arch, seed: 81, tieWordEmbeddings: tied, dir: tempDir() });
        const u = uniformRng(arch.length * 13 + (tied ? 1 : 0));
        // gemma2's tiny sliding window is 4 tokens: whole pairs stay inside it
        const maxLen = arch === 'gemma2' ? 4 : 9;
        const pairs = Array.from({ length: 6 }, () => {
          const t = randInt(u, 1, 3), c = randInt(u, 1, maxLen - t + 1);
          return { context_ids: Array.from({ length: c }, () => randInt(u, 0, 100)), target_ids: Array.from({ length: t }, () => randInt(u, 0, 100)) };
        });
        const input = writeJsonl(path.join(dir, `${arch}-${tied}.jsonl`), pairs);
        const out = path.join(dir, `${arch}-${tied}.scores.jsonl`);
        const r = await lmdr(['score', '--model', model, '--input', input, '--output', out, '--device', 'cpu-f64', '--no-progress']);
        expect(r.code, r.stderr).to.equal(0);
        const ref = new ReferenceModel(model);
        const got = readLines(out);
        expect(got.length).to.equal(pairs.length);
        pairs.forEach((p, i) => {
          const want = sumRef(ref, p.context_ids, p.target_ids);
          expect(got[i].tokens).to.equal(p.target_ids.length);
          expect(got[i].sum_logprob as number).to.be.closeTo(want, 1e-6 * Math.max(1, Math.abs(want)));
          expect(got[i].mean_logprob as number).to.be.closeTo(want / p.target_ids.length, 1e-6 * Math.max(1, Math.abs(want)));
        });
      }
    });
  }

  it("a pair longer than the model's sliding window is an error naming the line", async () => {
    const model = makeTinyModel({ arch: 'mistral', seed: 88, dir: tempDir() });
    const cfg = JSON.parse(fs.readFileSync(path.join(model, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(model, 'config.json'), JSON.stringify({ ...cfg, sliding_window: 4 }));
    const input = writeJsonl(path.join(dir, 'window.jsonl'), [{ context_ids: [1, 2], target_ids: [3] }, { context_ids: [1, 2, 3, 4], target_ids: [5] }]);
    const r = await lmdr(['score', '--model', model, '--input', input, '--output', path.join(dir, 'w.jsonl'), '--no-progress']);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.equal(`lmdr score: ${input}:2: 5 tokens exceed the model's sliding window 4, which lmdr does not implement; use --max-length 4 or less\n`);
  });

  it('batch invariance: any --batch-tokens gives the same scores (float32 CPU)', async () => {
    const model = makeTinyModel({ arch: 'qwen2', seed: 82, dir: tempDir() });
    const u = uniformRng(5);
    const pairs = Array.from({ length: 40 }, () => ({
      context_ids: Array.from({ length: randInt(u, 1, 30) }, () => randInt(u, 0, 100)),
      target_ids: Array.from({ length: randInt(u, 1, 6) }, () => randInt(u, 0, 100)),
    }));
    const input = writeJsonl(path.join(dir, 'inv.jsonl'), pairs);
    const outs = [];
    for (const bt of ['40', '100', '100000']) {
      const out = path.join(dir, `inv-${bt}.jsonl`);
      const r = await lmdr(['score', '--model', model, '--input', input, '--output', out, '--device', 'cpu', '--batch-tokens', bt, '--max-length', '40', '--no-progress']);
      expect(r.code, r.stderr).to.equal(0);
      outs.push(readLines(out));
    }
    for (let i = 0; i < pairs.length; i++) {
      expect(outs[1][i].sum_logprob as number).to.be.closeTo(outs[0][i].sum_logprob as number, 1e-5);
      expect(outs[2][i].sum_logprob as number).to.be.closeTo(outs[0][i].sum_logprob as number, 1e-5);
    }
  });

  it('text pairs: special tokens on the context only; a long context is cut from the left, the target kept whole', async () => {
    const model = makeTinyModel({ arch: 'llama', seed: 83, tokenizer: true, dir: tempDir() });
    const engine = await Engine.load(model, { device: 'cpu-f64' });
    const tok = engine.tokenizer!.hf;
    engine.dispose();
    const pairs = [
      { context: 'the river is', target: 'deep and long' },
      { context: 'the old king of the city was a writer and a farmer in the forest', target: 'red' },
    ];
    const input = writeJsonl(path.join(dir, 'text.jsonl'), pairs);
    const out = path.join(dir, 'text.scores.jsonl');
    const r = await lmdr(['score', '--model', model, '--input', input, '--output', out, '--device', 'cpu-f64', '--max-length', '6', '--no-progress']);
    expect(r.code, r.stderr).to.equal(0);
    const ref = new ReferenceModel(model);
    const got = readLines(out);
    pairs.forEach((p, i) => {
      const ctx = tok.encode(p.context, { add_special_tokens: true }).ids;
      const tgt = tok.encode(p.target, { add_special_tokens: false }).ids;
      const kept = ctx.slice(Math.max(0, ctx.length - (6 - tgt.length)));
      expect(got[i].tokens).to.equal(tgt.length);
      expect(got[i].sum_logprob as number).to.be.closeTo(sumRef(ref, kept, tgt), 1e-6);
    });
    // a target that alone does not fit names the line
    const bad = writeJsonl(path.join(dir, 'toolong.jsonl'), [pairs[0], { context_ids: [1], target_ids: [1, 2, 3, 4, 5, 6] }]);
    const e = await lmdr(['score', '--model', model, '--input', bad, '--output', path.join(dir, 'x.jsonl'), '--max-length', '6', '--no-progress']);
    expect(e.code).to.equal(1);
    expect(e.stderr).to.equal(`lmdr score: ${bad}:2: the target alone has 6 tokens, leaving no room for context in --max-length 6\n`);
    expect(fs.existsSync(path.join(dir, 'x.jsonl'))).to.equal(false);
  });

  it('--data: every candidate scored in the template against answers[0]; teacher_scores aligned to pos ++ neg (mean or sum)', async () => {
    const model = makeTinyModel({ arch: 'qwen2', seed: 84, tokenizer: true, dir: tempDir() });
    const rows = [
      { query: 'what city', pos: ['the old city'], neg: ['a river', 'gold and iron'], answers: ['the tower', 'x'], task: 'qa', extra: 1 },
      { query: 'who is the king', pos: ['the queen'], neg: [], output: 'a writer' },
    ];
    const data = writeJsonl(path.join(dir, 'data.jsonl'), rows);
    const template = 'Knowledge: {candidate}\n\nQuestion: {query}\n\nAnswer: ';
    const engine = await Engine.load(model, { device: 'cpu-f64' });
    const tok = engine.tokenizer!.hf;
    engine.dispose();
    const ref = new ReferenceModel(model);
    for (const reward of ['mean', 'sum']) {
      const out = path.join(dir, `scored-${reward}.jsonl`);
      const r = await lmdr(['score', '--model', model, '--data', data, '--output', out, '--template', template, '--reward', reward, '--device', 'cpu-f64', '--no-progress']);
      expect(r.code, r.stderr).to.equal(0);
      const got = readLines(out);
      rows.forEach((row, i) => {
        const { teacher_scores, ...rest } = got[i];
        expect(rest).to.deep.equal(row); // the line comes back whole, keys in order
        const answer = (row as { answers?: string[] }).answers?.[0] ?? (row as { output: string }).output;
        const tgt = tok.encode(answer, { add_special_tokens: false }).ids;
        const want = [...row.pos, ...row.neg].map((c) => {
          const ctx = tok.encode(template.replace('{candidate}', c).replace('{query}', row.query), { add_special_tokens: true }).ids;
          const s = sumRef(ref, ctx, tgt);
          return reward === 'sum' ? s : s / tgt.length;
        });
        expect((teacher_scores as number[]).length).to.equal(want.length);
        (teacher_scores as number[]).forEach((x, k) => expect(x).to.be.closeTo(want[k], 1e-6));
      });
    }
    // per-task templates from a task config; a task it does not list is named
    const config = path.join(dir, 'tasks.json');
    fs.writeFileSync(config, JSON.stringify({ qa: { template: '{query} {candidate}' } }));
    const r2 = await lmdr(['score', '--model', model, '--data', data, '--output', path.join(dir, 'cfg.jsonl'), '--task-config', config, '--no-progress']);
    expect(r2.code).to.equal(1);
    expect(r2.stderr).to.equal(`lmdr score: ${data}:2: the line has no "task", but --task-config ${config} configures tasks (qa)\n`);
    const qaOnly = writeJsonl(path.join(dir, 'qa.jsonl'), [rows[0]]);
    const r3 = await lmdr(['score', '--model', model, '--data', qaOnly, '--output', path.join(dir, 'cfg.jsonl'), '--task-config', config, '--device', 'cpu-f64', '--no-progress']);
    expect(r3.code, r3.stderr).to.equal(0);
    const tgt = tok.encode('the tower', { add_special_tokens: false }).ids;
    const ctx = tok.encode('what city the old city', { add_special_tokens: true }).ids;
    expect((readLines(path.join(dir, 'cfg.jsonl'))[0].teacher_scores as number[])[0]).to.be.closeTo(sumRef(ref, ctx, tgt) / tgt.length, 1e-6);
    // bad input: one line naming file:line
    const cases: [unknown, string][] = [
      [{ query: 'q', pos: ['a'] }, 'no "answers" (or "output") to score the candidates against'],
      [{ query: 'q', pos: 'a', answers: ['x'] }, '"pos" must be an array of strings, got the string "a"'],
    ];
    for (const [line, msg] of cases) {
      const f = writeJsonl(path.join(dir, 'bad.jsonl'), [rows[0], line]);
      const e = await lmdr(['score', '--model', model, '--data', f, '--output', path.join(dir, 'bad.out'), '--template', template, '--no-progress']);
      expect(e.code).to.equal(1);
      expect(e.stderr).to.contain(`${f}:2`);
      expect(e.stderr).to.contain(msg);
    }
    const e2 = await lmdr(['score', '--model', model, '--data', data, '--output', path.join(dir, 'bad.out'), '--template', 'no placeholder', '--no-progress']);
    expect(e2.stderr).to.match(/--template "no placeholder" has no \{candidate\} placeholder/);
  });

  it('a killed run resumes from OUTPUT.partial and ends with the same file as an uninterrupted one', async () => {
    const model = makeTinyModel({ arch: 'qwen2', seed: 85, dir: tempDir() });
    const u = uniformRng(9);
    const pairs = Array.from({ length: 25 }, () => ({
      context_ids: Array.from({ length: randInt(u, 1, 10) }, () => randInt(u, 0, 100)),
      target_ids: Array.from({ length: randInt(u, 1, 4) }, () => randInt(u, 0, 100)),
    }));
    const input = writeJsonl(path.join(dir, 'resume.jsonl'), pairs);
    const whole = path.join(dir, 'resume-whole.jsonl');
    const engine = await Engine.load(model, { device: 'cpu-f64' });
    try {
      await engine.score({ input, output: whole, pieceSize: 4 });
      const killed = path.join(dir, 'resume-killed.jsonl');
      let calls = 0;
      // "kill" after the third piece is on disk
      await expectReject(engine.score({ input, output: killed, pieceSize: 4, onProgress: () => {
        if (++calls === 4) throw new Error('killed');
      } }), /killed/);
      expect(fs.existsSync(killed)).to.equal(false);
      expect(fs.readFileSync(`${killed}.partial`, 'utf8').split('\n').length - 1).to.equal(12);
      fs.appendFileSync(`${killed}.partial`, '{"sum_logprob": -1.5, "mean'); // a line cut short by the kill
      await expectReject(engine.score({ input, output: killed, pieceSize: 4 }), /holds an unfinished run; pass resume to continue it/);
      await expectReject(engine.score({ input, output: killed, pieceSize: 4, resume: true, maxLength: 100 }), /was written with other settings/);
      const s = await engine.score({ input, output: killed, pieceSize: 4, resume: true });
      expect(s.resumedLines).to.equal(12);
      expect(s.pairs).to.equal(13);
      expect(fs.readFileSync(killed, 'utf8')).to.equal(fs.readFileSync(whole, 'utf8'));
      expect(fs.existsSync(`${killed}.partial`)).to.equal(false);
      expect(fs.existsSync(`${killed}.partial.json`)).to.equal(false);
    } finally {
      engine.dispose();
    }
  });

  it('refuses what it cannot do: both or neither of --input/--data, templates with pairs, a BERT model', async () => {
    const model = makeTinyModel({ arch: 'qwen2', seed: 86, dir: tempDir() });
    const input = writeJsonl(path.join(dir, 'p.jsonl'), [{ context_ids: [1], target_ids: [2] }]);
    const out = path.join(dir, 'o.jsonl');
    const r1 = await lmdr(['score', '--model', model, '--output', out]);
    expect(r1.stderr).to.equal('lmdr score: give --input (pairs) or --data (training data), one of them\n');
    const r2 = await lmdr(['score', '--model', model, '--input', input, '--output', out, '--template', '{candidate}']);
    expect(r2.stderr).to.equal('lmdr score: --template, --task-config and --reward apply to --data only\n');
    const bert = makeTinyModel({ arch: 'bert', seed: 87, dir: tempDir() });
    const r3 = await lmdr(['score', '--model', bert, '--input', input, '--output', out]);
    expect(r3.stderr).to.match(/a bert model has no LM head/);
    const r4 = await lmdr(['score', '--model', model, '--input', writeJsonl(path.join(dir, 'q.jsonl'), [{ context_ids: [1], target_ids: [2] }, 'oops']), '--output', out]);
    expect(r4.stderr).to.match(/q\.jsonl:2: expected \{"context": str, "target": str\} or \{"context_ids": \[int\], "target_ids": \[int\]\}, got the string "oops"/);
  });
});
