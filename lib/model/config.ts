// config.json (Hugging Face) -> the native model's configuration, plus the facts the API
// layer needs: default pooling, EOS id, position limits.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.ts';
import type { ModelConfigNative, PoolingMode } from '../native.ts';

export const supportedModelTypes = ['qwen2', 'llama', 'mistral', 'bert'] as const;
export type ModelType = (typeof supportedModelTypes)[number];

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
}

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

export function parseModelConfig(c: Record<string, unknown>, file: string): ModelInfo {
  const fail = (what: string) => new UserError(`${file}: ${what}`);
  const int = (key: string, fallback?: number): number => {
    const v = c[key] ?? fallback;
    if (!Number.isSafeInteger(v) || (v as number) <= 0) throw fail(`"${key}" must be a positive integer, got ${JSON.stringify(c[key])}`);
    return v as number;
  };
  const num = (key: string, fallback?: number): number => {
    const v = c[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw fail(`"${key}" must be a positive number, got ${JSON.stringify(c[key])}`);
    return v;
  };
  if (!(supportedModelTypes as readonly unknown[]).includes(c.model_type)) {
    throw fail(`unsupported model_type ${JSON.stringify(c.model_type)} (supported: ${supportedModelTypes.join(', ')})`);
  }
  const modelType = c.model_type as ModelType;
  const hidden = int('hidden_size');
  const heads = int('num_attention_heads');
  const layers = int('num_hidden_layers');
  const intermediate = int('intermediate_size');
  const vocab = int('vocab_size');

  if (modelType === 'bert') {
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
    };
  }

  const act = c.hidden_act ?? 'silu';
  if (act !== 'silu') throw fail(`hidden_act ${JSON.stringify(act)} is not supported (supported: "silu")`);
  if (c.attention_bias === true) throw fail('"attention_bias": true is not supported (only qwen2\'s q/k/v biases are)');
  if (c.mlp_bias === true) throw fail('"mlp_bias": true is not supported');
  const kvHeads = int('num_key_value_heads', heads);
  if (heads % kvHeads !== 0) throw fail(`num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kvHeads}`);
  const headDim = c.head_dim == null ? hidden / heads : int('head_dim');
  if (!Number.isInteger(headDim)) throw fail(`hidden_size ${hidden} is not divisible by num_attention_heads ${heads} (set head_dim)`);
  if (headDim % 2 !== 0) throw fail(`head_dim ${headDim} must be even for rotary embeddings`);
  const eos = Array.isArray(c.eos_token_id) ? c.eos_token_id[0] : c.eos_token_id;
  if (eos != null && (!Number.isSafeInteger(eos) || eos < 0 || eos >= vocab)) {
    throw fail(`"eos_token_id" ${JSON.stringify(c.eos_token_id)} is not an id below vocab_size ${vocab}`);
  }
  const useWindow = modelType === 'mistral' || (modelType === 'qwen2' && c.use_sliding_window === true);
  const window = useWindow && Number.isSafeInteger(c.sliding_window) ? (c.sliding_window as number) : null;
  return {
    modelType,
    native: {
      arch: 'decoder', hidden, layers, heads, kvHeads, headDim, intermediate, vocab,
      normEps: num('rms_norm_eps', 1e-6), ropeTheta: num('rope_theta', ropeParameters(c)?.rope_theta as number ?? 10000),
      ropeScaling: parseRopeScaling(c.rope_scaling ?? ropeParameters(c), file), qkvBias: modelType === 'qwen2',
      maxPositions: 0, typeVocab: 0,
    },
    defaultPooling: 'eos',
    eosTokenId: (eos as number | undefined) ?? null,
    maxSequence: null,
    slidingWindow: window,
    tieWordEmbeddings: c.tie_word_embeddings === true,
  };
}

/**
 * transformers 5 saves RoPE settings as one "rope_parameters" object ({rope_type, rope_theta,
 * factor, ...}) instead of "rope_theta" + "rope_scaling"; either form is read.
 */
function ropeParameters(c: Record<string, unknown>): Record<string, unknown> | undefined {
  const r = c.rope_parameters;
  return r != null && typeof r === 'object' && !Array.isArray(r) ? (r as Record<string, unknown>) : undefined;
}

function parseRopeScaling(raw: unknown, file: string): ModelConfigNative['ropeScaling'] {
  if (raw == null) return null;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new UserError(`${file}: "rope_scaling" must be an object or null`);
  const r = raw as Record<string, unknown>;
  const type = r.rope_type ?? r.type;
  if (type === 'default') return null;
  if (type !== 'llama3') {
    throw new UserError(`${file}: rope_scaling type ${JSON.stringify(type)} is not supported (supported: "llama3")`);
  }
  const get = (key: string): number => {
    const v = r[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
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
