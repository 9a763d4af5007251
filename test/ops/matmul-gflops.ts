// Quick GEMM throughput check (not a test): node --import tsx test/ops/matmul-gflops.ts [M N K]
// Times runOp('cpu', 'matmul') for y = x W^T, including the hook's float64<->float32 copies.
import { randn, runOp } from './harness.ts';

const [M, N, K] = process.argv.slice(2).map(Number).concat([512, 896, 896]).slice(0, 3);
for (const device of ['cpu', 'cpu-f64']) {
  const A = randn(M * K, 1), B = randn(N * K, 2);
  const args = { M, N, K, transA: false, transB: true, A, B };
  runOp(device, 'matmul', args); // warm up (thread pool, pages)
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    const t0 = process.hrtime.bigint();
    runOp(device, 'matmul', args);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  console.log(`${device} ${M}x${N}x${K}: ${(2 * M * N * K / best / 1e9).toFixed(1)} GFLOP/s (best of 5, ${(best * 1e3).toFixed(2)} ms)`);
}
