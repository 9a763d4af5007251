// Training runs through engine.train(): the SGD exactness rule, resume equivalence,
// checkpoints, the log, divergence handling.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { applyAdapter, readAdapterConfig, readAdapterTensors, writeAdapter } from '../../lib/adapters/peft.ts';
import { Engine } from '../../lib/engine.ts';
import { UserError } from '../../lib/errors.ts';
import { engineBackbone } from '../../lib/train/backbone.ts';
import { listCheckpoints, readTrainerState } from '../../lib/train/checkpoint.ts';
import { loadTrainData, Sampler } from '../../lib/train/data.ts';
import { readTrainLog } from '../../lib/train/log.ts';
import { contrastiveStep } from '../../lib/train/trainer.ts';
import type { TrainOptions } from '../../lib/train/options.ts';
import { TRAIN_LOG } from '../../lib/plot/training-curves.ts';
import { normalRng } from '../helpers/rng.ts';
import { makeTinyModel } from '../helpers/tiny-models.ts';
import { mappedPairs, tmpDir, tinyModel, writeJsonl } from './fixtures.ts';

describe('train: runs', function () {
  let modelDir: string;
  let data: string;
  before(() => {
    modelDir = tinyModel();
    data = writeJsonl(path.join(tmpDir(), 'train.jsonl'), mappedPairs(12, 21));
  });

  async function withEngine<T>(fn: (e: Engine) => Promise<T>): Promise<T> {
    const e = await Engine.load(modelDir, { device: 'cpu' });
    try {
      return await fn(e);
    } finally {
      e.dispose();
    }
  }

  /** A random adapter (A and B nonzero, so every LoRA weight has a gradient). */
  function randomAdapter(seed: number): Promise<string> {
    const dir = tmpDir('adapter');
    const rnd = normalRng(seed);
    return withEngine(async (e) => {
      e.native.addLora({ targets: ['q_proj', 'v_proj', 'down_proj'], r: 4, alpha: 8, dropout: 0, seed: 1 });
      e.native.setTrainable('lora');
      const params = e.native.params().map((p) => ({ ...p, data: Float32Array.from(p.data, () => 0.2 * rnd()) }));
      writeAdapter(dir, { r: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'v_proj', 'down_proj'], baseModel: modelDir }, params);
      return dir;
    });
  }

  it('SGD, constant lr, no warmup/clipping/decay/dropout: one step changes each LoRA weight by exactly -lr x its gradient', async () => {
    const init = await randomAdapter(4);
    const lr = 0.05;
    const opts = { batchSize: 3, groupSize: 3, temperature: 0.05, queryMaxLen: 16, passageMaxLen: 24, seed: 9, queryInstruction: 'find: ', passageInstruction: 'doc: ' };
    // The gradient of that step, computed independently from the same batch.
    const grads = await withEngine(async (e) => {
      applyAdapter(e.native, init, 0);
      const b = engineBackbone(e);
      const batch = new Sampler(await loadTrainData(data), opts.batchSize, opts.groupSize, opts.seed).batch(0);
      const q = b.tokenize(batch.queries, opts.queryMaxLen, opts.queryInstruction);
      const p = b.tokenize(batch.passages, opts.passageMaxLen, opts.passageInstruction);
      const cu = Int32Array.from([...q.cuSeqlens, ...Array.from(p.cuSeqlens.subarray(1), (x) => x + q.ids.length)]);
      const ids = Int32Array.from([...q.ids, ...p.ids]);
      await contrastiveStep(b, { ids, cuSeqlens: cu }, { ...opts, similarity: 'cosine', chunkSize: 0 }, 0);
      return new Map(e.native.grads().map((g) => [g.name, g.data]));
    });
    const out = tmpDir('sgd');
    // --lora-r/--lora-alpha/--lora-targets given too: the initial adapter's r, alpha and targets win.
    const sgd = { data, initAdapter: init, optimizer: 'sgd', lrScheduler: 'constant', warmupSteps: 0, weightDecay: 0, loraDropout: 0, lr, steps: 1, loraR: 16, loraAlpha: 3, loraTargets: ['k_proj'], ...opts } satisfies Omit<TrainOptions, 'output'>;
    await withEngine((e) => e.train({ ...sgd, output: out, maxGradNorm: 0 }));
    expect(readAdapterConfig(out)).to.deep.include({ r: 4, alpha: 8, targets: ['q_proj', 'v_proj', 'down_proj'] });
    const before = readAdapterTensors(init);
    const after = readAdapterTensors(out);
    expect([...after.keys()].sort()).to.deep.equal([...before.keys()].sort());
    let moved = 0;
    for (const [key, t] of after) {
      const g = grads.get(key)!;
      const w0 = before.get(key)!.data;
      t.data.forEach((w1, i) => {
        expect(w1, `${key}[${i}]`).to.equal(Math.fround(w0[i] - lr * g[i]));
        if (w1 !== w0[i]) moved++;
      });
    }
    expect(moved).to.be.greaterThan(100);

    // Clipping to a third of the norm: PyTorch's clip_grad_norm_ scale max / (norm + 1e-6); the log keeps the norm before clipping.
    let sq = 0;
    for (const g of grads.values()) for (const x of g) sq += x * x;
    const norm = Math.sqrt(sq);
    const clipped = tmpDir('sgd-clip');
    await withEngine((e) => e.train({ ...sgd, output: clipped, maxGradNorm: norm / 3 }));
    expect(readTrainLog(path.join(clipped, TRAIN_LOG))[0].grad_norm).to.be.closeTo(norm, 1e-6 * norm);
    const scale = norm / 3 / (norm + 1e-6);
    for (const [key, t] of readAdapterTensors(clipped)) {
      const g = grads.get(key)!;
      const w0 = before.get(key)!.data;
      t.data.forEach((w1, i) => expect(w1, `${key}[${i}]`).to.be.closeTo(w0[i] - lr * scale * g[i], 1e-6 * Math.abs(w0[i]) + 1e-9));
    }
  });

  it('tokenizes exactly like encode: the instruction, truncation to max length - 1, then EOS', async () => {
    await withEngine(async (e) => {
      const texts = ['the river flows to the ocean and the king walks over the old stone bridge again', 'blue'];
      const packed = engineBackbone(e).tokenize(texts, 6, 'query: ');
      const want = e.tokenize(texts, { maxLength: 6, instruction: 'query: ' });
      expect(Array.from(packed.cuSeqlens)).to.deep.equal([0, want[0].length, want[0].length + want[1].length]);
      expect(Array.from(packed.ids)).to.deep.equal([...want[0], ...want[1]]);
      expect(want[0].length).to.equal(6);
      const eos = e.tokenizer!.encode('', 'eos', 4).at(-1);
      expect(want[0][5]).to.equal(eos);
      expect(want[1].at(-1)).to.equal(eos);
      // the instruction's tokens come first
      expect(want[1].slice(0, -2)).to.deep.equal(e.tokenize(['query:'], { maxLength: 64, pooling: 'mean' })[0]);
    });
  });

  it('a text that cannot be tokenized is named by file:line and field', async () => {
    const bert = makeTinyModel({ arch: 'bert', tokenizer: true, seed: 2 });
    // Without its [CLS] ... [SEP] template, a blank text has no tokens at all.
    const tok = path.join(bert, 'tokenizer.json');
    fs.writeFileSync(tok, JSON.stringify({ ...JSON.parse(fs.readFileSync(tok, 'utf8')), post_processor: null }));
    const rows = mappedPairs(4, 3);
    rows[2] = { ...rows[2], neg: [rows[2].neg[0], '   '] };
    const file = writeJsonl(path.join(tmpDir(), 'blank.jsonl'), rows);
    const e = await Engine.load(bert, { device: 'cpu' });
    let err: unknown;
    try {
      await e.train({ data: file, output: tmpDir('blank'), batchSize: 4, groupSize: 3, steps: 1, queryMaxLen: 16, passageMaxLen: 16 });
    } catch (x) {
      err = x;
    } finally {
      e.dispose();
    }
    expect(err).to.be.instanceOf(UserError);
    expect((err as Error).message).to.equal(`${file}:3 neg[1]: empty sequence (no tokens to embed)`);
  });

  it('refuses a max length past a sliding window before training, naming the flag', async () => {
    const mistral = makeTinyModel({ arch: 'mistral', tokenizer: true, seed: 3 });
    const cfg = path.join(mistral, 'config.json');
    fs.writeFileSync(cfg, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfg, 'utf8')), sliding_window: 12 }));
    const e = await Engine.load(mistral, { device: 'cpu' });
    const out = path.join(tmpDir('window'), 'run');
    try {
      await e.train({ data, output: out, batchSize: 2, groupSize: 2, steps: 1, queryMaxLen: 12, passageMaxLen: 16 });
      expect.fail('no error');
    } catch (err) {
      expect(err).to.be.instanceOf(UserError);
      expect((err as Error).message).to.match(/^passageMaxLen 16 exceeds the sliding window of .* \(12 tokens\)/); // the API's name (the CLI says --passage-max-len)
    } finally {
      e.dispose();
    }
    expect(fs.existsSync(out)).to.equal(false);
  });

  it('resume continues exactly: 4 steps == 2 steps, a kill during step 3, then --resume', async () => {
    const opts = {
      data, batchSize: 4, groupSize: 3, steps: 4, saveSteps: 2, lr: 2e-3, warmupSteps: 1, loraR: 4, loraAlpha: 8,
      loraDropout: 0.1, temperature: 0.05, queryMaxLen: 16, passageMaxLen: 24, seed: 5, chunkSize: 7,
    };
    const full = tmpDir('resume-a');
    const a = await withEngine((e) => e.train({ ...opts, output: full }));
    expect(a.losses.length).to.equal(4);

    const split = tmpDir('resume-b');
    let err: unknown;
    try {
      await withEngine((e) => e.train({ ...opts, output: split, onStep: (r) => { if (r.step === 3) throw new Error('killed'); } }));
    } catch (e) {
      err = e;
    }
    expect((err as Error).message).to.equal('killed');
    expect(listCheckpoints(split).map((c) => c.step)).to.deep.equal([2]);
    expect(fs.existsSync(path.join(split, 'adapter_model.safetensors'))).to.equal(false);
    const b = await withEngine((e) => e.train({ ...opts, output: split, resume: true }));
    expect(b.startStep).to.equal(2);
    expect(b.losses).to.deep.equal(a.losses.slice(2));

    const logA = readTrainLog(path.join(full, TRAIN_LOG));
    const logB = readTrainLog(path.join(split, TRAIN_LOG));
    expect(logB.map((r) => r.step)).to.deep.equal([1, 2, 3, 4]); // the killed run's step 3 line was dropped
    expect(logB.map((r) => [r.loss, r.lr, r.grad_norm])).to.deep.equal(logA.map((r) => [r.loss, r.lr, r.grad_norm]));
    const ta = readAdapterTensors(full);
    const tb = readAdapterTensors(split);
    for (const [k, t] of ta) expect(Array.from(tb.get(k)!.data), k).to.deep.equal(Array.from(t.data));
    // and the run really trained: B moved off zero
    expect([...ta].some(([k, t]) => k.includes('lora_B') && t.data.some((x) => x !== 0))).to.equal(true);
  });

  it('writes checkpoints, a PEFT adapter and one log line per step; refuses to mix runs', async () => {
    const out = tmpDir('ckpt');
    const records: number[] = [];
    const s = await withEngine((e) => e.train({
      data, output: out, batchSize: 4, groupSize: 2, epochs: 2, saveSteps: 4, loraR: 2, loraAlpha: 4, loraTargets: ['q_proj', 'k_proj'],
      lrScheduler: 'linear', warmupRatio: 0.5, lr: 1e-3, queryMaxLen: 16, passageMaxLen: 16, onStep: (r) => records.push(r.step),
    }));
    expect(s.steps).to.equal(6); // 2 epochs of ceil(12 / 4)
    expect(records).to.deep.equal([1, 2, 3, 4, 5, 6]);
    expect(listCheckpoints(out).map((c) => c.step)).to.deep.equal([6, 4]);
    const state = readTrainerState(path.join(out, 'checkpoint-4'));
    expect(state.step).to.equal(4);
    expect(state.dataPosition).to.deep.equal({ epoch: 1, stepInEpoch: 1 });
    expect(fs.readdirSync(path.join(out, 'checkpoint-4')).sort()).to.deep.equal(['adapter_config.json', 'adapter_model.safetensors', 'optimizer.safetensors', 'trainer_state.json']);
    expect(fs.readdirSync(out).filter((f) => f.startsWith('.'))).to.deep.equal([]); // no temp files or dirs left
    expect(readAdapterConfig(out)).to.deep.include({ r: 2, alpha: 4, targets: ['q_proj', 'k_proj'] });
    const log = readTrainLog(path.join(out, TRAIN_LOG));
    expect(log.map((r) => r.step)).to.deep.equal([1, 2, 3, 4, 5, 6]);
    // warmup ceil(0.5 * 6) = 3 steps, then linear decay to 0 (hand-computed)
    const want = [0, 1 / 3, 2 / 3, 1, 2 / 3, 1 / 3].map((f) => f * 1e-3);
    log.forEach((r, i) => expect(r.lr).to.be.closeTo(want[i], 1e-12));
    for (const r of log) expect(r.tokens_per_s > 0 && r.grad_norm > 0 && r.loss > 0).to.equal(true);
    let err: unknown;
    try {
      await withEngine((e) => e.train({ data, output: out, batchSize: 4, groupSize: 2, steps: 1 }));
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(UserError);
    expect((err as Error).message).to.match(/already holds a training run \(or a model\); pass resume to continue/);
  });

  it('refuses to resume with different settings, naming the first that differs', async () => {
    const out = tmpDir('resume-diff');
    const opts = { data, output: out, batchSize: 4, groupSize: 2, steps: 2, saveSteps: 1, loraR: 2, queryMaxLen: 16, passageMaxLen: 16 };
    await withEngine((e) => e.train(opts));
    let err: unknown;
    try {
      await withEngine((e) => e.train({ ...opts, lr: 1e-2, resume: true }));
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(UserError);
    expect((err as Error).message).to.match(/^--resume: --lr is 0\.01 but .*checkpoint-2 was trained with 0\.0003/);
    // the LoRA shape comes from the checkpoint on resume, but a different request is still refused
    err = undefined;
    try {
      await withEngine((e) => e.train({ ...opts, loraR: 3, resume: true }));
    } catch (e) {
      err = e;
    }
    expect((err as Error).message).to.match(/^--resume: LoRA flags is \{"--lora-r":3,.* was trained with \{"--lora-r":2,/);
    // a finished run resumed with the same settings has nothing left to do; a killed write's leftovers are removed
    fs.mkdirSync(path.join(out, '.checkpoint-3.4242.tmp'));
    fs.mkdirSync(path.join(out, '.adapter.4242.tmp'));
    fs.writeFileSync(path.join(out, '.adapter_model.safetensors.4242.1700000000000.tmp'), 'partial');
    fs.writeFileSync(path.join(out, '.keep-me'), 'not ours');
    const again = await withEngine((e) => e.train({ ...opts, resume: true }));
    expect([again.startStep, again.losses.length]).to.deep.equal([2, 0]);
    expect(fs.readdirSync(out).filter((f) => f.startsWith('.'))).to.deep.equal(['.keep-me']);
  });

  it('bert: LoRA on query,key,value,dense by default', async () => {
    const out = tmpDir('bert-lora');
    const bert = makeTinyModel({ arch: 'bert', tokenizer: true, seed: 2 });
    const e = await Engine.load(bert, { device: 'cpu' });
    const s = await e.train({ data, output: out, batchSize: 4, groupSize: 2, steps: 2, loraR: 2, queryMaxLen: 16, passageMaxLen: 16 }).finally(() => e.dispose());
    expect(readAdapterConfig(out).targets).to.deep.equal(['query', 'key', 'value', 'dense']);
    // 2 layers x (query, key, value, attention.output.dense, intermediate.dense, output.dense) x (A, B)
    expect(readAdapterTensors(out).size).to.equal(24);
    expect(s.losses.every(Number.isFinite)).to.equal(true);
  });

  it('refuses a second adapter on the same model, saying what to do', async () => {
    const adapter = await randomAdapter(8);
    const e = await Engine.load(modelDir, { device: 'cpu', adapter });
    try {
      await e.train({ data, output: tmpDir('twice'), batchSize: 2, groupSize: 2, steps: 1 });
      expect.fail('no error');
    } catch (err) {
      expect(err).to.be.instanceOf(UserError);
      expect((err as Error).message).to.match(/already has a LoRA adapter .*pass initAdapter/);
    } finally {
      e.dispose();
    }
  });

  it('a non-finite loss stops the run naming the step and keeps the last good checkpoint', async () => {
    const out = tmpDir('nan');
    let err: unknown;
    try {
      // SGD at lr 1e36 without clipping: step 1 is finite, step 2 overflows.
      await withEngine((e) => e.train({
        data, output: out, batchSize: 4, groupSize: 2, steps: 5, saveSteps: 1, optimizer: 'sgd', lr: 1e36,
        lrScheduler: 'constant', maxGradNorm: 0, queryMaxLen: 16, passageMaxLen: 16,
      }));
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(UserError);
    const m = /(loss|gradient norm) is (NaN|-?Infinity) at step (\d+); stopped, the last good checkpoint is (.*)$/.exec((err as Error).message);
    expect(m, (err as Error).message).to.not.equal(null);
    if (process.env.LMDR_TEST_VERBOSE) console.log((err as Error).message);
    const step = Number(m![3]);
    expect(m![4]).to.equal(path.join(out, `checkpoint-${step - 1}`));
    expect(listCheckpoints(out).map((c) => c.step)[0]).to.equal(step - 1);
    expect(fs.existsSync(path.join(out, 'adapter_model.safetensors'))).to.equal(false);
    // and that checkpoint really is good: finite weights
    for (const [k, t] of readAdapterTensors(m![4])) expect(t.data.every(Number.isFinite), k).to.equal(true);
  });

  it('an update that overflows the weights is not saved as a good checkpoint', async () => {
    const out = tmpDir('overflow');
    let err: unknown;
    try {
      // SGD at lr 3e38: the first update of lora_B overflows float32 while the loss and gradient were finite.
      await withEngine((e) => e.train({
        data, output: out, batchSize: 4, groupSize: 2, steps: 3, saveSteps: 1, optimizer: 'sgd', lr: 3e38,
        lrScheduler: 'constant', maxGradNorm: 0, queryMaxLen: 16, passageMaxLen: 16,
      }));
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(UserError);
    expect((err as Error).message).to.match(/^weight layers\.\d+\.\S+\.lora_B\.weight\[\d+\] is -?Infinity after step 1; stopped, no checkpoint was written$/);
    expect(listCheckpoints(out)).to.deep.equal([]);
    expect(fs.readdirSync(out).filter((f) => f !== 'train_log.jsonl')).to.deep.equal([]);
  });
});
