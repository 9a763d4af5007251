// The Hugging Face JSON files lmdr reads (config.json, tokenizer_config.json,
// model.safetensors.index.json, the sentence-transformers files) are checked against one
// declaration each (lib/schema.ts): a wrong type is one UserError naming the file and the key,
// and keys lmdr does not read pass through.
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../lib/errors.ts';
import { checkpointFiles } from '../../lib/model/checkpoint.ts';
import { parseModelConfig, readModelConfig } from '../../lib/model/config.ts';
import { readSentenceTransformers } from '../../lib/model/sentence-transformers.ts';
import { TextTokenizer } from '../../lib/model/tokenizer.ts';
import { makeTinyModel } from '../helpers/tiny-models.ts';
import { tempDir } from '../helpers/tmp.ts';

const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('encode: config.json schema', () => {
  const configOf = (arch: Parameters<typeof makeTinyModel>[0]['arch']) => readJson(path.join(makeTinyModel({ arch, dir: tempDir() }), 'config.json'));

  const bad: [string, Record<string, unknown>, string, RegExp][] = [
    ['llama', { hidden_size: '32' }, 'hidden_size', /must be a positive integer, got the string "32"/],
    ['llama', { num_key_value_heads: 2.5 }, 'num_key_value_heads', /must be a positive integer, got 2\.5/],
    ['llama', { rms_norm_eps: '1e-5' }, 'rms_norm_eps', /must be a positive number, got the string "1e-5"/],
    ['llama', { tie_word_embeddings: 'false' }, 'tie_word_embeddings', /must be true or false, got the string "false"/],
    ['llama', { eos_token_id: '2' }, 'eos_token_id', /must be an integer or an array of integers/],
    ['llama', { rope_scaling: { rope_type: 'llama3', factor: '8' } }, 'rope_scaling.factor', /must be a positive number, got the string "8"/],
    ['llama', { rope_scaling: [8] }, 'rope_scaling', /must be an object, got an array/],
    ['llama', { rope_parameters: { rope_type: 7 } }, 'rope_parameters.rope_type', /must be a string, got 7/],
    ['llama', { hidden_act: 1 }, 'hidden_act', /must be a string, got 1/],
    ['mistral', { sliding_window: '4096' }, 'sliding_window', /must be an integer >= 0 or null/],
    ['llama', { layer_types: 'full_attention' }, 'layer_types', /must be an array of strings/],
    ['llama', { partial_rotary_factor: 2 }, 'partial_rotary_factor', /must be in \(0, 1\], got 2/],
    ['bert', { max_position_embeddings: [40] }, 'max_position_embeddings', /must be a positive integer, got an array/],
    ['bert', { layer_norm_eps: false }, 'layer_norm_eps', /must be a positive number, got boolean false/],
    ['t5', { d_model: '32' }, 'd_model', /must be a positive integer, got the string "32"/],
    ['t5', { is_decoder: 'no' }, 'is_decoder', /must be true or false/],
    ['t5', { feed_forward_proj: ['relu'] }, 'feed_forward_proj', /must be a string, got an array/],
  ];
  for (const [arch, patch, key, message] of bad) {
    it(`${arch}: a wrong type of "${key}" names the file and the key`, () => {
      const json = { ...configOf(arch as 'llama'), ...patch };
      expect(() => parseModelConfig(json, '/m/config.json')).to.throw(UserError)
        .with.property('message').that.matches(new RegExp(`^/m/config\\.json: "${esc(key)}" `)).and.matches(message);
    });
  }

  it('through readModelConfig the message names the dir\'s config.json', () => {
    const dir = makeTinyModel({ arch: 'qwen2', dir: tempDir() });
    const file = path.join(dir, 'config.json');
    fs.writeFileSync(file, JSON.stringify({ ...readJson(file), num_hidden_layers: '2' }));
    expect(() => readModelConfig(dir)).to.throw(UserError, `${file}: "num_hidden_layers" must be a positive integer, got the string "2"`);
  });

  it('keys lmdr does not read pass through; null reads as the default; null soft-caps and windows are off', () => {
    const json = { ...configOf('llama'), architectures: ['LlamaForCausalLM'], torch_dtype: 'bfloat16', num_key_value_heads: null, some_future_key: { x: [1] } };
    const info = parseModelConfig(json, 'config.json');
    expect(info.native.kvHeads).to.equal(info.native.heads);
    const gemma2 = { ...configOf('gemma2'), attn_logit_softcapping: null, sliding_window: null };
    const g = parseModelConfig(gemma2, 'config.json').native;
    expect(g.attnSoftcap).to.equal(0);
    expect(g.slidingLayers).to.equal(undefined);
  });
});

describe('encode: tokenizer_config.json and model.safetensors.index.json schemas', () => {
  const withTokenizerConfig = (patch: Record<string, unknown>) => {
    const dir = makeTinyModel({ arch: 'qwen2', tokenizer: true, dir: tempDir() });
    const file = path.join(dir, 'tokenizer_config.json');
    fs.writeFileSync(file, JSON.stringify({ ...readJson(file), ...patch }));
    return { dir, file };
  };

  it('tokenizer_config.json: "eos_token" as a string or an AddedToken object; other keys pass through', () => {
    for (const eos of ['<|endoftext|>', { content: '<|endoftext|>', lstrip: false, special: true }]) {
      const { dir } = withTokenizerConfig({ eos_token: eos, some_future_key: [1, { x: 2 }] });
      expect(TextTokenizer.load(dir, readModelConfig(dir))!.eosId).to.equal(0);
    }
  });

  const bad: [unknown, string, RegExp][] = [
    [7, 'eos_token', /must be a string or an object \{"content": "\.\.\."\}, got 7/],
    [['<|endoftext|>'], 'eos_token', /must be a string or an object .*, got an array/],
    [{ content: 7 }, 'eos_token', /must be a string or an object .*, got an object/],
  ];
  for (const [eos, key, message] of bad) {
    it(`tokenizer_config.json: "eos_token" ${JSON.stringify(eos)} names the file and the key`, () => {
      const { dir, file } = withTokenizerConfig({ eos_token: eos });
      expect(() => TextTokenizer.load(dir, readModelConfig(dir))).to.throw(UserError)
        .with.property('message').that.matches(new RegExp(`^${esc(file)}: "${key}" `)).and.matches(message);
    });
  }

  const withIndex = (edit: (index: Record<string, unknown>) => unknown) => {
    const dir = makeTinyModel({ arch: 'mistral', sharded: true, dir: tempDir() });
    const file = path.join(dir, 'model.safetensors.index.json');
    fs.writeFileSync(file, JSON.stringify(edit(readJson(file))));
    return { dir, file };
  };

  it('model.safetensors.index.json: "metadata" and other keys pass through', () => {
    const { dir } = withIndex((ix) => ({ ...ix, metadata: { total_size: '12', format: 'pt' }, extra: true }));
    expect(checkpointFiles(dir)).to.have.length(2);
  });

  const badIndex: [string, (ix: Record<string, unknown>) => unknown, RegExp][] = [
    ['a missing weight_map', (ix) => ({ metadata: ix.metadata }), /: "weight_map" must be an object of strings, got nothing$/],
    ['a weight_map array', () => ({ weight_map: ['a.safetensors'] }), /: "weight_map" must be an object of strings, got an array/],
    ['a shard that is not a file name', (ix) => ({ ...ix, weight_map: { ...(ix.weight_map as object), 'model.norm.weight': 2 } }),
      /: "weight_map" entry "model\.norm\.weight" must be a string, got 2$/],
    ['an index that is not an object', () => [1], /: model\.safetensors\.index\.json must be a JSON object, got an array/],
  ];
  for (const [what, edit, message] of badIndex) {
    it(`model.safetensors.index.json: ${what} names the file and the key`, () => {
      const { dir, file } = withIndex(edit);
      expect(() => checkpointFiles(dir)).to.throw(UserError).with.property('message').that.matches(new RegExp(`^${esc(file)}: `)).and.matches(message);
    });
  }
});

describe('encode: sentence-transformers JSON schemas', () => {
  const golden = path.join(import.meta.dirname, '../fixtures/golden/st-qwen3');
  /** a copy of the golden sentence-transformers 6 dir with one file's JSON edited */
  const stDir = (file: string, edit: (v: Record<string, unknown>) => unknown) => {
    const dir = tempDir();
    fs.cpSync(golden, dir, { recursive: true });
    const f = path.join(dir, file);
    fs.writeFileSync(f, JSON.stringify(edit(fs.existsSync(f) ? readJson(f) : {})));
    return { dir, file: f };
  };

  it('sentence-transformers 6 and 2.x pooling formats, null defaults and unread keys all load', () => {
    const six = readSentenceTransformers(golden)!;
    expect(six.pooling).to.deep.equal({ mode: 'lasttoken', includePrompt: true });
    expect(six.prompts).to.include({ query: 'query: ' });
    expect(six.defaultPromptName).to.equal(null);
    expect(six.dense[0]).to.include({ inFeatures: 64, outFeatures: 32 });
    const { dir } = stDir('1_Pooling/config.json', () => ({
      word_embedding_dimension: 64, pooling_mode_cls_token: false, pooling_mode_mean_tokens: true, pooling_mode_max_tokens: false,
      pooling_mode_mean_sqrt_len_tokens: false, pooling_mode_weightedmean_tokens: false, pooling_mode_lasttoken: false, include_prompt: false,
    }));
    fs.writeFileSync(path.join(dir, 'sentence_bert_config.json'), JSON.stringify({ max_seq_length: 7, do_lower_case: false }));
    const two = readSentenceTransformers(dir)!;
    expect(two.pooling).to.deep.equal({ mode: 'mean', includePrompt: false });
    expect(two.maxSeqLength).to.equal(7);
  });

  const bad: [string, (v: Record<string, unknown>) => unknown, string, RegExp][] = [
    ['modules.json', (v) => ({ modules: v }), 'modules.json', /modules\.json must be an array of objects, got an object/],
    ['modules.json', (v) => [v[0], { ...(v as unknown as object[])[1], path: 1 }], 'module 1 "path"', /must be a string, got 1/],
    ['modules.json', (v) => [{ ...(v as unknown as object[])[0], type: null }], 'module 0 "type"', /must be a string, got null/],
    ['1_Pooling/config.json', (v) => ({ ...v, pooling_mode: 1 }), '"pooling_mode"', /must be a string, got 1/],
    ['1_Pooling/config.json', (v) => ({ ...v, include_prompt: 'false' }), '"include_prompt"', /must be true or false, got the string "false"/],
    ['1_Pooling/config.json', () => ({ pooling_mode_mean_tokens: 'true' }), '"pooling_mode_mean_tokens"', /must be true or false/],
    ['2_Dense/config.json', (v) => ({ ...v, in_features: '64' }), '"in_features"', /must be a positive integer, got the string "64"/],
    ['2_Dense/config.json', (v) => ({ ...v, out_features: undefined }), '"out_features"', /^missing "out_features" \(a positive integer\)$/],
    ['2_Dense/config.json', (v) => ({ ...v, bias: 1 }), '"bias"', /must be true or false, got 1/],
    ['2_Dense/config.json', (v) => ({ ...v, activation_function: { name: 'Tanh' } }), '"activation_function"', /must be a string, got an object/],
    ['config_sentence_transformers.json', (v) => ({ ...v, prompts: { query: 1 } }), '"prompts.query"', /must be a string, got 1/],
    ['config_sentence_transformers.json', (v) => ({ ...v, prompts: ['query: '] }), '"prompts"', /must be an object of strings, got an array/],
    ['config_sentence_transformers.json', (v) => ({ ...v, default_prompt_name: 0 }), '"default_prompt_name"', /must be a string, got 0/],
    ['sentence_bert_config.json', (v) => ({ ...v, max_seq_length: '512' }), '"max_seq_length"', /must be a positive integer, got the string "512"/],
  ];
  for (const [name, edit, key, message] of bad) {
    it(`${name}: a wrong ${key} names the file and the key`, () => {
      const { dir, file } = stDir(name, edit);
      expect(() => readSentenceTransformers(dir)).to.throw(UserError).with.property('message')
        .that.matches(new RegExp(`^${esc(file)}: (missing )?${esc(key)}`))
        .and.satisfies((m: string) => message.test(m.slice(file.length + 2)));
    });
  }
});
