// The float64 reference model: reads a Hugging Face model dir (config.json + safetensors,
// single or sharded) on its own, independently of lib/model/config.ts and checkpoint.ts,
// and runs one sequence at a time. Decoders (qwen2, llama incl. Llama-3 rope scaling,
// mistral) and BERT. Only used by tests as an oracle.
import fs from 'node:fs';
import path from 'node:path';
import { readSafetensorsHeader, readTensorValues } from '../../lib/model/safetensors.ts';
import { add, attention, gelu, layernorm, linear, rmsnorm, silu } from './math.ts';
import { applyRope, ropeInverseFrequencies, type Llama3Scaling } from './rope.ts';

export type ReferencePooling = 'eos' | 'cls' | 'mean';

export class ReferenceModel {
  readonly config: Record<string, any>;
  private readonly weights = new Map<string, Float64Array>();

  constructor(modelDir: string) {
    this.config = JSON.parse(fs.readFileSync(path.join(modelDir, 'config.json'), 'utf8'));
    const index = path.join(modelDir, 'model.safetensors.index.json');
    const files = fs.existsSync(index)
      ? [...new Set(Object.values(JSON.parse(fs.readFileSync(index, 'utf8')).weight_map as Record<string, string>))]
      : ['model.safetensors'];
    for (const f of files) {
      const file = path.join(modelDir, f);
      for (const t of readSafetensorsHeader(file).tensors.values()) {
        // Strip the wrapper prefix of the architecture: "model." (decoders), "bert." (BERT).
        const name = t.name.replace(/^model\./, '').replace(/^bert\./, '');
        this.weights.set(name, readTensorValues(file, t));
      }
    }
  }

  get isBert(): boolean {
    return this.config.model_type === 'bert';
  }

  get hidden(): number {
    return this.config.hidden_size;
  }

  private w(name: string): Float64Array {
    const v = this.weights.get(name);
    if (!v) throw new Error(`reference: missing weight ${name}`);
    return v;
  }

  /** Last hidden states [T, H] of one sequence (after the final norm for decoders). */
  hiddenStates(ids: number[]): Float64Array {
    return this.isBert ? this.bertForward(ids) : this.decoderForward(ids);
  }

  /** Pooled (and optionally L2-normalized) embedding of one sequence. */
  embed(ids: number[], pooling: ReferencePooling, normalize = true): Float64Array {
    const H = this.hidden;
    const T = ids.length;
    const h = this.hiddenStates(ids);
    let pooled: Float64Array;
    if (pooling === 'eos') pooled = h.slice((T - 1) * H, T * H);
    else if (pooling === 'cls') pooled = h.slice(0, H);
    else {
      pooled = new Float64Array(H);
      for (let t = 0; t < T; t++) for (let i = 0; i < H; i++) pooled[i] += h[t * H + i] / T;
    }
    if (!normalize) return pooled;
    const norm = Math.max(Math.sqrt(pooled.reduce((s, x) => s + x * x, 0)), 1e-12);
    return pooled.map((x) => x / norm);
  }

  private decoderForward(ids: number[]): Float64Array {
    const c = this.config;
    const H: number = c.hidden_size;
    const Hq: number = c.num_attention_heads;
    const Hkv: number = c.num_key_value_heads ?? Hq;
    const D: number = c.head_dim ?? H / Hq;
    const I: number = c.intermediate_size;
    const eps: number = c.rms_norm_eps;
    const T = ids.length;
    const scaling = c.rope_scaling && (c.rope_scaling.rope_type ?? c.rope_scaling.type) === 'llama3'
      ? (c.rope_scaling as Llama3Scaling) : null;
    const invFreq = ropeInverseFrequencies(D, c.rope_theta ?? 10000, scaling);

    const embed = this.w('embed_tokens.weight');
    let h: Float64Array = new Float64Array(T * H);
    ids.forEach((id, t) => h.set(embed.subarray(id * H, (id + 1) * H), t * H));
    const bias = (name: string) => this.weights.get(name); // qwen2 has q/k/v biases
    for (let l = 0; l < c.num_hidden_layers; l++) {
      const p = `layers.${l}`;
      const x = rmsnorm(h, T, H, this.w(`${p}.input_layernorm.weight`), eps);
      const q = linear(x, T, H, this.w(`${p}.self_attn.q_proj.weight`), Hq * D, bias(`${p}.self_attn.q_proj.bias`));
      const k = linear(x, T, H, this.w(`${p}.self_attn.k_proj.weight`), Hkv * D, bias(`${p}.self_attn.k_proj.bias`));
      const v = linear(x, T, H, this.w(`${p}.self_attn.v_proj.weight`), Hkv * D, bias(`${p}.self_attn.v_proj.bias`));
      applyRope(q, T, Hq, D, invFreq);
      applyRope(k, T, Hkv, D, invFreq);
      const ctx = attention(q, k, v, T, Hq, Hkv, D, true);
      h = add(h, linear(ctx, T, Hq * D, this.w(`${p}.self_attn.o_proj.weight`), H));
      const y = rmsnorm(h, T, H, this.w(`${p}.post_attention_layernorm.weight`), eps);
      const gate = linear(y, T, H, this.w(`${p}.mlp.gate_proj.weight`), I);
      const up = linear(y, T, H, this.w(`${p}.mlp.up_proj.weight`), I);
      const act = gate.map((g, i) => silu(g) * up[i]);
      h = add(h, linear(act, T, I, this.w(`${p}.mlp.down_proj.weight`), H));
    }
    return rmsnorm(h, T, H, this.w('norm.weight'), eps);
  }

  private bertForward(ids: number[]): Float64Array {
    const c = this.config;
    const H: number = c.hidden_size;
    const heads: number = c.num_attention_heads;
    const D = H / heads;
    const I: number = c.intermediate_size;
    const eps: number = c.layer_norm_eps;
    const T = ids.length;
    const word = this.w('embeddings.word_embeddings.weight');
    const pos = this.w('embeddings.position_embeddings.weight');
    const type = this.w('embeddings.token_type_embeddings.weight');
    const e = new Float64Array(T * H);
    for (let t = 0; t < T; t++) {
      // token type 0 for every token (single-segment input)
      for (let i = 0; i < H; i++) e[t * H + i] = word[ids[t] * H + i] + pos[t * H + i] + type[i];
    }
    let h: Float64Array = layernorm(e, T, H, this.w('embeddings.LayerNorm.weight'), this.w('embeddings.LayerNorm.bias'), eps);
    for (let l = 0; l < c.num_hidden_layers; l++) {
      const p = `encoder.layer.${l}`;
      const lin = (x: Float64Array, inDim: number, m: string, outDim: number) =>
        linear(x, T, inDim, this.w(`${p}.${m}.weight`), outDim, this.w(`${p}.${m}.bias`));
      const q = lin(h, H, 'attention.self.query', H);
      const k = lin(h, H, 'attention.self.key', H);
      const v = lin(h, H, 'attention.self.value', H);
      const ctx = attention(q, k, v, T, heads, heads, D, false);
      const a = add(lin(ctx, H, 'attention.output.dense', H), h);
      h = layernorm(a, T, H, this.w(`${p}.attention.output.LayerNorm.weight`), this.w(`${p}.attention.output.LayerNorm.bias`), eps);
      const inter = lin(h, H, 'intermediate.dense', I).map(gelu);
      const o = add(lin(inter, I, 'output.dense', H), h);
      h = layernorm(o, T, H, this.w(`${p}.output.LayerNorm.weight`), this.w(`${p}.output.LayerNorm.bias`), eps);
    }
    return h;
  }
}
