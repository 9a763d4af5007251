// lmdr suite end to end on generated data and tiny generated models: retrieval tasks equal
// separate `lmdr eval` runs, STS against a direct computation, BM25 against hand-computed
// metrics, resume (proved by suite_log.jsonl, not timing), several models side by side,
// checkpoints and their curve, length sweeps, instructions, and bad suite files.
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';

import { Engine } from '../../lib/engine.ts';
import { writeAdapter } from '../../lib/adapters/peft.ts';
import { normalRng, randInt, uniformRng } from '../helpers/rng.ts';
import { makeTinyModel } from '../helpers/tiny-models.ts';
import { tempDir } from '../helpers/tmp.ts';
import { lmdr, logLines, randomBeir, readJson, sentence, writeBeir, writeJson } from './fixtures.ts';

const EVAL_FLAGS = ['--device', 'cpu', '--no-progress'];

/** `lmdr eval` of a BEIR folder: its metrics.json. */
async function evalMetrics(root: string, model: string, beir: string, extra: string[]): Promise<Record<string, number>> {
  const out = tempDir('lmdr-suite-eval-');
  const r = await lmdr('eval', '--model', model, '--beir', beir, '--output', out, ...EVAL_FLAGS, ...extra);
  expect(r.code, r.err).to.equal(0);
  return readJson(path.join(out, 'metrics.json'));
}

/** A random LoRA adapter on layers 0..1 q_proj of a hidden-32 model. */
function randomAdapter(dir: string, seed: number): string {
  const g = normalRng(seed);
  const rand = (n: number) => Float32Array.from({ length: n }, () => 0.5 * g());
  const params = [0, 1].flatMap((l) => [
    { name: `layers.${l}.self_attn.q_proj.lora_A.weight`, shape: [2, 32], data: rand(64) },
    { name: `layers.${l}.self_attn.q_proj.lora_B.weight`, shape: [32, 2], data: rand(64) },
  ]);
  writeAdapter(dir, { r: 2, alpha: 4, dropout: 0, targets: ['q_proj'], baseModel: 'tiny' }, params);
  return dir;
}

describe('lmdr suite', function () {
  this.timeout(600_000);
  const root = tempDir('lmdr-suite-');
  const u = uniformRng(1401);
  let model: string;
  let model2: string;
  let beir: string;
  let sts: string;
  const stsPairs: { sentence1: string; sentence2: string; score: number }[] = [];
  const METRICS = ['ndcg@10', 'mrr@10', 'recall@5', 'map@10', 'p@5'];

  before(() => {
    model = makeTinyModel({ arch: 'qwen2', seed: 1402, tokenizer: true, dir: path.join(root, 'qwen-a') });
    model2 = makeTinyModel({ arch: 'llama', seed: 1403, tokenizer: true, dir: path.join(root, 'llama-b') });
    beir = randomBeir(path.join(root, 'data', 'tiny'), u);
    for (let i = 0; i < 25; i++) {
      const s1 = sentence(u, randInt(u, 3, 9));
      const s2 = i % 3 === 0 ? s1 : sentence(u, randInt(u, 3, 9));
      stsPairs.push({ sentence1: s1, sentence2: s2, score: i % 3 === 0 ? 5 : randInt(u, 0, 5) }); // tied gold scores
    }
    sts = path.join(root, 'data', 'sts.jsonl');
    fs.writeFileSync(sts, stsPairs.map((p) => JSON.stringify(p)).join('\n') + '\n');
  });

  const suiteFile = (name: string, tasks: unknown[]) => writeJson(path.join(root, `${name}.json`), { tasks });

  it('retrieval = lmdr eval; sts = cosine correlations computed here; results.json, results.md; a second run reuses every task', async () => {
    const file = suiteFile('basic', [
      { name: 'tiny', type: 'retrieval', data: 'data/tiny', metrics: METRICS, k: 20, passage_max_len: 32 },
      { name: 'sts', type: 'sts', data: 'data/sts.jsonl' },
    ]);
    const out = path.join(root, 'out-basic');
    const r = await lmdr('suite', file, '--model', model, '--output', out, ...EVAL_FLAGS);
    expect(r.code, r.err).to.equal(0);
    const res = readJson(path.join(out, 'results.json'));
    expect(Object.keys(res.models)).to.deep.equal(['qwen-a']);
    const want = await evalMetrics(root, model, beir, ['--measures', METRICS.join(','), '--k', '20', '--passage-max-len', '32']);
    expect(res.models['qwen-a'].tiny).to.deep.equal(want);

    // STS: embeddings from the engine, cosine in float64, correlations by the definitions
    const engine = await Engine.load(model, { device: 'cpu' });
    const e1 = await engine.encode(stsPairs.map((p) => p.sentence1), { maxLength: 128 });
    const e2 = await engine.encode(stsPairs.map((p) => p.sentence2), { maxLength: 128 });
    engine.dispose();
    const cos = stsPairs.map((_, i) => { let s = 0; for (let h = 0; h < e1.dim; h++) s += e1.data[i * e1.dim + h] * e2.data[i * e1.dim + h]; return s; });
    const gold = stsPairs.map((p) => p.score);
    const ranks = (v: number[]) => v.map((x) => 1 + v.filter((y) => y < x).length + (v.filter((y) => y === x).length - 1) / 2);
    const corr = (x: number[], y: number[]) => {
      const mx = x.reduce((a, b) => a + b) / x.length, my = y.reduce((a, b) => a + b) / y.length;
      const c = x.reduce((a, _, i) => a + (x[i] - mx) * (y[i] - my), 0);
      return c / Math.sqrt(x.reduce((a, v) => a + (v - mx) ** 2, 0) * y.reduce((a, v) => a + (v - my) ** 2, 0));
    };
    expect(res.models['qwen-a'].sts.spearman).to.be.closeTo(corr(ranks(cos), ranks(gold)), 1e-6);
    expect(res.models['qwen-a'].sts.pearson).to.be.closeTo(corr(cos, gold), 1e-6);
    expect(Object.keys(res.models['qwen-a'].sts)).to.deep.equal(['spearman', 'pearson']);

    const md = fs.readFileSync(path.join(out, 'results.md'), 'utf8');
    const avg = (want['ndcg@10'] + res.models['qwen-a'].sts.spearman) / 2;
    expect(md).to.contain(`| qwen-a | ${want['ndcg@10'].toFixed(4)} | ${res.models['qwen-a'].sts.spearman.toFixed(4)} | ${avg.toFixed(4)} |`);
    expect(logLines(out).map((l) => `${l.unit}:${l.status}`)).to.deep.equal(['tiny:ran', 'sts:ran']);

    // resume: same model and settings -> nothing runs again (the log says so), same results
    const again = await lmdr('suite', file, '--model', model, '--output', out, ...EVAL_FLAGS);
    expect(again.code, again.err).to.equal(0);
    expect(logLines(out).slice(2).map((l) => `${l.unit}:${l.status}`)).to.deep.equal(['tiny:reused', 'sts:reused']);
    expect(readJson(path.join(out, 'results.json'))).to.deep.equal(res);

    // a changed setting reruns exactly that task; an added task runs, the rest is reused
    suiteFile('basic', [
      { name: 'tiny', type: 'retrieval', data: 'data/tiny', metrics: METRICS, k: 20, passage_max_len: 32 },
      { name: 'sts', type: 'sts', data: 'data/sts.jsonl', metrics: ['spearman'] },
      { name: 'tiny2', type: 'retrieval', data: 'data/tiny', metrics: ['ndcg@3'], k: 20, passage_max_len: 32 },
    ]);
    const third = await lmdr('suite', file, '--model', model, '--output', out, ...EVAL_FLAGS);
    expect(third.code, third.err).to.equal(0);
    expect(logLines(out).slice(4).map((l) => `${l.unit}:${l.status}`)).to.deep.equal(['tiny:reused', 'sts:ran', 'tiny2:ran']);
    // a changed model file invalidates its results
    const cfg = path.join(model, 'config.json');
    fs.utimesSync(cfg, new Date(), new Date(Date.now() + 5000));
    const fourth = await lmdr('suite', file, '--model', model, '--output', out, ...EVAL_FLAGS);
    expect(fourth.code, fourth.err).to.equal(0);
    expect(logLines(out).slice(7).map((l) => l.status)).to.deep.equal(['ran', 'ran', 'ran']);
  });

  it('a run stopped by a failing task keeps the finished tasks: the next run reuses them and runs the rest', async () => {
    const broken = path.join(root, 'data', 'later.jsonl');
    fs.writeFileSync(broken, '{"sentence1": "a b", "sentence2": "b", "score": 1}\n{"sentence1": "a"\n');
    const file = suiteFile('stop', [
      { name: 'first', type: 'sts', data: 'data/sts.jsonl' },
      { name: 'later', type: 'sts', data: 'data/later.jsonl' },
    ]);
    const out = path.join(root, 'out-stop');
    const r = await lmdr('suite', file, '--model', model, '--output', out, ...EVAL_FLAGS);
    expect(r.code).to.equal(1);
    expect(r.err).to.contain(`${broken}:2: invalid JSON`);
    expect(logLines(out).map((l) => `${l.unit}:${l.status}`)).to.deep.equal(['first:ran']);
    expect(fs.existsSync(path.join(out, 'results.json'))).to.equal(false);
    fs.writeFileSync(broken, '{"sentence1": "a b", "sentence2": "b", "score": 1}\n{"sentence1": "a", "sentence2": "river", "score": 3}\n{"sentence1": "a", "sentence2": "a", "score": 5}\n');
    const again = await lmdr('suite', file, '--model', model, '--output', out, ...EVAL_FLAGS);
    expect(again.code, again.err).to.equal(0);
    expect(logLines(out).slice(1).map((l) => `${l.unit}:${l.status}`)).to.deep.equal(['first:reused', 'later:ran']);
    expect(Object.keys(readJson(path.join(out, 'results.json')).models['qwen-a'])).to.deep.equal(['first', 'later']);
  });

  it('--model bm25: labelled bm25, metrics equal a hand computation of the ranking', async () => {
    // q1 "river gold": d1 has both words; d2 ("river", 1 token) beats d3 ("gold stone stone stone")
    // at equal idf and tf because it is shorter; d4 shares nothing. Relevant: d1, d3.
    // q2 "tower": only d4. Relevant: d4 (grade 2) and d2 (grade 1, never retrieved).
    const dir = writeBeir(path.join(root, 'data', 'bm25'), [
      { _id: 'd1', text: 'river gold' }, { _id: 'd2', text: 'River' }, { _id: 'd3', text: 'gold stone, stone stone' }, { _id: 'd4', text: 'city tower' },
    ], [{ _id: 'q1', text: 'river gold?' }, { _id: 'q2', text: 'Tower' }], [['q1', 'd1', 1], ['q1', 'd3', 1], ['q2', 'd4', 2], ['q2', 'd2', 1]]);
    const file = suiteFile('bm25', [{ name: 'bm25set', type: 'retrieval', data: dir, metrics: ['ndcg@10', 'mrr@10', 'recall@2', 'p@2', 'map@10'] }]);
    const out = path.join(root, 'out-bm25');
    const r = await lmdr('suite', file, '--model', 'bm25', '--output', out, '--no-progress');
    expect(r.code, r.err).to.equal(0);
    const got = readJson(path.join(out, 'results.json')).models.bm25.bm25set;
    const q1 = { ndcg: (1 + 1 / Math.log2(4)) / (1 + 1 / Math.log2(3)), mrr: 1, recall: 0.5, p: 0.5, map: (1 + 2 / 3) / 2 };
    const q2 = { ndcg: 2 / (2 + 1 / Math.log2(3)), mrr: 1, recall: 0.5, p: 0.5, map: 0.5 };
    expect(got['ndcg@10']).to.be.closeTo((q1.ndcg + q2.ndcg) / 2, 1e-12);
    expect(got['mrr@10']).to.equal(1);
    expect(got['recall@2']).to.be.closeTo(0.5, 1e-12);
    expect(got['p@2']).to.be.closeTo(0.5, 1e-12);
    expect(got['map@10']).to.be.closeTo((q1.map + q2.map) / 2, 1e-12);
    const run = fs.readFileSync(path.join(out, 'work', 'bm25', 'bm25set', 'run.trec'), 'utf8').trim().split('\n').map((l) => l.split(' ').slice(0, 3).join(' '));
    expect(run).to.deep.equal(['q1 Q0 d1', 'q1 Q0 d2', 'q1 Q0 d3', 'q2 Q0 d4']);
  });

  it('several models side by side (--model/--adapter pairs and --models), each equal to its own lmdr eval', async () => {
    const adapter = randomAdapter(path.join(root, 'adapter'), 1404);
    const file = suiteFile('side', [{ name: 'tiny', type: 'retrieval', data: 'data/tiny', metrics: ['ndcg@10', 'recall@5'], k: 20, passage_max_len: 32 }]);
    const out = path.join(root, 'out-side');
    const r = await lmdr('suite', file, '--model', model, '--model', model, '--adapter', adapter, '--models', `bee=${model2},bm25`, '--output', out, ...EVAL_FLAGS);
    expect(r.code, r.err).to.equal(0);
    const res = readJson(path.join(out, 'results.json'));
    expect(Object.keys(res.models)).to.deep.equal(['qwen-a', 'qwen-a+adapter', 'bee', 'bm25']);
    const flags = ['--measures', 'ndcg@10,recall@5', '--k', '20', '--passage-max-len', '32'];
    expect(res.models['qwen-a+adapter'].tiny).to.deep.equal(await evalMetrics(root, model, beir, [...flags, '--adapter', adapter]));
    expect(res.models.bee.tiny).to.deep.equal(await evalMetrics(root, model2, beir, flags));
    expect(res.models['qwen-a'].tiny).to.not.deep.equal(res.models['qwen-a+adapter'].tiny);
    const md = fs.readFileSync(path.join(out, 'results.md'), 'utf8');
    for (const label of ['qwen-a', 'qwen-a+adapter', 'bee', 'bm25']) expect(md).to.match(new RegExp(`^\\| ${label.replace('+', '\\+')} \\| `, 'm'));
  });

  it('--checkpoints: every checkpoint-<step> of a run, in step order, with the data-efficiency curve', async () => {
    const run = path.join(root, 'train-run');
    for (const step of [5, 2]) {
      randomAdapter(path.join(run, `checkpoint-${step}`), 1410 + step);
      fs.writeFileSync(path.join(run, `checkpoint-${step}`, 'trainer_state.json'), '{}');
    }
    fs.mkdirSync(path.join(run, 'checkpoint-9')); // incomplete: no trainer_state.json
    const file = suiteFile('ckpt', [
      { name: 'tiny', type: 'retrieval', data: 'data/tiny', metrics: ['ndcg@10'], k: 20, passage_max_len: 32 },
      { name: 'sts', type: 'sts', data: 'data/sts.jsonl' },
    ]);
    const out = path.join(root, 'out-ckpt');
    const r = await lmdr('suite', file, '--checkpoints', run, '--model', model, '--output', out, ...EVAL_FLAGS);
    expect(r.code, r.err).to.equal(0);
    const res = readJson(path.join(out, 'results.json'));
    expect(res.steps).to.deep.equal({ 'step-2': 2, 'step-5': 5 });
    expect(res.models['step-5'].tiny).to.deep.equal(await evalMetrics(root, model, beir,
      ['--measures', 'ndcg@10', '--k', '20', '--passage-max-len', '32', '--adapter', path.join(run, 'checkpoint-5')]));
    const svg = fs.readFileSync(path.join(out, 'charts', 'data-efficiency.svg'), 'utf8');
    for (const s of ['tiny (ndcg@10)', 'sts (spearman)', 'average']) expect(svg).to.contain(`data-series="${s}"`);
    expect(fs.readFileSync(path.join(out, 'results.md'), 'utf8')).to.match(/## Data efficiency[\s\S]*\| 2 \|[\s\S]*\| 5 \|/);

    // full fine-tuning checkpoints are model dirs of their own (no --model needed)
    const full = path.join(root, 'train-full');
    fs.cpSync(model2, path.join(full, 'checkpoint-1'), { recursive: true });
    fs.writeFileSync(path.join(full, 'checkpoint-1', 'trainer_state.json'), '{}');
    const out2 = path.join(root, 'out-ckpt-full');
    const r2 = await lmdr('suite', file, '--checkpoints', full, '--output', out2, ...EVAL_FLAGS);
    expect(r2.code, r2.err).to.equal(0);
    expect(readJson(path.join(out2, 'results.json')).models['step-1'].tiny).to.deep.equal(await evalMetrics(root, model2, beir, ['--measures', 'ndcg@10', '--k', '20', '--passage-max-len', '32']));
  });

  it('length-sweep: one lmdr eval per passage length, a table and a curve; instructions: one per instruction', async () => {
    const long = randomBeir(path.join(root, 'data', 'long'), u, 20, 6, [20, 60]);
    const file = suiteFile('sweep', [
      { name: 'long', type: 'length-sweep', data: 'data/long', metrics: ['ndcg@10', 'recall@5'], k: 20, lengths: [8, 64] },
      { name: 'ins', type: 'instructions', data: 'data/tiny', metrics: ['ndcg@10'], k: 20, passage_max_len: 32, instructions: [
        { name: 'plain', query_instruction: '', seen: true },
        { name: 'find', query_instruction: 'find the city of ', seen: false },
      ] },
    ]);
    const out = path.join(root, 'out-sweep');
    const r = await lmdr('suite', file, '--model', model, '--output', out, ...EVAL_FLAGS);
    expect(r.code, r.err).to.equal(0);
    const res = readJson(path.join(out, 'results.json')).models['qwen-a'];
    for (const len of [8, 64]) {
      expect(res[`long/${len}`]).to.deep.equal(await evalMetrics(root, model, long, ['--measures', 'ndcg@10,recall@5', '--k', '20', '--passage-max-len', String(len)]));
    }
    expect(res['long/8']).to.not.deep.equal(res['long/64']);
    expect(res['ins/find']).to.deep.equal(await evalMetrics(root, model, beir, ['--measures', 'ndcg@10', '--k', '20', '--passage-max-len', '32', '--query-instruction', 'find the city of ']));
    expect(res['ins/plain']).to.deep.equal(await evalMetrics(root, model, beir, ['--measures', 'ndcg@10', '--k', '20', '--passage-max-len', '32']));
    // the instructions share one passage encoding (the corpus cache of the task)
    expect(fs.existsSync(path.join(out, 'work', 'qwen-a', 'ins', 'corpus', 'meta.json'))).to.equal(true);
    const svg = fs.readFileSync(path.join(out, 'charts', 'long.svg'), 'utf8');
    expect(svg).to.contain('data-series="qwen-a"');
    const md = fs.readFileSync(path.join(out, 'results.md'), 'utf8');
    expect(md).to.contain('| model | 8 | 64 | average |');
    expect(md).to.contain('| model | plain (seen) | find (unseen) | average |');
  });

  describe('bad suite files: one error naming the file, task and key; nothing written', () => {
    const cases: [string, unknown, RegExp][] = [
      ['unknown key', { tasks: [{ name: 'a', type: 'retrieval', data: 'data/tiny', lenghts: [1] }] }, /: tasks\[0\] \("a"\): unknown option "lenghts"/],
      ['unknown type', { tasks: [{ name: 'a', type: 'retreival', data: 'data/tiny' }] }, /: tasks\[0\].type must be retrieval, sts, length-sweep, instructions or rag, got the string "retreival" \(did you mean "retrieval"\?\)/],
      ['unknown metric', { tasks: [{ name: 'a', type: 'retrieval', data: 'data/tiny', metrics: ['ndcg@10', 'bleu'] }] }, /tasks\[0\] \("a"\): "metrics": unknown measure "bleu"/],
      ['sts metric on retrieval', { tasks: [{ name: 'a', type: 'sts', data: 'data/sts.jsonl', metrics: ['ndcg@10'] }] }, /tasks\[0\] \("a"\): "metrics" has "ndcg@10", which a sts task does not compute/],
      ['missing folder', { tasks: [{ name: 'a', type: 'retrieval', data: 'data/nope' }] }, /tasks\[0\] \("a"\): "data" "data\/nope": .*data\/nope is not a folder/],
      ['missing qrels split', { tasks: [{ name: 'a', type: 'retrieval', data: 'data/tiny', split: 'dev' }] }, /tasks\[0\] \("a"\): "data" "data\/tiny": .*qrels\/dev.tsv is not a file/],
      ['duplicate name', { tasks: [{ name: 'a', type: 'sts', data: 'data/sts.jsonl' }, { name: 'a', type: 'sts', data: 'data/sts.jsonl' }] }, /tasks\[1\] \("a"\): "name" "a" is used by an earlier task/],
      ['wrong value type', { tasks: [{ name: 'a', type: 'length-sweep', data: 'data/tiny', lengths: [256, '512'] }] }, /tasks\[0\] \("a"\): lengths\[1\] must be an integer >= 1, got the string "512"/],
      ['no tasks', { tasks: [] }, /: tasks must be a non-empty array of/],
    ];
    for (const [what, value, message] of cases) {
      it(what, async () => {
        const file = writeJson(path.join(root, `bad-${what.replace(/ /g, '-')}.json`), value);
        const out = path.join(root, `out-bad-${what.replace(/ /g, '-')}`);
        const r = await lmdr('suite', file, '--model', model, '--output', out, '--no-progress');
        expect(r.code).to.equal(1);
        expect(r.err).to.match(new RegExp(`^lmdr suite: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
        expect(r.err).to.match(message);
        expect(r.err.trim().split('\n')).to.have.length(1);
        expect(fs.existsSync(out)).to.equal(false);
      });
    }
    it('a bad STS line names the file and line', async () => {
      const bad = path.join(root, 'data', 'bad-sts.jsonl');
      fs.writeFileSync(bad, '{"sentence1": "a", "sentence2": "b", "score": 1}\n{"sentence1": "a", "sentence2": "b"}\n');
      const file = writeJson(path.join(root, 'bad-sts.json'), { tasks: [{ name: 's', type: 'sts', data: 'data/bad-sts.jsonl' }] });
      const r = await lmdr('suite', file, '--model', model, '--output', path.join(root, 'out-bad-sts'), '--no-progress');
      expect(r.code).to.equal(1);
      expect(r.err).to.equal(`lmdr suite: ${bad}:2: missing "score" (a number)\n`);
    });
    it('invalid JSON and a rag task without --lm', async () => {
      const file = path.join(root, 'bad-json.json');
      fs.writeFileSync(file, '{"tasks": [');
      const r = await lmdr('suite', file, '--model', model, '--output', path.join(root, 'out-bad-json'), '--no-progress');
      expect(r.code).to.equal(1);
      expect(r.err).to.match(/bad-json.json: invalid JSON/);
      const rag = writeJson(path.join(root, 'bad-rag.json'), { tasks: [{ name: 'r', type: 'rag', mode: 'memory', data: 'data/sts.jsonl' }] });
      const r2 = await lmdr('suite', rag, '--model', model, '--output', path.join(root, 'out-bad-rag'), '--no-progress');
      expect(r2.code).to.equal(1);
      expect(r2.err).to.match(/bad-rag.json: rag tasks need a causal LM \(--lm DIR\)/);
      expect(fs.existsSync(path.join(root, 'out-bad-rag'))).to.equal(false);
    });
  });
});
