// The ops the later decoder architectures added (issue 12), forward against plain float64
// references and backward against central finite differences on cpu-f64, then the float32
// backend against float64: tanh-GELU / ReLU / gated activations (Phi, Gemma), RMSNorm with
// Gemma's (1 + w), partial rotary (Phi), attention soft-capping and sliding windows (Gemma 2),
// column copies (Phi-3's fused projections), the LM head's vocabulary blocks and T5's relative
// position bias in attention (and its gradient).
import { attention as refAttention, gelu, geluTanh, rmsnorm, silu } from '../reference/math.ts';
import { ropeInverseFrequencies } from '../reference/rope.ts';
import { expect } from 'chai';
import { dot, expectClose, finiteDiff, forwardDevices, randn, runOp } from './harness.ts';
import * as ref from './reference.ts';

const F64 = 'cpu-f64';
const FD_TOL = 1e-6;
const cu = Int32Array.from([0, 5, 6, 13]);
const T = 13;

const fd = (forward: () => Record<string, Float64Array>, key: string, R: Float64Array, x: Float64Array) =>
  finiteDiff(() => dot(R, forward()[key]), x);

function f32Agrees(op: string, args: Record<string, Float64Array | Int32Array | number | boolean | string>, keys: string[], tol = 1e-4): void {
  const a = runOp(F64, op, args), b = runOp('cpu', op, args);
  for (const k of keys) expectClose(b[k], a[k], tol, `${op} ${k} cpu vs cpu-f64`);
}

const acts: Record<string, (x: number) => number> = { silu, gelu, gelu_tanh: geluTanh, relu: (x) => Math.max(x, 0) };

/** Attention of packed sequences through the float64 reference model's attention, one sequence at a time. */
function packedAttention(q: Float64Array, k: Float64Array, v: Float64Array, lens: Int32Array, Hq: number, Hkv: number, D: number,
  causal: boolean, opts: { scale: number; softcap?: number; window?: number; relBias?: Float64Array; span?: number }): Float64Array {
  const out = new Float64Array(q.length);
  const { relBias, span } = opts;
  const bias = relBias ? (h: number, i: number, j: number) => relBias[(j - i + span! - 1) * Hq + h] : undefined;
  for (let b = 0; b + 1 < lens.length; b++) {
    const s = lens[b], L = lens[b + 1] - s;
    const o = refAttention(q.slice(s * Hq * D, (s + L) * Hq * D), k.slice(s * Hkv * D, (s + L) * Hkv * D),
      v.slice(s * Hkv * D, (s + L) * Hkv * D), L, Hq, Hkv, D, causal, { scale: opts.scale, softcap: opts.softcap, window: opts.window, bias });
    out.set(o, s * Hq * D);
  }
  return out;
}

for (const { device, tol } of forwardDevices) {
  describe(`architecture ops forward on ${device}`, () => {
    it('activation_forward and gated_forward for silu, gelu, gelu_tanh, relu', () => {
      const n = 300;
      const x = randn(n, 1, 3), up = randn(n, 2);
      for (const [name, f] of Object.entries(acts)) {
        expectClose(runOp(device, 'activation_forward', { n, x, act: name }).out, x.map(f), tol, `${name}(x)`);
        expectClose(runOp(device, 'gated_forward', { n, gate: x, up, act: name }).out, x.map((g, i) => f(g) * up[i]), tol, `${name}(gate) * up`);
      }
    });

    it('rmsnorm with wOffset 1 scales by (1 + w)', () => {
      const rows = 7, H = 24, eps = 1e-6;
      const x = randn(rows * H, 3, 2), w = randn(H, 4, 0.3);
      const got = runOp(device, 'rmsnorm_forward', { rows, H, x, w, eps, wOffset: 1 }).out;
      expectClose(got, rmsnorm(x, rows, H, w.map((v) => 1 + v), eps), tol, 'gemma rmsnorm');
    });

    it('rope with fewer frequencies than D/2 rotates the first dims and passes the rest through (partial rotary)', () => {
      const heads = 2, D = 16, R = 8;
      const inv = ropeInverseFrequencies(R, 10000, null);
      const x = randn(T * heads * D, 5);
      const got = runOp(device, 'rope_forward', { heads, D, x, invFreq: inv, cuSeqlens: cu }).x;
      // the reference rotation of the first R dims of each head, the rest unchanged
      const want = x.slice();
      const rot = new Float64Array(T * heads * R);
      for (let i = 0; i < T * heads; i++) rot.set(x.subarray(i * D, i * D + R), i * R);
      const rotated = ref.rope(rot, heads, R, inv, cu);
      for (let i = 0; i < T * heads; i++) want.set(rotated.subarray(i * R, (i + 1) * R), i * D);
      expectClose(got, want, tol, 'partial rope');
      expectClose(got.subarray(R, D), x.subarray(R, D), tol, 'pass-through dims');
    });

    for (const causal of [true, false]) {
      it(`attention with soft-capping and a sliding window (${causal ? 'causal' : 'bidirectional'}, GQA, 3 packed sequences, and 141 tokens)`, () => {
        const Hq = 4, Hkv = 2, D = 8, scale = 0.6;
        for (const [lens, window] of [[cu, 3], [Int32Array.from([0, 70, 141]), 37]] as const) {
          const n = lens[lens.length - 1];
          const q = randn(n * Hq * D, 6, 2), k = randn(n * Hkv * D, 7, 2), v = randn(n * Hkv * D, 8);
          for (const mods of [{ softcap: 1.5 }, { window }, { softcap: 2.5, window }] as Record<string, number>[]) {
            const r = runOp(device, 'attention_forward', { Hq, Hkv, D, q, k, v, cuSeqlens: lens, causal, scale, ...mods });
            expectClose(r.out, packedAttention(q, k, v, lens, Hq, Hkv, D, causal, { scale, ...mods }), tol, `attention ${JSON.stringify(mods)}`);
          }
        }
      });
    }

    it('attention with a relative position bias (T5): rel_bias[j - i + span - 1, h] added to every score', () => {
      const Hq = 4, Hkv = 2, D = 8;
      // span 80 > the longest sequence (71): entries past it are never read
      for (const [lens, span] of [[cu, 7], [Int32Array.from([0, 71, 141]), 80]] as const) {
        const n = lens[lens.length - 1];
        const q = randn(n * Hq * D, 12, 1), k = randn(n * Hkv * D, 13, 1), v = randn(n * Hkv * D, 14);
        const relBias = randn((2 * span - 1) * Hq, 15, 2);
        for (const causal of [false, true])
          for (const mods of [{}, { softcap: 2 }] as Record<string, number>[]) {
            const r = runOp(device, 'attention_forward', { Hq, Hkv, D, q, k, v, cuSeqlens: lens, causal, scale: 1, relBias, span, ...mods });
            expectClose(r.out, packedAttention(q, k, v, lens, Hq, Hkv, D, causal, { scale: 1, relBias, span, ...mods }), tol,
              `attention + rel bias, span ${span}, causal ${causal} ${JSON.stringify(mods)}`);
          }
      }
    });

    it('copy_columns moves a column block between row-major matrices', () => {
      const rows = 5, dstCols = 9, srcCols = 7;
      const dst = randn(rows * dstCols, 9), src = randn(rows * srcCols, 10);
      const got = runOp(device, 'copy_columns', { rows, dstCols, srcCols, dst, src, dstCol: 4, srcCol: 2, ncols: 3 }).dst;
      const want = dst.slice();
      for (let r = 0; r < rows; r++) for (let c = 0; c < 3; c++) want[r * dstCols + 4 + c] = src[r * srcCols + 2 + c];
      expectClose(got, want, tol, 'copy_columns');
    });

    it('logits_block_update: blocks of the vocabulary give the full log-sum-exp and the target logits (with and without a soft-cap)', () => {
      const N = 6, V = 23;
      const logits = randn(N * V, 11, 4);
      const targets = Int32Array.from([0, 22, 5, 11, 17, 3]);
      for (const softcap of [0, 3]) {
        const capped = softcap ? logits.map((x) => softcap * Math.tanh(x / softcap)) : logits;
        let max: Float64Array = new Float64Array(N).fill(-Infinity), sum: Float64Array = new Float64Array(N), target: Float64Array = new Float64Array(N);
        for (let v0 = 0; v0 < V; v0 += 5) {
          const Vb = Math.min(5, V - v0);
          const block = new Float64Array(N * Vb);
          for (let r = 0; r < N; r++) block.set(logits.subarray(r * V + v0, r * V + v0 + Vb), r * Vb);
          const out = runOp(device, 'logits_block_update', { N, Vb, logits: block, max, sum, target, targets, v0, softcap });
          ({ max, sum, target } = out);
        }
        const got = new Float64Array(N), want = new Float64Array(N);
        for (let r = 0; r < N; r++) {
          got[r] = target[r] - max[r] - Math.log(sum[r]);
          const row = capped.subarray(r * V, (r + 1) * V);
          const m = Math.max(...row);
          want[r] = row[targets[r]] - m - Math.log(row.reduce((s, x) => s + Math.exp(x - m), 0));
        }
        expectClose(got, want, tol, `log-probabilities, softcap ${softcap}`);
      }
    });
  });
}

describe('architecture ops backward (finite differences on cpu-f64, cpu vs cpu-f64)', () => {
  it('activation_backward and gated_backward for silu, gelu, gelu_tanh, relu', () => {
    const n = 40;
    const x = randn(n, 21, 2).map((v) => (Math.abs(v) < 1e-3 ? 0.5 : v)), up = randn(n, 22), R = randn(n, 23);
    for (const act of Object.keys(acts)) {
      const a = runOp(F64, 'activation_backward', { n, dout: R, x, act }).dx;
      expectClose(a, fd(() => runOp(F64, 'activation_forward', { n, x, act }), 'out', R, x), FD_TOL, `${act} dx`);
      const g = runOp(F64, 'gated_backward', { n, dout: R, gate: x, up, act });
      const gf = () => runOp(F64, 'gated_forward', { n, gate: x, up, act });
      expectClose(g.dgate, fd(gf, 'out', R, x), FD_TOL, `${act} dgate`);
      expectClose(g.dup, fd(gf, 'out', R, up), FD_TOL, `${act} dup`);
      f32Agrees('gated_backward', { n, dout: R, gate: x, up, act }, ['dgate', 'dup']);
      f32Agrees('activation_backward', { n, dout: R, x, act }, ['dx']);
    }
  });

  it('rmsnorm_backward with wOffset 1: dx and dw', () => {
    const rows = 5, H = 12, eps = 1e-6;
    const x = randn(rows * H, 24), w = randn(H, 25, 0.3), R = randn(rows * H, 26), dw0 = randn(H, 27);
    const fwd = () => runOp(F64, 'rmsnorm_forward', { rows, H, x, w, eps, wOffset: 1 });
    const args = { rows, H, dout: R, x, w, rstd: fwd().rstd, dw: dw0, wOffset: 1 };
    const got = runOp(F64, 'rmsnorm_backward', args);
    expectClose(got.dx, fd(fwd, 'out', R, x), FD_TOL, 'dx');
    expectClose(got.dw, fd(fwd, 'out', R, w).map((v, i) => v + dw0[i]), FD_TOL, 'dw');
    f32Agrees('rmsnorm_backward', args, ['dx', 'dw']);
  });

  it('rope_backward inverts a partial rotation', () => {
    const heads = 3, D = 12;
    const inv = ropeInverseFrequencies(4, 10000, null);
    const R = randn(T * heads * D, 28), x = randn(T * heads * D, 29);
    const back = runOp(F64, 'rope_backward', { heads, D, x: R, invFreq: inv, cuSeqlens: cu }).x;
    const fwd = () => runOp(F64, 'rope_forward', { heads, D, x, invFreq: inv, cuSeqlens: cu });
    expectClose(back, fd(fwd, 'x', R, x), FD_TOL, 'partial rope dx');
  });

  it('attention_backward with a relative position bias: dq, dk, dv and dRelBias (summed over every score that read an entry)', () => {
    const Hq = 4, Hkv = 2, D = 4, span = 9; // longest sequence 7: the outer rows get no gradient
    const q = randn(T * Hq * D, 34), k = randn(T * Hkv * D, 35), v = randn(T * Hkv * D, 36), R = randn(T * Hq * D, 37);
    const relBias = randn((2 * span - 1) * Hq, 38);
    for (const causal of [false, true]) {
      const base = { Hq, Hkv, D, q, k, v, cuSeqlens: cu, causal, scale: 0.9, relBias, span };
      const fwd = () => runOp(F64, 'attention_forward', base);
      const { out, lse } = fwd();
      const args = { ...base, dout: R, out, lse };
      const got = runOp(F64, 'attention_backward', args);
      expectClose(got.dq, fd(fwd, 'out', R, q), FD_TOL, `dq causal=${causal}`);
      expectClose(got.dk, fd(fwd, 'out', R, k), FD_TOL, `dk causal=${causal}`);
      expectClose(got.dv, fd(fwd, 'out', R, v), FD_TOL, `dv causal=${causal}`);
      const want = fd(fwd, 'out', R, relBias);
      expectClose(got.dRelBias, want, FD_TOL, `dRelBias causal=${causal}`);
      for (let h = 0; h < Hq; h++) {
        expect(got.dRelBias[h], `relative position -8 is never read (head ${h})`).to.equal(0);
        expect(got.dRelBias[(2 * span - 2) * Hq + h], `relative position +8 is never read (head ${h})`).to.equal(0);
      }
      f32Agrees('attention_backward', args, ['dq', 'dk', 'dv', 'dRelBias']);
    }
  });

  for (const causal of [true, false]) {
    it(`attention_backward with soft-capping and a sliding window (${causal ? 'causal' : 'bidirectional'})`, () => {
      const Hq = 4, Hkv = 2, D = 4, scale = 0.7;
      const q = randn(T * Hq * D, 30, 2), k = randn(T * Hkv * D, 31, 2), v = randn(T * Hkv * D, 32), R = randn(T * Hq * D, 33);
      for (const mods of [{ softcap: 1.2 }, { window: 3 }, { softcap: 2, window: 4 }] as Record<string, number>[]) {
        const fwd = () => runOp(F64, 'attention_forward', { Hq, Hkv, D, q, k, v, cuSeqlens: cu, causal, scale, ...mods });
        const { out, lse } = fwd();
        const args = { Hq, Hkv, D, q, k, v, dout: R, out, lse, cuSeqlens: cu, causal, scale, ...mods };
        const got = runOp(F64, 'attention_backward', args);
        expectClose(got.dq, fd(fwd, 'out', R, q), FD_TOL, `dq ${JSON.stringify(mods)}`);
        expectClose(got.dk, fd(fwd, 'out', R, k), FD_TOL, `dk ${JSON.stringify(mods)}`);
        expectClose(got.dv, fd(fwd, 'out', R, v), FD_TOL, `dv ${JSON.stringify(mods)}`);
        f32Agrees('attention_backward', args, ['dq', 'dk', 'dv']);
      }
    });
  }
});
