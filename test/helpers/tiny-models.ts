// Tiny random Hugging Face model dirs for tests: config.json exactly as transformers writes it,
// weights under HF tensor names (seeded, std ~ 1/sqrt(fan_in) so activations are not trivial),
// optionally sharded, optionally with a small WordPiece tokenizer.json the JS tokenizer loads.
import fs from 'node:fs';
import path from 'node:path';
import { writeSafetensors, type TensorToWrite } from '../../lib/model/safetensors.ts';
import { normalRng } from './rng.ts';
import { tempDir } from './tmp.ts';

export type TinyArch = 'qwen2' | 'llama' | 'mistral' | 'bert' | 'qwen3' | 'gemma' | 'gemma2' | 'phi' | 'phi3' | 't5';

export interface TinyModelOptions {
  arch: TinyArch;
  dtype?: 'F32' | 'BF16' | 'F16';
  seed?: number;
  hidden?: number; // 32
  layers?: number; // 2
  heads?: number; // 4
  kvHeads?: number; // 2 (decoders)
  headDim?: number; // written to config.json as head_dim when given (llama/mistral)
  intermediate?: number; // 64
  vocab?: number; // 100
  maxPositions?: number; // bert: 64
  ropeTheta?: number;
  /** Llama-3 rope scaling; original_max_position_embeddings is small so every regime is hit. */
  ropeScaling?: 'llama3';
  sharded?: boolean; // model.safetensors.index.json + 2 shards
  tokenizer?: boolean; // tokenizer.json + tokenizer_config.json
  /** bert: "bert."-prefixed names plus an MLM head (like BertForMaskedLM) instead of BertModel's bare names */
  bertPrefix?: boolean;
  /** decoders: tie_word_embeddings=true and no lm_head.weight (keeps huge-vocab models small) */
  tieWordEmbeddings?: boolean;
  dir?: string; // default: a fresh temp dir, removed when the process exits
  /** gemma2: attention / final logit soft-caps (small so they bite), sliding window (on even layers) */
  attnSoftcap?: number; // 2.0
  finalSoftcap?: number; // 1.5
  slidingWindow?: number; // 4
  partialRotaryFactor?: number; // phi: 0.5
  /** t5: feed_forward_proj (default "relu"; "gated-gelu" for T5 v1.1 / sentence-T5) */
  feedForwardProj?: string;
  /** t5: saved like T5ForConditionalGeneration (a decoder and lm_head in the file), else like T5EncoderModel */
  t5Conditional?: boolean;
  relBuckets?: number; // t5: 8 (small so the log buckets and the clamp are reached)
  relMaxDistance?: number; // t5: 12
}

/** Words of the tiny tokenizer; test texts are drawn from them. */
export const tinyWords = [
  'the', 'a', 'of', 'and', 'to', 'in', 'is', 'was', 'for', 'on', 'with', 'as', 'by', 'at', 'from',
  'what', 'who', 'when', 'where', 'how', 'why', 'which', 'does', 'did', 'can',
  'river', 'mountain', 'city', 'country', 'ocean', 'forest', 'desert', 'island', 'bridge', 'tower',
  'king', 'queen', 'doctor', 'student', 'teacher', 'writer', 'player', 'farmer',
  'water', 'fire', 'stone', 'gold', 'iron', 'glass', 'paper', 'music', 'light', 'energy',
  'large', 'small', 'old', 'new', 'long', 'high', 'deep', 'red', 'green', 'blue',
  'build', 'find', 'make', 'play', 'read', 'write', 'grow', 'flow', 'rain', 'walk',
  '##s', '##ed', '##ing', '##er', '##ly', '.', ',', '?', '!', '-',
];

const decoderSpecial: Record<Exclude<TinyArch, 'bert'>, string[]> = {
  qwen2: ['<|endoftext|>', '<|im_start|>', '<|im_end|>'],
  llama: ['<s>', '</s>'],
  mistral: ['<s>', '</s>'],
  qwen3: ['<|endoftext|>', '<|im_start|>', '<|im_end|>'],
  t5: ['<pad>', '</s>'],
  gemma: ['<s>', '</s>'],
  gemma2: ['<s>', '</s>'],
  phi: ['<s>', '</s>'],
  phi3: ['<s>', '</s>'],
};
const bertSpecial = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];

interface Sizes {
  hidden: number; layers: number; heads: number; kvHeads: number; headDim: number;
  intermediate: number; vocab: number; maxPositions: number;
}

/** Create the model dir and return its path. */
export function makeTinyModel(opts: TinyModelOptions): string {
  const dir = opts.dir ?? tempDir(`lmdr-tiny-${opts.arch}-`);
  fs.mkdirSync(dir, { recursive: true });
  const hidden = opts.hidden ?? 32;
  const heads = opts.heads ?? 4;
  const s: Sizes = {
    hidden, heads,
    layers: opts.layers ?? 2,
    kvHeads: opts.arch === 'bert' || opts.arch === 't5' ? heads : (opts.kvHeads ?? 2),
    headDim: opts.headDim ?? (opts.arch === 'gemma' || opts.arch === 'gemma2' ? 16 : hidden / heads),
    intermediate: opts.intermediate ?? 64,
    vocab: opts.vocab ?? 100,
    maxPositions: opts.maxPositions ?? 64,
  };
  const vocabTokens = tokenizerVocab(opts.arch);
  if (opts.tokenizer && vocabTokens.length > s.vocab) {
    throw new Error(`makeTinyModel: vocab ${s.vocab} is smaller than the tiny tokenizer (${vocabTokens.length})`);
  }
  const dtype = opts.dtype ?? 'F32';
  const config = opts.arch === 'bert' ? bertConfig(s, dtype) : opts.arch === 't5' ? t5Config(opts, s, dtype) : decoderConfig(opts, s, dtype);
  writeJson(path.join(dir, 'config.json'), config);

  const rand = normalRng(opts.seed ?? 1);
  const tensors = opts.arch === 'bert'
    ? bertTensors(s, rand, opts.bertPrefix ?? false)
    : opts.arch === 't5' ? t5Tensors(opts, s, rand)
    : decoderTensors(opts.arch, s, rand, opts.tieWordEmbeddings ?? (opts.arch === 'gemma' || opts.arch === 'gemma2'));
  const withDtype: TensorToWrite[] = tensors.map((t) => ({ ...t, dtype }));
  if (opts.sharded) {
    const half = Math.ceil(withDtype.length / 2);
    const shards = [withDtype.slice(0, half), withDtype.slice(half)];
    const weightMap: Record<string, string> = {};
    let totalSize = 0;
    shards.forEach((shard, i) => {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      writeSafetensors(path.join(dir, file), shard);
      for (const t of shard) {
        weightMap[t.name] = file;
        totalSize += t.data.length * (dtype === 'F32' ? 4 : 2);
      }
    });
    writeJson(path.join(dir, 'model.safetensors.index.json'), { metadata: { total_size: totalSize }, weight_map: weightMap });
  } else {
    writeSafetensors(path.join(dir, 'model.safetensors'), withDtype);
  }
  if (opts.tokenizer) writeTokenizer(dir, opts.arch);
  return dir;
}

function writeJson(file: string, value: unknown): void {
  fs.writeFileSync(file, JSON.stringify(value, null, 2) + '\n');
}

const torchDtype = { F32: 'float32', BF16: 'bfloat16', F16: 'float16' } as const;

function decoderConfig(opts: TinyModelOptions, s: Sizes, dtype: keyof typeof torchDtype): Record<string, unknown> {
  const special = decoderSpecial[opts.arch as Exclude<TinyArch, 'bert'>];
  const tie = opts.tieWordEmbeddings ?? false;
  const common = {
    hidden_size: s.hidden,
    intermediate_size: s.intermediate,
    num_attention_heads: s.heads,
    num_hidden_layers: s.layers,
    num_key_value_heads: s.kvHeads,
    ...(opts.headDim !== undefined ? { head_dim: opts.headDim } : {}),
  };
  if (opts.arch === 'qwen2') {
    return {
      architectures: ['Qwen2ForCausalLM'], attention_dropout: 0.0,
      bos_token_id: 0, eos_token_id: special.indexOf('<|endoftext|>'),
      hidden_act: 'silu', hidden_size: s.hidden, initializer_range: 0.02, intermediate_size: s.intermediate,
      max_position_embeddings: 32768, max_window_layers: s.layers, model_type: 'qwen2',
      num_attention_heads: s.heads, num_hidden_layers: s.layers, num_key_value_heads: s.kvHeads,
      rms_norm_eps: 1e-6, rope_scaling: null, rope_theta: opts.ropeTheta ?? 1000000.0, sliding_window: 32768,
      tie_word_embeddings: tie, torch_dtype: torchDtype[dtype], transformers_version: '4.46.3',
      use_cache: true, use_sliding_window: false, vocab_size: s.vocab,
    };
  }
  const ropeScaling = opts.ropeScaling === 'llama3'
    ? { factor: 8.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 128, rope_type: 'llama3' }
    : null;
  if (opts.arch === 'qwen3') {
    return {
      architectures: ['Qwen3ForCausalLM'], attention_bias: false, attention_dropout: 0.0,
      bos_token_id: 0, eos_token_id: special.indexOf('<|endoftext|>'), head_dim: s.headDim,
      hidden_act: 'silu', hidden_size: s.hidden, initializer_range: 0.02, intermediate_size: s.intermediate,
      max_position_embeddings: 40960, max_window_layers: s.layers, model_type: 'qwen3',
      num_attention_heads: s.heads, num_hidden_layers: s.layers, num_key_value_heads: s.kvHeads,
      rms_norm_eps: 1e-6, rope_scaling: null, rope_theta: opts.ropeTheta ?? 1000000.0, sliding_window: null,
      tie_word_embeddings: tie, torch_dtype: torchDtype[dtype], transformers_version: '4.51.0',
      use_cache: true, use_sliding_window: false, vocab_size: s.vocab,
    };
  }
  if (opts.arch === 'gemma' || opts.arch === 'gemma2') {
    const g2 = opts.arch === 'gemma2';
    return {
      architectures: [g2 ? 'Gemma2ForCausalLM' : 'GemmaForCausalLM'], attention_bias: false, attention_dropout: 0.0,
      bos_token_id: 0, eos_token_id: 1, pad_token_id: 0, head_dim: s.headDim,
      hidden_act: 'gelu_pytorch_tanh', hidden_activation: 'gelu_pytorch_tanh', hidden_size: s.hidden,
      initializer_range: 0.02, intermediate_size: s.intermediate, max_position_embeddings: 8192, model_type: opts.arch,
      num_attention_heads: s.heads, num_hidden_layers: s.layers, num_key_value_heads: s.kvHeads,
      rms_norm_eps: 1e-6, rope_theta: opts.ropeTheta ?? 10000.0,
      ...(g2 ? {
        query_pre_attn_scalar: 24, attn_logit_softcapping: opts.attnSoftcap ?? 2.0,
        final_logit_softcapping: opts.finalSoftcap ?? 1.5, sliding_window: opts.slidingWindow ?? 4, cache_implementation: 'hybrid',
      } : {}),
      tie_word_embeddings: opts.tieWordEmbeddings ?? true, torch_dtype: torchDtype[dtype], transformers_version: '4.46.3',
      use_cache: true, vocab_size: s.vocab,
    };
  }
  if (opts.arch === 'phi') {
    return {
      architectures: ['PhiForCausalLM'], attention_dropout: 0.0, bos_token_id: 0, eos_token_id: 1, embd_pdrop: 0.0,
      hidden_act: 'gelu_new', hidden_size: s.hidden, initializer_range: 0.02, intermediate_size: s.intermediate,
      layer_norm_eps: 1e-5, max_position_embeddings: 2048, model_type: 'phi',
      num_attention_heads: s.heads, num_hidden_layers: s.layers, num_key_value_heads: s.kvHeads,
      partial_rotary_factor: opts.partialRotaryFactor ?? 0.5, qk_layernorm: false, resid_pdrop: 0.0, rope_scaling: null,
      rope_theta: opts.ropeTheta ?? 10000.0, tie_word_embeddings: tie, torch_dtype: torchDtype[dtype],
      transformers_version: '4.46.3', use_cache: true, vocab_size: s.vocab,
    };
  }
  if (opts.arch === 'phi3') {
    return {
      architectures: ['Phi3ForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 0, eos_token_id: 1,
      embd_pdrop: 0.0, hidden_act: 'silu', hidden_size: s.hidden, initializer_range: 0.02, intermediate_size: s.intermediate,
      max_position_embeddings: 4096, model_type: 'phi3', num_attention_heads: s.heads, num_hidden_layers: s.layers,
      num_key_value_heads: s.kvHeads, original_max_position_embeddings: 4096, pad_token_id: 0, resid_pdrop: 0.0,
      rms_norm_eps: 1e-5, rope_scaling: null, rope_theta: opts.ropeTheta ?? 10000.0, sliding_window: null,
      tie_word_embeddings: tie, torch_dtype: torchDtype[dtype], transformers_version: '4.46.3', use_cache: true,
      vocab_size: s.vocab,
    };
  }
  if (opts.arch === 'llama') {
    return {
      architectures: ['LlamaForCausalLM'], attention_bias: false, attention_dropout: 0.0,
      bos_token_id: 0, eos_token_id: 1, head_dim: common.head_dim ?? s.headDim,
      hidden_act: 'silu', hidden_size: s.hidden, initializer_range: 0.02, intermediate_size: s.intermediate,
      max_position_embeddings: 131072, mlp_bias: false, model_type: 'llama',
      num_attention_heads: s.heads, num_hidden_layers: s.layers, num_key_value_heads: s.kvHeads,
      pretraining_tp: 1, rms_norm_eps: 1e-5, rope_scaling: ropeScaling, rope_theta: opts.ropeTheta ?? 10000.0,
      tie_word_embeddings: tie, torch_dtype: torchDtype[dtype], transformers_version: '4.46.3',
      use_cache: true, vocab_size: s.vocab,
    };
  }
  return {
    architectures: ['MistralForCausalLM'], attention_dropout: 0.0,
    bos_token_id: 0, eos_token_id: 1, head_dim: common.head_dim ?? s.headDim,
    hidden_act: 'silu', hidden_size: s.hidden, initializer_range: 0.02, intermediate_size: s.intermediate,
    max_position_embeddings: 32768, model_type: 'mistral',
    num_attention_heads: s.heads, num_hidden_layers: s.layers, num_key_value_heads: s.kvHeads,
    rms_norm_eps: 1e-5, rope_theta: opts.ropeTheta ?? 1000000.0, sliding_window: null,
    tie_word_embeddings: tie, torch_dtype: torchDtype[dtype], transformers_version: '4.46.3',
    use_cache: true, vocab_size: s.vocab,
  };
}

function t5Config(opts: TinyModelOptions, s: Sizes, dtype: keyof typeof torchDtype): Record<string, unknown> {
  const proj = opts.feedForwardProj ?? 'relu';
  const gated = proj.startsWith('gated-');
  return {
    architectures: [opts.t5Conditional ? 'T5ForConditionalGeneration' : 'T5EncoderModel'], classifier_dropout: 0.0,
    d_ff: s.intermediate, d_kv: s.headDim, d_model: s.hidden, decoder_start_token_id: 0,
    dense_act_fn: proj === 'gated-gelu' ? 'gelu_new' : proj.split('-').pop(), dropout_rate: 0.1, eos_token_id: 1,
    feed_forward_proj: proj, initializer_factor: 1.0, is_encoder_decoder: !!opts.t5Conditional, is_gated_act: gated,
    layer_norm_epsilon: 1e-6, model_type: 't5', num_decoder_layers: 1, num_heads: s.heads, num_layers: s.layers,
    pad_token_id: 0, relative_attention_max_distance: opts.relMaxDistance ?? 12,
    relative_attention_num_buckets: opts.relBuckets ?? 8, tie_word_embeddings: !gated, torch_dtype: torchDtype[dtype],
    transformers_version: '4.46.3', use_cache: true, vocab_size: s.vocab,
  };
}

/** T5 weights under HF names: shared.weight, encoder.block.*, encoder.final_layer_norm (+ decoder.*, lm_head when conditional). */
function t5Tensors(opts: TinyModelOptions, s: Sizes, rand: Rand): Raw[] {
  const H = s.hidden, A = s.heads * s.headDim, I = s.intermediate;
  const gated = (opts.feedForwardProj ?? 'relu').startsWith('gated-');
  const buckets = opts.relBuckets ?? 8;
  const t: Raw[] = [{ name: 'shared.weight', shape: [s.vocab, H], data: normal(rand, [s.vocab, H], 1) }];
  const stack = (prefix: string, decoder: boolean) => {
    for (let l = 0; l < s.layers; l++) {
      const p = `${prefix}.block.${l}.layer`;
      t.push(vector(rand, `${p}.0.layer_norm.weight`, H, 0.2, 1));
      for (const m of ['q', 'k', 'v']) t.push(linear(rand, `${p}.0.SelfAttention.${m}.weight`, A, H));
      t.push(linear(rand, `${p}.0.SelfAttention.o.weight`, H, A));
      if (l === 0) t.push({ name: `${p}.0.SelfAttention.relative_attention_bias.weight`, shape: [buckets, s.heads], data: normal(rand, [buckets, s.heads], 1) });
      const ff = decoder ? 2 : 1; // the decoder's cross-attention is layer 1
      if (decoder) for (const m of ['q', 'k', 'v', 'o']) t.push(linear(rand, `${p}.1.EncDecAttention.${m}.weight`, A, H));
      t.push(vector(rand, `${p}.${ff}.layer_norm.weight`, H, 0.2, 1));
      if (gated) {
        t.push(linear(rand, `${p}.${ff}.DenseReluDense.wi_0.weight`, I, H));
        t.push(linear(rand, `${p}.${ff}.DenseReluDense.wi_1.weight`, I, H));
      } else {
        t.push(linear(rand, `${p}.${ff}.DenseReluDense.wi.weight`, I, H));
      }
      t.push(linear(rand, `${p}.${ff}.DenseReluDense.wo.weight`, H, I));
    }
    t.push(vector(rand, `${prefix}.final_layer_norm.weight`, H, 0.2, 1));
  };
  stack('encoder', false);
  if (opts.t5Conditional) {
    stack('decoder', true);
    t.push(linear(rand, 'lm_head.weight', s.vocab, H));
  }
  return t;
}

function bertConfig(s: Sizes, dtype: keyof typeof torchDtype): Record<string, unknown> {
  return {
    architectures: ['BertModel'], attention_probs_dropout_prob: 0.1, classifier_dropout: null,
    hidden_act: 'gelu', hidden_dropout_prob: 0.1, hidden_size: s.hidden, initializer_range: 0.02,
    intermediate_size: s.intermediate, layer_norm_eps: 1e-12, max_position_embeddings: s.maxPositions,
    model_type: 'bert', num_attention_heads: s.heads, num_hidden_layers: s.layers, pad_token_id: 0,
    position_embedding_type: 'absolute', torch_dtype: torchDtype[dtype], transformers_version: '4.46.3',
    type_vocab_size: 2, use_cache: true, vocab_size: s.vocab,
  };
}

type Rand = () => number;
type Raw = { name: string; shape: number[]; data: Float64Array };

function normal(rand: Rand, shape: number[], std: number, mean = 0): Float64Array {
  const out = new Float64Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < out.length; i++) out[i] = mean + std * rand();
  return out;
}
const linear = (rand: Rand, name: string, out: number, inp: number): Raw =>
  ({ name, shape: [out, inp], data: normal(rand, [out, inp], 1 / Math.sqrt(inp)) });
const vector = (rand: Rand, name: string, n: number, std: number, mean = 0): Raw =>
  ({ name, shape: [n], data: normal(rand, [n], std, mean) });

function decoderTensors(arch: TinyArch, s: Sizes, rand: Rand, tie: boolean): Raw[] {
  const q = s.heads * s.headDim;
  const kv = s.kvHeads * s.headDim;
  const gemma = arch === 'gemma' || arch === 'gemma2';
  // gemma scales embeddings by sqrt(hidden): keep them small
  const t: Raw[] = [{ name: 'model.embed_tokens.weight', shape: [s.vocab, s.hidden], data: normal(rand, [s.vocab, s.hidden], gemma ? 0.1 : 0.5) }];
  if (arch !== 'qwen2' && arch !== 'llama' && arch !== 'mistral') return [...t, ...otherDecoderTensors(arch, s, rand, tie)];
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}`;
    t.push(vector(rand, `${p}.input_layernorm.weight`, s.hidden, 0.2, 1));
    t.push(linear(rand, `${p}.self_attn.q_proj.weight`, q, s.hidden));
    if (arch === 'qwen2') t.push(vector(rand, `${p}.self_attn.q_proj.bias`, q, 0.2));
    t.push(linear(rand, `${p}.self_attn.k_proj.weight`, kv, s.hidden));
    if (arch === 'qwen2') t.push(vector(rand, `${p}.self_attn.k_proj.bias`, kv, 0.2));
    t.push(linear(rand, `${p}.self_attn.v_proj.weight`, kv, s.hidden));
    if (arch === 'qwen2') t.push(vector(rand, `${p}.self_attn.v_proj.bias`, kv, 0.2));
    t.push(linear(rand, `${p}.self_attn.o_proj.weight`, s.hidden, q));
    t.push(vector(rand, `${p}.post_attention_layernorm.weight`, s.hidden, 0.2, 1));
    t.push(linear(rand, `${p}.mlp.gate_proj.weight`, s.intermediate, s.hidden));
    t.push(linear(rand, `${p}.mlp.up_proj.weight`, s.intermediate, s.hidden));
    t.push(linear(rand, `${p}.mlp.down_proj.weight`, s.hidden, s.intermediate));
  }
  t.push(vector(rand, 'model.norm.weight', s.hidden, 0.2, 1));
  if (!tie) t.push(linear(rand, 'lm_head.weight', s.vocab, s.hidden));
  return t;
}

/** qwen3, gemma, gemma2, phi, phi3 under their Hugging Face names (norm weights around 1, gemma's around 0). */
function otherDecoderTensors(arch: TinyArch, s: Sizes, rand: Rand, tie: boolean): Raw[] {
  const q = s.heads * s.headDim;
  const kv = s.kvHeads * s.headDim;
  const I = s.intermediate;
  const H = s.hidden;
  const gemma = arch === 'gemma' || arch === 'gemma2';
  const t: Raw[] = [];
  const norm = (name: string, n = H) => {
    t.push(vector(rand, `${name}.weight`, n, 0.2, gemma ? 0 : 1));
    if (arch === 'phi') t.push(vector(rand, `${name}.bias`, n, 0.2));
  };
  const lin = (name: string, out: number, inp: number, bias = false) => {
    t.push(linear(rand, `${name}.weight`, out, inp));
    if (bias) t.push(vector(rand, `${name}.bias`, out, 0.2));
  };
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}`;
    norm(`${p}.input_layernorm`);
    if (arch === 'phi3') {
      lin(`${p}.self_attn.qkv_proj`, q + 2 * kv, H);
    } else {
      lin(`${p}.self_attn.q_proj`, q, H, arch === 'phi');
      lin(`${p}.self_attn.k_proj`, kv, H, arch === 'phi');
      lin(`${p}.self_attn.v_proj`, kv, H, arch === 'phi');
    }
    if (arch === 'qwen3') {
      t.push(vector(rand, `${p}.self_attn.q_norm.weight`, s.headDim, 0.2, 1));
      t.push(vector(rand, `${p}.self_attn.k_norm.weight`, s.headDim, 0.2, 1));
    }
    lin(`${p}.self_attn.${arch === 'phi' ? 'dense' : 'o_proj'}`, H, q, arch === 'phi');
    if (arch === 'gemma2') {
      norm(`${p}.post_attention_layernorm`);
      norm(`${p}.pre_feedforward_layernorm`);
      norm(`${p}.post_feedforward_layernorm`);
    } else if (arch !== 'phi') {
      norm(`${p}.post_attention_layernorm`);
    }
    if (arch === 'phi') {
      lin(`${p}.mlp.fc1`, I, H, true);
      lin(`${p}.mlp.fc2`, H, I, true);
    } else if (arch === 'phi3') {
      lin(`${p}.mlp.gate_up_proj`, 2 * I, H);
      lin(`${p}.mlp.down_proj`, H, I);
    } else {
      lin(`${p}.mlp.gate_proj`, I, H);
      lin(`${p}.mlp.up_proj`, I, H);
      lin(`${p}.mlp.down_proj`, H, I);
    }
  }
  norm(arch === 'phi' ? 'model.final_layernorm' : 'model.norm');
  if (!tie) lin('lm_head', s.vocab, H, arch === 'phi');
  return t;
}

function bertTensors(s: Sizes, rand: Rand, prefixed: boolean): Raw[] {
  const P = prefixed ? 'bert.' : '';
  const H = s.hidden;
  const t: Raw[] = [
    { name: `${P}embeddings.word_embeddings.weight`, shape: [s.vocab, H], data: normal(rand, [s.vocab, H], 0.5) },
    { name: `${P}embeddings.position_embeddings.weight`, shape: [s.maxPositions, H], data: normal(rand, [s.maxPositions, H], 0.3) },
    { name: `${P}embeddings.token_type_embeddings.weight`, shape: [2, H], data: normal(rand, [2, H], 0.3) },
    vector(rand, `${P}embeddings.LayerNorm.weight`, H, 0.2, 1),
    vector(rand, `${P}embeddings.LayerNorm.bias`, H, 0.2),
  ];
  for (let l = 0; l < s.layers; l++) {
    const p = `${P}encoder.layer.${l}`;
    for (const m of ['query', 'key', 'value']) {
      t.push(linear(rand, `${p}.attention.self.${m}.weight`, H, H));
      t.push(vector(rand, `${p}.attention.self.${m}.bias`, H, 0.2));
    }
    t.push(linear(rand, `${p}.attention.output.dense.weight`, H, H));
    t.push(vector(rand, `${p}.attention.output.dense.bias`, H, 0.2));
    t.push(vector(rand, `${p}.attention.output.LayerNorm.weight`, H, 0.2, 1));
    t.push(vector(rand, `${p}.attention.output.LayerNorm.bias`, H, 0.2));
    t.push(linear(rand, `${p}.intermediate.dense.weight`, s.intermediate, H));
    t.push(vector(rand, `${p}.intermediate.dense.bias`, s.intermediate, 0.2));
    t.push(linear(rand, `${p}.output.dense.weight`, H, s.intermediate));
    t.push(vector(rand, `${p}.output.dense.bias`, H, 0.2));
    t.push(vector(rand, `${p}.output.LayerNorm.weight`, H, 0.2, 1));
    t.push(vector(rand, `${p}.output.LayerNorm.bias`, H, 0.2));
  }
  if (prefixed) {
    // BertForMaskedLM's head: present in real checkpoints, ignored by the loader.
    t.push(linear(rand, 'cls.predictions.transform.dense.weight', H, H));
    t.push(vector(rand, 'cls.predictions.transform.dense.bias', H, 0.2));
    t.push(vector(rand, 'cls.predictions.bias', s.vocab, 0.2));
  } else {
    t.push(linear(rand, 'pooler.dense.weight', H, H));
    t.push(vector(rand, 'pooler.dense.bias', H, 0.2));
  }
  return t;
}

/** Token strings of the tiny tokenizer in id order: special tokens, [UNK] for decoders, words. */
export function tokenizerVocab(arch: TinyArch): string[] {
  const special = arch === 'bert' ? bertSpecial : [...decoderSpecial[arch], '[UNK]'];
  return [...special, ...tinyWords];
}

function writeTokenizer(dir: string, arch: TinyArch): void {
  const tokens = tokenizerVocab(arch);
  const id = (t: string) => tokens.indexOf(t);
  const specials = arch === 'bert' ? bertSpecial : decoderSpecial[arch];
  const addedTokens = specials.map((content) => ({
    id: id(content), content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
  }));
  const template = (pre: string[], post: string[]) => ({
    type: 'TemplateProcessing',
    single: [
      ...pre.map((t) => ({ SpecialToken: { id: t, type_id: 0 } })),
      { Sequence: { id: 'A', type_id: 0 } },
      ...post.map((t) => ({ SpecialToken: { id: t, type_id: 0 } })),
    ],
    pair: [
      ...pre.map((t) => ({ SpecialToken: { id: t, type_id: 0 } })),
      { Sequence: { id: 'A', type_id: 0 } },
      ...post.map((t) => ({ SpecialToken: { id: t, type_id: 0 } })),
      { Sequence: { id: 'B', type_id: 1 } },
      ...post.map((t) => ({ SpecialToken: { id: t, type_id: 1 } })),
    ],
    special_tokens: Object.fromEntries([...pre, ...post].map((t) => [t, { id: t, ids: [id(t)], tokens: [t] }])),
  });
  // qwen2 adds no special tokens; llama/mistral prepend BOS; bert wraps in [CLS] ... [SEP]; t5 appends </s>.
  const postProcessor = arch === 'bert' ? template(['[CLS]'], ['[SEP]'])
    : arch === 't5' ? template([], ['</s>']) // T5 appends </s>
    : arch === 'qwen2' || arch === 'qwen3' ? null : template(['<s>'], []);
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: arch === 'bert'
      ? { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true }
      : { type: 'Lowercase' },
    pre_tokenizer: arch === 'bert' ? { type: 'BertPreTokenizer' } : { type: 'Whitespace' },
    post_processor: postProcessor,
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100,
      vocab: Object.fromEntries(tokens.map((t, i) => [t, i])),
    },
  };
  writeJson(path.join(dir, 'tokenizer.json'), tokenizer);
  const eos = arch === 'bert' ? undefined : arch === 'qwen2' || arch === 'qwen3' ? '<|endoftext|>' : '</s>';
  const tokenizerConfig: Record<string, unknown> = {
    tokenizer_class: arch === 'bert' ? 'BertTokenizer' : arch === 'qwen2' || arch === 'qwen3' ? 'Qwen2Tokenizer' : 'LlamaTokenizer',
    model_max_length: 512,
    clean_up_tokenization_spaces: false,
  };
  if (arch === 'bert') Object.assign(tokenizerConfig, { cls_token: '[CLS]', sep_token: '[SEP]', pad_token: '[PAD]', unk_token: '[UNK]', mask_token: '[MASK]', do_lower_case: true });
  else Object.assign(tokenizerConfig, { eos_token: eos, pad_token: eos, unk_token: '[UNK]', ...(arch === 'qwen2' || arch === 'qwen3' ? { bos_token: null } : { bos_token: '<s>', add_bos_token: true }) });
  writeJson(path.join(dir, 'tokenizer_config.json'), tokenizerConfig);
}
