// The generated decoder and the texts the CPU suites share: the demo's model generator at a
// benchmark size, State of the Union passages as inputs (real text, real token lengths).
import fs from 'node:fs';
import path from 'node:path';
import { writeDemoModel } from '../../lib/demo/demo-model.ts';
import { loadAddresses, passagesOf } from '../../lib/demo/sotu-dataset.ts';

export interface BenchModel {
  dir: string;
  texts: string[]; // passages, longest first is up to the caller
  shape: string; // "hidden 256, 4 layers, 8/2 heads, ffn 1024, vocab N"
}

export function benchModel(tmp: string, quick: boolean): BenchModel {
  const dir = path.join(tmp, quick ? 'model-quick' : 'model');
  const texts = loadAddresses([2001, 2021]).flatMap((a) => passagesOf(a, 5).map((p) => p.sentences.join(' ')));
  const sizes = quick ? { hidden: 64, layers: 2, heads: 4, kvHeads: 2 } : { hidden: 256, layers: 4, heads: 8, kvHeads: 2 };
  let vocab: number;
  if (!fs.existsSync(path.join(dir, 'config.json'))) vocab = writeDemoModel(dir, texts, { ...sizes, arch: 'llama', seed: 7 }).vocabSize;
  else vocab = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).vocab_size;
  return { dir, texts, shape: `llama-style, hidden ${sizes.hidden}, ${sizes.layers} layers, ${sizes.heads}/${sizes.kvHeads} heads, ffn ${4 * sizes.hidden}, vocab ${vocab}` };
}
