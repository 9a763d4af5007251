// `npm run profile`: an `lmdr encode` on the GPU under Nsight Systems, so the NVTX ranges lmdr
// opens around every op (and the CUDA kernels under them) show on the timeline.
// Usage: npm run profile -- [--model DIR] [--passages 512] [--length 256] [--out lmdr-encode]
// Without --model a Qwen2.5-0.5B-shaped random bf16 model is generated once (tiny-models).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { makeTinyModel } from '../../test/helpers/tiny-models.ts';
import { randInt, uniformRng } from '../../test/helpers/rng.ts';
import { here } from './common.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    passages: { type: 'string', default: '512' },
    length: { type: 'string', default: '256' },
    out: { type: 'string', default: 'lmdr-encode' },
  },
});
const nsys = process.env.NSYS ?? 'nsys';
if (spawnSync(nsys, ['--version'], { stdio: 'ignore' }).status !== 0) {
  process.stderr.write(`profile: ${nsys} (Nsight Systems) is not installed or not on PATH; nothing profiled\n`);
  process.exit(1);
}
const tmp = path.join(os.tmpdir(), 'lmdr-profile');
fs.mkdirSync(tmp, { recursive: true });
let model = values.model;
if (!model) {
  model = path.join(tmp, 'qwen2.5-0.5b-shape');
  if (!fs.existsSync(path.join(model, 'config.json')))
    makeTinyModel({ arch: 'qwen2', dtype: 'BF16', hidden: 896, layers: 24, heads: 14, kvHeads: 2, intermediate: 4864,
      vocab: 151936, tieWordEmbeddings: true, seed: 1, dir: model });
}
const vocab = (JSON.parse(fs.readFileSync(path.join(model, 'config.json'), 'utf8')) as { vocab_size: number }).vocab_size;
const u = uniformRng(2);
const input = path.join(tmp, 'passages.jsonl');
const lines = Array.from({ length: Number(values.passages) }, () =>
  JSON.stringify({ input_ids: Array.from({ length: Number(values.length) }, () => randInt(u, 0, vocab)) }));
fs.writeFileSync(input, lines.join('\n') + '\n');
const root = path.resolve(here, '../..');
const args = ['profile', '--trace=cuda,nvtx,osrt', '--force-overwrite=true', '-o', values.out!,
  process.execPath, path.join(root, 'bin/lmdr.js'), 'encode', '--model', model, '--input', input,
  '--output', path.join(tmp, 'embeddings.npy'), '--device', 'cuda'];
process.stderr.write(`${nsys} ${args.join(' ')}\n`);
const r = spawnSync(nsys, args, { stdio: 'inherit' });
process.exit(r.status ?? 1);
