// lmdr info: what this installation is and what it would run on.
import { resolveDevice } from '../engine.ts';
import { native } from '../native.ts';
import { packageVersion } from '../version.ts';

export async function run(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write('usage: lmdr info\nPrints the package version, the backend in use, CUDA devices and build flags.\n');
    return;
  }
  const info = native().buildInfo();
  // The same choice every command makes: --device, else $LMDR_DEVICE, else CUDA when usable.
  let backend: string;
  try {
    backend = resolveDevice();
  } catch (err) {
    backend = `none: ${(err as Error).message}`;
  }
  if (process.env.LMDR_DEVICE) backend += ' (LMDR_DEVICE)';
  const lines = [
    `lmdr ${packageVersion()} (addon ${info.version})`,
    `backend: ${backend}`,
    `compiled backends: ${info.backends.join(', ')}`,
    info.cudaDevices.length > 0
      ? `cuda devices: ${info.cudaDevices.map((d, i) => `cuda:${i} ${d}`).join('; ')}`
      : `cuda devices: none (${info.cudaError})`,
    `build: ${info.flags}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
}
