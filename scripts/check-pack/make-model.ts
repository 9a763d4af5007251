// check-pack: the tiny generated model (a Qwen2-style decoder with a tokenizer) and a few
// FlagEmbedding training lines that app.mjs loads, encodes with and trains on.
// usage: node --import tsx scripts/check-pack/make-model.ts DIR   (writes DIR/model/, DIR/train.jsonl)
import fs from 'node:fs';
import path from 'node:path';
import { makeTinyModel } from '../../test/helpers/tiny-models.ts';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: make-model.ts DIR');
  process.exit(1);
}
makeTinyModel({ arch: 'qwen2', tokenizer: true, seed: 7, dir: path.join(dir, 'model') });
const lines = [
  { query: 'what is dense retrieval', pos: ['dense retrieval embeds queries and passages'], neg: ['the weather is sunny'] },
  { query: 'how are passages ranked', pos: ['passages are ranked by cosine similarity'], neg: ['a recipe for bread'] },
  { query: 'what is contrastive training', pos: ['contrastive training pulls positives together'], neg: ['trains run on rails'] },
  { query: 'why use hard negatives', pos: ['hard negatives sharpen the ranking'], neg: ['negative numbers are below zero'] },
];
fs.writeFileSync(path.join(dir, 'train.jsonl'), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
