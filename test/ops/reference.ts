// Float64 references for single backend ops, written for clarity. Model-level pieces that
// already exist in test/reference/math.ts (rmsnorm, layernorm, gelu, silu) are used from there.

/** C[M,N] = alpha * op(A) @ op(B) + beta * C0 (C0 ignored when beta = 0). */
export function matmul(A: Float64Array, B: Float64Array, C0: Float64Array | null, M: number, N: number, K: number,
  transA: boolean, transB: boolean, alpha: number, beta: number): Float64Array {
  const C = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) {
        const a = transA ? A[k * M + i] : A[i * K + k];
        const b = transB ? B[j * K + k] : B[k * N + j];
        s += a * b;
      }
      C[i * N + j] = alpha * s + (beta === 0 ? 0 : beta * C0![i * N + j]);
    }
  }
  return C;
}

/** Hugging Face rotate-half RoPE on x[T, heads, D], positions restart at 0 in every sequence; the
 * angle is float32(float32(pos) * float32(inv_freq)) as HF computes it. inverse: rotate by -angle. */
export function rope(x: Float64Array, heads: number, D: number, invFreq: Float64Array, cuSeqlens: Int32Array,
  inverse = false): Float64Array {
  const y = Float64Array.from(x);
  const half = D / 2;
  for (let b = 0; b + 1 < cuSeqlens.length; b++) {
    for (let t = cuSeqlens[b]; t < cuSeqlens[b + 1]; t++) {
      const pos = t - cuSeqlens[b];
      for (let h = 0; h < heads; h++) {
        const base = (t * heads + h) * D;
        for (let i = 0; i < half; i++) {
          const angle = Math.fround(Math.fround(pos) * Math.fround(invFreq[i]));
          const c = Math.cos(angle);
          const s = inverse ? -Math.sin(angle) : Math.sin(angle);
          const x1 = x[base + i];
          const x2 = x[base + i + half];
          y[base + i] = x1 * c - x2 * s;
          y[base + i + half] = x2 * c + x1 * s;
        }
      }
    }
  }
  return y;
}

/** Packed varlen attention with GQA: full softmax per query row. Returns out[T,Hq,D] and lse[T,Hq]. */
export function attention(q: Float64Array, k: Float64Array, v: Float64Array, cuSeqlens: Int32Array, Hq: number,
  Hkv: number, D: number, causal: boolean, scale: number): { out: Float64Array; lse: Float64Array } {
  const T = cuSeqlens[cuSeqlens.length - 1];
  const out = new Float64Array(T * Hq * D);
  const lse = new Float64Array(T * Hq);
  const group = Hq / Hkv;
  for (let b = 0; b + 1 < cuSeqlens.length; b++) {
    const start = cuSeqlens[b];
    const end = cuSeqlens[b + 1];
    for (let h = 0; h < Hq; h++) {
      const kh = Math.floor(h / group);
      for (let i = start; i < end; i++) {
        const last = causal ? i : end - 1;
        const s: number[] = [];
        for (let j = start; j <= last; j++) {
          let d = 0;
          for (let e = 0; e < D; e++) d += q[(i * Hq + h) * D + e] * k[(j * Hkv + kh) * D + e];
          s.push(d * scale);
        }
        const max = Math.max(...s);
        const sum = s.reduce((acc, x) => acc + Math.exp(x - max), 0);
        lse[i * Hq + h] = max + Math.log(sum);
        for (let j = start; j <= last; j++) {
          const p = Math.exp(s[j - start] - lse[i * Hq + h]);
          for (let e = 0; e < D; e++) out[(i * Hq + h) * D + e] += p * v[(j * Hkv + kh) * D + e];
        }
      }
    }
  }
  return { out, lse };
}

export type Pool = 'eos' | 'cls' | 'mean';

/** out[B,H] from h[T,H] per sequence. */
export function pool(h: Float64Array, cuSeqlens: Int32Array, H: number, mode: Pool): Float64Array {
  const B = cuSeqlens.length - 1;
  const out = new Float64Array(B * H);
  for (let b = 0; b < B; b++) {
    const s = cuSeqlens[b];
    const L = cuSeqlens[b + 1] - s;
    for (let i = 0; i < H; i++) {
      if (mode === 'eos') out[b * H + i] = h[(s + L - 1) * H + i];
      else if (mode === 'cls') out[b * H + i] = h[s * H + i];
      else {
        let sum = 0;
        for (let t = s; t < s + L; t++) sum += h[t * H + i];
        out[b * H + i] = sum / L;
      }
    }
  }
  return out;
}

/** torch.nn.functional.normalize(x, dim=-1): x / max(||x||, 1e-12). */
export function l2normalize(x: Float64Array, rows: number, H: number): Float64Array {
  const y = new Float64Array(rows * H);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < H; i++) ss += x[r * H + i] ** 2;
    const n = Math.max(Math.sqrt(ss), 1e-12);
    for (let i = 0; i < H; i++) y[r * H + i] = x[r * H + i] / n;
  }
  return y;
}

/** InfoNCE loss: mean over queries of cross-entropy of sim(q_i, p_j)/tau with target j = i*G. */
export function infonceLoss(q: Float64Array, p: Float64Array, B: number, G: number, H: number, tau: number,
  cosine: boolean): number {
  const qa = cosine ? l2normalize(q, B, H) : q;
  const pa = cosine ? l2normalize(p, B * G, H) : p;
  let loss = 0;
  for (let i = 0; i < B; i++) {
    const s: number[] = [];
    for (let j = 0; j < B * G; j++) {
      let d = 0;
      for (let e = 0; e < H; e++) d += qa[i * H + e] * pa[j * H + e];
      s.push(d / tau);
    }
    const max = Math.max(...s);
    const lse = max + Math.log(s.reduce((acc, x) => acc + Math.exp(x - max), 0));
    loss += lse - s[i * G];
  }
  return loss / B;
}

/** One torch.optim.AdamW step (as documented by PyTorch), elementwise. */
export function adamw(param: Float64Array, grad: Float64Array, m: Float64Array, v: Float64Array, o: {
  lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; step: number; gradScale: number;
}): { param: Float64Array; m: Float64Array; v: Float64Array } {
  const n = param.length;
  const P = new Float64Array(n);
  const Mo = new Float64Array(n);
  const Vo = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const g = grad[i] * o.gradScale;
    let theta = param[i] * (1 - o.lr * o.weightDecay);
    Mo[i] = o.beta1 * m[i] + (1 - o.beta1) * g;
    Vo[i] = o.beta2 * v[i] + (1 - o.beta2) * g * g;
    const mHat = Mo[i] / (1 - o.beta1 ** o.step);
    const vHat = Vo[i] / (1 - o.beta2 ** o.step);
    theta -= (o.lr * mHat) / (Math.sqrt(vHat) + o.eps);
    P[i] = theta;
  }
  return { param: P, m: Mo, v: Vo };
}

/** The dropout hash documented in cpp/cpu/dropout_hash.h, with BigInt (mod 2^64 arithmetic). */
const MASK64 = (1n << 64n) - 1n;
function mix(z: bigint): bigint {
  z ^= z >> 30n;
  z = (z * 0xbf58476d1ce4e5b9n) & MASK64;
  z ^= z >> 27n;
  z = (z * 0x94d049bb133111ebn) & MASK64;
  z ^= z >> 31n;
  return z;
}
export function dropoutKeep(seed: number, rowKey: number, col: number, p: number): boolean {
  const r = mix(BigInt(seed) ^ mix((BigInt(rowKey) + 0x9e3779b97f4a7c15n) & MASK64));
  const h = mix((r + 0x9e3779b97f4a7c15n * BigInt(col + 1)) & MASK64);
  const u = Number(h >> 40n) / 2 ** 24;
  return u >= Math.fround(p);
}
