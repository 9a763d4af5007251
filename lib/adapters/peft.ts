// PEFT LoRA adapters on disk: adapter_config.json + adapter_model.safetensors.
// Keys are `base_model.model.<module path>.lora_A.weight` ([r, in]) and `.lora_B.weight`
// ([out, r]), the form PEFT writes for an AutoModel backbone; the `base_model.model.model.`
// form (PEFT over a *ForCausalLM model) loads too. Scale alpha / r (no rsLoRA, no DoRA).
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.ts';
import { array, jsonKeys, number, object, optional, parse, string, union, type Infer } from '../schema.ts';
import { tempPathFor, writeFileAtomic } from '../formats/atomic-write.ts';
import { readSafetensorsHeader, readTensorValues, writeSafetensors } from '../model/safetensors.ts';
import type { HostTensor, LoraSpec, NativeModel, SafetensorsDType } from '../native.ts';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';
const KEY_PREFIX = 'base_model.model.';

/** The adapter settings lmdr writes and reads (writeAdapter's `config`); AdapterConfig is derived from it. */
export const adapterConfigSchema = object({
  r: number({ int: true, min: 1 }),
  alpha: number({ above: 0 }),
  dropout: number({ min: 0, below: 1 }),
  targets: array(string({ nonEmpty: true }), { nonEmpty: true }),
  baseModel: string(), // base_model_name_or_path
}, { expected: 'an adapter config object {r, alpha, dropout, targets, baseModel}' });
export type AdapterConfig = Infer<typeof adapterConfigSchema>;

/** The fields of adapter_config.json lmdr reads, with their types (other fields are PEFT's, checked below or ignored). */
const peftConfigFileSchema = object({
  r: number({ int: true, min: 1 }),
  lora_alpha: number({ above: 0 }),
  target_modules: union(string({ nonEmpty: true }), array(string({ nonEmpty: true }), { nonEmpty: true }), 'a non-empty list of module names'),
  lora_dropout: optional(number({ min: 0, below: 1 }), { nullable: true }),
  base_model_name_or_path: optional(string(), { nullable: true }),
}, { unknownKeys: 'keep', expected: 'a JSON object' });

/**
 * Every field PEFT (0.17) writes for a plain LoRA adapter, with PEFT's values for the features
 * lmdr does not use, so Python's PeftModel.from_pretrained loads it (older PEFT ignores the
 * newer fields with a warning).
 */
export function peftConfigJson(c: AdapterConfig): Record<string, unknown> {
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: c.baseModel,
    bias: 'none',
    corda_config: null,
    eva_config: null,
    exclude_modules: null,
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: c.alpha,
    lora_bias: false,
    lora_dropout: c.dropout,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: null,
    peft_type: 'LORA',
    qalora_group_size: 16,
    r: c.r,
    rank_pattern: {},
    revision: null,
    target_modules: c.targets,
    target_parameters: null,
    task_type: 'FEATURE_EXTRACTION',
    trainable_token_indices: null,
    use_dora: false,
    use_qalora: false,
    use_rslora: false,
  };
}

const isEmpty = (v: unknown) => v === undefined || v === null || (typeof v === 'object' && Object.keys(v as object).length === 0);

/** Read and check adapter_config.json: only what lmdr can reproduce exactly is accepted. */
export function readAdapterConfig(dir: string): AdapterConfig {
  parse(string({ nonEmpty: true }), dir, { where: 'readAdapterConfig', label: () => 'dir' });
  const file = path.join(dir, ADAPTER_CONFIG);
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code !== 'ENOENT') throw new UserError(`${file}: invalid JSON (${e.message})`);
    if (fs.existsSync(path.join(dir, ADAPTER_WEIGHTS))) {
      throw new UserError(`${dir}: ${ADAPTER_WEIGHTS} without ${ADAPTER_CONFIG}: an interrupted write (lmdr train --resume finishes it)`);
    }
    throw new UserError(`${dir}: not a PEFT adapter dir (no ${ADAPTER_CONFIG})`);
  }
  const bad = (what: string) => new UserError(`${file}: ${what}`);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('not a JSON object');
  const c = raw as Record<string, unknown>;
  if (c.peft_type !== 'LORA') throw bad(`peft_type ${JSON.stringify(c.peft_type)} is not supported (only "LORA")`);
  const typed = parse(peftConfigFileSchema, raw, jsonKeys(file, 'the file'));
  let targets = typed.target_modules;
  if (typeof targets === 'string') {
    if (!/^[A-Za-z0-9_]+$/.test(targets)) throw bad(`target_modules as a regular expression (${JSON.stringify(targets)}) is not supported; give a list of module names`);
    targets = [targets];
  }
  if (c.use_rslora === true) throw bad('use_rslora (scale alpha/sqrt(r)) is not supported');
  if (c.use_dora === true) throw bad('use_dora is not supported');
  if (c.fan_in_fan_out === true) throw bad('fan_in_fan_out (Conv1D weights) is not supported');
  if (c.bias !== undefined && c.bias !== 'none') throw bad(`bias ${JSON.stringify(c.bias)} is not supported (only "none")`);
  if (!isEmpty(c.rank_pattern) || !isEmpty(c.alpha_pattern)) throw bad('per-module rank_pattern / alpha_pattern is not supported');
  if (!isEmpty(c.modules_to_save)) throw bad('modules_to_save is not supported');
  if (!isEmpty(c.layers_to_transform)) throw bad('layers_to_transform is not supported');
  if (!isEmpty(c.exclude_modules)) throw bad('exclude_modules is not supported');
  if (!isEmpty(c.layer_replication)) throw bad('layer_replication is not supported');
  if (c.lora_bias === true) throw bad('lora_bias (a bias on lora_B) is not supported');
  if (c.use_qalora === true) throw bad('use_qalora is not supported');
  if (!isEmpty(c.target_parameters)) throw bad('target_parameters (LoRA on nn.Parameter) is not supported');
  if (!isEmpty(c.trainable_token_indices)) throw bad('trainable_token_indices is not supported');
  return { r: typed.r, alpha: typed.lora_alpha, dropout: typed.lora_dropout ?? 0, targets, baseModel: typed.base_model_name_or_path ?? '' };
}

/** The adapter's tensors keyed by module path as written after `base_model.model.` (e.g. "layers.0.self_attn.q_proj.lora_A.weight"). */
export function readAdapterTensors(dir: string): Map<string, { shape: number[]; dtype: SafetensorsDType; data: Float32Array }> {
  const file = path.join(dir, ADAPTER_WEIGHTS);
  if (!fs.existsSync(file)) throw new UserError(`${dir}: no ${ADAPTER_WEIGHTS}`);
  const header = readSafetensorsHeader(file);
  const out = new Map<string, { shape: number[]; dtype: SafetensorsDType; data: Float32Array }>();
  for (const t of header.tensors.values()) {
    if (!t.name.startsWith(KEY_PREFIX) || !/\.lora_[AB]\.weight$/.test(t.name)) {
      throw new UserError(`${file}: tensor "${t.name}" is not a LoRA weight (expected ${KEY_PREFIX}<module>.lora_A.weight / lora_B.weight)`);
    }
    if (t.shape.length !== 2) throw new UserError(`${file}: tensor "${t.name}" has shape ${JSON.stringify(t.shape)}, expected 2 dimensions`);
    const data = Float32Array.from(readTensorValues(file, t));
    const bad = data.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) {
      throw new UserError(`${file}: tensor "${t.name}" holds ${data[bad]} at [${Math.floor(bad / t.shape[1])},${bad % t.shape[1]}]; an adapter must hold finite weights (corrupt or diverged file)`);
    }
    out.set(t.name.slice(KEY_PREFIX.length), { shape: t.shape, dtype: t.dtype, data });
  }
  if (out.size === 0) throw new UserError(`${file}: no LoRA tensors`);
  return out;
}

/**
 * Write an adapter dir all-or-nothing. Both files are first written completely into a temp dir
 * inside `dir`; then the old config is removed, the weights are renamed into place and the
 * config last. adapter_config.json is the commit mark: whenever it exists, the weights beside
 * it are the ones written with it. A kill in between leaves weights without a config, which no
 * reader takes for an adapter, never a config beside weights it does not describe.
 */
export function writeAdapter(dir: string, config: AdapterConfig, params: HostTensor[]): void {
  parse(string({ nonEmpty: true }), dir, { where: 'writeAdapter', label: () => 'dir' });
  parse(adapterConfigSchema, config, { where: 'writeAdapter', label: (p) => (p === '' ? 'config' : `config.${p}`) });
  if (!Array.isArray(params)) throw new UserError(`writeAdapter: params must be an array of {name, shape, data} (model.params()), got ${typeof params}`);
  for (const p of params) {
    if (!/\.lora_[AB]\.weight$/.test(p.name)) throw new Error(`writeAdapter: "${p.name}" is not a LoRA parameter`);
  }
  fs.mkdirSync(dir, { recursive: true });
  const stage = tempPathFor(path.join(dir, 'adapter'));
  fs.mkdirSync(stage);
  try {
    writeSafetensors(path.join(stage, ADAPTER_WEIGHTS), params.map((p) => ({ name: KEY_PREFIX + p.name, dtype: 'F32' as const, shape: p.shape, data: p.data })));
    writeFileAtomic(path.join(stage, ADAPTER_CONFIG), [Buffer.from(JSON.stringify(peftConfigJson(config), null, 2) + '\n')]);
    fs.rmSync(path.join(dir, ADAPTER_CONFIG), { force: true });
    fs.renameSync(path.join(stage, ADAPTER_WEIGHTS), path.join(dir, ADAPTER_WEIGHTS));
    fs.renameSync(path.join(stage, ADAPTER_CONFIG), path.join(dir, ADAPTER_CONFIG));
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}

// Modules no embedding passes through: PEFT puts LoRA on BERT's pooler.dense when the targets
// name "dense" (and on lm_head when asked); lmdr runs neither, so their LoRA weights change nothing.
const UNUSED_MODULE = /^(bert\.|model\.)?(pooler|lm_head)\./;

/** Match adapter keys to the model's LoRA parameter names, accepting the extra `model.` of the CausalLM form. */
export function matchAdapterKeys(dir: string, keys: Iterable<string>, paramNames: string[]): Map<string, string> {
  const names = new Set(paramNames);
  const byParam = new Map<string, string>(); // param name -> adapter key
  for (const key of keys) {
    const candidates = [key, key.replace(/^model\./, ''), key.replace(/^bert\./, ''), 'model.' + key];
    const name = candidates.find((c) => names.has(c));
    if (name === undefined && UNUSED_MODULE.test(key)) continue;
    if (name === undefined) {
      throw new UserError(`${path.join(dir, ADAPTER_WEIGHTS)}: "${KEY_PREFIX}${key}" matches no LoRA module of this model (wrong base model or target_modules?)`);
    }
    if (byParam.has(name)) throw new UserError(`${path.join(dir, ADAPTER_WEIGHTS)}: "${KEY_PREFIX}${key}" and "${KEY_PREFIX}${byParam.get(name)}" name the same module`);
    byParam.set(name, key);
  }
  for (const name of paramNames) {
    if (!byParam.has(name)) throw new UserError(`${path.join(dir, ADAPTER_WEIGHTS)}: missing "${KEY_PREFIX}${name}" (target_modules lists this module)`);
  }
  return byParam;
}

// Models that carry LoRA modules: the native model takes one adapter, and this lets callers say so clearly.
const withLora = new WeakSet<NativeModel>();

export function hasLora(model: NativeModel): boolean {
  return withLora.has(model);
}

/** model.addLora, remembered for hasLora(). */
export function addLora(model: NativeModel, spec: LoraSpec): void {
  model.addLora(spec);
  withLora.add(model);
}

/**
 * Add the adapter's LoRA modules to a loaded model and set their weights. Leaves the model in
 * setTrainable('lora') mode; returns the adapter's config.
 */
export function applyAdapter(model: NativeModel, dir: string, dropout?: number): AdapterConfig {
  if (typeof model !== 'object' || model === null || typeof (model as NativeModel).addLora !== 'function') {
    throw new UserError(`applyAdapter: model must be a loaded NativeModel (engine.native), got ${model === null ? 'null' : typeof model}`);
  }
  parse(optional(number({ min: 0, below: 1 })), dropout, { where: 'applyAdapter', label: () => 'dropout' });
  const config = readAdapterConfig(dir);
  const tensors = readAdapterTensors(dir);
  try {
    addLora(model, { targets: config.targets, r: config.r, alpha: config.alpha, dropout: dropout ?? config.dropout, seed: 0 });
  } catch (err) {
    throw new UserError(`${path.join(dir, ADAPTER_CONFIG)}: ${(err as Error).message}`);
  }
  model.setTrainable('lora');
  const params = model.params();
  const byParam = matchAdapterKeys(dir, tensors.keys(), params.map((p) => p.name));
  for (const p of params) {
    const t = tensors.get(byParam.get(p.name)!)!;
    if (t.shape.join() !== p.shape.join()) {
      throw new UserError(`${path.join(dir, ADAPTER_WEIGHTS)}: "${KEY_PREFIX}${byParam.get(p.name)}" has shape [${t.shape}] but the model needs [${p.shape}] (r ${config.r})`);
    }
    model.setParam(p.name, t.data);
  }
  return config;
}
