import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, matchAdapterKeys, readAdapterConfig, readAdapterTensors, writeAdapter } from '../../lib/adapters/peft.ts';
import { readSafetensorsHeader, writeSafetensors } from '../../lib/model/safetensors.ts';
import { UserError } from '../../lib/errors.ts';
import { normalRng } from '../helpers/rng.ts';
import { crashAtRename } from './fixtures.ts';

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'lmdr-peft-'));
}

function loraParams(seed: number) {
  const rnd = normalRng(seed);
  const out = [];
  for (let l = 0; l < 2; l++) {
    for (const [m, inF, outF] of [['self_attn.q_proj', 16, 16], ['mlp.down_proj', 24, 16]] as const) {
      out.push({ name: `layers.${l}.${m}.lora_A.weight`, shape: [4, inF], data: Float32Array.from({ length: 4 * inF }, rnd) });
      out.push({ name: `layers.${l}.${m}.lora_B.weight`, shape: [outF, 4], data: Float32Array.from({ length: outF * 4 }, rnd) });
    }
  }
  return out;
}

describe('train: PEFT adapter files', () => {
  it('writes every adapter_config.json field PEFT 0.17 writes for a LoRA adapter', () => {
    const dir = tmpDir();
    writeAdapter(dir, { r: 4, alpha: 8, dropout: 0.05, targets: ['q_proj', 'down_proj'], baseModel: '/models/tiny' }, loraParams(5));
    const raw = JSON.parse(fs.readFileSync(path.join(dir, ADAPTER_CONFIG), 'utf8'));
    // The key set of a PEFT 0.17 LoraConfig.save_pretrained (as seen in published adapters).
    expect(Object.keys(raw).sort()).to.deep.equal([
      'alpha_pattern', 'auto_mapping', 'base_model_name_or_path', 'bias', 'corda_config', 'eva_config', 'exclude_modules',
      'fan_in_fan_out', 'inference_mode', 'init_lora_weights', 'layer_replication', 'layers_pattern', 'layers_to_transform',
      'loftq_config', 'lora_alpha', 'lora_bias', 'lora_dropout', 'megatron_config', 'megatron_core', 'modules_to_save',
      'peft_type', 'qalora_group_size', 'r', 'rank_pattern', 'revision', 'target_modules', 'target_parameters', 'task_type',
      'trainable_token_indices', 'use_dora', 'use_qalora', 'use_rslora',
    ]);
    expect(raw).to.deep.include({
      alpha_pattern: {}, rank_pattern: {}, loftq_config: {}, exclude_modules: null, lora_bias: false, use_dora: false,
      use_qalora: false, use_rslora: false, modules_to_save: null, layers_to_transform: null, target_parameters: null,
      trainable_token_indices: null, init_lora_weights: true, inference_mode: true,
    });
  });

  it('a write killed at any point never leaves a config beside weights it does not describe', () => {
    const first = loraParams(3); // r 4
    const second = loraParams(4).map((p) => (p.name.endsWith('lora_A.weight')
      ? { ...p, shape: [2, p.shape[1]], data: p.data.subarray(0, 2 * p.shape[1]) }
      : { ...p, shape: [p.shape[0], 2], data: p.data.subarray(0, p.shape[0] * 2) })); // r 2
    const cfg = (r: number) => ({ r, alpha: 8, dropout: 0, targets: ['q_proj', 'down_proj'], baseModel: '' });
    let points = 0;
    for (let n = 1; ; n++) {
      const dir = tmpDir();
      writeAdapter(dir, cfg(4), first);
      const crashed = crashAtRename(n, () => writeAdapter(dir, cfg(2), second));
      const names = fs.readdirSync(dir).filter((f) => !f.startsWith('.'));
      if (names.includes(ADAPTER_CONFIG)) {
        const { r } = readAdapterConfig(dir);
        const want = r === 4 ? first : second;
        const got = readAdapterTensors(dir);
        for (const p of want) expect(Array.from(got.get(p.name)!.data), `crash at rename ${n}: ${p.name} (config r ${r})`).to.deep.equal(Array.from(p.data));
      } else {
        expect(() => readAdapterConfig(dir)).to.throw(UserError, /adapter_model\.safetensors without adapter_config\.json: an interrupted write/);
      }
      if (!crashed) break;
      points++;
      writeAdapter(dir, cfg(2), second); // the next write completes the pair
      expect(readAdapterConfig(dir).r).to.equal(2);
      expect(readAdapterTensors(dir).get(second[0].name)!.shape).to.deep.equal([2, 16]);
    }
    expect(points).to.be.at.least(3);
  });

  it('round trip: the same tensors under base_model.model.<path> keys and a PEFT config', () => {
    const dir = tmpDir();
    const params = loraParams(5);
    writeAdapter(dir, { r: 4, alpha: 8, dropout: 0.05, targets: ['q_proj', 'down_proj'], baseModel: '/models/tiny' }, params);
    const header = readSafetensorsHeader(path.join(dir, ADAPTER_WEIGHTS));
    expect([...header.tensors.keys()].sort()).to.deep.equal(params.map((p) => `base_model.model.${p.name}`).sort());
    const raw = JSON.parse(fs.readFileSync(path.join(dir, ADAPTER_CONFIG), 'utf8'));
    expect(raw).to.include({ peft_type: 'LORA', r: 4, lora_alpha: 8, lora_dropout: 0.05, bias: 'none', fan_in_fan_out: false, base_model_name_or_path: '/models/tiny', use_rslora: false });
    expect(raw.target_modules).to.deep.equal(['q_proj', 'down_proj']);
    expect(['FEATURE_EXTRACTION', null]).to.include(raw.task_type);
    expect(readAdapterConfig(dir)).to.deep.equal({ r: 4, alpha: 8, dropout: 0.05, targets: ['q_proj', 'down_proj'], baseModel: '/models/tiny' });
    const back = readAdapterTensors(dir);
    for (const p of params) {
      const t = back.get(p.name)!;
      expect(t.shape).to.deep.equal(p.shape);
      expect(Array.from(t.data)).to.deep.equal(Array.from(p.data));
    }
    // no temp files left behind
    expect(fs.readdirSync(dir).sort()).to.deep.equal([ADAPTER_CONFIG, ADAPTER_WEIGHTS]);
  });

  it('matches both key forms (AutoModel and *ForCausalLM) to the model\'s parameter names', () => {
    const names = loraParams(1).map((p) => p.name);
    const plain = matchAdapterKeys('d', names, names);
    expect([...plain.entries()]).to.deep.equal(names.map((n) => [n, n]));
    const causal = matchAdapterKeys('d', names.map((n) => `model.${n}`), names);
    expect([...causal.entries()]).to.deep.equal(names.map((n) => [n, `model.${n}`]));
  });

  it('skips LoRA on modules no embedding passes through (PEFT puts "dense" on BertModel\'s pooler too)', () => {
    const names = ['encoder.layer.0.attention.self.query.lora_A.weight', 'encoder.layer.0.attention.self.query.lora_B.weight'];
    const extra = ['pooler.dense.lora_A.weight', 'pooler.dense.lora_B.weight', 'bert.pooler.dense.lora_A.weight', 'lm_head.lora_B.weight'];
    expect([...matchAdapterKeys('d', [...names, ...extra], names).keys()]).to.deep.equal(names);
    expect(() => matchAdapterKeys('d', [...names, 'encoder.layer.0.attention.self.poolerx.lora_A.weight'], names)).to.throw(UserError, /matches no LoRA module/);
  });

  it('rejects adapters that do not fit the model', () => {
    const names = loraParams(1).map((p) => p.name);
    expect(() => matchAdapterKeys('d', names.slice(1), names)).to.throw(UserError, /missing "base_model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight"/);
    expect(() => matchAdapterKeys('d', [...names, 'layers.9.self_attn.q_proj.lora_A.weight'], names)).to.throw(UserError, /layers\.9\.self_attn\.q_proj\.lora_A\.weight" matches no LoRA module/);
    expect(() => matchAdapterKeys('d', [names[0], `model.${names[0]}`], names.slice(0, 1))).to.throw(UserError, /name the same module/);
  });

  const badConfigs: [string, Record<string, unknown>, RegExp][] = [
    ['another PEFT type', { peft_type: 'IA3' }, /peft_type "IA3" is not supported/],
    ['a bad rank', { r: 0 }, /"r" must be an integer >= 1/],
    ['rsLoRA', { use_rslora: true }, /use_rslora/],
    ['DoRA', { use_dora: true }, /use_dora/],
    ['a regex target', { target_modules: '.*proj' }, /regular expression/],
    ['bias training', { bias: 'all' }, /bias "all"/],
    ['rank patterns', { rank_pattern: { q_proj: 8 } }, /rank_pattern/],
    ['a LoRA bias', { lora_bias: true }, /lora_bias/],
    ['excluded modules', { exclude_modules: ['layers.0.self_attn.q_proj'] }, /exclude_modules/],
    ['QA-LoRA', { use_qalora: true }, /use_qalora/],
    ['trainable tokens', { trainable_token_indices: [1, 2] }, /trainable_token_indices/],
    ['a bad dropout', { lora_dropout: 'high' }, /"lora_dropout" must be a number/],
  ];
  for (const [what, patch, re] of badConfigs) {
    it(`rejects a config with ${what}, naming the file`, () => {
      const dir = tmpDir();
      writeAdapter(dir, { r: 4, alpha: 8, dropout: 0, targets: ['q_proj'], baseModel: '' }, loraParams(2));
      const file = path.join(dir, ADAPTER_CONFIG);
      fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), ...patch }));
      expect(() => readAdapterConfig(dir)).to.throw(UserError, re).with.property('message').that.contains(file);
    });
  }

  it('rejects a missing config, bad JSON and non-LoRA tensors', () => {
    const dir = tmpDir();
    expect(() => readAdapterConfig(dir)).to.throw(UserError, /not a PEFT adapter dir/);
    fs.writeFileSync(path.join(dir, ADAPTER_CONFIG), '{"peft_type": ');
    expect(() => readAdapterConfig(dir)).to.throw(UserError, /invalid JSON/);
    writeSafetensors(path.join(dir, ADAPTER_WEIGHTS), [{ name: 'base_model.model.layers.0.mlp.up_proj.weight', dtype: 'F32', shape: [2, 2], data: [1, 2, 3, 4] }]);
    expect(() => readAdapterTensors(dir)).to.throw(UserError, /is not a LoRA weight/);
  });
});
