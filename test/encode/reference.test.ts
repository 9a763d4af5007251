// Checks of the oracle itself: known values and invariants that hold whatever the weights.
import { expect } from 'chai';
import { erf, attention } from '../reference/math.ts';
import { ReferenceModel } from '../reference/model.ts';
import { applyRope, ropeInverseFrequencies } from '../reference/rope.ts';
import { normalRng } from '../helpers/rng.ts';
import { makeTinyModel } from '../helpers/tiny-models.ts';

describe('encode: float64 reference model (oracle self-checks)', () => {
  it('erf matches tabulated values', () => {
    // Abramowitz & Stegun table 7.1 / DLMF values
    const table: [number, number][] = [[0.5, 0.5204998778130465], [1, 0.8427007929497149], [2, 0.9953222650189527],
      [-1.5, -0.9661051464753108], [3, 0.9999779095030014], [0, 0]];
    for (const [x, want] of table) expect(erf(x)).to.be.closeTo(want, 1e-15);
  });

  it('RoPE scores depend only on the relative position, and rotation keeps norms', () => {
    const D = 8;
    const inv = ropeInverseFrequencies(D, 10000, null);
    const rand = normalRng(3);
    const q0 = Array.from({ length: D }, rand);
    const k0 = Array.from({ length: D }, rand);
    const T = 12;
    const q = new Float64Array(T * D);
    const k = new Float64Array(T * D);
    for (let t = 0; t < T; t++) { q.set(q0, t * D); k.set(k0, t * D); }
    applyRope(q, T, 1, D, inv);
    applyRope(k, T, 1, D, inv);
    const dot = (m: number, n: number) => q0.reduce((s, _, d) => s + q[m * D + d] * k[n * D + d], 0);
    expect(dot(5, 2)).to.be.closeTo(dot(9, 6), 1e-12);
    expect(dot(3, 3)).to.be.closeTo(dot(0, 0), 1e-12);
    expect(dot(7, 1)).to.not.be.closeTo(dot(7, 2), 1e-3);
    const norm = (a: ArrayLike<number>, o: number) => Math.hypot(...Array.from({ length: D }, (_, d) => a[o + d]));
    expect(norm(q, 7 * D)).to.be.closeTo(norm(q0, 0), 1e-12);
  });

  it('Llama-3 rope scaling keeps high, divides low and interpolates middle frequencies', () => {
    // D=8, theta=1e4: inv_freq 1, 0.1, 0.01, 0.001; wavelengths 2*pi/f against 128/4=32 and 128/1=128
    const got = ropeInverseFrequencies(8, 10000, { factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 128 });
    const smooth = (128 / (2 * Math.PI / 0.1) - 1) / (4 - 1);
    const want = [1, (1 - smooth) * 0.1 / 8 + smooth * 0.1, 0.01 / 8, 0.001 / 8];
    want.forEach((w, i) => expect(got[i]).to.be.closeTo(w, 1e-15));
  });

  it('attention: a single key returns its value; uniform scores average the values', () => {
    const v = new Float64Array([1, 2, 3, 4]);
    expect([...attention(new Float64Array([5, 5]), new Float64Array([1, 1]), v.slice(0, 2), 1, 1, 1, 2, true)]).to.deep.equal([1, 2]);
    // two tokens, zero queries: bidirectional output is the mean of both values for both tokens
    const out = attention(new Float64Array(4), new Float64Array([1, 0, 0, 1]), v, 2, 1, 1, 2, false);
    expect([...out]).to.deep.equal([2, 3, 2, 3]);
    // causal: token 0 sees only itself
    expect([...attention(new Float64Array(4), new Float64Array([1, 0, 0, 1]), v, 2, 1, 1, 2, true)]).to.deep.equal([1, 2, 2, 3]);
  });

  it('decoders are causal: a prefix has the same hidden states alone and inside a longer sequence', () => {
    const ref = new ReferenceModel(makeTinyModel({ arch: 'llama', ropeScaling: 'llama3', seed: 5 }));
    const long = [3, 17, 42, 8, 99, 23, 61];
    const a = ref.hiddenStates(long.slice(0, 4));
    const b = ref.hiddenStates(long).slice(0, 4 * ref.hidden);
    a.forEach((x, i) => expect(x).to.be.closeTo(b[i], 1e-12));
    // ... while BERT is bidirectional: appending a token changes earlier states
    const bert = new ReferenceModel(makeTinyModel({ arch: 'bert', seed: 5 }));
    expect(bert.hiddenStates([2, 30, 40])[0]).to.not.be.closeTo(bert.hiddenStates([2, 30, 40, 50])[0], 1e-9);
  });

  it('pooled embeddings are unit length when normalized and non-trivial', () => {
    const ref = new ReferenceModel(makeTinyModel({ arch: 'qwen2', seed: 9 }));
    for (const pooling of ['eos', 'cls', 'mean'] as const) {
      const e = ref.embed([5, 6, 7, 8], pooling);
      expect(Math.hypot(...e)).to.be.closeTo(1, 1e-12);
      expect(Math.max(...e.map(Math.abs))).to.be.below(0.9); // not collapsed onto one axis
    }
  });
});
