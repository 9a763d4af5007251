// InfoNCE (fused loss + gradients), the optimiser steps, sum_squares and dropout.
import { expect } from 'chai';
import { native } from '../../lib/native.ts';
import { expectClose, finiteDiff, forwardDevices, randn, randu, runOp } from './harness.ts';
import * as ref from './reference.ts';

describe('infonce', () => {
  const B = 3, G = 4, H = 6, tau = 0.05;
  for (const cosine of [true, false]) {
    const mode = cosine ? 'cosine' : 'dot';
    // dot-product scores need a smaller scale to stay in a useful softmax range
    const q = randn(B * H, 1, cosine ? 1 : 0.1), p = randn(B * G * H, 2, cosine ? 1 : 0.1);
    for (const { device, tol } of forwardDevices) {
      it(`${mode}: loss matches the direct reference on ${device}`, () => {
        const r = runOp(device, 'infonce', { batch: B, group: G, H, q, p, temperature: tau, cosine });
        const want = ref.infonceLoss(q, p, B, G, H, tau, cosine);
        expect(Math.abs((r.loss as unknown as number) - want) / want).to.be.below(device === 'cpu' ? 1e-5 : 1e-12);
      });
    }
    it(`${mode}: dq, dp match finite differences of the reference loss (cpu-f64), and cpu agrees`, () => {
      const r = runOp('cpu-f64', 'infonce', { batch: B, group: G, H, q, p, temperature: tau, cosine });
      const loss = () => ref.infonceLoss(q, p, B, G, H, tau, cosine);
      expectClose(r.dq, finiteDiff(loss, q), 1e-6, 'dq');
      expectClose(r.dp, finiteDiff(loss, p), 1e-6, 'dp');
      const r32 = runOp('cpu', 'infonce', { batch: B, group: G, H, q, p, temperature: tau, cosine });
      expectClose(r32.dq, r.dq, 1e-4, 'dq cpu vs cpu-f64');
      expectClose(r32.dp, r.dp, 1e-4, 'dp cpu vs cpu-f64');
    });
  }

  it('is stable at tiny temperatures (scores ~ 1/tau = 1e4)', () => {
    const q = randn(B * H, 3), p = randn(B * G * H, 4);
    const r = runOp('cpu-f64', 'infonce', { batch: B, group: G, H, q, p, temperature: 1e-4, cosine: true });
    const want = ref.infonceLoss(q, p, B, G, H, 1e-4, true);
    expect(Math.abs((r.loss as unknown as number) - want) / Math.max(1, want)).to.be.below(1e-9);
    for (const v of r.dq) expect(Number.isFinite(v)).to.equal(true);
  });

  it('the N-API infonce binding returns float32 loss and gradients, and names bad input', () => {
    const q = randn(B * H, 5), p = randn(B * G * H, 6);
    const r = native().infonce(Float32Array.from(q), Float32Array.from(p), B, G, H, tau, true, 'cpu');
    const want = runOp('cpu-f64', 'infonce', { batch: B, group: G, H, q: Float64Array.from(Float32Array.from(q)), p: Float64Array.from(Float32Array.from(p)), temperature: tau, cosine: true });
    expect(Math.abs(r.loss - (want.loss as unknown as number))).to.be.below(1e-5);
    expectClose(Float64Array.from(r.dq), want.dq, 1e-4, 'binding dq');
    expectClose(Float64Array.from(r.dp), want.dp, 1e-4, 'binding dp');
    expect(() => native().infonce(new Float32Array(5), Float32Array.from(p), B, G, H, tau, true, 'cpu')).to.throw(/q has 5 values/);
    expect(() => native().infonce(Float32Array.from(q), Float32Array.from(p), B, G, H, 0, true, 'cpu')).to.throw(/temperature/);
    expect(() => native().infonce(Float32Array.from(q), Float32Array.from(p), B, G, H, tau, true, 'tpu')).to.throw(/unknown device/);
  });
});

describe('optimisers', () => {
  const n = 1000;
  const param = randn(n, 10), grad = randn(n, 11, 0.1), m = randn(n, 12, 0.01), v = randu(n, 13, 0, 0.01);
  for (const { device, tol } of forwardDevices) {
    it(`AdamW matches torch.optim.AdamW's documented step on ${device}`, () => {
      for (const step of [1, 7]) {
        const o = { lr: 3e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step, gradScale: 0.5 };
        const r = runOp(device, 'adamw_step', { n, param, grad, m, v, ...o });
        const want = ref.adamw(param, grad, m, v, o);
        expectClose(r.param, want.param, tol, `param step ${step}`);
        expectClose(r.m, want.m, tol, `m step ${step}`);
        expectClose(r.v, want.v, tol, `v step ${step}`);
        // the update itself (param - old param) must be right, not only param
        const upd = r.param.map((x, i) => x - param[i]);
        const wantUpd = want.param.map((x, i) => x - param[i]);
        expectClose(upd, wantUpd, device === 'cpu' ? 1e-3 : 1e-9, `update step ${step}`);
      }
    });
    it(`SGD with weight decay and grad scale on ${device}`, () => {
      const r = runOp(device, 'sgd_step', { n, param, grad, lr: 0.1, weightDecay: 0.05, gradScale: 2 });
      expectClose(r.param, param.map((x, i) => x - 0.1 * (grad[i] * 2 + 0.05 * x)), tol, 'sgd');
    });
    it(`sum_squares on ${device}`, () => {
      const x = randn(100003, 14);
      const want = x.reduce((s, t) => s + t * t, 0);
      expect(Math.abs((runOp(device, 'sum_squares', { n: x.length, x }).sum as unknown as number) - want) / want)
        .to.be.below(device === 'cpu' ? 1e-6 : 1e-12);
    });
  }
});

describe('dropout', () => {
  const rows = 64, cols = 100, p = 0.3, seed = 1234;
  const keys = Float64Array.from({ length: rows }, (_, i) => 1000 + 7 * i);
  const x = randn(rows * cols, 20);
  for (const { device } of forwardDevices) {
    it(`follows the documented hash (cpp/cpu/dropout_hash.h) exactly on ${device}`, () => {
      const out = runOp(device, 'dropout_forward', { rows, cols, x, p, seed, rowKeys: keys }).out;
      const scale = 1 / (1 - p);
      let kept = 0;
      for (let r = 0; r < rows; r++)
        for (let c = 0; c < cols; c++) {
          const keep = ref.dropoutKeep(seed, keys[r], c, p);
          kept += keep ? 1 : 0;
          const want = keep ? x[r * cols + c] * scale : 0;
          expect(Math.abs(out[r * cols + c] - want), `(${r},${c})`).to.be.at.most(1e-6 * Math.abs(want));
        }
      // keep rate ~ 1 - p: 6400 Bernoulli draws, std ~ 0.0057
      expect(kept / (rows * cols)).to.be.closeTo(1 - p, 0.025);
    });
  }
  it('the mask depends only on (seed, row key, column): splitting rows changes nothing', () => {
    const full = runOp('cpu', 'dropout_forward', { rows, cols, x, p, seed, rowKeys: keys }).out;
    const part = runOp('cpu', 'dropout_forward', { rows: 5, cols, x: x.slice(10 * cols, 15 * cols), p, seed, rowKeys: keys.slice(10, 15) }).out;
    expect(Array.from(part)).to.deep.equal(Array.from(full.slice(10 * cols, 15 * cols)));
    const other = runOp('cpu', 'dropout_forward', { rows, cols, x, p, seed: seed + 1, rowKeys: keys }).out;
    expect(Array.from(other)).to.not.deep.equal(Array.from(full));
  });
  it('backward applies the same mask and scale to dout; p = 0 is the identity', () => {
    const dout = randn(rows * cols, 21);
    const dx = runOp('cpu-f64', 'dropout_backward', { rows, cols, dout, p, seed, rowKeys: keys }).dx;
    const fwd = runOp('cpu-f64', 'dropout_forward', { rows, cols, x: dout, p, seed, rowKeys: keys }).out;
    expect(Array.from(dx)).to.deep.equal(Array.from(fwd));
    expectClose(runOp('cpu-f64', 'dropout_forward', { rows, cols, x, p: 0, seed, rowKeys: keys }).out, x, 0, 'p=0');
  });
});
