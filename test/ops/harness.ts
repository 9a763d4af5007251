// Shared helpers for the per-op tests: run one op through the addon's runOp hook, random
// inputs, error measures and central finite differences.
import { expect } from 'chai';
import { native, type OpArg } from '../../lib/native.ts';
import { normalRng, uniformRng } from '../helpers/rng.ts';

/** The backends checked here and the normwise relative error each must reach on forward ops. */
export const forwardDevices: { device: string; tol: number }[] = [
  { device: 'cpu', tol: 2e-5 },
  { device: 'cpu-f64', tol: 1e-12 },
];

export function runOp(device: string, op: string, args: Record<string, OpArg>): Record<string, Float64Array> {
  const addon = native();
  if (!addon.runOp) throw new Error('this addon build has no runOp test hook');
  return addon.runOp(device, op, args) as Record<string, Float64Array>;
}

/** n standard-normal values (times scale), seeded. */
export function randn(n: number, seed: number, scale = 1): Float64Array {
  const g = normalRng(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = g() * scale;
  return out;
}

/** n values uniform in [lo, hi), seeded. */
export function randu(n: number, seed: number, lo: number, hi: number): Float64Array {
  const u = uniformRng(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * u();
  return out;
}

/** max |a - e| / max |e|: one number that is small only when every element is right. */
export function relError(actual: Float64Array, expected: Float64Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    num = Number.isNaN(d) ? Infinity : Math.max(num, d);
    den = Math.max(den, Math.abs(expected[i]));
  }
  return num / Math.max(den, 1e-300);
}

/**
 * ||actual - expected||_2 / ||expected||_2 (Infinity on NaN): the normwise error METHOD-style bf16
 * checks use, where relError's max-abs form is too strict for values rounded at every layer.
 */
export function l2RelError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = actual[i] - expected[i];
    num += d * d;
    den += expected[i] * expected[i];
  }
  return Number.isNaN(num) ? Infinity : Math.sqrt(num / Math.max(den, 1e-300));
}

export function expectClose(actual: Float64Array | undefined, expected: Float64Array, tol: number, what: string): void {
  expect(actual, `${what}: missing output`).to.not.equal(undefined);
  expect(actual!.length, `${what}: length`).to.equal(expected.length);
  for (let i = 0; i < actual!.length; i++)
    if (!Number.isFinite(actual![i])) expect.fail(`${what}: element ${i} is ${actual![i]} (unwritten or overflow)`);
  const err = relError(actual!, expected);
  expect(err, `${what}: relative error ${err.toExponential(2)} > ${tol}`).to.be.at.most(tol);
}

export function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/**
 * Central finite differences of a scalar function: grad_i = (f(x + h e_i) - f(x - h e_i)) / 2h.
 * f may read x (it is restored after each probe). h is relative to max(1, |x_i|).
 */
export function finiteDiff(f: () => number, x: Float64Array, h = 1e-5): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const keep = x[i];
    const step = h * Math.max(1, Math.abs(keep));
    x[i] = keep + step;
    const up = f();
    x[i] = keep - step;
    const down = f();
    x[i] = keep;
    g[i] = (up - down) / (2 * step);
  }
  return g;
}
