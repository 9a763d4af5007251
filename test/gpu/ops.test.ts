// Every op of the CUDA backend against the float64 CPU backend on the same random inputs
// (ggml's test-backend-ops idea), through the runOp hook. Inputs are rounded to bf16 first so
// both backends see identical values; the GPU computes in bf16 storage / fp32 math, so the
// bar is a normwise relative error of 1e-2. runOp poisons every overwritten output with NaN,
// so an element a kernel forgets to write fails the finiteness check in expectClose.
import { expect } from 'chai';
import type { OpArg } from '../../lib/native.ts';
import { expectClose, randn, randu, runOp } from '../ops/harness.ts';
import { bf16Array, describeGpu, gpuDevice } from './gpu.ts';

const tol = 1e-2;
const ref = 'cpu-f64';

/** Runs op on the GPU and on cpu-f64 and compares every output the reference returns. */
function compare(op: string, args: Record<string, OpArg>, what = op, tolerance = tol): Record<string, Float64Array> {
  const want = runOp(ref, op, args);
  const got = runOp(gpuDevice, op, args);
  for (const [name, value] of Object.entries(want)) {
    if (typeof value === 'number') {
      const g = got[name] as unknown as number;
      expect(Number.isFinite(g), `${what}.${name} = ${g}`).to.equal(true);
      expect(Math.abs(g - value), `${what}.${name}: gpu ${g} vs cpu ${value}`).to.be.at.most(
        tolerance * Math.max(1, Math.abs(value)),
      );
    } else expectClose(got[name], value, tolerance, `${what}.${name}`);
  }
  return got;
}

const rn = (n: number, seed: number, scale = 1) => bf16Array(randn(n, seed, scale));
const cu = (lengths: number[]) => {
  const c = new Int32Array(lengths.length + 1);
  lengths.forEach((l, i) => (c[i + 1] = c[i] + l));
  return c;
};

describeGpu('CUDA ops vs the CPU (float64) backend', function () {
  this.timeout(300_000);

  it('matmul: all transposes, alpha/beta, odd sizes', () => {
    const [M, N, K] = [67, 131, 45];
    let seed = 1;
    for (const transA of [false, true])
      for (const transB of [false, true])
        for (const beta of [0, 0.5]) {
          const args: Record<string, OpArg> = {
            M, N, K, transA, transB, alpha: 0.75, beta,
            A: rn(M * K, seed++), B: rn(K * N, seed++),
          };
          if (beta) args.C = rn(M * N, seed++);
          compare('matmul', args, `matmul(transA=${transA}, transB=${transB}, beta=${beta})`);
        }
  });

  it('matmul: a GEMM shaped like a Qwen2.5-0.5B projection (512 x 896 x 896)', () => {
    compare('matmul', { M: 512, N: 896, K: 896, transA: false, transB: true, A: rn(512 * 896, 11), B: rn(896 * 896, 12, 0.05) });
  });

  it('elementwise: add, scale, axpy, fill, copy, add_bias, bias_backward', () => {
    const n = 3001;
    compare('add', { n, a: rn(n, 1), b: rn(n, 2) });
    compare('scale', { n, x: rn(n, 3), s: -1.75 });
    compare('axpy', { n, y: rn(n, 4), x: rn(n, 5), a: 0.3 });
    compare('fill', { n, value: 2.5 });
    compare('copy', { n, x: rn(n, 6) });
    compare('add_bias', { rows: 37, N: 81, y: rn(37 * 81, 7), bias: rn(81, 8) });
    compare('bias_backward', { rows: 300, N: 81, dbias: rn(81, 9), dy: rn(300 * 81, 10) });
  });

  it('elementwise, bf16 vector paths (sizes a multiple of 8): add, axpy, add_bias', () => {
    const n = 3000;
    compare('add', { n, a: rn(n, 11), b: rn(n, 12) });
    compare('axpy', { n, y: rn(n, 13), x: rn(n, 14), a: -0.7 });
    compare('add_bias', { rows: 37, N: 88, y: rn(37 * 88, 15), bias: rn(88, 16) });
  });

  it('rmsnorm forward and backward (with weight gradient)', () => {
    for (const H of [64, 896, 1000]) {
      const rows = 23;
      const x = rn(rows * H, 20 + H), w = bf16Array(randu(H, 21, 0.5, 1.5));
      const f = compare('rmsnorm_forward', { rows, H, x, w, eps: 1e-6 }, `rmsnorm_forward H=${H}`);
      const rstd = runOp(ref, 'rmsnorm_forward', { rows, H, x, w, eps: 1e-6 }).rstd;
      expect(f.rstd.length).to.equal(rows);
      compare('rmsnorm_backward', { rows, H, dout: rn(rows * H, 22), x, w, rstd: bf16Array(rstd), dw: rn(H, 23) },
        `rmsnorm_backward H=${H}`);
    }
  });

  it('layernorm forward and backward (with weight and bias gradients)', () => {
    for (const H of [48, 768]) {
      const rows = 19;
      const x = bf16Array(randn(rows * H, 30).map((v) => v * 2 + 0.5)), w = rn(H, 31), b = rn(H, 32);
      compare('layernorm_forward', { rows, H, x, w, b, eps: 1e-12 }, `layernorm_forward H=${H}`);
      const st = runOp(ref, 'layernorm_forward', { rows, H, x, w, b, eps: 1e-12 });
      compare('layernorm_backward', {
        rows, H, dout: rn(rows * H, 33), x, w, mean: bf16Array(st.mean), rstd: bf16Array(st.rstd),
        dw: rn(H, 34), db: rn(H, 35),
      }, `layernorm_backward H=${H}`);
    }
  });

  it('rope forward and backward over packed sequences (incl. long positions)', () => {
    for (const D of [16, 64, 128]) {
      const c = cu([5, 300, 17]);
      const heads = 3;
      const invFreq = new Float64Array(D / 2).map((_, i) => 1 / Math.pow(10000, (2 * i) / D));
      const x = rn(c[3] * heads * D, 40 + D);
      compare('rope_forward', { cuSeqlens: c, heads, D, x, invFreq }, `rope_forward D=${D}`);
      compare('rope_backward', { cuSeqlens: c, heads, D, x, invFreq }, `rope_backward D=${D}`);
    }
  });

  // bf16 forward: tensor-core kernel for D % 16 == 0 (<= 128), SIMT kernel otherwise (D 8, 40);
  // the backward is SIMT for all
  const attnCases = [
    { D: 16, Hq: 4, Hkv: 2, lengths: [37, 5, 70] },
    { D: 8, Hq: 2, Hkv: 1, lengths: [3, 45] },
    { D: 40, Hq: 2, Hkv: 2, lengths: [66, 1] },
    { D: 64, Hq: 4, Hkv: 1, lengths: [1, 33, 64] },
    { D: 80, Hq: 2, Hkv: 2, lengths: [40, 9] },
    { D: 96, Hq: 3, Hkv: 1, lengths: [31, 32, 50] },
    { D: 128, Hq: 2, Hkv: 1, lengths: [65, 3] },
    { D: 64, Hq: 2, Hkv: 1, lengths: [700] },
  ];
  for (const a of attnCases)
    for (const causal of [true, false])
      it(`attention forward + backward: D=${a.D}, ${a.Hq}/${a.Hkv} heads, lengths ${a.lengths}, ${causal ? 'causal' : 'bidirectional'}`, () => {
        const c = cu(a.lengths);
        const T = c[c.length - 1];
        const seed = a.D * 10 + a.Hq + (causal ? 1 : 0);
        const args: Record<string, OpArg> = {
          cuSeqlens: c, Hq: a.Hq, Hkv: a.Hkv, D: a.D, causal, scale: 1 / Math.sqrt(a.D),
          q: rn(T * a.Hq * a.D, seed), k: rn(T * a.Hkv * a.D, seed + 1), v: rn(T * a.Hkv * a.D, seed + 2),
        };
        compare('attention_forward', args);
        // the backward gets the reference forward's out/lse (bf16-rounded) on both devices
        const fwd = runOp(ref, 'attention_forward', args);
        compare('attention_backward', {
          ...args, dout: rn(T * a.Hq * a.D, seed + 3), out: bf16Array(fwd.out), lse: bf16Array(fwd.lse),
        });
      });

  it('swiglu and gelu, forward and backward', () => {
    const n = 4097;
    const gate = rn(n, 50, 2), up = rn(n, 51), x = rn(n, 52, 2), dout = rn(n, 53);
    compare('swiglu_forward', { n, gate, up });
    compare('swiglu_backward', { n, dout, gate, up });
    compare('gelu_forward', { n, x });
    compare('gelu_backward', { n, dout, x });
  });

  // cols 257: the element-wise kernel; cols 264 (a multiple of 8): the bf16 kernel with 16-byte accesses
  for (const [rows, cols] of [[13, 257], [21, 264]])
  it(`dropout draws the same mask as the CPU (shared hash), forward and backward: ${rows} x ${cols}`, () => {
    const rowKeys = new Float64Array(rows).map((_, i) => 1000 + 7 * i);
    const x = bf16Array(randu(rows * cols, 60 + cols, 0.5, 1.5));
    for (const p of [0.1, 0.5]) {
      const got = compare('dropout_forward', { rows, cols, x, p, seed: 1234, rowKeys }, `dropout_forward p=${p}`);
      const want = runOp(ref, 'dropout_forward', { rows, cols, x, p, seed: 1234, rowKeys });
      for (let i = 0; i < x.length; i++) expect(got.out[i] === 0, `mask element ${i}`).to.equal(want.out[i] === 0);
      compare('dropout_backward', { rows, cols, dout: x, p, seed: 1234, rowKeys }, `dropout_backward p=${p}`);
    }
  });

  it('embedding gather (= and +=) and scatter-add with repeated ids', () => {
    const V = 50, H = 40;
    const ids = new Int32Array([3, 7, 3, 49, 0, 7, 7, 12]);
    const table = rn(V * H, 70);
    compare('embedding_forward', { V, H, ids, table, accumulate: false });
    compare('embedding_forward', { V, H, ids, table, accumulate: true, out: rn(ids.length * H, 71) });
    compare('embedding_backward', { V, H, ids, dtable: rn(V * H, 72), dout: rn(ids.length * H, 73) });
  });

  it('pooling (eos, cls, mean) forward and backward, and l2normalize', () => {
    const c = cu([4, 1, 9]);
    const H = 33;
    for (const mode of ['eos', 'cls', 'mean']) {
      compare('pool_forward', { cuSeqlens: c, H, mode, h: rn(c[3] * H, 80) }, `pool_forward ${mode}`);
      compare('pool_backward', { cuSeqlens: c, H, mode, dout: rn(3 * H, 81) }, `pool_backward ${mode}`);
    }
    compare('l2normalize_forward', { rows: 5, H: 300, x: rn(5 * 300, 82) });
  });

  it('infonce (cosine and dot): loss and gradients', () => {
    const B = 6, G = 3, H = 40;
    for (const cosine of [true, false]) {
      const q = rn(B * H, 90, cosine ? 1 : 0.1), p = rn(B * G * H, 91, cosine ? 1 : 0.1);
      compare('infonce', { batch: B, group: G, H, q, p, temperature: cosine ? 0.05 : 1, cosine }, `infonce cosine=${cosine}`);
    }
  });

  it('sum_squares, adamw and sgd steps', () => {
    const n = 5000;
    compare('sum_squares', { n, x: rn(n, 100) });
    const param = rn(n, 101), grad = rn(n, 102), m = rn(n, 103, 0.1), v = bf16Array(randu(n, 104, 0.01, 0.1));
    compare('adamw_step', {
      n, param, grad, m, v, lr: 0.05, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 3, gradScale: 0.5,
    });
    compare('sgd_step', { n, param, grad, lr: 0.05, weightDecay: 0.01, gradScale: 0.5 });
  });

  // ---- the ops the later architectures added (issue 12; test/ops/architecture-ops.test.ts
  // checks the CPU side against float64 references and finite differences) ----

  it('architecture ops: activation and gated activation (silu, gelu, gelu_tanh, relu), forward and backward', () => {
    const n = 2053;
    // ReLU's kink: keep bf16 inputs away from 0 so both sides take the same branch
    const x = bf16Array(randn(n, 110, 3).map((v) => (Math.abs(v) < 1e-2 ? 0.5 : v)));
    const up = rn(n, 111), dout = rn(n, 112);
    for (const act of ['silu', 'gelu', 'gelu_tanh', 'relu']) {
      compare('activation_forward', { n, x, act }, `activation_forward ${act}`);
      compare('activation_backward', { n, dout, x, act }, `activation_backward ${act}`);
      compare('gated_forward', { n, gate: x, up, act }, `gated_forward ${act}`);
      compare('gated_backward', { n, dout, gate: x, up, act }, `gated_backward ${act}`);
    }
  });

  it("architecture ops: rmsnorm with Gemma's (1 + w) offset, forward and backward", () => {
    for (const H of [64, 300]) {
      const rows = 11, eps = 1e-6;
      const x = rn(rows * H, 120 + H, 2), w = rn(H, 121, 0.3);
      compare('rmsnorm_forward', { rows, H, x, w, eps, wOffset: 1 }, `rmsnorm_forward wOffset=1 H=${H}`);
      const rstd = runOp(ref, 'rmsnorm_forward', { rows, H, x, w, eps, wOffset: 1 }).rstd;
      compare('rmsnorm_backward', { rows, H, dout: rn(rows * H, 122), x, w, rstd: bf16Array(rstd), dw: rn(H, 123), wOffset: 1 },
        `rmsnorm_backward wOffset=1 H=${H}`);
    }
  });

  it('architecture ops: partial RoPE (fewer frequencies than D/2), forward and backward', () => {
    // Phi-2: head 80, partial_rotary_factor 0.4 -> 32 rotated dims (16 frequencies); and 8 of 16
    for (const [D, R] of [[80, 32], [16, 8]]) {
      const c = cu([5, 40, 17]);
      const heads = 2;
      const invFreq = new Float64Array(R / 2).map((_, i) => 1 / Math.pow(10000, (2 * i) / R));
      const x = rn(c[3] * heads * D, 130 + D);
      const got = compare('rope_forward', { cuSeqlens: c, heads, D, x, invFreq }, `rope_forward D=${D} rotary ${R}`);
      for (let i = 0; i < c[3] * heads; i++)
        for (let d = R; d < D; d++) expect(got.x[i * D + d], `pass-through dim ${d}`).to.equal(x[i * D + d]);
      compare('rope_backward', { cuSeqlens: c, heads, D, x, invFreq }, `rope_backward D=${D} rotary ${R}`);
    }
  });

  // soft-capping / sliding windows run on the SIMT kernels for every D (D 64 would take the
  // tensor-core forward without them); windows wider and narrower than a 32-key tile
  const modCases = [
    { D: 16, Hq: 4, Hkv: 2, lengths: [37, 5, 70], window: 7, softcap: 1.5 },
    { D: 64, Hq: 2, Hkv: 1, lengths: [45, 20], window: 40, softcap: 2.5 },
  ];
  for (const a of modCases)
    for (const causal of [true, false])
      it(`architecture ops: attention soft-cap and sliding window, forward + backward: D=${a.D}, ${a.Hq}/${a.Hkv} heads, lengths ${a.lengths}, ${causal ? 'causal' : 'bidirectional'}`, () => {
        const c = cu(a.lengths);
        const T = c[c.length - 1];
        const seed = 140 + a.D + (causal ? 1 : 0);
        const base: Record<string, OpArg> = {
          cuSeqlens: c, Hq: a.Hq, Hkv: a.Hkv, D: a.D, causal, scale: 1 / Math.sqrt(a.D),
          q: rn(T * a.Hq * a.D, seed, 2), k: rn(T * a.Hkv * a.D, seed + 1, 2), v: rn(T * a.Hkv * a.D, seed + 2),
        };
        const dout = rn(T * a.Hq * a.D, seed + 3);
        const modList: Record<string, number>[] = [{ softcap: a.softcap }, { window: a.window }, { softcap: a.softcap, window: a.window }];
        for (const mods of modList) {
          const args = { ...base, ...mods };
          const what = `${JSON.stringify(mods)}`;
          compare('attention_forward', args, `attention_forward ${what}`);
          const fwd = runOp(ref, 'attention_forward', args);
          compare('attention_backward', { ...args, dout, out: bf16Array(fwd.out), lse: bf16Array(fwd.lse) },
            `attention_backward ${what}`);
        }
      });

  // T5's relative position bias (scale 1): the SIMT kernels add rel_bias[j - i + span - 1, h];
  // the backward's dRelBias sums dS over every score that read an entry (atomics on the GPU)
  for (const causal of [false, true])
    it(`architecture ops: attention with a relative position bias, forward + backward (dRelBias), ${causal ? 'causal' : 'bidirectional'}`, () => {
      const [Hq, Hkv, D, span] = [4, 2, 16, 75];
      const c = cu([37, 5, 70]);
      const T = c[c.length - 1];
      const seed = 170 + (causal ? 1 : 0);
      const args: Record<string, OpArg> = {
        cuSeqlens: c, Hq, Hkv, D, causal, scale: 1, span, relBias: rn((2 * span - 1) * Hq, seed + 4, 2),
        q: rn(T * Hq * D, seed, 0.5), k: rn(T * Hkv * D, seed + 1, 0.5), v: rn(T * Hkv * D, seed + 2),
      };
      compare('attention_forward', args, 'attention_forward + rel bias');
      const fwd = runOp(ref, 'attention_forward', args);
      compare('attention_backward', { ...args, dout: rn(T * Hq * D, seed + 3), out: bf16Array(fwd.out), lse: bf16Array(fwd.lse) },
        'attention_backward + rel bias');
    });

  it('architecture ops: copy_columns between row-major matrices of different widths', () => {
    const rows = 37, dstCols = 300, srcCols = 200;
    const args = { rows, dstCols, srcCols, dst: rn(rows * dstCols, 150), src: rn(rows * srcCols, 151) };
    const got = compare('copy_columns', { ...args, dstCol: 17, srcCol: 33, ncols: 150 });
    // exact: a copy of bf16 values, untouched columns kept
    for (let r = 0; r < rows; r++)
      for (let col = 0; col < dstCols; col++) {
        const want = col >= 17 && col < 167 ? args.src[r * srcCols + 33 + col - 17] : args.dst[r * dstCols + col];
        expect(got.dst[r * dstCols + col], `dst[${r}, ${col}]`).to.equal(want);
      }
    compare('copy_columns', { ...args, dstCol: 0, srcCol: 0, ncols: 200 }, 'copy_columns (whole source)');
  });

  it('architecture ops: LM-head vocabulary blocks (logits_block_update) with and without a soft-cap', () => {
    const N = 5, V = 1100, Vb = 400;
    const logits = rn(N * V, 160, 4);
    const targets = Int32Array.from([0, 1099, 399, 400, 777]);
    for (const softcap of [0, 30]) {
      // every block from the reference's running state, so each update is checked on its own
      type State = { max: Float64Array; sum: Float64Array; target: Float64Array };
      let state: State = { max: new Float64Array(N).fill(-Infinity), sum: new Float64Array(N), target: new Float64Array(N) };
      let gpu: State = { ...state };
      for (let v0 = 0; v0 < V; v0 += Vb) {
        const nb = Math.min(Vb, V - v0);
        const block = new Float64Array(N * nb);
        for (let r = 0; r < N; r++) block.set(logits.subarray(r * V + v0, r * V + v0 + nb), r * nb);
        const args = { N, Vb: nb, logits: block, targets, v0, softcap };
        const want = runOp(ref, 'logits_block_update', { ...args, ...state });
        compare('logits_block_update', { ...args, ...state }, `logits_block_update v0=${v0} softcap=${softcap}`);
        const g = runOp(gpuDevice, 'logits_block_update', { ...args, ...gpu });
        gpu = { max: g.max, sum: g.sum, target: g.target };
        state = { max: want.max, sum: want.sum, target: want.target };
      }
      // the GPU's own chain gives the log-probabilities of the whole vocabulary
      for (let r = 0; r < N; r++) {
        const row = logits.subarray(r * V, (r + 1) * V).map((l) => (softcap ? softcap * Math.tanh(l / softcap) : l));
        const m = Math.max(...row);
        const lp = row[targets[r]] - m - Math.log(row.reduce((s, l) => s + Math.exp(l - m), 0));
        const got = gpu.target[r] - gpu.max[r] - Math.log(gpu.sum[r]);
        expect(Math.abs(got - lp), `row ${r} log p = ${got} vs ${lp} (softcap ${softcap})`).to.be.at.most(0.05);
      }
    }
  });

  it('clear errors for bad shapes instead of a crash', () => {
    expect(() => runOp(gpuDevice, 'attention_forward', {
      cuSeqlens: cu([4]), Hq: 2, Hkv: 2, D: 300, causal: true, scale: 1,
      q: rn(4 * 2 * 300, 1), k: rn(4 * 2 * 300, 2), v: rn(4 * 2 * 300, 3),
    })).to.throw(/head dim 300/);
  });
});
