// The float64 reference model: reads a Hugging Face model dir (config.json + safetensors,
// single or sharded) on its own, independently of lib/model/config.ts and checkpoint.ts,
// and runs one sequence at a time. Decoders (qwen2, llama incl. Llama-3 rope scaling,
// mistral, qwen3, gemma, gemma2, phi, phi3, each written from its Hugging Face modeling file),
// BERT and T5 encoders; the causal-LM head's log-probabilities. Only used by tests as an oracle.
import fs from 'node:fs';
import path from 'node:path';
import { readSafetensorsHeader, readTensorValues } from '../../lib/model/safetensors.ts';
import { add, attention, gelu, geluTanh, layernorm, linear, rmsnorm, silu } from './math.ts';
import { bf16ToFloat, f16ToFloat, floatToBf16, floatToF16 } from '../../lib/model/dtypes.ts';
import { applyRope, ropeInverseFrequencies, type Llama3Scaling } from './rope.ts';

export type ReferencePooling = 'eos' | 'cls' | 'mean';

export class ReferenceModel {
  readonly config: Record<string, any>;
  private readonly weights = new Map<string, Float64Array>();
  private embedDtype = 'F32';

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
        if (name === 'embed_tokens.weight') this.embedDtype = t.dtype;
      }
    }
  }

  get isBert(): boolean {
    return this.config.model_type === 'bert';
  }

  get isT5(): boolean {
    return this.config.model_type === 't5';
  }

  get hidden(): number {
    return this.isT5 ? this.config.d_model : this.config.hidden_size;
  }

  private w(name: string): Float64Array {
    const v = this.weights.get(name);
    if (!v) throw new Error(`reference: missing weight ${name}`);
    return v;
  }

  /** Last hidden states [T, H] of one sequence (after the final norm for decoders). */
  hiddenStates(ids: number[]): Float64Array {
    if (this.isT5) return this.t5Forward(ids);
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
    const type: string = c.model_type;
    const gemma = type === 'gemma' || type === 'gemma2';
    const phi = type === 'phi';
    const H: number = c.hidden_size;
    const Hq: number = c.num_attention_heads;
    const Hkv: number = c.num_key_value_heads ?? Hq;
    const D: number = c.head_dim ?? (gemma ? 256 : H / Hq);
    const I: number = c.intermediate_size;
    const eps: number = phi ? (c.layer_norm_eps ?? 1e-5) : (c.rms_norm_eps ?? 1e-6);
    const T = ids.length;
    const rope = c.rope_scaling ?? c.rope_parameters;
    const scaling = rope && (rope.rope_type ?? rope.type) === 'llama3' ? (rope as Llama3Scaling) : null;
    // phi: rotary over the first int(head_dim * partial_rotary_factor) dims of each head (modeling_phi.py)
    const rotary = Math.floor(D * (c.partial_rotary_factor ?? (phi ? 0.5 : 1)));
    const invFreq = ropeInverseFrequencies(rotary, c.rope_theta ?? rope?.rope_theta ?? 10000, scaling);
    const actName: string = gemma ? (c.hidden_activation ?? 'gelu_pytorch_tanh') : (c.hidden_act ?? (phi ? 'gelu_new' : 'silu'));
    const act = { silu, gelu, gelu_new: geluTanh, gelu_pytorch_tanh: geluTanh }[actName];
    if (!act) throw new Error(`reference: activation ${actName}`);
    // gemma's RMSNorm multiplies by (1 + w); phi's LayerNorm has a bias
    const norm = (x: Float64Array, name: string, rows = T, width = H) => phi
      ? layernorm(x, rows, width, this.w(`${name}.weight`), this.w(`${name}.bias`), eps)
      : rmsnorm(x, rows, width, gemma ? this.w(`${name}.weight`).map((w) => 1 + w) : this.w(`${name}.weight`), eps);
    const lin = (x: Float64Array, inDim: number, name: string, outDim: number) =>
      linear(x, T, inDim, this.w(`${name}.weight`), outDim, this.weights.get(`${name}.bias`));
    const cols = (x: Float64Array, width: number, from: number, n: number) => {
      const y = new Float64Array(T * n);
      for (let t = 0; t < T; t++) y.set(x.subarray(t * width + from, t * width + from + n), t * n);
      return y;
    };

    const embed = this.w('embed_tokens.weight');
    let h: Float64Array = new Float64Array(T * H);
    ids.forEach((id, t) => h.set(embed.subarray(id * H, (id + 1) * H), t * H));
    if (gemma) {
      // hidden * normalizer, the normalizer a tensor of the dtype the model runs in: the checkpoint's
      const s = Math.fround(Math.sqrt(H));
      const normalizer = this.embedDtype === 'BF16' ? bf16ToFloat(floatToBf16(s)) : this.embedDtype === 'F16' ? f16ToFloat(floatToF16(s)) : s;
      h = h.map((x) => x * normalizer);
    }
    for (let l = 0; l < c.num_hidden_layers; l++) {
      const p = `layers.${l}`;
      const x = norm(h, `${p}.input_layernorm`);
      let q: Float64Array, k: Float64Array, v: Float64Array;
      if (type === 'phi3') {
        const qkv = lin(x, H, `${p}.self_attn.qkv_proj`, (Hq + 2 * Hkv) * D);
        const W = (Hq + 2 * Hkv) * D;
        q = cols(qkv, W, 0, Hq * D);
        k = cols(qkv, W, Hq * D, Hkv * D);
        v = cols(qkv, W, (Hq + Hkv) * D, Hkv * D);
      } else {
        q = lin(x, H, `${p}.self_attn.q_proj`, Hq * D);
        k = lin(x, H, `${p}.self_attn.k_proj`, Hkv * D);
        v = lin(x, H, `${p}.self_attn.v_proj`, Hkv * D);
      }
      if (type === 'qwen3') { // modeling_qwen3.py: q_norm / k_norm over head_dim, before RoPE
        q = rmsnorm(q, T * Hq, D, this.w(`${p}.self_attn.q_norm.weight`), eps);
        k = rmsnorm(k, T * Hkv, D, this.w(`${p}.self_attn.k_norm.weight`), eps);
      }
      applyRope(q, T, Hq, D, invFreq);
      applyRope(k, T, Hkv, D, invFreq);
      const opts = type === 'gemma2' ? {
        scale: (c.query_pre_attn_scalar ?? 256) ** -0.5,
        softcap: c.attn_logit_softcapping ?? undefined,
        window: (c.layer_types ? c.layer_types[l] === 'sliding_attention' : l % 2 === 0) ? (c.sliding_window ?? undefined) : undefined,
      } : {};
      const ctx = attention(q, k, v, T, Hq, Hkv, D, true, opts);
      let o = lin(ctx, Hq * D, `${p}.self_attn.${phi ? 'dense' : 'o_proj'}`, H);
      const mlp = (y: Float64Array) => {
        if (phi) return lin(lin(y, H, `${p}.mlp.fc1`, I).map(act), I, `${p}.mlp.fc2`, H);
        let gate: Float64Array, up: Float64Array;
        if (type === 'phi3') {
          const gu = lin(y, H, `${p}.mlp.gate_up_proj`, 2 * I);
          gate = cols(gu, 2 * I, 0, I);
          up = cols(gu, 2 * I, I, I);
        } else {
          gate = lin(y, H, `${p}.mlp.gate_proj`, I);
          up = lin(y, H, `${p}.mlp.up_proj`, I);
        }
        return lin(gate.map((g, i) => act(g) * up[i]), I, `${p}.mlp.down_proj`, H);
      };
      if (phi) { // one norm feeds attention and MLP in parallel
        h = add(add(h, o), mlp(x));
        continue;
      }
      if (type === 'gemma2') o = norm(o, `${p}.post_attention_layernorm`);
      h = add(h, o);
      let m = mlp(norm(h, `${p}.${type === 'gemma2' ? 'pre_feedforward_layernorm' : 'post_attention_layernorm'}`));
      if (type === 'gemma2') m = norm(m, `${p}.post_feedforward_layernorm`);
      h = add(h, m);
    }
    return norm(h, phi ? 'final_layernorm' : 'norm');
  }

  /** log p(ids[t+1] | ids[..t]) for t = 0..L-2 from the causal-LM head (lm_head, or the embeddings when tied). */
  targetLogprobs(ids: number[]): Float64Array {
    const c = this.config;
    const H = this.hidden;
    const V: number = c.vocab_size;
    const h = this.decoderForward(ids);
    const gemma = c.model_type === 'gemma' || c.model_type === 'gemma2';
    const tied = c.tie_word_embeddings ?? gemma;
    const W = tied ? this.w('embed_tokens.weight') : this.weights.get('lm_head.weight');
    if (!W) throw new Error('reference: missing lm_head.weight');
    const b = tied ? undefined : this.weights.get('lm_head.bias');
    const cap: number | null = c.model_type === 'gemma2' ? (c.final_logit_softcapping === undefined ? 30 : c.final_logit_softcapping) : null;
    const out = new Float64Array(ids.length - 1);
    for (let t = 0; t + 1 < ids.length; t++) {
      const logits = linear(h.subarray(t * H, (t + 1) * H), 1, H, W, V, b);
      if (cap) for (let i = 0; i < V; i++) logits[i] = cap * Math.tanh(logits[i] / cap);
      const max = Math.max(...logits);
      let sum = 0;
      for (let i = 0; i < V; i++) sum += Math.exp(logits[i] - max);
      out[t] = logits[ids[t + 1]] - max - Math.log(sum);
    }
    return out;
  }

  /**
   * transformers modeling_t5.py, the encoder stack: shared embeddings; per block
   * h += o(attn(layer_norm(h))) with scores q.k (no 1/sqrt(d)) + position_bias, then
   * h += wo(act(wi(layer_norm(h)))) (gated: act(wi_0) * wi_1); final_layer_norm. T5LayerNorm has
   * no mean and no bias. position_bias comes from block 0's relative_attention_bias, bucketed by
   * _relative_position_bucket(memory - context, bidirectional=True) in float32 as torch computes it.
   */
  private t5Forward(ids: number[]): Float64Array {
    const c = this.config;
    const H: number = c.d_model;
    const heads: number = c.num_heads;
    const D: number = c.d_kv;
    const I: number = c.d_ff;
    const eps: number = c.layer_norm_epsilon ?? 1e-6;
    const T = ids.length;
    const proj: string = c.feed_forward_proj ?? 'relu';
    const gated = proj.startsWith('gated-');
    const actName = proj === 'gated-gelu' ? 'gelu_new' : proj.split('-').pop()!;
    const act = ({ relu: (x: number) => Math.max(x, 0), gelu, gelu_new: geluTanh } as Record<string, (x: number) => number>)[actName];
    if (!act) throw new Error(`reference: t5 activation ${actName}`);
    const numBuckets: number = c.relative_attention_num_buckets ?? 32;
    const maxDistance: number = c.relative_attention_max_distance ?? 128;
    const f = Math.fround;
    const bucket = (relative: number) => {
      const half = Math.floor(numBuckets / 2);
      let b = relative > 0 ? half : 0;
      const n = Math.abs(relative);
      const maxExact = Math.floor(half / 2);
      if (n < maxExact) return b + n;
      const large = maxExact + Math.trunc(f(f(f(Math.log(f(n / maxExact))) / f(Math.log(maxDistance / maxExact))) * (half - maxExact)));
      return b + Math.min(large, half - 1);
    };
    const table = this.w('encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight'); // [buckets, heads]
    const bias = (h: number, i: number, j: number) => table[bucket(j - i) * heads + h];
    const embed = this.w('shared.weight');
    let h: Float64Array = new Float64Array(T * H);
    ids.forEach((id, t) => h.set(embed.subarray(id * H, (id + 1) * H), t * H));
    const norm = (x: Float64Array, name: string) => rmsnorm(x, T, H, this.w(`${name}.weight`), eps);
    for (let l = 0; l < c.num_layers; l++) {
      const p = `encoder.block.${l}.layer`;
      const lin = (x: Float64Array, inDim: number, m: string, outDim: number) => linear(x, T, inDim, this.w(`${p}.${m}.weight`), outDim);
      const x = norm(h, `${p}.0.layer_norm`);
      const q = lin(x, H, '0.SelfAttention.q', heads * D);
      const k = lin(x, H, '0.SelfAttention.k', heads * D);
      const v = lin(x, H, '0.SelfAttention.v', heads * D);
      const ctx = attention(q, k, v, T, heads, heads, D, false, { scale: 1, bias });
      h = add(h, lin(ctx, heads * D, '0.SelfAttention.o', H));
      const y = norm(h, `${p}.1.layer_norm`);
      let ff: Float64Array;
      if (gated) {
        const up = lin(y, H, '1.DenseReluDense.wi_1', I);
        ff = lin(y, H, '1.DenseReluDense.wi_0', I).map((g, i) => act(g) * up[i]);
      } else {
        ff = lin(y, H, '1.DenseReluDense.wi', I).map(act);
      }
      h = add(h, lin(ff, I, '1.DenseReluDense.wo', H));
    }
    return norm(h, 'encoder.final_layer_norm');
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
