// config.json (Hugging Face) -> the native model's configuration, plus the facts the API
// layer needs: default pooling, EOS id, position limits.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.ts';
import type { ModelConfigNative, PoolingMode } from '../native.ts';
import { array, boolean, jsonKeys, nullValue, number, object, optional, parse, string, union, type Infer } from '../schema.ts';

export const supportedModelTypes = ['qwen2', 'llama', 'mistral', 'bert', 'qwen3', 'gemma', 'gemma2', 'phi', 'phi3', 't5'] as const;
export type ModelType = (typeof supportedModelTypes)[number];

/** Default LoRA targets (Hugging Face module names, PEFT target_modules): the attention and MLP linears. */
export const defaultLoraTargets: Record<ModelType, string[]> = {
  qwen2: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  llama: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  mistral: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  qwen3: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  gemma: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  gemma2: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  phi: ['q_proj', 'k_proj', 'v_proj', 'dense', 'fc1', 'fc2'],
  phi3: ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'],
  bert: ['query', 'key', 'value', 'dense'],
  t5: ['q', 'k', 'v', 'o', 'wi', 'wo'], // gated feed-forward: wi_0, wi_1 (parseModelConfig)
};

export interface ModelInfo {
  modelType: ModelType;
  native: ModelConfigNative;
  defaultPooling: PoolingMode; // eos for decoders, cls for BERT
  eosTokenId: number | null; // from config.json (the tokenizer's eos_token overrides it)
  /** longest sequence the model accepts (BERT: position table size), null when unbounded */
  maxSequence: number | null;
  /** decoders with a sliding window: sequences longer than this would attend differently */
  slidingWindow: number | null;
  tieWordEmbeddings: boolean;
  /** LoRA targets when the user names none */
  loraTargets: string[];
  /** gemma: embeddings are scaled by sqrt(hidden) rounded to the checkpoint's dtype (set by loadCheckpoint) */
  embedScaleFromCheckpoint: boolean;
}

// The keys of config.json lmdr reads, by family, with their types (lib/schema.ts): a wrong type is
// one UserError naming the file and the key. Every other key passes through unread (HF configs
// carry many). null reads as absent (the config class default) except where it means "off".
// Presence (which keys a family needs) and meaning (supported values, divisibility) are checked
// in parseModelConfig.
const opt = <T>(s: Parameters<typeof optional<T>>[0]) => optional(s, { nullable: true });
const posInt = number({ int: true, above: 0, expected: 'a positive integer' });
const posNum = number({ above: 0, expected: 'a positive number' });
const orNull = <T>(s: Parameters<typeof optional<T>>[0], expected: string) => optional(union(nullValue(), s, expected));
const ropeShape = object({
  rope_type: opt(string()), type: opt(string()), rope_theta: opt(posNum), partial_rotary_factor: opt(number()),
  factor: opt(posNum), low_freq_factor: opt(posNum), high_freq_factor: opt(posNum), original_max_position_embeddings: opt(posNum),
}, { unknownKeys: 'keep' });
const commonShape = {
  model_type: opt(string()),
  vocab_size: opt(posInt),
  eos_token_id: opt(union(number({ int: true }), array(number({ int: true })), 'an integer or an array of integers')),
  hidden_act: opt(string()),
};
const bertConfig = object({
  ...commonShape,
  hidden_size: opt(posInt), num_attention_heads: opt(posInt), num_hidden_layers: opt(posInt), intermediate_size: opt(posInt),
  max_position_embeddings: opt(posInt), type_vocab_size: opt(posInt), layer_norm_eps: opt(posNum), position_embedding_type: opt(string()),
}, { unknownKeys: 'keep', expected: 'a JSON object' });
const t5Config = object({
  ...commonShape,
  d_model: opt(posInt), d_kv: opt(posInt), d_ff: opt(posInt), num_heads: opt(posInt), num_layers: opt(posInt),
  relative_attention_num_buckets: opt(posInt), relative_attention_max_distance: opt(posInt), layer_norm_epsilon: opt(posNum),
  feed_forward_proj: opt(string()), is_decoder: opt(boolean()),
}, { unknownKeys: 'keep', expected: 'a JSON object' });
const decoderConfig = object({
  ...commonShape,
  hidden_size: opt(posInt), num_attention_heads: opt(posInt), num_hidden_layers: opt(posInt), intermediate_size: opt(posInt),
  num_key_value_heads: opt(posInt), head_dim: opt(posInt), hidden_activation: opt(string()),
  attention_bias: opt(boolean()), mlp_bias: opt(boolean()), qk_layernorm: opt(boolean()),
  partial_rotary_factor: opt(number({ above: 0, max: 1, expected: 'in (0, 1]' })),
  use_sliding_window: opt(boolean()), sliding_window: orNull(number({ int: true, min: 0 }), 'an integer >= 0 or null'),
  tie_word_embeddings: opt(boolean()), rms_norm_eps: opt(posNum), layer_norm_eps: opt(posNum),
  rope_theta: opt(posNum), rope_scaling: opt(ropeShape), rope_parameters: opt(ropeShape),
  query_pre_attn_scalar: opt(posNum),
  attn_logit_softcapping: orNull(posNum, 'a positive number or null'), final_logit_softcapping: orNull(posNum, 'a positive number or null'),
  layer_types: opt(array(string())),
}, { unknownKeys: 'keep', expected: 'a JSON object' });
export type BertConfigJson = Infer<typeof bertConfig>;
export type T5ConfigJson = Infer<typeof t5Config>;
export type DecoderConfigJson = Infer<typeof decoderConfig>;
type RopeJson = Infer<typeof ropeShape>;

/** Read and interpret <modelDir>/config.json. */
export function readModelConfig(modelDir: string): ModelInfo {
  const file = path.join(modelDir, 'config.json');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UserError(`${file}: cannot read model config (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new UserError(`${file}: invalid JSON (${(err as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new UserError(`${file}: expected a JSON object`);
  return parseModelConfig(json as Record<string, unknown>, file);
}

export function parseModelConfig(json: Record<string, unknown>, file: string): ModelInfo {
  const fail = (what: string) => new UserError(`${file}: ${what}`);
  if (!(supportedModelTypes as readonly unknown[]).includes(json.model_type)) {
    throw fail(`unsupported model_type ${JSON.stringify(json.model_type)} (supported: ${supportedModelTypes.join(', ')})`);
  }
  const modelType = json.model_type as ModelType;
  const keys = jsonKeys(file, 'config.json');
  const typed = parse(modelType === 't5' ? t5Config : modelType === 'bert' ? bertConfig : decoderConfig, json, keys);
  // The schema has checked each key's type; these add presence (a key the family needs) and defaults.
  const view = typed as Record<string, unknown>;
  const int = (key: string, fallback?: number): number => {
    const v = view[key] ?? fallback;
    if (v === undefined || (v as number) <= 0) throw fail(`"${key}" must be a positive integer, got ${JSON.stringify(json[key])}`);
    return v as number;
  };
  const num = (key: string, fallback?: number): number => {
    const v = view[key] ?? fallback;
    if (v === undefined) throw fail(`"${key}" must be a positive number, got ${JSON.stringify(json[key])}`);
    return v as number;
  };
  if (modelType === 't5') return parseT5Config(typed as T5ConfigJson, fail, int, num);
  const hidden = int('hidden_size');
  const heads = int('num_attention_heads');
  const layers = int('num_hidden_layers');
  const intermediate = int('intermediate_size');
  const vocab = int('vocab_size');

  if (modelType === 'bert') {
    const c = typed as BertConfigJson;
    const act = c.hidden_act ?? 'gelu';
    if (act !== 'gelu') throw fail(`hidden_act ${JSON.stringify(act)} is not supported for bert (supported: "gelu")`);
    const posType = c.position_embedding_type ?? 'absolute';
    if (posType !== 'absolute') throw fail(`position_embedding_type ${JSON.stringify(posType)} is not supported (supported: "absolute")`);
    if (hidden % heads !== 0) throw fail(`hidden_size ${hidden} is not divisible by num_attention_heads ${heads}`);
    const maxPositions = int('max_position_embeddings');
    return {
      modelType,
      native: {
        arch: 'bert', hidden, layers, heads, kvHeads: heads, headDim: hidden / heads, intermediate, vocab,
        normEps: num('layer_norm_eps', 1e-12), ropeTheta: 0, ropeScaling: null, qkvBias: true,
        maxPositions, typeVocab: int('type_vocab_size', 2),
      },
      defaultPooling: 'cls',
      eosTokenId: null,
      maxSequence: maxPositions,
      slidingWindow: null,
      tieWordEmbeddings: false,
      loraTargets: defaultLoraTargets.bert,
      embedScaleFromCheckpoint: false,
    };
  }

  const c = typed as DecoderConfigJson;
  const isGemma = modelType === 'gemma' || modelType === 'gemma2';
  const isPhi = modelType === 'phi';
  const act = decoderActivation(c, modelType, fail);
  if (c.attention_bias === true) throw fail('"attention_bias": true is not supported (only qwen2\'s q/k/v biases are)');
  if (c.mlp_bias === true) throw fail('"mlp_bias": true is not supported');
  if (isPhi && c.qk_layernorm === true) throw fail('"qk_layernorm": true is not supported');
  const kvHeads = int('num_key_value_heads', heads);
  if (heads % kvHeads !== 0) throw fail(`num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kvHeads}`);
  // Gemma's head_dim is its own setting (GemmaConfig default 256), never hidden / heads.
  const headDim = c.head_dim == null ? (isGemma ? 256 : hidden / heads) : int('head_dim');
  if (!Number.isInteger(headDim)) throw fail(`hidden_size ${hidden} is not divisible by num_attention_heads ${heads} (set head_dim)`);
  if (headDim % 2 !== 0) throw fail(`head_dim ${headDim} must be even for rotary embeddings`);
  // Partial rotary (phi: partial_rotary_factor 0.5 by default; phi3 may set it): HF rotates int(head_dim * factor) dims.
  const factor = c.partial_rotary_factor ?? c.rope_parameters?.partial_rotary_factor ?? (isPhi ? 0.5 : 1);
  if (!(factor > 0 && factor <= 1)) throw fail(`"partial_rotary_factor" must be in (0, 1], got ${JSON.stringify(factor)}`);
  const rotaryDim = Math.floor(headDim * factor);
  if (rotaryDim % 2 !== 0 || rotaryDim === 0) throw fail(`partial_rotary_factor ${factor} gives ${rotaryDim} rotary dims of head_dim ${headDim}; they must be even and positive`);
  const eos = Array.isArray(c.eos_token_id) ? c.eos_token_id[0] : c.eos_token_id;
  if (eos != null && (eos < 0 || eos >= vocab)) {
    throw fail(`"eos_token_id" ${JSON.stringify(c.eos_token_id)} is not an id below vocab_size ${vocab}`);
  }
  // Sliding windows lmdr does not run natively: sequences longer than the window are refused
  // (Engine.tokenize). Gemma 2's are run natively on the layers HF applies them to.
  const useWindow = modelType === 'mistral' || modelType === 'phi3' ||
    ((modelType === 'qwen2' || modelType === 'qwen3') && c.use_sliding_window === true);
  const window = useWindow && typeof c.sliding_window === 'number' ? c.sliding_window : null;
  // Defaults of each HF config class where config.json may omit a key.
  const tie = c.tie_word_embeddings ?? isGemma;
  const native: ModelConfigNative = {
    arch: 'decoder', hidden, layers, heads, kvHeads, headDim, intermediate, vocab,
    normEps: isPhi ? num('layer_norm_eps', 1e-5) : num('rms_norm_eps', 1e-6),
    ropeTheta: num('rope_theta', c.rope_parameters?.rope_theta ?? 10000),
    ropeScaling: parseRopeScaling(c.rope_scaling ?? c.rope_parameters, file), qkvBias: modelType === 'qwen2' || isPhi,
    maxPositions: 0, typeVocab: 0,
    rotaryDim, activation: act, tieWordEmbeddings: tie === true,
  };
  if (modelType === 'qwen3') native.qkNorm = true;
  if (isGemma) {
    native.normOffset = 1;
    native.embedScale = Math.fround(Math.sqrt(hidden)); // rounded to the checkpoint dtype by loadCheckpoint
  }
  if (modelType === 'gemma2') {
    // modeling_gemma2.py: scaling = query_pre_attn_scalar ** -0.5; soft-caps and windows as configured
    native.sandwichNorms = true;
    native.attnScale = num('query_pre_attn_scalar', 256) ** -0.5;
    native.attnSoftcap = optionalPositive(c, 'attn_logit_softcapping', 50.0);
    native.finalSoftcap = optionalPositive(c, 'final_logit_softcapping', 30.0);
    const sliding = gemma2SlidingLayers(c, layers, fail);
    if (sliding.some((x) => x)) {
      native.slidingWindow = int('sliding_window', 4096);
      native.slidingLayers = sliding;
    }
  }
  if (isPhi) Object.assign(native, { norm: 'layer', parallelBlock: true, oBias: true, mlpBias: true, gatedMlp: false });
  if (modelType === 'phi3') Object.assign(native, { fusedQkv: true, fusedGateUp: true });
  return {
    modelType,
    native,
    defaultPooling: 'eos',
    eosTokenId: eos ?? null,
    maxSequence: null,
    slidingWindow: window,
    tieWordEmbeddings: tie === true,
    loraTargets: defaultLoraTargets[modelType],
    embedScaleFromCheckpoint: isGemma,
  };
}

/**
 * T5 encoders (T5EncoderModel, or the encoder of T5ForConditionalGeneration), read like
 * transformers' T5Config: d_model, d_kv, d_ff, num_heads, num_layers, layer_norm_epsilon,
 * relative_attention_num_buckets / _max_distance, and feed_forward_proj "[gated-]ACT" ("gated-gelu"
 * means gelu_new, the tanh GELU).
 */
function parseT5Config(c: T5ConfigJson, fail: (what: string) => UserError, int: (key: string, fallback?: number) => number,
  num: (key: string, fallback?: number) => number): ModelInfo {
  const proj = c.feed_forward_proj ?? 'relu';
  const parts = proj.split('-');
  const gated = parts.length === 2 && parts[0] === 'gated';
  if (!(parts.length === 1 || gated)) throw fail(`feed_forward_proj ${JSON.stringify(proj)} is not supported (expected "ACT" or "gated-ACT", e.g. "relu", "gated-gelu")`);
  const actName = proj === 'gated-gelu' ? 'gelu_new' : parts[parts.length - 1];
  const acts: Record<string, NonNullable<ModelConfigNative['activation']>> = {
    relu: 'relu', gelu: 'gelu', gelu_new: 'gelu_tanh', gelu_pytorch_tanh: 'gelu_tanh', silu: 'silu', swish: 'silu',
  };
  const activation = acts[actName];
  if (!activation) throw fail(`feed_forward_proj ${JSON.stringify(proj)}: activation ${JSON.stringify(actName)} is not supported (supported: ${Object.keys(acts).map((n) => JSON.stringify(n)).join(', ')})`);
  if (c.is_decoder === true) throw fail('"is_decoder": true: lmdr loads T5 encoders only');
  const heads = int('num_heads', 8);
  const relBuckets = int('relative_attention_num_buckets', 32);
  const relMaxDistance = int('relative_attention_max_distance', 128);
  if (relBuckets < 4 || relMaxDistance <= relBuckets / 4) {
    throw fail(`relative_attention_num_buckets ${relBuckets} / relative_attention_max_distance ${relMaxDistance}: need at least 4 buckets and a max distance above buckets / 4`);
  }
  const vocab = int('vocab_size', 32128);
  const eos = c.eos_token_id ?? 1;
  return {
    modelType: 't5',
    native: {
      arch: 't5', hidden: int('d_model', 512), layers: int('num_layers', 6), heads, kvHeads: heads, headDim: int('d_kv', 64),
      intermediate: int('d_ff', 2048), vocab, normEps: num('layer_norm_epsilon', 1e-6), ropeTheta: 0, ropeScaling: null,
      qkvBias: false, maxPositions: 0, typeVocab: 0, gatedMlp: gated, activation, relBuckets, relMaxDistance,
    },
    defaultPooling: 'mean', // sentence-T5 / GTR: mean of the encoder's last hidden states
    eosTokenId: typeof eos === 'number' && eos >= 0 && eos < vocab ? eos : null,
    maxSequence: null, // relative positions: any length
    slidingWindow: null,
    tieWordEmbeddings: false,
    loraTargets: gated ? ['q', 'k', 'v', 'o', 'wi_0', 'wi_1', 'wo'] : defaultLoraTargets.t5,
    embedScaleFromCheckpoint: false,
  };
}

/** The MLP activation of a decoder, by the key each architecture's HF code reads. */
function decoderActivation(c: DecoderConfigJson, modelType: ModelType, fail: (what: string) => UserError): NonNullable<ModelConfigNative['activation']> {
  const names: Record<string, NonNullable<ModelConfigNative['activation']>> = {
    silu: 'silu', swish: 'silu', gelu: 'gelu', gelu_new: 'gelu_tanh', gelu_pytorch_tanh: 'gelu_tanh', relu: 'relu',
  };
  let key = 'hidden_act';
  let value: string | undefined = c.hidden_act;
  if (modelType === 'gemma' || modelType === 'gemma2') {
    // modeling_gemma.py: hidden_act is ignored; hidden_activation null means gelu_pytorch_tanh
    key = 'hidden_activation';
    value = c.hidden_activation ?? 'gelu_pytorch_tanh';
  }
  value ??= modelType === 'phi' ? 'gelu_new' : 'silu';
  const act = names[value];
  if (!act) throw fail(`${key} ${JSON.stringify(value)} is not supported (supported: ${Object.keys(names).map((n) => JSON.stringify(n)).join(', ')})`);
  return act;
}

/** A soft-cap setting: absent = the config class default, null = off. */
function optionalPositive(c: DecoderConfigJson, key: 'attn_logit_softcapping' | 'final_logit_softcapping', fallback: number): number {
  const v = c[key];
  return v === undefined ? fallback : v === null ? 0 : v; // the schema has checked v > 0
}

/** Gemma 2 layers with sliding-window attention: layer_types when given, else the even layers (modeling_gemma2.py). */
function gemma2SlidingLayers(c: DecoderConfigJson, layers: number, fail: (what: string) => UserError): boolean[] {
  if (c.sliding_window === null) return new Array<boolean>(layers).fill(false);
  if (Array.isArray(c.layer_types)) {
    if (c.layer_types.length !== layers) throw fail(`"layer_types" has ${c.layer_types.length} entries for ${layers} layers`);
    return c.layer_types.map((t, i) => {
      if (t !== 'sliding_attention' && t !== 'full_attention') throw fail(`layer_types[${i}] ${JSON.stringify(t)} is not supported (supported: "sliding_attention", "full_attention")`);
      return t === 'sliding_attention';
    });
  }
  return Array.from({ length: layers }, (_, i) => i % 2 === 0);
}

/**
 * rope_scaling, or transformers 5's one "rope_parameters" object ({rope_type, rope_theta, factor,
 * ...}) that replaces "rope_theta" + "rope_scaling"; either form is read.
 */
function parseRopeScaling(r: RopeJson | undefined, file: string): ModelConfigNative['ropeScaling'] {
  if (r == null) return null;
  const type = r.rope_type ?? r.type;
  if (type === 'default') return null;
  if (type !== 'llama3') {
    throw new UserError(`${file}: rope_scaling type ${JSON.stringify(type)} is not supported (supported: "llama3")`);
  }
  const get = (key: 'factor' | 'low_freq_factor' | 'high_freq_factor' | 'original_max_position_embeddings'): number => {
    const v = r[key]; // the schema has checked the type of each one given
    if (v === undefined) {
      throw new UserError(`${file}: rope_scaling "${key}" must be a positive number, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const scaling = {
    factor: get('factor'), lowFreqFactor: get('low_freq_factor'), highFreqFactor: get('high_freq_factor'),
    originalMaxPositionEmbeddings: get('original_max_position_embeddings'),
  };
  if (scaling.highFreqFactor <= scaling.lowFreqFactor) {
    throw new UserError(`${file}: rope_scaling high_freq_factor must exceed low_freq_factor`);
  }
  return scaling;
}
