// Shared by the GPU benchmarks: the PyTorch baseline (torch_baseline.py, run in the same
// process tree so both sides see the same GPU and moment), and appending a row to
// bench/RESULTS.md under a section header.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { native } from '../../lib/native.ts';

export const here = path.dirname(fileURLToPath(import.meta.url));
const resultsFile = path.resolve(here, '../RESULTS.md');

/** Runs torch_baseline.py with args and returns its JSON line; throws with its stderr on failure. */
export function torchBaseline(args: string[]): Record<string, unknown> {
  const python = process.env.PYTHON ?? 'python3';
  const r = spawnSync(python, [path.join(here, 'torch_baseline.py'), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) throw new Error(`${python} torch_baseline.py ${args.join(' ')} failed:\n${r.stderr || r.error}`);
  const last = r.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(last) as Record<string, unknown>;
}

/** The CUDA device lmdr sees; exits with a message when there is none (no numbers are invented). */
export function requireGpu(): string {
  const info = native().buildInfo();
  if (!info.cudaCompiled || info.cudaDevices.length === 0) {
    process.stderr.write(`no CUDA device: ${info.cudaError || 'built without CUDA'}; nothing measured\n`);
    process.exit(2);
  }
  return info.cudaDevices[0];
}

export function appendResult(section: string, header: string, line: string): void {
  if (!fs.existsSync(resultsFile))
    fs.writeFileSync(resultsFile, '# Benchmark results\n\nEach figure is a ratio against a named baseline measured in the same run (`npm run bench`).\n\n');
  const text = fs.readFileSync(resultsFile, 'utf8');
  fs.appendFileSync(resultsFile, (text.includes(`## ${section}\n`) ? '' : `\n## ${section}\n\n${header}`) + line + '\n');
  process.stdout.write(line + '\n');
}

export const today = () => new Date().toISOString().slice(0, 10);
