// Every backward op against central finite differences of its forward on cpu-f64
// (L = <R, forward(x)> for a random R, so dL/dx is what the backward computes from dout = R),
// then the float32 backend's backward against the float64 one.
import { expect } from 'chai';
import { ropeInverseFrequencies } from '../reference/rope.ts';
import { dot, expectClose, finiteDiff, randn, runOp } from './harness.ts';

const F64 = 'cpu-f64';
const FD_TOL = 1e-6;
const F32_TOL = 1e-4; // float32 backward vs float64 backward
const cu = Int32Array.from([0, 5, 6, 13]); // 3 packed sequences of different lengths
const T = 13;

/** dL/dx by central differences, L = <R, forward()[key]>. */
function fd(forward: () => Record<string, Float64Array>, key: string, R: Float64Array, x: Float64Array): Float64Array {
  return finiteDiff(() => dot(R, forward()[key]), x);
}

/** The same backward on the float32 backend agrees with float64. */
function f32Agrees(op: string, args: Record<string, Float64Array | Int32Array | number | boolean | string>, keys: string[]): void {
  const a = runOp(F64, op, args), b = runOp('cpu', op, args);
  for (const k of keys) expectClose(b[k], a[k], F32_TOL, `${op} ${k} cpu vs cpu-f64`);
}

describe('ops backward (finite differences on cpu-f64, cpu vs cpu-f64)', () => {
  it('bias_backward accumulates the column sums', () => {
    const rows = 6, N = 9;
    const y = randn(rows * N, 1), bias = randn(N, 2), R = randn(rows * N, 3), dbias0 = randn(N, 4);
    const got = runOp(F64, 'bias_backward', { rows, N, dbias: dbias0, dy: R }).dbias;
    const g = fd(() => runOp(F64, 'add_bias', { rows, N, y, bias }), 'y', R, bias);
    expectClose(got, g.map((v, i) => v + dbias0[i]), FD_TOL, 'dbias');
    f32Agrees('bias_backward', { rows, N, dbias: dbias0, dy: R }, ['dbias']);
  });

  it('rmsnorm_backward: dx, and dw accumulated', () => {
    const rows = 5, H = 12, eps = 1e-5;
    const x = randn(rows * H, 5), w = randn(H, 6), R = randn(rows * H, 7), dw0 = randn(H, 8);
    const fwd = () => runOp(F64, 'rmsnorm_forward', { rows, H, x, w, eps });
    const rstd = fwd().rstd;
    const args = { rows, H, dout: R, x, w, rstd, dw: dw0 };
    const got = runOp(F64, 'rmsnorm_backward', args);
    expectClose(got.dx, fd(fwd, 'out', R, x), FD_TOL, 'rmsnorm dx');
    expectClose(got.dw, fd(fwd, 'out', R, w).map((v, i) => v + dw0[i]), FD_TOL, 'rmsnorm dw');
    const frozen = runOp(F64, 'rmsnorm_backward', { rows, H, dout: R, x, w, rstd });
    expect(frozen.dw).to.equal(undefined);
    expectClose(frozen.dx, got.dx, 1e-15, 'rmsnorm dx with frozen w');
    f32Agrees('rmsnorm_backward', args, ['dx', 'dw']);
  });

  it('layernorm_backward: dx, dw, db', () => {
    const rows = 4, H = 11, eps = 1e-5;
    const x = randn(rows * H, 9, 2), w = randn(H, 10), b = randn(H, 11), R = randn(rows * H, 12);
    const dw0 = randn(H, 13), db0 = randn(H, 14);
    const fwd = () => runOp(F64, 'layernorm_forward', { rows, H, x, w, b, eps });
    const { mean, rstd } = fwd();
    const args = { rows, H, dout: R, x, w, mean, rstd, dw: dw0, db: db0 };
    const got = runOp(F64, 'layernorm_backward', args);
    expectClose(got.dx, fd(fwd, 'out', R, x), FD_TOL, 'layernorm dx');
    expectClose(got.dw, fd(fwd, 'out', R, w).map((v, i) => v + dw0[i]), FD_TOL, 'layernorm dw');
    expectClose(got.db, fd(fwd, 'out', R, b).map((v, i) => v + db0[i]), FD_TOL, 'layernorm db');
    f32Agrees('layernorm_backward', args, ['dx', 'dw', 'db']);
  });

  it('rope_backward is the transpose of rope_forward', () => {
    const heads = 2, D = 8;
    const invFreq = ropeInverseFrequencies(D, 10000, null);
    const x = randn(T * heads * D, 15), R = randn(T * heads * D, 16);
    const got = runOp(F64, 'rope_backward', { heads, D, x: R, invFreq, cuSeqlens: cu }).x;
    expectClose(got, fd(() => runOp(F64, 'rope_forward', { heads, D, x, invFreq, cuSeqlens: cu }), 'x', R, x), FD_TOL, 'rope dx');
    f32Agrees('rope_backward', { heads, D, x: R, invFreq, cuSeqlens: cu }, ['x']);
  });

  for (const causal of [true, false]) {
    it(`attention_backward (${causal ? 'causal' : 'bidirectional'}, GQA 4 q heads / 2 kv heads, 3 packed sequences)`, () => {
      const Hq = 4, Hkv = 2, D = 4, scale = 0.45;
      const q = randn(T * Hq * D, 17), k = randn(T * Hkv * D, 18), v = randn(T * Hkv * D, 19);
      const R = randn(T * Hq * D, 20);
      const fwd = () => runOp(F64, 'attention_forward', { Hq, Hkv, D, q, k, v, cuSeqlens: cu, causal, scale });
      const { out, lse } = fwd();
      const args = { Hq, Hkv, D, q, k, v, dout: R, out, lse, cuSeqlens: cu, causal, scale };
      const got = runOp(F64, 'attention_backward', args);
      expectClose(got.dq, fd(fwd, 'out', R, q), FD_TOL, 'attention dq');
      expectClose(got.dk, fd(fwd, 'out', R, k), FD_TOL, 'attention dk');
      expectClose(got.dv, fd(fwd, 'out', R, v), FD_TOL, 'attention dv');
      f32Agrees('attention_backward', args, ['dq', 'dk', 'dv']);
    });
  }

  for (const D of [8, 72]) it(`attention_backward over sequences longer than one block (head dim ${D}; cpu vs cpu-f64, dv by linearity)`, () => {
    const lens = Int32Array.from([0, 70, 141]);
    const Tl = 141, Hq = 2, Hkv = 1, scale = 0.35;
    const q = randn(Tl * Hq * D, 21), k = randn(Tl * Hkv * D, 22), v = randn(Tl * Hkv * D, 23), R = randn(Tl * Hq * D, 24);
    for (const causal of [true, false]) {
      const { out, lse } = runOp(F64, 'attention_forward', { Hq, Hkv, D, q, k, v, cuSeqlens: lens, causal, scale });
      const args = { Hq, Hkv, D, q, k, v, dout: R, out, lse, cuSeqlens: lens, causal, scale };
      // out is linear in v, so <R, out(v)> = <dv, v> exactly
      const dv = runOp(F64, 'attention_backward', args).dv;
      expect(Math.abs(dot(dv, v) - dot(R, out)) / Math.abs(dot(R, out))).to.be.below(1e-12);
      // a few k entries by finite differences
      const dk = runOp(F64, 'attention_backward', args).dk;
      for (const idx of [0, 71 * D + 3, 140 * D + 7, 100 * D + D - 1]) {
        const keep = k[idx];
        const f = (val: number) => { k[idx] = val; const o = runOp(F64, 'attention_forward', { Hq, Hkv, D, q, k, v, cuSeqlens: lens, causal, scale }).out; k[idx] = keep; return dot(R, o); };
        const num = (f(keep + 1e-5) - f(keep - 1e-5)) / 2e-5;
        expect(Math.abs(num - dk[idx]), `dk[${idx}]`).to.be.below(1e-6 * Math.max(1, Math.abs(num)));
      }
      f32Agrees('attention_backward', args, ['dq', 'dk', 'dv']);
    }
  });

  it('swiglu_backward and gelu_backward', () => {
    const n = 40;
    const g = randn(n, 25, 2), u = randn(n, 26), R = randn(n, 27);
    const sw = runOp(F64, 'swiglu_backward', { n, dout: R, gate: g, up: u });
    const swf = () => runOp(F64, 'swiglu_forward', { n, gate: g, up: u });
    expectClose(sw.dgate, fd(swf, 'out', R, g), FD_TOL, 'swiglu dgate');
    expectClose(sw.dup, fd(swf, 'out', R, u), FD_TOL, 'swiglu dup');
    f32Agrees('swiglu_backward', { n, dout: R, gate: g, up: u }, ['dgate', 'dup']);
    const ge = runOp(F64, 'gelu_backward', { n, dout: R, x: g }).dx;
    expectClose(ge, fd(() => runOp(F64, 'gelu_forward', { n, x: g }), 'out', R, g), FD_TOL, 'gelu dx');
    f32Agrees('gelu_backward', { n, dout: R, x: g }, ['dx']);
  });

  it('embedding_backward scatters into repeated rows', () => {
    const V = 7, H = 5;
    const table = randn(V * H, 28), ids = Int32Array.from([2, 6, 2, 0, 2]), R = randn(ids.length * H, 29), dt0 = randn(V * H, 30);
    const got = runOp(F64, 'embedding_backward', { V, H, ids, dtable: dt0, dout: R }).dtable;
    const g = fd(() => runOp(F64, 'embedding_forward', { V, H, table, ids, accumulate: false }), 'out', R, table);
    expectClose(got, g.map((v, i) => v + dt0[i]), FD_TOL, 'dtable');
    f32Agrees('embedding_backward', { V, H, ids, dtable: dt0, dout: R }, ['dtable']);
  });

  for (const mode of ['eos', 'cls', 'mean'] as const) {
    it(`pool_backward ${mode}`, () => {
      const H = 6;
      const h = randn(T * H, 31), R = randn(3 * H, 32);
      const got = runOp(F64, 'pool_backward', { H, dout: R, cuSeqlens: cu, mode }).dh;
      expectClose(got, fd(() => runOp(F64, 'pool_forward', { H, h, cuSeqlens: cu, mode }), 'out', R, h), FD_TOL, `pool ${mode}`);
      f32Agrees('pool_backward', { H, dout: R, cuSeqlens: cu, mode }, ['dh']);
    });
  }
});
