// Shared by the GPU tests: whether a CUDA device is usable, the visible "skipped: no GPU"
// placeholder (a failure instead when LMDR_REQUIRE_GPU=1, as `npm run test:gpu` sets), and
// bf16 rounding so the CPU reference sees exactly the inputs the GPU stores.
import { native } from '../../lib/native.ts';

export const gpuDevice = 'cuda:0';

/** "" when a CUDA device can run the tests, else why not. */
export function noGpuReason(): string {
  let info;
  try {
    info = native().buildInfo();
  } catch (err) {
    return (err as Error).message;
  }
  if (!info.cudaCompiled) return 'this addon was built without CUDA';
  if (info.cudaDevices.length === 0) return info.cudaError || 'no CUDA device visible';
  return '';
}

/**
 * describe() for GPU-only tests: with no GPU it registers one pending test titled
 * "skipped: no GPU (<reason>)" (mocha prints it), or one failing test when LMDR_REQUIRE_GPU=1.
 */
export function describeGpu(title: string, body: (this: Mocha.Suite) => void): void {
  describe(title, function () {
    const reason = noGpuReason();
    if (reason) {
      placeholder('every test of this suite', reason);
      return;
    }
    body.call(this);
  });
}

/** it() on `device` ("cpu" always runs), or the same placeholder as describeGpu when it is a GPU and none is usable. */
export function itOnDevice(device: string, title: string, fn: () => Promise<void>): void {
  const reason = device.startsWith('cpu') ? '' : noGpuReason();
  if (reason) placeholder(title, reason);
  else it(title, fn);
}

function placeholder(title: string, reason: string): void {
  if (process.env.LMDR_REQUIRE_GPU === '1')
    it(title, () => {
      throw new Error(`LMDR_REQUIRE_GPU=1 but no GPU can be used: ${reason}`);
    });
  else it.skip(`${title} - skipped: no GPU (${reason})`, () => {});
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** x rounded to bfloat16 (round to nearest even), as a double. */
export function bf16(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  if ((bits & 0x7f800000) === 0x7f800000) return f32[0]; // inf / NaN unchanged
  u32[0] = ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) << 16;
  return f32[0];
}

export function bf16Array(a: ArrayLike<number>): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = bf16(a[i]);
  return out;
}
