// The CPU thread pool under concurrent callers: several JS worker threads (like several libuv
// AsyncWorkers) run multithreaded ops at the same time; every result must equal the
// single-caller result and nothing may deadlock.
import { Worker } from 'node:worker_threads';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { randn, runOp } from './harness.ts';

const here = path.dirname(fileURLToPath(import.meta.url));

describe('cpu thread pool', () => {
  it('concurrent callers from 3 threads get exact, deterministic results', async function () {
    this.timeout(60000);
    const M = 150, N = 170, K = 190;
    const A = randn(M * K, 1), B = randn(K * N, 2);
    const want = runOp('cpu', 'matmul', { M, N, K, transA: false, transB: true, A, B });
    const x = randn(64 * 4096, 3);
    const wantSq = runOp('cpu', 'sum_squares', { n: x.length, x }).sum as unknown as number;
    const runs = await Promise.all([0, 1, 2].map(() => new Promise<unknown[]>((resolve, reject) => {
      const w = new Worker(path.join(here, 'pool-worker.mjs'), {
        workerData: { M, N, K, A, B, x }
      });
      w.once('message', resolve);
      w.once('error', reject);
    })));
    for (const results of runs)
      for (let i = 0; i < results.length; i += 2) {
        expect(Array.from(results[i] as Float64Array)).to.deep.equal(Array.from(want.C));
        expect(results[i + 1]).to.equal(wantSq);
      }
  });
});
