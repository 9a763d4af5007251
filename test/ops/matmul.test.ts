// GEMM: every transpose combination, alpha/beta, sizes that are not multiples of any block size,
// every kernel variant (AVX-512 / AVX2 / baseline, forced through LMDR_CPU_ISA in a child).
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { expectClose, forwardDevices, randn, relError, runOp } from './harness.ts';
import * as ref from './reference.ts';

const shapes: [number, number, number][] = [
  [67, 131, 45], // odd everywhere
  [1, 37, 300], // one row, K deeper than a packed slice
  [200, 3, 17], // more rows than one tile, fewer columns than a micro-tile
  [3, 2100, 5], // more columns than one packed panel
  [400, 70, 260], // several row tiles and K slices
];

function check(device: string, tol: number, M: number, N: number, K: number, transA: boolean, transB: boolean,
  alpha: number, beta: number, seed: number): void {
  const A = randn(M * K, seed), B = randn(K * N, seed + 1), C0 = randn(M * N, seed + 2);
  const args = { M, N, K, transA, transB, alpha, beta, A, B, ...(beta !== 0 ? { C: C0 } : {}) };
  const want = ref.matmul(A, B, C0, M, N, K, transA, transB, alpha, beta);
  expectClose(runOp(device, 'matmul', args).C, want, tol, `matmul ${M}x${N}x${K} tA=${transA} tB=${transB} a=${alpha} b=${beta}`);
}

for (const { device, tol } of forwardDevices) {
  describe(`matmul on ${device}`, () => {
    for (const [M, N, K] of shapes) {
      it(`${M}x${N}x${K}, all transposes, beta 0 and beta != 0`, () => {
        let seed = 100;
        for (const transA of [false, true])
          for (const transB of [false, true]) {
            check(device, tol, M, N, K, transA, transB, 1, 0, seed++);
            check(device, tol, M, N, K, transA, transB, -0.75, 0.4375, seed++); // alpha, beta are float in the op table
          }
      });
    }
    it('K = 0 leaves beta * C', () => {
      const C = randn(6, 7);
      const r = runOp(device, 'matmul', { M: 2, N: 3, K: 0, transA: false, transB: false, alpha: 1, beta: 2, A: new Float64Array(0), B: new Float64Array(0), C });
      expectClose(r.C, C.map((v) => 2 * v), tol, 'K=0');
    });
  });
}

describe('matmul kernel variants (LMDR_CPU_ISA)', () => {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  for (const isa of ['generic', 'avx2', 'avx512']) {
    it(`${isa}: 67x131x45 all transposes on cpu and cpu-f64`, function () {
      const script = `
        import { runOp, randn } from './test/ops/harness.ts';
        import * as ref from './test/ops/reference.ts';
        import { relError } from './test/ops/harness.ts';
        const errs = [];
        for (const device of ['cpu', 'cpu-f64'])
          for (const tA of [false, true]) for (const tB of [false, true]) {
            const M = 67, N = 131, K = 45;
            const A = randn(M * K, 1), B = randn(K * N, 2), C = randn(M * N, 3);
            const got = runOp(device, 'matmul', { M, N, K, transA: tA, transB: tB, alpha: 1.5, beta: -0.5, A, B, C }).C;
            errs.push(relError(got, ref.matmul(A, B, C, M, N, K, tA, tB, 1.5, -0.5)));
          }
        console.log(JSON.stringify(errs));`;
      const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        cwd: root, env: { ...process.env, LMDR_CPU_ISA: isa }, encoding: 'utf8',
      });
      expect(r.status, r.stderr).to.equal(0);
      const errs = JSON.parse(r.stdout.trim().split('\n').pop()!) as number[];
      errs.forEach((e, i) => expect(e, `case ${i}`).to.be.below(i < 4 ? 2e-5 : 1e-12));
    });
  }
});

void relError;
