// Quick GEMM throughput check (not a test): node --import tsx test/ops/matmul-gflops.ts [M N K]
// y = x W^T through runOp('matmul') with repeat = 1 and 1 + R: the difference over R is the
// kernel alone, without the hook's float64 <-> float32 copies. Wall-clock time, all threads.
import { randn, runOp } from './harness.ts';
import { native } from '../../lib/native.ts';

const [M, N, K] = process.argv.slice(2).map(Number).concat([512, 896, 896]).slice(0, 3);
const R = 10;
const time = (f: () => void) => {
  const t0 = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t0) / 1e9;
};
for (const device of ['cpu', 'cpu-f64']) {
  const A = randn(M * K, 1), B = randn(N * K, 2);
  const args = { M, N, K, transA: false, transB: true, A, B };
  runOp(device, 'matmul', args); // warm up (thread pool, pages)
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const once = time(() => runOp(device, 'matmul', { ...args, repeat: 1 }));
    const many = time(() => runOp(device, 'matmul', { ...args, repeat: 1 + R }));
    best = Math.min(best, (many - once) / R);
  }
  console.log(`${device} ${M}x${N}x${K}: ${((2 * M * N * K) / best / 1e9).toFixed(1)} GFLOP/s ` +
    `(${(best * 1e3).toFixed(2)} ms per product; ${native().buildInfo().flags})`);
}
