import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, matchAdapterKeys, readAdapterConfig, readAdapterTensors, writeAdapter } from '../../lib/adapters/peft.ts';
import { readSafetensorsHeader, writeSafetensors } from '../../lib/model/safetensors.ts';
import { UserError } from '../../lib/errors.ts';
import { normalRng } from '../helpers/rng.ts';

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
