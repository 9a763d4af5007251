// check-pack: a plain JavaScript ES module app using the installed lmdr package (no TypeScript
// loader anywhere): load a model, encode, run a two-step engine.train().
// usage: node app.mjs MODEL_DIR TRAIN.jsonl OUTPUT_DIR
import fs from 'node:fs';
import path from 'node:path';
import { Engine, HnswIndex, UserError } from 'lmdr';

const [modelDir, data, output] = process.argv.slice(2);
const fail = (message) => {
  console.error(`check-pack app.mjs: ${message}`);
  process.exit(1);
};

const engine = await Engine.load(modelDir, { device: 'cpu' });
try {
  const e = await engine.encode(['what is dense retrieval?', { text: 'a passage about retrieval' }]);
  if (e.rows !== 2 || e.dim !== engine.dim) fail(`encode gave ${e.rows} x ${e.dim}, expected 2 x ${engine.dim}`);
  for (let r = 0; r < 2; r++) {
    const norm = Math.hypot(...e.row(r));
    if (!(Math.abs(norm - 1) < 1e-4)) fail(`row ${r} has norm ${norm}, expected 1`);
  }
  // usearch (an optional dependency with a native part) loads after the install and searches
  const hnsw = new HnswIndex(e.dim);
  hnsw.add(e.data);
  const hit = await hnsw.search(e.row(1), 1);
  if (hit.rows[0] !== 1 || !(Math.abs(hit.scores[0] - 1) < 1e-4)) fail(`HNSW search of row 1 found row ${hit.rows[0]} (score ${hit.scores[0]})`);
  const summary = await engine.train({ data, output, steps: 2, batchSize: 2, groupSize: 2, saveSteps: 0, device: 'cpu', seed: 1 });
  if (summary.losses.length !== 2 || !summary.losses.every(Number.isFinite)) fail(`train losses ${JSON.stringify(summary.losses)}, expected 2 finite numbers`);
  if (!fs.existsSync(path.join(output, 'adapter_model.safetensors'))) fail(`no adapter_model.safetensors in ${output}`);
  console.log(`   app.mjs: encoded 2 x ${e.dim}; usearch HNSW search ok; trained 2 steps, losses ${summary.losses.map((l) => l.toFixed(4)).join(', ')}`);
} finally {
  engine.dispose();
}
// errors are the package's own classes
const err = await Engine.load(path.join(output, 'no-such-model')).then(() => null, (e) => e);
if (!(err instanceof UserError)) fail(`loading a missing dir gave ${err}, expected a UserError`);
