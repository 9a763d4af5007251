// A demo run at tiny sizes (seconds): every stage runs and leaves its files, the metrics are
// metrics, and the CLI prints the before/after table.
import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runDemo, DEMO_MEASURES, type DemoOptions } from '../../lib/demo/run-demo.ts';
import { main } from '../../lib/cli/main.ts';
import { resultsTable, verdict } from '../../lib/cli/demo.ts';
import { Engine } from '../../lib/engine.ts';
import { parseXml, findAll } from './xml.ts';
import { makeTinyModel } from '../helpers/tiny-models.ts';

const tiny = (output: string): DemoOptions => ({
  output, steps: 3, batchSize: 4, groupSize: 2, evalSteps: 3, passageMaxLen: 32, queryMaxLen: 16, device: 'cpu',
  dataset: { years: [2015, 2021], maxTrainQueries: 24, maxTestQueries: 8 },
  demoModel: { hidden: 16, layers: 1, heads: 2, kvHeads: 1, maxWords: 300 },
});

describe('ship: lmdr demo (tiny sizes)', function () {
  this.timeout(120000);
  let work: string;
  before(() => (work = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdr-demo-test-'))));
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  it('builds the data, generates a model, trains, evaluates before and after, plots', async () => {
    const output = path.join(work, 'api');
    const stepsSeen: number[] = [];
    const evaluated: number[] = [];
    const r = await runDemo(tiny(output), { step: (s) => stepsSeen.push(s.step), evaluated: (s) => evaluated.push(s) });
    expect(stepsSeen).to.deep.equal([1, 2, 3]);
    expect(evaluated).to.deep.equal([0, 3]);
    for (const f of ['data/train.jsonl', 'data/test/corpus.jsonl', 'data/test/queries.jsonl', 'data/test/qrels/test.tsv', 'model/config.json', 'model/tokenizer.json', 'run/train_log.jsonl', 'run/eval_log.jsonl', 'run/curves.svg', 'results.json']) {
      expect(fs.existsSync(path.join(output, f)), f).to.equal(true);
    }
    expect(r.testQueries).to.equal(8);
    // the default generated model is a BERT trained and evaluated with mean pooling
    expect(JSON.parse(fs.readFileSync(path.join(output, 'model', 'config.json'), 'utf8')).model_type).to.equal('bert');
    expect(r.pooling).to.equal('mean');
    for (const side of [r.before, r.after, r.bm25]) {
      expect(Object.keys(side).sort()).to.deep.equal(DEMO_MEASURES.split(',').sort());
      for (const v of Object.values(side)) expect(v).to.be.within(0, 1);
      expect(side['recall@100']).to.be.at.least(side['recall@10']);
    }
    // the trained model dir differs from the generated one, and loads and encodes
    const trained = await Engine.load(path.join(output, 'run'), { device: 'cpu' });
    const fresh = await Engine.load(path.join(output, 'model'), { device: 'cpu' });
    try {
      const text = ['the state of the union is strong'];
      const [a, b] = [await trained.encode(text, { pooling: 'mean' }), await fresh.encode(text, { pooling: 'mean' })];
      expect(Array.from(a.data)).to.not.deep.equal(Array.from(b.data));
      for (const v of a.data) expect(Number.isFinite(v)).to.equal(true);
      // untrained, the generated BERT is a bag of words: word order does not matter, and a word
      // outside the vocabulary is one [UNK] (id 1), not a string of character pieces
      const [x, y] = [await fresh.encode(['the union is strong'], { pooling: 'mean' }), await fresh.encode(['strong is union the'], { pooling: 'mean' })];
      const dot = Array.from(x.data).reduce((acc, v, i) => acc + v * y.data[i], 0);
      expect(dot).to.be.closeTo(1, 1e-5);
      expect(fresh.tokenize(['zzqxv union'])[0]).to.deep.equal([2, 1, fresh.tokenize(['union'])[0][1], 3]);
    } finally {
      trained.dispose();
      fresh.dispose();
    }
    const svg = parseXml(fs.readFileSync(r.curves!, 'utf8'));
    const names = findAll(svg, 'polyline').filter((e) => e.attrs.class === 'series').map((e) => e.attrs['data-series']);
    expect(names).to.include.members(['loss', 'ndcg@10', 'recall@100']);
    expect(JSON.parse(fs.readFileSync(path.join(output, 'results.json'), 'utf8')).after).to.deep.equal(r.after);
  });

  it('the CLI prints the table; a second run replaces the first; a foreign --output is refused', async () => {
    const output = path.join(work, 'cli');
    const args = ['demo', '--output', output, '--steps', '2', '--batch-size', '4', '--group-size', '2', '--max-train', '16', '--max-test', '6', '--years', '2016-2021', '--hidden', '16', '--layers', '1', '--arch', 'llama', '--device', 'cpu', '--no-progress'];
    const writes: string[] = [];
    const original = process.stdout.write.bind(process.stdout);
    const errWrite = process.stderr.write.bind(process.stderr);
    (process.stdout as { write: unknown }).write = (chunk: string) => (writes.push(String(chunk)), true);
    (process.stderr as { write: unknown }).write = () => true;
    let codes: number[];
    try {
      codes = [await main(args), await main(args)];
    } finally {
      (process.stdout as { write: unknown }).write = original;
      (process.stderr as { write: unknown }).write = errWrite;
    }
    expect(codes).to.deep.equal([0, 0]);
    const text = writes.join('');
    expect(text).to.match(/NDCG@10\s+MRR@10\s+Recall@10\s+Recall@100/);
    expect(text).to.match(/before training \(step 0\)/);
    expect(text).to.match(/after 2 steps/);
    expect(text).to.match(/^BM25 \(k1 0\.9, b 0\.4\)(\s+\d\.\d{4}){4}$/m);
    expect(text).to.match(/^(The trained model beats BM25|BM25 beats the trained model) /m);
    expect(text).to.match(/eos pooling/);
    expect(JSON.parse(fs.readFileSync(path.join(output, 'model', 'config.json'), 'utf8')).model_type).to.equal('llama');
    expect(fs.readFileSync(path.join(output, 'run', 'train_log.jsonl'), 'utf8').trim().split('\n')).to.have.length(2);

    const foreign = path.join(work, 'foreign');
    fs.mkdirSync(foreign);
    fs.writeFileSync(path.join(foreign, 'precious.txt'), 'keep me');
    const err = await runDemo(tiny(foreign)).then(() => undefined, (e: Error) => e);
    expect(err?.message).to.match(/not empty and was not written by lmdr demo/);
    expect(fs.readFileSync(path.join(foreign, 'precious.txt'), 'utf8')).to.equal('keep me');
  });

  it('--model DIR trains a LoRA adapter on the given checkpoint', async () => {
    const model = makeTinyModel({ arch: 'qwen2', tokenizer: true, seed: 5, dir: path.join(work, 'user-model') });
    const output = path.join(work, 'lora');
    const r = await runDemo({ ...tiny(output), model, steps: 2, evalSteps: 2 });
    expect(r.generatedModel).to.equal(false);
    expect(fs.existsSync(path.join(output, 'model'))).to.equal(false);
    expect(fs.existsSync(path.join(output, 'run', 'adapter_config.json'))).to.equal(true);
    expect(fs.existsSync(path.join(output, 'run', 'adapter_model.safetensors'))).to.equal(true);
    expect(r.evaluations.map((e) => e.step)).to.deep.equal([0, 2]);
  });

  it('the table shows before, after and the change with 4 decimals', () => {
    const before = { 'ndcg@10': 0.1, 'mrr@10': 0.05, 'recall@10': 0.2, 'recall@100': 0.5 };
    const after = { 'ndcg@10': 0.25, 'mrr@10': 0.04, 'recall@10': 0.4, 'recall@100': 0.75 };
    const lines = resultsTable({ before, after, steps: 10 }).split('\n');
    expect(lines[1]).to.match(/^before training \(step 0\)\s+0\.1000\s+0\.0500\s+0\.2000\s+0\.5000$/);
    expect(lines[2]).to.match(/^after 10 steps\s+0\.2500\s+0\.0400\s+0\.4000\s+0\.7500$/);
    expect(lines[3]).to.match(/^change\s+\+0\.1500\s+-0\.0100\s+\+0\.2000\s+\+0\.2500$/);
  });

  it('the table puts the BM25 row first; the verdict says which wins, measure by measure', () => {
    const before = { 'ndcg@10': 0.1, 'mrr@10': 0.05, 'recall@10': 0.2, 'recall@100': 0.5 };
    const after = { 'ndcg@10': 0.25, 'mrr@10': 0.04, 'recall@10': 0.4, 'recall@100': 0.75 };
    const lines = resultsTable({ before, after, steps: 10, bm25: { 'ndcg@10': 0.2, 'mrr@10': 0.06, 'recall@10': 0.4, 'recall@100': 0.6 } }).split('\n');
    expect(lines[1]).to.match(/^BM25 \(k1 0\.9, b 0\.4\)\s+0\.2000\s+0\.0600\s+0\.4000\s+0\.6000$/);
    expect(lines[2]).to.match(/^before training/);
    expect(verdict({ after, bm25: { 'ndcg@10': 0.2, 'mrr@10': 0.06, 'recall@10': 0.4, 'recall@100': 0.6 } }))
      .to.equal('The trained model beats BM25 on NDCG@10, Recall@100; BM25 wins on MRR@10 (the rest tie).');
    expect(verdict({ after, bm25: before })).to.equal('The trained model beats BM25 on NDCG@10, Recall@10, Recall@100; BM25 wins on MRR@10.');
    expect(verdict({ after: before, bm25: after })).to.equal('The trained model beats BM25 on MRR@10; BM25 wins on NDCG@10, Recall@10, Recall@100.');
    expect(verdict({ after: before, bm25: { ...after, 'mrr@10': 0.06 } })).to.equal('BM25 beats the trained model on every measure.');
    // equal at the printed 4 decimals is a tie, not a win
    expect(verdict({ after: before, bm25: { ...before, 'ndcg@10': 0.10004 } })).to.equal('The trained model and BM25 tie on every measure.');
    expect(verdict({ after: before, bm25: { ...before, 'ndcg@10': 0.2 } })).to.equal('The trained model beats BM25 on no measure; BM25 wins on NDCG@10 (the rest tie).');
    expect(verdict({ after: { ...after, 'mrr@10': 0.3 }, bm25: before })).to.equal('The trained model beats BM25 on every measure.');
  });

  it('rejects bad flags and a --model without config.json, naming them', async () => {
    const errs: string[] = [];
    const errWrite = process.stderr.write.bind(process.stderr);
    (process.stderr as { write: unknown }).write = (chunk: string) => (errs.push(String(chunk)), true);
    let codes: number[];
    try {
      codes = [await main(['demo', '--steps', 'many']), await main(['demo', '--bogus']), await main(['demo', '--years', '2021-1990']), await main(['demo', '--model', work, '--output', path.join(work, 'm')]),
        await main(['demo', '--arch', 'gpt2']), await main(['demo', '--pooling', 'max'])];
    } finally {
      (process.stderr as { write: unknown }).write = errWrite;
    }
    expect(codes).to.deep.equal([1, 1, 1, 1, 1, 1]);
    expect(errs[0]).to.match(/--steps expects an integer/);
    expect(errs[1]).to.match(/bogus/);
    expect(errs[2]).to.match(/--years expects FROM-TO/);
    expect(errs[3]).to.match(/no config\.json/);
    expect(errs[4]).to.match(/--arch expects bert or llama, got "gpt2"/);
    expect(errs[5]).to.match(/--pooling expects eos, cls, mean, got "max"/);
  });
});
