// Exact top-k on the GPU: 1M x 896 corpus, 10k queries, k = 1000 (defaults), lmdr's fused
// GEMM-tile + k-select vs torch.matmul + torch.topk on a resident bf16 corpus, same run; also
// the GEMM alone as the roofline. lmdr's time includes uploading the float32 corpus (the
// native topk API takes host arrays), so it is reported with and without that upload.
// Usage: npx tsx bench/gpu/topk.ts [--corpus 1000000] [--dim 896] [--queries 10000] [--k 1000]
import { parseArgs } from 'node:util';
import { native } from '../../lib/native.ts';
import { normalRng } from '../../lib/train/random.ts';
import { appendResult, requireGpu, today, torchBaseline } from './common.ts';
import { bestOf } from '../timing.ts';

const { values } = parseArgs({
  options: {
    corpus: { type: 'string', default: '1000000' },
    dim: { type: 'string', default: '896' },
    queries: { type: 'string', default: '10000' },
    k: { type: 'string', default: '1000' },
    repeats: { type: 'string', default: '2' },
  },
});
const gpuName = requireGpu();
const N = Number(values.corpus), H = Number(values.dim), Q = Number(values.queries), K = Number(values.k);
const g = normalRng(3);
const corpus = new Float32Array(N * H).map(() => g());
const queries = new Float32Array(Q * H).map(() => g());
const full = await bestOf(Number(values.repeats), () => native().topk(queries, corpus, Q, N, H, K, 'cuda:0'), { warmup: true });
// the upload share: the same call with one query (the corpus still crosses PCIe once)
const upload = await bestOf(Number(values.repeats), () => native().topk(queries.subarray(0, H), corpus, 1, N, H, K, 'cuda:0'), { warmup: true });
const torch = torchBaseline(['topk', '--corpus', String(N), '--dim', String(H), '--queries', String(Q), '--k', String(K)]);
const torchS = Number(torch.seconds), gemmS = Number(torch.gemm_seconds);
const computeS = Math.max(full.seconds - upload.seconds, 1e-9);
const command = `npx tsx bench/gpu/topk.ts --corpus ${N} --dim ${H} --queries ${Q} --k ${K}`;
appendResult('GPU exact top-k',
  '| benchmark | device | date | lmdr | baseline | speed-up | roofline | command |\n|---|---|---|---|---|---|---|---|\n',
  `| top-k ${N}x${H}, ${Q} queries, k=${K} | ${gpuName} | ${today()} | ${full.seconds.toFixed(3)} s incl. corpus upload, ${computeS.toFixed(3)} s without | torch.matmul+topk (torch ${torch.torch}) ${torchS.toFixed(3)} s | ${(torchS / computeS).toFixed(2)}x (without upload) | GEMM alone ${gemmS.toFixed(3)} s (${Number(torch.gemm_tflops).toFixed(0)} TFLOP/s): lmdr at ${((gemmS / computeS) * 100).toFixed(0)}% | \`${command}\` |`);
