import { native } from '../native.ts';
import { packageVersion } from '../version.ts';

export async function run(argv: string[]): Promise<void> {
  if (argv.includes('--help')) {
    process.stdout.write('usage: lmdr info\nPrints the package version, the backend in use, CUDA devices and build flags.\n');
    return;
  }
  const info = native().buildInfo();
  const backend = info.cudaDevices.length > 0 ? 'cuda:0' : 'cpu';
  const lines = [
    `lmdr ${packageVersion()} (addon ${info.version})`,
    `backend: ${process.env.LMDR_DEVICE ?? backend}`,
    `compiled backends: ${info.backends.join(', ')}`,
    info.cudaDevices.length > 0
      ? `cuda devices: ${info.cudaDevices.map((d, i) => `cuda:${i} ${d}`).join('; ')}`
      : `cuda devices: none (${info.cudaError})`,
    `build: ${info.flags}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
}
