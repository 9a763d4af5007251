// npm run example: generate a tiny random Qwen2-style model with a tokenizer, embed a few
// texts with `lmdr encode`, read the .npy back and print the cosine-similarity matrix.
// Weights are random, so the similarities only show that the pipeline runs end to end.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { main } from '../lib/cli/main.ts';
import { readNpy } from '../lib/formats/npy.ts';
import { makeTinyModel } from '../test/helpers/tiny-models.ts';

const dir = process.argv[2] ?? path.join(os.tmpdir(), 'lmdr-example');
fs.mkdirSync(dir, { recursive: true });
const model = makeTinyModel({ arch: 'qwen2', tokenizer: true, seed: 1, dir: path.join(dir, 'tiny-qwen2') });
const texts = ['the river flows to the ocean', 'a king and a queen', 'where is the tower ?', 'the ocean is deep and blue'];
const input = path.join(dir, 'texts.jsonl');
fs.writeFileSync(input, texts.map((text) => JSON.stringify({ text })).join('\n') + '\n');
const output = path.join(dir, 'embeddings.npy');

const args = ['encode', '--model', model, '--input', input, '--output', output, '--device', 'cpu'];
console.log(`$ lmdr ${args.join(' ')}`);
const code = await main(args);
if (code !== 0) process.exit(code);

const m = readNpy(output);
console.log(`${output}: float32 [${m.rows}, ${m.cols}] (L2-normalized EOS embeddings)`);
console.log('cosine similarity (embeddings are unit length, so this is the dot product):');
for (let i = 0; i < m.rows; i++) {
  const row = [];
  for (let j = 0; j < m.rows; j++) {
    let dot = 0;
    for (let k = 0; k < m.cols; k++) dot += m.data[i * m.cols + k] * m.data[j * m.cols + k];
    row.push(dot.toFixed(3).padStart(7));
  }
  console.log(`${row.join(' ')}   ${texts[i]}`);
}
