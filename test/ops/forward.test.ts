// Every forward op of the CPU backends against a plain float64 reference on random inputs.
import { expect } from 'chai';
import { gelu, layernorm, rmsnorm, silu } from '../reference/math.ts';
import { ropeInverseFrequencies } from '../reference/rope.ts';
import { expectClose, forwardDevices, randn, randu, runOp } from './harness.ts';
import * as ref from './reference.ts';

const cu = Int32Array.from([0, 5, 6, 13]); // three sequences of different lengths, one of length 1
const T = 13;

for (const { device, tol } of forwardDevices) {
  describe(`ops forward on ${device}`, () => {
    it('add_bias, add, scale, axpy, fill, copy', () => {
      const rows = 7, N = 19;
      const y = randn(rows * N, 1), bias = randn(N, 2);
      const want = y.map((v, i) => v + bias[i % N]);
      expectClose(runOp(device, 'add_bias', { rows, N, y, bias }).y, want, tol, 'add_bias');
      const n = 1000;
      const a = randn(n, 3), b = randn(n, 4);
      expectClose(runOp(device, 'add', { n, a, b }).out, a.map((v, i) => v + b[i]), tol, 'add');
      expectClose(runOp(device, 'scale', { n, x: a, s: -0.37 }).x, a.map((v) => v * -0.37), tol, 'scale');
      expectClose(runOp(device, 'axpy', { n, y: a, x: b, a: 1.7 }).y, a.map((v, i) => v + 1.7 * b[i]), tol, 'axpy');
      expectClose(runOp(device, 'fill', { n, value: 2.5 }).x, new Float64Array(n).fill(2.5), 0, 'fill');
      expectClose(runOp(device, 'copy', { n, x: b }).y, b, tol, 'copy');
    });

    it('rmsnorm matches x * rsqrt(mean(x^2) + eps) * w', () => {
      const rows = 9, H = 40, eps = 1e-6;
      const x = randn(rows * H, 10, 3), w = randn(H, 11);
      const r = runOp(device, 'rmsnorm_forward', { rows, H, x, w, eps });
      expectClose(r.out, rmsnorm(x, rows, H, w, eps), tol, 'rmsnorm out');
      const rstd = new Float64Array(rows).map((_, t) => {
        let ss = 0;
        for (let i = 0; i < H; i++) ss += x[t * H + i] ** 2;
        return 1 / Math.sqrt(ss / H + eps);
      });
      expectClose(r.rstd, rstd, tol, 'rmsnorm rstd');
    });

    it('layernorm with biased variance', () => {
      const rows = 6, H = 33, eps = 1e-12;
      const x = randn(rows * H, 12, 2).map((v) => v + 5), w = randn(H, 13), b = randn(H, 14);
      const r = runOp(device, 'layernorm_forward', { rows, H, x, w, b, eps });
      expectClose(r.out, layernorm(x, rows, H, w, b, eps), tol, 'layernorm out');
      const mean = new Float64Array(rows).map((_, t) => x.slice(t * H, t * H + H).reduce((s, v) => s + v, 0) / H);
      expectClose(r.mean, mean, tol, 'layernorm mean');
    });

    it('rope: rotate-half, positions restart per sequence, float32 angles', () => {
      const heads = 3, D = 16;
      const invFreq = ropeInverseFrequencies(D, 10000, null);
      const x = randn(T * heads * D, 15);
      const r = runOp(device, 'rope_forward', { heads, D, x, invFreq, cuSeqlens: cu });
      expectClose(r.x, ref.rope(x, heads, D, invFreq, cu), tol, 'rope');
      // long positions: the float32 angle matters (HF semantics)
      const longCu = Int32Array.from([0, 3000]);
      const xl = randn(3000 * D, 16);
      const rl = runOp(device, 'rope_forward', { heads: 1, D, x: xl, invFreq, cuSeqlens: longCu });
      expectClose(rl.x, ref.rope(xl, 1, D, invFreq, longCu), device === 'cpu' ? 2e-5 : 1e-12, 'rope long');
    });

    for (const causal of [true, false]) {
      it(`attention (${causal ? 'causal' : 'bidirectional'}, GQA 4/2, 3 packed sequences)`, () => {
        const Hq = 4, Hkv = 2, D = 8, scale = 0.3;
        const q = randn(T * Hq * D, 17), k = randn(T * Hkv * D, 18), v = randn(T * Hkv * D, 19);
        const r = runOp(device, 'attention_forward', { Hq, Hkv, D, q, k, v, cuSeqlens: cu, causal, scale });
        const want = ref.attention(q, k, v, cu, Hq, Hkv, D, causal, scale);
        expectClose(r.out, want.out, tol, 'attention out');
        expectClose(r.lse, want.lse, tol, 'attention lse');
      });
    }

    // D = 72: full register tiles plus a column tail on every vector width; D = 6: tail only
    for (const D of [16, 72, 6]) {
      it(`attention over sequences longer than one key/query block (head dim ${D})`, () => {
        const lens = Int32Array.from([0, 70, 71, 201]);
        const Tl = 201, Hq = 2, Hkv = 1, scale = 1 / Math.sqrt(D);
        const q = randn(Tl * Hq * D, 20), k = randn(Tl * Hkv * D, 21), v = randn(Tl * Hkv * D, 22);
        for (const causal of [true, false]) {
          const r = runOp(device, 'attention_forward', { Hq, Hkv, D, q, k, v, cuSeqlens: lens, causal, scale });
          const want = ref.attention(q, k, v, lens, Hq, Hkv, D, causal, scale);
          expectClose(r.out, want.out, tol, `attention long out causal=${causal}`);
          expectClose(r.lse, want.lse, tol, `attention long lse causal=${causal}`);
        }
      });
    }

    it('swiglu and erf gelu', () => {
      const n = 500;
      const g = randn(n, 23, 3), u = randn(n, 24);
      expectClose(runOp(device, 'swiglu_forward', { n, gate: g, up: u }).out, g.map((x, i) => silu(x) * u[i]), tol, 'swiglu');
      expectClose(runOp(device, 'gelu_forward', { n, x: g }).out, g.map(gelu), tol, 'gelu');
    });

    it('embedding lookup (= and +=)', () => {
      const V = 11, H = 24;
      const table = randn(V * H, 25);
      const ids = Int32Array.from([3, 0, 10, 3, 7]);
      const want = new Float64Array(ids.length * H);
      ids.forEach((id, t) => want.set(table.subarray(id * H, id * H + H), t * H));
      expectClose(runOp(device, 'embedding_forward', { V, H, table, ids, accumulate: false }).out, want, tol, 'embedding');
      const base = randn(ids.length * H, 26);
      expectClose(runOp(device, 'embedding_forward', { V, H, table, ids, accumulate: true, out: base }).out,
        want.map((v, i) => v + base[i]), tol, 'embedding +=');
    });

    for (const mode of ['eos', 'cls', 'mean'] as const) {
      it(`pooling ${mode}`, () => {
        const H = 10;
        const h = randn(T * H, 27);
        expectClose(runOp(device, 'pool_forward', { H, h, cuSeqlens: cu, mode }).out, ref.pool(h, cu, H, mode), tol, mode);
      });
    }

    it('l2normalize, including a zero row (F.normalize eps)', () => {
      const rows = 4, H = 30;
      const x = randn(rows * H, 28);
      x.fill(0, 2 * H, 3 * H);
      expectClose(runOp(device, 'l2normalize_forward', { rows, H, x }).y, ref.l2normalize(x, rows, H), tol, 'l2normalize');
    });

    it('upload converts values exactly through the backend (round trip of float32-representable data)', () => {
      const x = randu(64, 29, -100, 100).map(Math.fround);
      expect(Array.from(runOp(device, 'copy', { n: 64, x }).y)).to.deep.equal(Array.from(x));
    });
  });
}

describe('runOp input checks', () => {
  it('names the argument at fault', () => {
    expect(() => runOp('cpu', 'add', { n: 4, a: new Float64Array(3), b: new Float64Array(4) })).to.throw(/args\.a has 3 elements/);
    expect(() => runOp('cpu', 'no_such_op', {})).to.throw(/unknown op/);
    expect(() => runOp('cpu', 'pool_forward', { H: 1, h: new Float64Array(1), cuSeqlens: Int32Array.from([0, 1]), mode: 'max' })).to.throw(/mode/);
  });
});

describe('upload conversion', () => {
  /** IEEE binary16 by definition: (-1)^s 2^(e-15) (1 + m/1024), subnormal 2^-14 (m/1024). */
  function halfToNumber(h: number): number {
    const sign = h >> 15 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0) return sign * 2 ** -14 * (m / 1024);
    if (e === 31) return m ? NaN : sign * Infinity;
    return sign * 2 ** (e - 15) * (1 + m / 1024);
  }
  const codes = Int32Array.from({ length: 65536 }, (_, i) => i);
  for (const { device } of forwardDevices) {
    it(`every F16 code (subnormals, infinities, NaN) decodes exactly on ${device}`, () => {
      const x = runOp(device, 'upload', { dtype: 'F16', raw: codes }).x;
      for (let h = 0; h < 65536; h++) {
        const want = halfToNumber(h);
        if (Number.isNaN(want)) expect(Number.isNaN(x[h]), `code ${h}`).to.equal(true);
        else if (x[h] !== want) expect.fail(`F16 code 0x${h.toString(16)}: got ${x[h]}, want ${want}`);
      }
    });
    it(`every BF16 code is the top half of a float32 on ${device}`, () => {
      const x = runOp(device, 'upload', { dtype: 'BF16', raw: codes }).x;
      const f = new Float32Array(new Uint32Array(Array.from(codes, (c) => c << 16)).buffer);
      for (let h = 0; h < 65536; h++) {
        if (Number.isNaN(f[h])) expect(Number.isNaN(x[h]), `code ${h}`).to.equal(true);
        else if (x[h] !== f[h]) expect.fail(`BF16 code 0x${h.toString(16)}: got ${x[h]}, want ${f[h]}`);
      }
    });
    it(`F32 bits and I32 values on ${device}`, () => {
      const vals = Float32Array.from(randn(100, 40, 1e3));
      const x = runOp(device, 'upload', { dtype: 'F32', raw: new Int32Array(vals.buffer) }).x;
      expect(Array.from(x)).to.deep.equal(Array.from(vals));
      const ints = Int32Array.from([0, -7, 123456, -(2 ** 31), 2 ** 31 - 1]);
      expect(Array.from(runOp(device, 'upload', { dtype: 'I32', raw: ints }).x)).to.deep.equal(
        device === 'cpu' ? Array.from(ints, Math.fround) : Array.from(ints));
    });
  }
});
