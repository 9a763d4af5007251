// The fused CUDA top-k against a float64 brute force in plain TypeScript. Inputs are bf16
// values (what the GPU keeps), so the only difference is fp32 accumulation order; ids may only
// differ where true scores are within that rounding of each other.
import { expect } from 'chai';
import { native } from '../../lib/native.ts';
import { randn } from '../ops/harness.ts';
import { bf16Array, describeGpu, gpuDevice } from './gpu.ts';

function exactScores(q: Float32Array, c: Float32Array, qi: number, N: number, H: number): Float64Array {
  const s = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    let d = 0;
    for (let h = 0; h < H; h++) d += q[qi * H + h] * c[n * H + h];
    s[n] = d;
  }
  return s;
}

async function check(Q: number, N: number, H: number, k: number, seed: number, blockRows?: number, dupEvery = 0) {
  const q = Float32Array.from(bf16Array(randn(Q * H, seed)));
  const base = bf16Array(randn(N * H, seed + 1));
  const c = new Float32Array(N * H);
  for (let n = 0; n < N; n++)
    for (let h = 0; h < H; h++) c[n * H + h] = base[(dupEvery ? n % dupEvery : n) * H + h];
  const res = await native().topk(q, c, Q, N, H, k, gpuDevice, blockRows);
  const kk = Math.min(k, N);
  expect(res.k).to.equal(kk);
  expect(res.scores.length).to.equal(Q * kk);
  for (let qi = 0; qi < Q; qi++) {
    const truth = exactScores(q, c, qi, N, H);
    const sorted = Float64Array.from(truth).sort().reverse();
    const seen = new Set<number>();
    const scale = Math.abs(sorted[0]) + 1;
    for (let j = 0; j < kk; j++) {
      const id = Number(res.ids[qi * kk + j]);
      const s = res.scores[qi * kk + j];
      expect(id >= 0 && id < N, `query ${qi} rank ${j}: id ${id}`).to.equal(true);
      expect(seen.has(id), `query ${qi}: id ${id} twice`).to.equal(false);
      seen.add(id);
      // the reported score is the id's score, and the list holds the true top k scores
      expect(Math.abs(s - truth[id]), `query ${qi} rank ${j}: score of id ${id}`).to.be.below(1e-4 * scale);
      expect(Math.abs(s - sorted[j]), `query ${qi} rank ${j}: ${s} vs true ${sorted[j]}`).to.be.below(1e-4 * scale);
      if (j > 0) {
        const prev = res.scores[qi * kk + j - 1];
        expect(prev >= s, `query ${qi}: not sorted at rank ${j}`).to.equal(true);
        if (prev === s) expect(Number(res.ids[qi * kk + j - 1]) < id, `query ${qi}: tie at rank ${j} not by smaller id`).to.equal(true);
      }
    }
  }
}

describeGpu('CUDA exact top-k vs a float64 brute force', function () {
  this.timeout(300_000);

  it('k = 10 over a corpus spanning several internal tiles', () => check(40, 70_000, 24, 10, 1));
  it('k = 1000, corpus streamed in 3 blocks (merging running lists)', () => check(30, 70_000, 24, 1000, 2, 30_000));
  it('k = 2048 (the paper-scale maximum)', () => check(8, 40_000, 16, 2048, 3, 15_000));
  it('k larger than the corpus returns the whole corpus, sorted', () => check(5, 500, 32, 600, 4));
  it('exact ties (duplicated rows) are ordered by smaller id, across blocks', () => check(6, 9_000, 16, 300, 5, 2_000, 50));
  it('a NaN in the corpus is a clear error', async () => {
    const c = new Float32Array(100 * 8).fill(0.5);
    c[13] = NaN;
    let err: Error | undefined;
    try {
      await native().topk(new Float32Array(8).fill(1), c, 1, 100, 8, 5, gpuDevice);
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).to.match(/NaN/);
  });
});
