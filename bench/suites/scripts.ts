// Suites that run the standalone benchmark scripts other parts of the project keep
// (bench/topk.ts, bench/gpu/*.ts) as child processes: they print a Markdown row and append it
// to bench/RESULTS.md themselves; the harness collects the rows and turns the ones it knows
// into figures.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Figure, Suite, SuiteContext } from './types.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Run `tsx <script> args` from the repository root; its stderr streams through as progress. */
export function runScript(ctx: SuiteContext, script: string, args: string[], timeoutS = 1800): string[] {
  ctx.log(`npx tsx ${script} ${args.join(' ')}`);
  const tsx = path.join(root, 'node_modules', 'tsx', 'dist', 'cli.mjs');
  const r = spawnSync(process.execPath, [tsx, script, ...args], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: timeoutS * 1000, env: process.env });
  if (r.status !== 0) throw new Error(`${script} exited with ${r.status ?? r.signal}${r.error ? ` (${r.error.message})` : ''}`);
  return r.stdout.split('\n').filter((l) => l.startsWith('|'));
}

/** bench/topk.ts's row -> a figure (its columns: ... | lmdr T s (R q/s) | usearch exactSearch T s (R q/s) | ...). */
export function topkFigure(row: string): Figure | undefined {
  const cells = row.split('|').map((c) => c.trim());
  const lmdr = /^lmdr ([\d.]+) s/.exec(cells.find((c) => c.startsWith('lmdr ')) ?? '');
  const base = /^(usearch [^\d]*?) ([\d.]+) s/.exec(cells.find((c) => c.startsWith('usearch')) ?? '');
  const check = cells.find((c) => c.startsWith('top-k overlap'));
  const queries = /(\d+) queries/.exec(cells[1] ?? '');
  if (!lmdr || !base || !queries) return undefined;
  const q = Number(queries[1]);
  const value = q / Number(lmdr[1]);
  const baselineValue = q / Number(base[2]);
  return { name: cells[1], value, unit: 'queries/s', baseline: `${base[1]} (same data, all threads)`, baselineValue, ratio: value / baselineValue, check };
}

export const topkCpuSuite: Suite = {
  name: 'topk-cpu',
  needs: 'cpu',
  describe: 'exact top-k inner-product search vs usearch exactSearch (bench/topk.ts)',
  async run(ctx) {
    const args = ctx.quick ? ['--corpus', '20000', '--queries', '200', '--dim', '256', '--k', '100', '--repeats', '1'] : ['--corpus', '100000', '--queries', '1000', '--dim', '768', '--k', '100'];
    const rows = runScript(ctx, 'bench/topk.ts', [...args, '--device', 'cpu']);
    return { rows, figures: rows.map(topkFigure).filter((f): f is Figure => f !== undefined) };
  },
};

/** GPU suites: the scripts under bench/gpu/ (PyTorch baselines inside them) and top-k on cuda. */
export const gpuSuites: Suite[] = [
  { script: 'bench/topk.ts', args: (q: boolean) => ['--device', 'cuda', ...(q ? ['--corpus', '100000', '--queries', '1000'] : ['--corpus', '1000000', '--queries', '10000'])], what: 'exact top-k on the GPU vs usearch exactSearch on the CPU', name: 'topk-vs-usearch-gpu', torch: false },
  { script: 'bench/gpu/topk.ts', args: (q: boolean) => (q ? ['--corpus', '100000', '--queries', '1000'] : []), what: 'exact top-k on the GPU vs torch.matmul + torch.topk', name: 'topk-gpu', torch: true },
  { script: 'bench/gpu/encode.ts', args: (q: boolean) => (q ? ['--passages', '512'] : []), what: 'encode throughput, Qwen2.5-0.5B shape, vs PyTorch + transformers', name: 'encode-gpu', torch: true },
  { script: 'bench/gpu/train-step.ts', args: (q: boolean) => (q ? ['--batch', '4', '--steps', '2'] : ['--batch', '16']), what: 'one LoRA InfoNCE training step, Qwen2.5-0.5B shape, vs PyTorch + PEFT', name: 'train-step-gpu', torch: true },
  { script: 'bench/gpu/score.ts', args: (q: boolean) => (q ? ['--pairs', '64'] : []), what: 'LLM reward scoring (LM head log-probs), Qwen2.5-0.5B shape, vs PyTorch + transformers', name: 'score-gpu', torch: true },
  { script: 'bench/gpu/attention.ts', args: () => [], what: 'attention kernels vs PyTorch SDPA', name: 'attention-gpu', torch: true },
].map(({ script, args, what, name, torch }) => ({
  name,
  needs: torch ? ('gpu-torch' as const) : ('gpu' as const),
  describe: what,
  async run(ctx: SuiteContext) {
    const rows = runScript(ctx, script, args(ctx.quick));
    return { rows, figures: script === 'bench/topk.ts' ? rows.map(topkFigure).filter((f): f is Figure => f !== undefined) : [] };
  },
}));
