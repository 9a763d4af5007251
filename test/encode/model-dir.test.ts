// config.json and checkpoint loading: hand-known values from the generated configs, canonical
// names, and a clear UserError for every broken model dir.
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../lib/errors.ts';
import { checkpointFiles, loadCheckpoint } from '../../lib/model/checkpoint.ts';
import { parseModelConfig, readModelConfig } from '../../lib/model/config.ts';
import { readSafetensorsHeader, writeSafetensors } from '../../lib/model/safetensors.ts';
import { makeTinyModel } from '../helpers/tiny-models.ts';
import { tempDir } from '../helpers/tmp.ts';

const modelDir = (opts: Parameters<typeof makeTinyModel>[0]) => makeTinyModel({ dir: tempDir(), ...opts });

describe('encode: config.json', () => {
  it('qwen2: GQA sizes, q/k/v biases, eos pooling and the EOS id', () => {
    const info = readModelConfig(modelDir({ arch: 'qwen2' }));
    expect(info.native).to.deep.include({ arch: 'decoder', hidden: 32, layers: 2, heads: 4, kvHeads: 2, headDim: 8, intermediate: 64, vocab: 100, qkvBias: true, ropeTheta: 1e6, normEps: 1e-6, ropeScaling: null });
    expect(info.defaultPooling).to.equal('eos');
    expect(info.eosTokenId).to.equal(0); // "<|endoftext|>" is id 0 in the tiny vocab
  });

  it('llama: llama3 rope scaling, head_dim from config.json, no biases', () => {
    const info = readModelConfig(modelDir({ arch: 'llama', ropeScaling: 'llama3', hidden: 32, heads: 4, headDim: 16 }));
    expect(info.native).to.deep.include({ headDim: 16, qkvBias: false, ropeTheta: 10000, normEps: 1e-5 });
    expect(info.native.ropeScaling).to.deep.equal({ factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 128 });
  });

  it('bert: cls pooling, position limit, layer-norm eps', () => {
    const info = readModelConfig(modelDir({ arch: 'bert', maxPositions: 40 }));
    expect(info.native).to.deep.include({ arch: 'bert', kvHeads: 4, headDim: 8, maxPositions: 40, typeVocab: 2, normEps: 1e-12 });
    expect(info.defaultPooling).to.equal('cls');
    expect(info.maxSequence).to.equal(40);
  });

  it('eos_token_id lists use the first id; mistral records its sliding window', () => {
    const base = JSON.parse(fs.readFileSync(path.join(modelDir({ arch: 'mistral' }), 'config.json'), 'utf8'));
    expect(parseModelConfig({ ...base, eos_token_id: [7, 9] }, 'c.json').eosTokenId).to.equal(7);
    expect(parseModelConfig({ ...base, sliding_window: 4096 }, 'c.json').slidingWindow).to.equal(4096);
  });

  it('reads transformers 5 "rope_parameters" as rope_theta + rope_scaling', () => {
    const base = JSON.parse(fs.readFileSync(path.join(modelDir({ arch: 'llama' }), 'config.json'), 'utf8'));
    delete base.rope_theta;
    delete base.rope_scaling;
    const llama3 = { rope_type: 'llama3', rope_theta: 500000, factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 };
    const a = parseModelConfig({ ...base, rope_parameters: llama3 }, 'c.json').native;
    expect(a.ropeTheta).to.equal(500000);
    expect(a.ropeScaling).to.deep.equal({ factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 });
    const b = parseModelConfig({ ...base, rope_parameters: { rope_type: 'default', rope_theta: 1e6 } }, 'c.json').native;
    expect(b.ropeTheta).to.equal(1e6);
    expect(b.ropeScaling).to.equal(null);
    expect(() => parseModelConfig({ ...base, rope_parameters: { rope_type: 'yarn', rope_theta: 1e4 } }, 'c.json')).to.throw(/type "yarn" is not supported/);
  });

  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['an unknown architecture', { model_type: 'gpt2' }, /unsupported model_type "gpt2" \(supported: qwen2, llama, mistral, bert, qwen3, gemma, gemma2, phi, phi3, t5\)/],
    ['another rope scaling', { rope_scaling: { rope_type: 'yarn', factor: 4 } }, /rope_scaling type "yarn" is not supported/],
    ['kv heads that do not divide the heads', { num_key_value_heads: 3 }, /not a multiple of num_key_value_heads 3/],
    ['a missing size', { hidden_size: undefined }, /"hidden_size" must be a positive integer/],
    ['another activation', { hidden_act: 'quick_gelu' }, /hidden_act "quick_gelu" is not supported/],
  ];
  for (const [what, patch, message] of bad) {
    it(`rejects ${what}, naming the file`, () => {
      const base = JSON.parse(fs.readFileSync(path.join(modelDir({ arch: 'llama' }), 'config.json'), 'utf8'));
      expect(() => parseModelConfig({ ...base, ...patch }, '/m/config.json')).to.throw(UserError, message).with.property('message').that.match(/^\/m\/config\.json: /);
    });
  }

  it('rejects a missing or malformed config.json, naming it', () => {
    const dir = tempDir();
    expect(() => readModelConfig(dir)).to.throw(UserError, /config\.json: cannot read model config/);
    fs.writeFileSync(path.join(dir, 'config.json'), '{"model_type": ');
    expect(() => readModelConfig(dir)).to.throw(UserError, /config\.json: invalid JSON/);
  });
});

describe('encode: checkpoint loading', () => {
  it('decoders: strips "model.", skips lm_head, checks every layer tensor', () => {
    const dir = modelDir({ arch: 'qwen2' });
    const src = loadCheckpoint(dir, readModelConfig(dir));
    const names = src.map((t) => t.name);
    expect(names).to.include.members(['embed_tokens.weight', 'layers.1.self_attn.k_proj.bias', 'layers.0.mlp.down_proj.weight', 'norm.weight']);
    expect(names.some((n) => n.includes('lm_head') || n.startsWith('model.'))).to.equal(false);
    expect(src.length).to.equal(1 + 2 * 12 + 1);
    const k = src.find((t) => t.name === 'layers.1.self_attn.k_proj.weight')!;
    expect(k.shape).to.deep.equal([16, 32]); // 2 kv heads x 8
    // the offset points at the bytes the header describes
    const h = readSafetensorsHeader(k.file).tensors.get('model.layers.1.self_attn.k_proj.weight')!;
    expect(k.offset).to.equal(h.offset);
  });

  it('bert with and without the "bert." prefix gives the same names; heads are skipped', () => {
    const bare = modelDir({ arch: 'bert' });
    const prefixed = modelDir({ arch: 'bert', bertPrefix: true });
    const a = loadCheckpoint(bare, readModelConfig(bare)).map((t) => t.name);
    const b = loadCheckpoint(prefixed, readModelConfig(prefixed)).map((t) => t.name);
    expect(a).to.deep.equal(b);
    expect(a).to.include('encoder.layer.1.attention.output.LayerNorm.bias');
    expect(a.some((n) => n.startsWith('pooler') || n.startsWith('cls.'))).to.equal(false);
  });

  it('sharded checkpoints resolve each tensor to its shard', () => {
    const dir = modelDir({ arch: 'mistral', sharded: true });
    expect(checkpointFiles(dir).map((f) => path.basename(f))).to.deep.equal(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    const src = loadCheckpoint(dir, readModelConfig(dir));
    expect(new Set(src.map((t) => path.basename(t.file))).size).to.equal(2);
    expect(src.find((t) => t.name === 'norm.weight')!.file).to.match(/model-00002-of-00002/);
  });

  it('old BERT names (LayerNorm gamma/beta) load under the canonical names', () => {
    const dir = modelDir({ arch: 'bert' });
    const file = path.join(dir, 'model.safetensors');
    const h = readSafetensorsHeader(file);
    // rewrite with legacy names: values do not matter here, only names/shapes
    writeSafetensors(file, [...h.tensors.values()].map((t) => ({
      name: t.name.replace(/LayerNorm\.weight$/, 'LayerNorm.gamma').replace(/LayerNorm\.bias$/, 'LayerNorm.beta'),
      dtype: t.dtype, shape: t.shape, data: new Float32Array(t.shape.reduce((a, b) => a * b, 1)).fill(0.5),
    })));
    const src = loadCheckpoint(dir, readModelConfig(dir));
    expect(src.map((t) => t.name)).to.include('embeddings.LayerNorm.weight');
  });

  it('names the tensor, file, expected and found shape for a wrongly shaped tensor', () => {
    const dir = modelDir({ arch: 'llama' });
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, intermediate_size: 48 }));
    expect(() => loadCheckpoint(dir, readModelConfig(dir))).to.throw(UserError,
      /model\.safetensors: tensor "model\.layers\.0\.mlp\.gate_proj\.weight" has shape \[64,32\], expected \[48,32\]/);
  });

  it('names a missing tensor and a dir without weights', () => {
    const dir = modelDir({ arch: 'llama', layers: 2 });
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, num_hidden_layers: 3 }));
    expect(() => loadCheckpoint(dir, readModelConfig(dir))).to.throw(UserError, /missing tensor "layers\.2\.input_layernorm\.weight"/);
    fs.rmSync(path.join(dir, 'model.safetensors'));
    expect(() => loadCheckpoint(dir, readModelConfig(dir))).to.throw(UserError, /no model\.safetensors or model\.safetensors\.index\.json/);
  });

  it('names a shard the index lists but the dir lacks', () => {
    const dir = modelDir({ arch: 'qwen2', sharded: true });
    fs.rmSync(path.join(dir, 'model-00002-of-00002.safetensors'));
    expect(() => loadCheckpoint(dir, readModelConfig(dir))).to.throw(UserError, /model-00002-of-00002\.safetensors: cannot open/);
  });
});
