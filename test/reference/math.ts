// Float64 building blocks of the reference model, written for clarity, not speed.
// A matrix is a Float64Array in row-major order with its row count and column count.

/** y[T, out] = x[T, in] @ W^T (+ b), W stored [out, in] like torch.nn.Linear. */
export function linear(x: Float64Array, T: number, inDim: number, W: Float64Array, outDim: number, b?: Float64Array): Float64Array {
  const y = new Float64Array(T * outDim);
  for (let t = 0; t < T; t++) {
    for (let o = 0; o < outDim; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < inDim; i++) s += x[t * inDim + i] * W[o * inDim + i];
      y[t * outDim + o] = s;
    }
  }
  return y;
}

/** RMSNorm per row: x / sqrt(mean(x^2) + eps) * w. */
export function rmsnorm(x: Float64Array, T: number, H: number, w: Float64Array, eps: number): Float64Array {
  const y = new Float64Array(T * H);
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let i = 0; i < H; i++) ss += x[t * H + i] ** 2;
    const r = 1 / Math.sqrt(ss / H + eps);
    for (let i = 0; i < H; i++) y[t * H + i] = x[t * H + i] * r * w[i];
  }
  return y;
}

/** LayerNorm per row: (x - mean) / sqrt(var + eps) * w + b, biased variance. */
export function layernorm(x: Float64Array, T: number, H: number, w: Float64Array, b: Float64Array, eps: number): Float64Array {
  const y = new Float64Array(T * H);
  for (let t = 0; t < T; t++) {
    let mean = 0;
    for (let i = 0; i < H; i++) mean += x[t * H + i];
    mean /= H;
    let v = 0;
    for (let i = 0; i < H; i++) v += (x[t * H + i] - mean) ** 2;
    const r = 1 / Math.sqrt(v / H + eps);
    for (let i = 0; i < H; i++) y[t * H + i] = (x[t * H + i] - mean) * r * w[i] + b[i];
  }
  return y;
}

export const silu = (x: number): number => x / (1 + Math.exp(-x));

/** erf by the everywhere-convergent series erf(x) = 2/sqrt(pi) e^{-x^2} sum 2^n x^{2n+1} / (2n+1)!!
 * (all terms positive, so no cancellation); |x| >= 6 is +-1 in double precision. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax >= 6) return Math.sign(x);
  let term = ax;
  let sum = ax;
  for (let n = 1; term > 1e-17 * sum; n++) {
    term *= (2 * ax * ax) / (2 * n + 1);
    sum += term;
  }
  return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * Math.exp(-ax * ax) * sum;
}

/** The exact (erf) GELU that BERT's "gelu" means. */
export const gelu = (x: number): number => 0.5 * x * (1 + erf(x / Math.SQRT2));

export function add(a: Float64Array, b: Float64Array): Float64Array {
  const y = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) y[i] = a[i] + b[i];
  return y;
}

export interface AttentionOptions {
  scale?: number; // default 1/sqrt(D)
  softcap?: number; // scores -> softcap * tanh(scores / softcap) (Gemma 2)
  window?: number; // sliding window
  bias?: (h: number, i: number, j: number) => number; // added to score (i, j) of head h before any cap (T5)
}

/** The tanh approximation of GELU (HF "gelu_new", "gelu_pytorch_tanh"). */
export const geluTanh = (x: number): number => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

/**
 * Multi-head attention of one sequence. q[T, Hq*D], k/v[T, Hkv*D]; query head h reads kv head
 * floor(h / (Hq/Hkv)); causal masks future tokens. Returns [T, Hq*D].
 */
export function attention(q: Float64Array, k: Float64Array, v: Float64Array, T: number, Hq: number, Hkv: number,
  D: number, causal: boolean, opts: AttentionOptions = {}): Float64Array {
  const out = new Float64Array(T * Hq * D);
  const group = Hq / Hkv;
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  for (let h = 0; h < Hq; h++) {
    const kh = Math.floor(h / group);
    for (let i = 0; i < T; i++) {
      const last = causal ? i : T - 1;
      // sliding window: keys j with i - j < window only (HF masks kv_idx <= q_idx - window)
      const first = opts.window ? Math.max(0, i - opts.window + 1) : 0;
      const scores = new Float64Array(last + 1);
      let max = -Infinity;
      for (let j = 0; j <= last; j++) {
        if (j < first) {
          scores[j] = -Infinity;
          continue;
        }
        let s = 0;
        for (let d = 0; d < D; d++) s += q[(i * Hq + h) * D + d] * k[(j * Hkv + kh) * D + d];
        scores[j] = s * scale + (opts.bias ? opts.bias(h, i, j) : 0);
        if (opts.softcap) scores[j] = opts.softcap * Math.tanh(scores[j] / opts.softcap);
        max = Math.max(max, scores[j]);
      }
      let denom = 0;
      for (let j = 0; j <= last; j++) denom += (scores[j] = Math.exp(scores[j] - max));
      for (let j = 0; j <= last; j++) {
        const p = scores[j] / denom;
        for (let d = 0; d < D; d++) out[(i * Hq + h) * D + d] += p * v[(j * Hkv + kh) * D + d];
      }
    }
  }
  return out;
}
