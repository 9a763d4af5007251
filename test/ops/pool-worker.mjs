// Worker for threads.test.ts: runs multithreaded ops repeatedly and posts the results back.
import { parentPort, workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
const { runOp } = await import('./harness.ts');
const { M, N, K, A, B, x } = workerData;
const results = [];
for (let i = 0; i < 8; i++) {
  results.push(runOp('cpu', 'matmul', { M, N, K, transA: false, transB: true, A, B }).C);
  results.push(runOp('cpu', 'sum_squares', { n: x.length, x }).sum);
}
parentPort.postMessage(results);
