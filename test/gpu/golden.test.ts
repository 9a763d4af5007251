// Both backends against golden outputs of Hugging Face transformers (test/fixtures/make_golden.py):
// last hidden states and eos/cls/mean pooled embeddings of tiny random qwen2, llama3 and bert
// checkpoints. Skipped with "no fixtures" until the fixtures have been generated.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { Engine } from '../../lib/engine.ts';
import { relError } from '../ops/harness.ts';
import { gpuDevice, noGpuReason } from './gpu.ts';

interface Golden {
  model: string;
  hidden: number;
  sequences: { input_ids: number[]; last_hidden_state: number[]; pooled: Record<'eos' | 'cls' | 'mean', number[]> }[];
}

const goldenDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/golden');
const fixtures = fs.existsSync(goldenDir)
  ? fs.readdirSync(goldenDir).filter((d) => fs.existsSync(path.join(goldenDir, d, 'expected.json'))).sort()
  : [];

const devices = [
  { device: 'cpu', tol: 1e-4 },
  { device: gpuDevice, tol: 3e-2 },
];

describe('golden outputs from Hugging Face transformers', function () {
  this.timeout(120_000);
  if (fixtures.length === 0) {
    it.skip('skipped: no fixtures (run python3 test/fixtures/make_golden.py on a host with torch)', () => {});
    return;
  }
  for (const name of fixtures)
    for (const { device, tol } of devices) {
      const title = `${name} on ${device}: last hidden states and pooled embeddings`;
      const reason = device === 'cpu' ? '' : noGpuReason();
      if (reason) {
        if (process.env.LMDR_REQUIRE_GPU === '1') it(title, () => { throw new Error(`no GPU: ${reason}`); });
        else it.skip(`${title} - skipped: no GPU (${reason})`, () => {});
        continue;
      }
      it(title, async () => {
        const dir = path.join(goldenDir, name);
        const golden = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8')) as Golden;
        const engine = await Engine.load(dir, { device });
        try {
          expect(engine.dim).to.equal(golden.hidden);
          for (const [i, s] of golden.sequences.entries()) {
            const ids = Int32Array.from(s.input_ids);
            const h = await engine.native.hiddenStates(ids, new Int32Array([0, ids.length]));
            const eh = relError(Float64Array.from(h), Float64Array.from(s.last_hidden_state));
            expect(eh, `sequence ${i}: hidden states error ${eh}`).to.be.below(tol);
          }
          for (const mode of ['eos', 'cls', 'mean'] as const) {
            const emb = await engine.encodeIds(golden.sequences.map((s) => s.input_ids), { pooling: mode });
            golden.sequences.forEach((s, i) => {
              const e = relError(Float64Array.from(emb.row(i)), Float64Array.from(s.pooled[mode]));
              expect(e, `${mode} pooling, sequence ${i}: error ${e}`).to.be.below(tol);
            });
          }
        } finally {
          engine.dispose();
        }
      });
    }
});
