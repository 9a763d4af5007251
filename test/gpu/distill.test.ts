// The fused retrieval loss's modes (KL, stabilized distillation, weights, no in-batch negatives)
// on the CUDA backend against the float64 CPU backend, through the runOp hook.
import { expect } from 'chai';
import type { OpArg } from '../../lib/native.ts';
import { expectClose, randn, runOp } from '../ops/harness.ts';
import { bf16Array, describeGpu, gpuDevice } from './gpu.ts';

describeGpu('CUDA retrieval loss modes vs the CPU (float64) backend', function () {
  this.timeout(300_000);
  const B = 5, G = 4, H = 40;
  const q = bf16Array(randn(B * H, 61)), p = bf16Array(randn(B * G * H, 62));
  const teacher = randn(B * G, 63, 2);
  teacher[1] = teacher[2] = teacher[3]; // a tie
  const cases: [string, Record<string, OpArg>][] = [
    ['kl', { distill: 'kl', teacher, contrastiveWeight: 0.4, distillWeight: 1.2, teacherTemperature: 0.7, studentTemperature: 2 }],
    ['stable', { distill: 'stable', teacher, contrastiveWeight: 0.6, distillWeight: 1.5, teacherTemperature: 0.5 }],
    ['stable without in-batch negatives', { distill: 'stable', teacher, inBatch: false }],
    ['contrastive without in-batch negatives', { inBatch: false }],
  ];
  for (const [name, modes] of cases) {
    it(`${name}: loss, parts and gradients`, () => {
      for (const cosine of [true, false]) {
        const args: Record<string, OpArg> = { batch: B, group: G, H, q, p, temperature: cosine ? 0.05 : 3, cosine, ...modes };
        const want = runOp('cpu-f64', 'infonce', args) as Record<string, unknown>;
        const got = runOp(gpuDevice, 'infonce', args) as Record<string, unknown>;
        for (const k of ['loss', 'contrastive', 'distill'])
          expect(Math.abs((got[k] as number) - (want[k] as number)), `${name} ${k}`).to.be.at.most(1e-2 * Math.max(1, Math.abs(want[k] as number)));
        expectClose(got.dq as Float64Array, want.dq as Float64Array, 1e-2, `${name} cosine=${cosine} dq`);
        expectClose(got.dp as Float64Array, want.dp as Float64Array, 1e-2, `${name} cosine=${cosine} dp`);
      }
    });
  }
});
