// A small GGUF v3 writer (the llama.cpp / ggml model file), enough to hand llama.cpp the bench's
// generated Qwen2 model. Layout (ggml's gguf.h): "GGUF", u32 version 3, i64 tensor count, i64
// key/value count; each key/value: string key, u32 value type, value (arrays: u32 element type,
// u64 count, elements); each tensor info: string name, u32 dimension count, i64 dimensions
// (innermost first: a row-major [out, in] matrix is written as [in, out]), u32 ggml type, u64
// offset into the data section; zero padding to the alignment; the data, each tensor at an
// aligned offset. Strings are a u64 byte length and UTF-8 bytes; everything little-endian.
import fs from 'node:fs';
import path from 'node:path';
import { floatToF16 } from '../../lib/model/dtypes.ts';
import { readSafetensorsHeader } from '../../lib/model/safetensors.ts';

export const GGUF_ALIGNMENT = 32; // ggml's default (no general.alignment key written)

/** A metadata value with its GGUF type. */
export type GgufValue =
  | { type: 'u32'; value: number }
  | { type: 'i32'; value: number }
  | { type: 'f32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'strings'; value: string[] };

const VALUE_TYPE = { u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9 } as const;
export const GGML_TYPE = { F32: 0, F16: 1 } as const;

export interface GgufTensor {
  name: string;
  dims: number[]; // innermost first
  type: keyof typeof GGML_TYPE;
  /** the values in row-major order of the reversed dims; fetched when written, so big models stream */
  data: () => Float32Array;
}

/** Growable little-endian byte buffer for the header part. */
class Bytes {
  private buf = Buffer.alloc(1 << 16);
  length = 0;
  private room(n: number): number {
    if (this.length + n > this.buf.length) {
      const next = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
      this.buf.copy(next, 0, 0, this.length);
      this.buf = next;
    }
    const at = this.length;
    this.length += n;
    return at;
  }
  u8(v: number) { this.buf.writeUInt8(v, this.room(1)); }
  u32(v: number) { this.buf.writeUInt32LE(v, this.room(4)); }
  i32(v: number) { this.buf.writeInt32LE(v, this.room(4)); }
  f32(v: number) { this.buf.writeFloatLE(v, this.room(4)); }
  u64(v: number) { this.buf.writeBigUInt64LE(BigInt(v), this.room(8)); }
  string(s: string) {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    b.copy(this.buf, this.room(b.length));
  }
  zeros(n: number) { this.buf.fill(0, this.room(n), this.length); }
  bytes(): Buffer { return this.buf.subarray(0, this.length); }
}

const padTo = (n: number, a: number) => (a - (n % a)) % a;
const tensorBytes = (t: GgufTensor) => t.dims.reduce((a, b) => a * b, 1) * (t.type === 'F32' ? 4 : 2);

/** Writes `file` (via a temporary name, renamed when complete). */
export function writeGguf(file: string, metadata: Record<string, GgufValue>, tensors: GgufTensor[]): void {
  const h = new Bytes();
  h.u32(0x46554747); // "GGUF" read as a little-endian u32
  h.u32(3);
  h.u64(tensors.length);
  h.u64(Object.keys(metadata).length);
  for (const [key, v] of Object.entries(metadata)) {
    h.string(key);
    if (v.type === 'strings') {
      h.u32(VALUE_TYPE.array);
      h.u32(VALUE_TYPE.string);
      h.u64(v.value.length);
      for (const s of v.value) h.string(s);
      continue;
    }
    h.u32(VALUE_TYPE[v.type]);
    if (v.type === 'u32') h.u32(v.value);
    else if (v.type === 'i32') h.i32(v.value);
    else if (v.type === 'f32') h.f32(v.value);
    else if (v.type === 'bool') h.u8(v.value ? 1 : 0);
    else h.string(v.value);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    h.string(t.name);
    h.u32(t.dims.length);
    for (const d of t.dims) h.u64(d);
    h.u32(GGML_TYPE[t.type]);
    offsets.push(offset);
    h.u64(offset);
    offset += tensorBytes(t);
    offset += padTo(offset, GGUF_ALIGNMENT);
  }
  h.zeros(padTo(h.length, GGUF_ALIGNMENT));
  const tmp = `${file}.partial`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, h.bytes());
    let written = 0;
    tensors.forEach((t, i) => {
      if (written !== offsets[i]) fs.writeSync(fd, Buffer.alloc(offsets[i] - written));
      const values = t.data();
      if (values.length * (t.type === 'F32' ? 4 : 2) !== tensorBytes(t)) throw new Error(`writeGguf: ${t.name} has ${values.length} values for dims ${t.dims.join('x')}`);
      if (t.type === 'F32') fs.writeSync(fd, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
      else {
        const half = new Uint16Array(values.length);
        for (let j = 0; j < values.length; j++) half[j] = floatToF16(values[j]);
        fs.writeSync(fd, new Uint8Array(half.buffer));
      }
      written = offsets[i] + tensorBytes(t);
    });
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

/** Qwen2 Hugging Face tensor name -> llama.cpp's GGUF name (model.layers.N.* -> blk.N.*). */
export function qwen2GgufName(hf: string): string {
  const layer = /^model\.layers\.(\d+)\.(.+)$/.exec(hf);
  if (!layer) {
    const top: Record<string, string> = { 'model.embed_tokens.weight': 'token_embd.weight', 'model.norm.weight': 'output_norm.weight', 'lm_head.weight': 'output.weight' };
    if (!top[hf]) throw new Error(`qwen2GgufName: no GGUF name for ${hf}`);
    return top[hf];
  }
  const parts: Record<string, string> = {
    input_layernorm: 'attn_norm', post_attention_layernorm: 'ffn_norm',
    'self_attn.q_proj': 'attn_q', 'self_attn.k_proj': 'attn_k', 'self_attn.v_proj': 'attn_v', 'self_attn.o_proj': 'attn_output',
    'mlp.gate_proj': 'ffn_gate', 'mlp.up_proj': 'ffn_up', 'mlp.down_proj': 'ffn_down',
  };
  const m = /^(.+)\.(weight|bias)$/.exec(layer[2]);
  if (!m || !parts[m[1]]) throw new Error(`qwen2GgufName: no GGUF name for ${hf}`);
  return `blk.${layer[1]}.${parts[m[1]]}.${m[2]}`;
}

export interface Qwen2GgufOptions {
  /** type of the 2-D weight matrices (norms and biases stay F32, as llama.cpp's converter keeps them) */
  weights: 'F32' | 'F16';
  /** keep only these token ids, in this order (new id = index): a compact vocabulary for the given inputs */
  vocabIds?: number[];
}

/**
 * A Qwen2 model dir (config.json + one F32 model.safetensors, tied embeddings) as a GGUF that
 * llama.cpp embeds token ids with: no tokenizer ("none"), last-token pooling (pooling_type 3).
 */
export function qwen2ToGguf(modelDir: string, file: string, o: Qwen2GgufOptions): void {
  const c = JSON.parse(fs.readFileSync(path.join(modelDir, 'config.json'), 'utf8'));
  if (c.model_type !== 'qwen2') throw new Error(`qwen2ToGguf: ${modelDir} is ${c.model_type}, not qwen2`);
  const st = readSafetensorsHeader(path.join(modelDir, 'model.safetensors'));
  const fd = fs.openSync(st.file, 'r');
  const read = (name: string): Float32Array => {
    const t = st.tensors.get(name);
    if (!t || t.dtype !== 'F32') throw new Error(`qwen2ToGguf: ${name} missing or not F32`);
    const out = new Float32Array(t.byteLength / 4);
    fs.readSync(fd, new Uint8Array(out.buffer), 0, t.byteLength, t.offset);
    return out;
  };
  try {
    const H = c.hidden_size;
    const vocab = o.vocabIds?.length ?? c.vocab_size;
    const tensors: GgufTensor[] = [];
    for (const [name, t] of st.tensors) {
      if (name === 'lm_head.weight') continue; // tied: llama.cpp uses token_embd as the output matrix
      const matrix = t.shape.length === 2;
      const dims = [...t.shape].reverse();
      let data = () => read(name);
      if (name === 'model.embed_tokens.weight' && o.vocabIds) {
        const ids = o.vocabIds;
        dims[1] = ids.length;
        data = () => {
          const all = read(name);
          const out = new Float32Array(ids.length * H);
          ids.forEach((id, i) => out.set(all.subarray(id * H, (id + 1) * H), i * H));
          return out;
        };
      }
      tensors.push({ name: qwen2GgufName(name), dims, type: matrix ? o.weights : 'F32', data });
    }
    const u32 = (value: number) => ({ type: 'u32' as const, value });
    const f32 = (value: number) => ({ type: 'f32' as const, value });
    writeGguf(file, {
      'general.architecture': { type: 'string', value: 'qwen2' },
      'general.name': { type: 'string', value: `lmdr bench ${path.basename(modelDir)}` },
      'general.file_type': u32(o.weights === 'F32' ? 0 : 1),
      'qwen2.vocab_size': u32(vocab),
      'qwen2.context_length': u32(c.max_position_embeddings),
      'qwen2.embedding_length': u32(H),
      'qwen2.block_count': u32(c.num_hidden_layers),
      'qwen2.feed_forward_length': u32(c.intermediate_size),
      'qwen2.attention.head_count': u32(c.num_attention_heads),
      'qwen2.attention.head_count_kv': u32(c.num_key_value_heads),
      'qwen2.rope.freq_base': f32(c.rope_theta),
      'qwen2.attention.layer_norm_rms_epsilon': f32(c.rms_norm_eps),
      'qwen2.pooling_type': u32(3), // last token
      'tokenizer.ggml.model': { type: 'string', value: 'none' },
    }, tensors);
  } finally {
    fs.closeSync(fd);
  }
}
