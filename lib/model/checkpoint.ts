// A Hugging Face model dir's weights -> the TensorSource list the native loader reads.
// Names become canonical module paths of the base model ("model." / "bert." stripped), heads
// we never use are skipped, and every required tensor is checked against the config's shapes.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.ts';
import { jsonKeys, object, parse, record, string, type Infer } from '../schema.ts';
import type { SafetensorsDType, TensorSource } from '../native.ts';
import type { ModelInfo } from './config.ts';
import { readSafetensorsHeader, type SafetensorsFile } from './safetensors.ts';
import { bf16ToFloat, f16ToFloat, floatToBf16, floatToF16 } from './dtypes.ts';

/** Canonical tensor name -> expected shape, in load order. */
export function expectedTensors(info: ModelInfo): Map<string, number[]> {
  const c = info.native;
  const out = new Map<string, number[]>();
  if (c.arch === 'bert') {
    const H = c.hidden;
    out.set('embeddings.word_embeddings.weight', [c.vocab, H]);
    out.set('embeddings.position_embeddings.weight', [c.maxPositions, H]);
    out.set('embeddings.token_type_embeddings.weight', [c.typeVocab, H]);
    out.set('embeddings.LayerNorm.weight', [H]);
    out.set('embeddings.LayerNorm.bias', [H]);
    for (let l = 0; l < c.layers; l++) {
      const p = `encoder.layer.${l}`;
      for (const m of ['query', 'key', 'value']) {
        out.set(`${p}.attention.self.${m}.weight`, [H, H]);
        out.set(`${p}.attention.self.${m}.bias`, [H]);
      }
      out.set(`${p}.attention.output.dense.weight`, [H, H]);
      out.set(`${p}.attention.output.dense.bias`, [H]);
      out.set(`${p}.attention.output.LayerNorm.weight`, [H]);
      out.set(`${p}.attention.output.LayerNorm.bias`, [H]);
      out.set(`${p}.intermediate.dense.weight`, [c.intermediate, H]);
      out.set(`${p}.intermediate.dense.bias`, [c.intermediate]);
      out.set(`${p}.output.dense.weight`, [H, c.intermediate]);
      out.set(`${p}.output.dense.bias`, [H]);
      out.set(`${p}.output.LayerNorm.weight`, [H]);
      out.set(`${p}.output.LayerNorm.bias`, [H]);
    }
    return out;
  }
  if (c.arch === 't5') {
    // the encoder of T5EncoderModel / T5ForConditionalGeneration (cpp/core/encoder.cpp's names and order)
    const H = c.hidden;
    const A = c.heads * c.headDim;
    const I = c.intermediate;
    out.set('shared.weight', [c.vocab, H]);
    for (let l = 0; l < c.layers; l++) {
      const p = `encoder.block.${l}.layer`;
      out.set(`${p}.0.layer_norm.weight`, [H]);
      for (const m of ['q', 'k', 'v']) out.set(`${p}.0.SelfAttention.${m}.weight`, [A, H]);
      out.set(`${p}.0.SelfAttention.o.weight`, [H, A]);
      if (l === 0) out.set(`${p}.0.SelfAttention.relative_attention_bias.weight`, [c.relBuckets!, c.heads]);
      out.set(`${p}.1.layer_norm.weight`, [H]);
      if (c.gatedMlp) {
        out.set(`${p}.1.DenseReluDense.wi_0.weight`, [I, H]);
        out.set(`${p}.1.DenseReluDense.wi_1.weight`, [I, H]);
      } else {
        out.set(`${p}.1.DenseReluDense.wi.weight`, [I, H]);
      }
      out.set(`${p}.1.DenseReluDense.wo.weight`, [H, I]);
    }
    out.set('encoder.final_layer_norm.weight', [H]);
    return out;
  }
  // The decoder description (cpp/core/decoder.cpp registers the same names in the same order).
  const H = c.hidden;
  const I = c.intermediate;
  const q = c.heads * c.headDim;
  const kv = c.kvHeads * c.headDim;
  const norm = (name: string) => {
    out.set(`${name}.weight`, [H]);
    if (c.norm === 'layer') out.set(`${name}.bias`, [H]);
  };
  const linear = (name: string, outDim: number, inDim: number, bias: boolean | undefined) => {
    out.set(`${name}.weight`, [outDim, inDim]);
    if (bias) out.set(`${name}.bias`, [outDim]);
  };
  out.set('embed_tokens.weight', [c.vocab, H]);
  for (let l = 0; l < c.layers; l++) {
    const p = `layers.${l}`;
    norm(`${p}.input_layernorm`);
    if (c.fusedQkv) {
      linear(`${p}.self_attn.qkv_proj`, q + 2 * kv, H, c.qkvBias);
    } else {
      linear(`${p}.self_attn.q_proj`, q, H, c.qkvBias);
      linear(`${p}.self_attn.k_proj`, kv, H, c.qkvBias);
      linear(`${p}.self_attn.v_proj`, kv, H, c.qkvBias);
    }
    if (c.qkNorm) {
      out.set(`${p}.self_attn.q_norm.weight`, [c.headDim]);
      out.set(`${p}.self_attn.k_norm.weight`, [c.headDim]);
    }
    linear(`${p}.self_attn.${c.parallelBlock ? 'dense' : 'o_proj'}`, H, q, c.oBias);
    if (c.sandwichNorms) {
      norm(`${p}.post_attention_layernorm`);
      norm(`${p}.pre_feedforward_layernorm`);
      norm(`${p}.post_feedforward_layernorm`);
    } else if (!c.parallelBlock) {
      norm(`${p}.post_attention_layernorm`);
    }
    if (c.gatedMlp === false) {
      linear(`${p}.mlp.fc1`, I, H, c.mlpBias);
      linear(`${p}.mlp.fc2`, H, I, c.mlpBias);
    } else if (c.fusedGateUp) {
      linear(`${p}.mlp.gate_up_proj`, 2 * I, H, c.mlpBias);
      linear(`${p}.mlp.down_proj`, H, I, c.mlpBias);
    } else {
      linear(`${p}.mlp.gate_proj`, I, H, c.mlpBias);
      linear(`${p}.mlp.up_proj`, I, H, c.mlpBias);
      linear(`${p}.mlp.down_proj`, H, I, c.mlpBias);
    }
  }
  norm(c.norm === 'layer' ? 'final_layernorm' : 'norm');
  return out;
}

/** sqrt(hidden) rounded to `dtype`, as HF multiplies Gemma's embeddings in the dtype the model runs in. */
export function embedScaleFor(hidden: number, dtype: SafetensorsDType): number {
  const x = Math.fround(Math.sqrt(hidden));
  if (dtype === 'BF16') return bf16ToFloat(floatToBf16(x));
  if (dtype === 'F16') return f16ToFloat(floatToF16(x));
  if (dtype === 'F64') return Math.sqrt(hidden);
  return x;
}

/** The causal-LM head's tensors (lm_head.weight, lm_head.bias when present) for NativeModel.loadLmHead; [] when tied. */
export function lmHeadSources(modelDir: string, info: ModelInfo): TensorSource[] {
  if (info.native.arch !== 'decoder') throw new UserError(`${modelDir}: a ${info.modelType} model has no causal-LM head`);
  if (info.tieWordEmbeddings) return [];
  const want = new Map<string, number[]>([['lm_head.weight', [info.native.vocab, info.native.hidden]], ['lm_head.bias', [info.native.vocab]]]);
  const sources: TensorSource[] = [];
  for (const file of checkpointFiles(modelDir)) {
    const header = readSafetensorsHeader(path.resolve(file));
    for (const [name, t] of header.tensors) {
      const shape = want.get(name);
      if (!shape) continue;
      if (t.shape.join() !== shape.join()) throw new UserError(`${file}: tensor "${name}" has shape ${JSON.stringify(t.shape)}, expected ${JSON.stringify(shape)} from config.json`);
      sources.push({ name, file: header.file, offset: t.offset, dtype: t.dtype, shape: t.shape });
    }
  }
  if (!sources.some((s) => s.name === 'lm_head.weight')) {
    throw new UserError(`${modelDir}: no "lm_head.weight" tensor (config.json does not tie the LM head to the embeddings)`);
  }
  return sources;
}

/** HF checkpoint name -> canonical name. Old BERT checkpoints spell LayerNorm weights gamma/beta. */
export function canonicalName(name: string, info: ModelInfo): string {
  if (info.native.arch === 'bert') {
    const bare = name.startsWith('bert.') ? name.slice('bert.'.length) : name;
    return bare.replace(/\.LayerNorm\.gamma$/, '.LayerNorm.weight').replace(/\.LayerNorm\.beta$/, '.LayerNorm.bias');
  }
  // T5: the word embeddings are "shared.weight"; a file may hold them (also or only) as the encoder's embed_tokens
  if (info.native.arch === 't5') return name === 'encoder.embed_tokens.weight' ? 'shared.weight' : name;
  return name.startsWith('model.') ? name.slice('model.'.length) : name;
}

// model.safetensors.index.json: "weight_map" maps each tensor name to its shard file; "metadata"
// and any other key pass through unread.
const shardIndexSchema = object({ weight_map: record(string()) }, { unknownKeys: 'keep', expected: 'a JSON object' });
export type ShardIndexJson = Infer<typeof shardIndexSchema>;

/** The safetensors files of a model dir: model.safetensors, or the shards its index names. */
export function checkpointFiles(modelDir: string): string[] {
  const single = path.join(modelDir, 'model.safetensors');
  const index = path.join(modelDir, 'model.safetensors.index.json');
  if (fs.existsSync(single)) return [single];
  if (!fs.existsSync(index)) {
    const hint = fs.existsSync(path.join(modelDir, 'pytorch_model.bin')) ? ' (pytorch_model.bin is not supported: convert it to safetensors)' : '';
    throw new UserError(`${modelDir}: no model.safetensors or model.safetensors.index.json${hint}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(index, 'utf8'));
  } catch (err) {
    throw new UserError(`${index}: invalid JSON (${(err as Error).message})`);
  }
  const keys = jsonKeys(index, 'model.safetensors.index.json');
  const label = keys.label!;
  // tensor names hold dots: name an entry as "weight_map" entry "model.norm.weight"
  keys.label = (p) => (p.startsWith('weight_map.') ? `"weight_map" entry "${p.slice('weight_map.'.length)}"` : label(p));
  const weightMap = parse(shardIndexSchema, json, keys).weight_map;
  const shards = [...new Set(Object.values(weightMap))];
  for (const shard of shards) {
    if (path.isAbsolute(shard) || shard.split(/[\\/]/).includes('..')) throw new UserError(`${index}: shard "${shard}" must be a file inside the model dir`);
  }
  return shards.map((s) => path.join(modelDir, s));
}

/** Locate, validate and canonically name every tensor the native model needs. */
export function loadCheckpoint(modelDir: string, info: ModelInfo): TensorSource[] {
  const expected = expectedTensors(info);
  const found = new Map<string, { file: SafetensorsFile; hfName: string }>();
  const nonFloat = new Map<string, { file: string; dtype: string }>();
  for (const file of checkpointFiles(modelDir)) {
    const header = readSafetensorsHeader(path.resolve(file));
    for (const name of header.tensors.keys()) {
      const canonical = canonicalName(name, info);
      if (!expected.has(canonical)) continue; // lm_head, pooler, cls.* heads, buffers
      const previous = found.get(canonical);
      if (previous && canonical === 'shared.weight' && info.native.arch === 't5') {
        if (name === 'shared.weight') found.set(canonical, { file: header, hfName: name }); // tied copies: prefer shared.weight
        continue;
      }
      if (previous) throw new UserError(`${file}: tensor "${name}" duplicates "${previous.hfName}" in ${previous.file.file}`);
      found.set(canonical, { file: header, hfName: name });
    }
    for (const [name, t] of header.otherTensors) nonFloat.set(canonicalName(name, info), { file, dtype: t.dtype });
  }
  const sources: TensorSource[] = [];
  for (const [canonical, shape] of expected) {
    const hit = found.get(canonical);
    if (!hit) {
      const bad = nonFloat.get(canonical);
      if (bad) throw new UserError(`${bad.file}: tensor "${canonical}" has dtype ${bad.dtype}, expected F32, F16, BF16 or F64`);
      throw new UserError(`${modelDir}: missing tensor "${canonical}" (expected shape ${JSON.stringify(shape)})`);
    }
    const t = hit.file.tensors.get(hit.hfName)!;
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new UserError(`${hit.file.file}: tensor "${hit.hfName}" has shape ${JSON.stringify(t.shape)}, expected ${JSON.stringify(shape)} from config.json`);
    }
    sources.push({ name: canonical, file: hit.file.file, offset: t.offset, dtype: t.dtype, shape: t.shape });
  }
  // Gemma: the embedding scale is sqrt(hidden) in the checkpoint's dtype (the contract).
  const embed = sources.find((s) => s.name === 'embed_tokens.weight');
  if (info.embedScaleFromCheckpoint && embed) info.native.embedScale = embedScaleFor(info.native.hidden, embed.dtype);
  return sources;
}
