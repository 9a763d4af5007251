// Attention kernel TFLOP/s at 256, 1,024 and 8,192 tokens (Qwen2.5-0.5B heads: 14 query,
// 2 kv, head dim 64; 16,384 tokens per batch), forward and backward, causal and
// bidirectional, with PyTorch SDPA at the same shapes for reference. Compiles
// bench/gpu/attention_bench.cu with nvcc (needs the CUDA toolkit on the GPU host).
// Usage: npx tsx bench/gpu/attention.ts [--head-dim 64]
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { appendResult, here, requireGpu, today, torchBaseline } from './common.ts';

const { values } = parseArgs({ options: { 'head-dim': { type: 'string', default: '64' } } });
const gpuName = requireGpu();
const root = path.resolve(here, '../..');
const exe = path.join(os.tmpdir(), 'lmdr-attention-bench');
const nvcc = process.env.NVCC ?? 'nvcc';
const build = spawnSync(nvcc, ['-O3', '-std=c++17', '--expt-relaxed-constexpr', '-arch=native', '-Icpp',
  'bench/gpu/attention_bench.cu', 'cuda/attention.cu', '-o', exe], { cwd: root, encoding: 'utf8' });
if (build.status !== 0) throw new Error(`nvcc failed:\n${build.stderr || build.error}`);
const run = spawnSync(exe, [values['head-dim']!], { encoding: 'utf8' });
if (run.status !== 0) throw new Error(`attention bench failed:\n${run.stderr}`);
const ours = JSON.parse(run.stdout.trim()) as { tflops: Record<string, { forward: number; backward: number }> };
const sdpa = torchBaseline(['attention', '--dim', values['head-dim']!]) as { sdpa_tflops: Record<string, number>; torch: string };
for (const [key, t] of Object.entries(ours.tflops)) {
  const ref = sdpa.sdpa_tflops[key];
  appendResult('GPU attention kernel',
    '| shape | device | date | lmdr forward TFLOP/s | lmdr backward TFLOP/s | baseline forward | forward ratio | command |\n|---|---|---|---|---|---|---|---|\n',
    `| ${key.replace('_causal', ' tokens, causal').replace(/^(\d+)$/, '$1 tokens, bidirectional')}, 14/2 heads, d=${values['head-dim']} | ${gpuName} | ${today()} | ${t.forward.toFixed(1)} | ${t.backward.toFixed(1)} | PyTorch ${sdpa.torch} SDPA ${ref?.toFixed(1)} TFLOP/s | ${ref ? (t.forward / ref).toFixed(2) : '-'}x | \`npx tsx bench/gpu/attention.ts --head-dim ${values['head-dim']}\` |`);
}
