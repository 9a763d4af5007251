// sentence-transformers model dirs: modules.json with Pooling (lasttoken / mean with
// include_prompt false), Dense (safetensors, Tanh), Normalize, prompts and the default prompt;
// Matryoshka --dim. Checked against the float64 reference model plus the modules by hand.
import { l2RelError } from '../ops/harness.ts';
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { Engine } from '../../lib/engine.ts';
import { UserError } from '../../lib/errors.ts';
import { writeSafetensors } from '../../lib/model/safetensors.ts';
import { ReferenceModel } from '../reference/model.ts';
import { makeTinyModel } from '../helpers/tiny-models.ts';
import { normalRng } from '../helpers/rng.ts';
import { tempDir } from '../helpers/tmp.ts';
import { runCli } from '../helpers/run-cli.ts';
import { readNpy } from '../../lib/formats/npy.ts';

const H = 32, OUT = 12;

function stDir(pooling: 'lasttoken' | 'mean', includePrompt: boolean, defaultPrompt: string | null): { dir: string; W: Float64Array; b: Float64Array } {
  const dir = makeTinyModel({ arch: 'qwen3', seed: 81, tokenizer: true, headDim: 16, dir: tempDir() });
  const write = (file: string, v: unknown) => {
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.writeFileSync(path.join(dir, file), JSON.stringify(v));
  };
  write('modules.json', [
    { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
    { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
    { idx: 2, name: '2', path: '2_Dense', type: 'sentence_transformers.models.Dense' },
    { idx: 3, name: '3', path: '3_Normalize', type: 'sentence_transformers.models.Normalize' },
  ]);
  write('1_Pooling/config.json', {
    word_embedding_dimension: H, pooling_mode_cls_token: false, pooling_mode_mean_tokens: pooling === 'mean',
    pooling_mode_max_tokens: false, pooling_mode_mean_sqrt_len_tokens: false, pooling_mode_weightedmean_tokens: false,
    pooling_mode_lasttoken: pooling === 'lasttoken', include_prompt: includePrompt,
  });
  write('2_Dense/config.json', { in_features: H, out_features: OUT, bias: true, activation_function: 'torch.nn.modules.activation.Tanh' });
  const r = normalRng(82);
  const W = Float64Array.from({ length: OUT * H }, () => r() / Math.sqrt(H));
  const b = Float64Array.from({ length: OUT }, () => 0.1 * r());
  writeSafetensors(path.join(dir, '2_Dense/model.safetensors'), [
    { name: 'linear.weight', dtype: 'F32', shape: [OUT, H], data: W }, { name: 'linear.bias', dtype: 'F32', shape: [OUT], data: b },
  ]);
  fs.mkdirSync(path.join(dir, '3_Normalize'));
  write('config_sentence_transformers.json', { prompts: { query: 'what is ', passage: 'the ' }, default_prompt_name: defaultPrompt, similarity_fn_name: 'cosine' });
  return { dir, W: Float64Array.from(W, (x) => Math.fround(x)), b: Float64Array.from(b, (x) => Math.fround(x)) };
}

function modules(pooled: Float64Array, W: Float64Array, b: Float64Array): Float64Array {
  const y = new Float64Array(OUT);
  for (let o = 0; o < OUT; o++) {
    let s = b[o];
    for (let i = 0; i < H; i++) s += W[o * H + i] * pooled[i];
    y[o] = Math.tanh(s);
  }
  const n = Math.hypot(...y);
  return y.map((x) => x / n);
}


describe('encode: sentence-transformers model dirs', function () {
  this.timeout(60_000);
  const texts = ['the river flow', 'a large city of stone', 'gold'];

  it('lasttoken pooling takes the tokenizer\'s last token (no EOS of lmdr), then Dense (Tanh) and Normalize; prompts by name and default', async () => {
    const { dir, W, b } = stDir('lasttoken', true, 'query');
    const engine = await Engine.load(dir, { device: 'cpu' });
    try {
      expect(engine.dim).to.equal(OUT);
      const ref = new ReferenceModel(dir);
      const tok = engine.tokenizer!.hf;
      for (const [opts, prefix] of [[{}, 'what is '], [{ promptName: 'passage' }, 'the '], [{ prompt: '' }, '']] as const) {
        const got = await engine.encode(texts, opts);
        expect(got.dim).to.equal(OUT);
        texts.forEach((t, i) => {
          const ids = tok.encode(prefix + t, { add_special_tokens: true }).ids;
          expect(engine.tokenize([t], opts)[0]).to.deep.equal(ids); // nothing appended
          const h = ref.hiddenStates(ids);
          const want = modules(h.slice((ids.length - 1) * H, ids.length * H), W, b);
          expect(l2RelError(got.row(i), want), `${JSON.stringify(opts)} row ${i}`).to.be.below(1e-5);
        });
      }
      // Matryoshka: the first 5 dimensions, re-normalised
      const full = await engine.encode(texts);
      const cut = await engine.encode(texts, { dim: 5 });
      expect(cut.dim).to.equal(5);
      const head = Array.from(full.row(1).subarray(0, 5));
      const n = Math.hypot(...head);
      expect(l2RelError(cut.row(1), head.map((x) => x / n))).to.be.below(1e-6);
      await engine.encode(texts, { promptName: 'nope' }).then(() => expect.fail('no error'), (err) => {
        expect(err).to.be.instanceOf(UserError);
        expect((err as Error).message).to.match(/prompt name "nope" is not defined by .*its prompts: query, passage/);
      });
      await engine.encode(texts, { dim: OUT + 1 }).then(() => expect.fail('no error'), (err) => expect((err as Error).message).to.match(/dim 13 exceeds the model's embedding size 12/));
    } finally {
      engine.dispose();
    }
  });

  it('max_seq_length of the dir is the default max length, for the API and lmdr encode alike', async () => {
    const { dir } = stDir('lasttoken', true, null);
    fs.writeFileSync(path.join(dir, 'sentence_bert_config.json'), JSON.stringify({ max_seq_length: 6, do_lower_case: false }));
    const long = 'the river flow of a large city of stone and gold';
    const engine = await Engine.load(dir, { device: 'cpu' });
    try {
      expect(engine.tokenize([long])[0].length).to.equal(6);
      const api = await engine.encode([long]);
      const input = path.join(tempDir(), 'in.jsonl'), output = path.join(tempDir(), 'out.npy');
      fs.writeFileSync(input, JSON.stringify({ text: long }) + '\n');
      const r = await runCli(['encode', '--model', dir, '--input', input, '--output', output, '--device', 'cpu']);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stderr).to.match(/truncated/).and.to.match(/\b6\b/);
      const cli = readNpy(output);
      expect(l2RelError(cli.data, api.row(0))).to.be.below(1e-6);
    } finally {
      engine.dispose();
    }
  });

  it('mean pooling with include_prompt false leaves the prompt tokens out', async () => {
    const { dir, W, b } = stDir('mean', false, null);
    const engine = await Engine.load(dir, { device: 'cpu' });
    try {
      const ref = new ReferenceModel(dir);
      const tok = engine.tokenizer!.hf;
      const got = await engine.encode(texts, { promptName: 'query' });
      // sentence-transformers: prompt length = its token count with special tokens, minus one
      const skip = tok.encode('what is ', { add_special_tokens: true }).ids.length - 1;
      texts.forEach((t, i) => {
        const ids = tok.encode('what is ' + t, { add_special_tokens: true }).ids;
        const h = ref.hiddenStates(ids);
        const mean = new Float64Array(H);
        for (let s = skip; s < ids.length; s++) for (let j = 0; j < H; j++) mean[j] += h[s * H + j] / (ids.length - skip);
        expect(l2RelError(got.row(i), modules(mean, W, b)), `row ${i}`).to.be.below(1e-5);
      });
    } finally {
      engine.dispose();
    }
  });

  const golden = path.resolve(import.meta.dirname, '../fixtures/golden/st-qwen3');
  (fs.existsSync(path.join(golden, 'expected.json')) ? it : it.skip)('golden: equals SentenceTransformer.encode on test/fixtures/golden/st-qwen3 (no prompt, query, passage)', async () => {
    const want = JSON.parse(fs.readFileSync(path.join(golden, 'expected.json'), 'utf8')) as { texts: string[]; embeddings: Record<string, number[][]> };
    const engine = await Engine.load(golden, { device: 'cpu' });
    try {
      for (const [name, rows] of Object.entries(want.embeddings)) {
        const got = await engine.encode(want.texts, name === 'none' ? {} : { promptName: name });
        rows.forEach((row, i) => expect(l2RelError(got.row(i), row), `${name} text ${i}`).to.be.below(1e-4));
      }
    } finally {
      engine.dispose();
    }
  });

  it('a Dense layer only in pytorch_model.bin, an unknown module and an unsupported pooling mode are clear errors', async () => {
    const { dir } = stDir('lasttoken', true, null);
    fs.renameSync(path.join(dir, '2_Dense/model.safetensors'), path.join(dir, '2_Dense/pytorch_model.bin'));
    await Engine.load(dir).then(() => expect.fail('no error'), (err) => expect((err as Error).message).to.match(/pytorch_model\.bin: a Dense layer stored only as pytorch_model\.bin is not supported; convert it to safetensors/));
    const other = stDir('lasttoken', true, null).dir;
    const cfg = path.join(other, '1_Pooling/config.json');
    fs.writeFileSync(cfg, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfg, 'utf8')), pooling_mode_lasttoken: false, pooling_mode_max_tokens: true }));
    await Engine.load(other).then(() => expect.fail('no error'), (err) => expect((err as Error).message).to.match(/"pooling_mode_max_tokens": true is not supported/));
  });
});
