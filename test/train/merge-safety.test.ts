// lmdr merge loses nothing: the merged dir is built beside OUTPUT and swapped in whole, so a
// stale weight file never survives, a kill -9 at any point leaves the previous merge or the new
// one (never a mix), and a dir holding files merge did not write is refused unless --overwrite.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { runCli as lmdr } from '../helpers/run-cli.ts';
import { writeAdapter } from '../../lib/adapters/peft.ts';
import { Engine } from '../../lib/engine.ts';
import { MERGE_MANIFEST, writeHfModelDir } from '../../lib/merge.ts';
import { readModelConfig } from '../../lib/model/config.ts';
import { readSafetensorsHeader, readTensorValues } from '../../lib/model/safetensors.ts';
import { normalRng, uniformRng } from '../helpers/rng.ts';
import { makeTinyModel } from '../helpers/tiny-models.ts';
import { tmpDir } from './fixtures.ts';

const LMDR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'lmdr.js');


/** A random PEFT adapter (r 4) on q_proj and down_proj of `modelDir`. */
async function randomAdapter(modelDir: string, seed: number): Promise<string> {
  const dir = tmpDir('safety-adapter');
  const e = await Engine.load(modelDir, { device: 'cpu' });
  try {
    const targets = ['q_proj', 'down_proj'];
    e.native.addLora({ targets, r: 4, alpha: 8, dropout: 0, seed: 1 });
    e.native.setTrainable('lora');
    const rnd = normalRng(seed);
    writeAdapter(dir, { r: 4, alpha: 8, dropout: 0, targets, baseModel: modelDir }, e.native.params().map((p) => ({ ...p, data: Float32Array.from(p.data, () => 0.2 * rnd()) })));
  } finally {
    e.dispose();
  }
  return dir;
}

/** Every tensor of a model dir as the loader sees it (through checkpointFiles' choice of files), by HF name. */
function weightsOf(dir: string): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const single = path.join(dir, 'model.safetensors');
  const files = fs.existsSync(single) ? [single]
    : [...new Set(Object.values(JSON.parse(fs.readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8')).weight_map as Record<string, string>))].map((f) => path.join(dir, f));
  for (const f of files) for (const t of readSafetensorsHeader(f).tensors.values()) out.set(t.name, Array.from(readTensorValues(f, t)));
  return out;
}

function sameWeights(a: Map<string, number[]>, b: Map<string, number[]>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) {
    const w = b.get(k);
    if (!w || w.length !== v.length || v.some((x, i) => x !== w[i])) return false;
  }
  return true;
}

describe('train: merge loses nothing', function () {
  this.timeout(300000);

  it('a sharded merge into a dir holding an earlier single-file merge leaves no stale model.safetensors', async () => {
    const single = makeTinyModel({ arch: 'qwen2', tokenizer: true, seed: 31 });
    const sharded = makeTinyModel({ arch: 'qwen2', tokenizer: true, seed: 32, sharded: true });
    const adapter = await randomAdapter(single, 1);
    const out = path.join(tmpDir('stale'), 'merged');
    expect((await lmdr(['merge', '--model', single, '--adapter', adapter, '--output', out])).code).to.equal(0);
    expect(fs.existsSync(path.join(out, 'model.safetensors'))).to.equal(true);
    const r = await lmdr(['merge', '--model', sharded, '--adapter', adapter, '--output', out]);
    expect(r.code, r.stderr).to.equal(0);
    // the loader prefers model.safetensors: had it survived, OUT would silently hold the first model
    expect(fs.existsSync(path.join(out, 'model.safetensors'))).to.equal(false);
    const fresh = path.join(tmpDir('stale'), 'fresh');
    expect((await lmdr(['merge', '--model', sharded, '--adapter', adapter, '--output', fresh])).code).to.equal(0);
    expect(sameWeights(weightsOf(out), weightsOf(fresh))).to.equal(true);
    expect(fs.readdirSync(out).sort()).to.deep.equal(fs.readdirSync(fresh).sort());
  });

  it('writing a model dir in place (full fine-tuning output) removes weight files it does not rewrite', () => {
    const single = makeTinyModel({ arch: 'qwen2', tokenizer: true, seed: 33 });
    const sharded = makeTinyModel({ arch: 'qwen2', tokenizer: true, seed: 34, sharded: true });
    const out = tmpDir('inplace');
    writeHfModelDir(single, out, readModelConfig(single), () => undefined);
    expect(fs.existsSync(path.join(out, 'model.safetensors'))).to.equal(true);
    writeHfModelDir(sharded, out, readModelConfig(sharded), () => undefined);
    expect(fs.existsSync(path.join(out, 'model.safetensors'))).to.equal(false);
    expect(sameWeights(weightsOf(out), weightsOf(sharded))).to.equal(true);
  });

  it('refuses an output dir holding files lmdr merge did not write; --overwrite replaces it whole', async () => {
    const base = makeTinyModel({ arch: 'qwen2', tokenizer: true, seed: 35 });
    const adapter = await randomAdapter(base, 2);
    const out = tmpDir('foreign');
    fs.writeFileSync(path.join(out, 'notes.txt'), 'mine');
    let r = await lmdr(['merge', '--model', base, '--adapter', adapter, '--output', out]);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.equal(`lmdr merge: --output ${out} holds files lmdr merge did not write (notes.txt); choose a new or empty dir, or pass --overwrite to replace it\n`);
    expect(fs.readdirSync(out)).to.deep.equal(['notes.txt']);
    // an earlier merge's dir with one extra file is not "ours" either
    const merged = path.join(tmpDir('foreign'), 'm');
    expect((await lmdr(['merge', '--model', base, '--adapter', adapter, '--output', merged])).code).to.equal(0);
    fs.writeFileSync(path.join(merged, 'README.md'), 'added by hand');
    r = await lmdr(['merge', '--model', base, '--adapter', adapter, '--output', merged]);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(/holds files lmdr merge did not write \(README\.md\)/);
    // --overwrite: the dir is replaced, nothing of the old content stays
    r = await lmdr(['merge', '--model', base, '--adapter', adapter, '--output', out, '--overwrite']);
    expect(r.code, r.stderr).to.equal(0);
    expect(fs.existsSync(path.join(out, 'notes.txt'))).to.equal(false);
    expect(fs.existsSync(path.join(out, MERGE_MANIFEST))).to.equal(true);
    // the API says the same in its own words
    const e = await Engine.load(base, { device: 'cpu', adapter });
    try {
      const { writeMergedModel } = await import('../../lib/merge.ts');
      expect(() => writeMergedModel(e.native, base, e.config, merged)).to.throw(/output .* holds files lmdr merge did not write \(README\.md\).*overwrite: true/);
      expect(() => writeMergedModel(e.native, base, e.config, merged, { overwrit: true } as never)).to.throw(/writeMergedModel: unknown option "overwrit" \(did you mean "overwrite"\?\)/);
    } finally {
      e.dispose();
    }
  });

  it('kill -9 at random points of a re-merge: OUTPUT holds the previous merge or the new one, complete, and loads', async function () {
    // Big enough (~10 MB of F32 shards) that the write phase is a good part of the run.
    const base = makeTinyModel({ arch: 'qwen2', tokenizer: true, seed: 36, sharded: true, hidden: 128, intermediate: 1024, layers: 4 });
    const adapters = [await randomAdapter(base, 3), await randomAdapter(base, 4)];
    const parent = tmpDir('kill-merge');
    const out = path.join(parent, 'merged');
    // Anything the merge does to the disk shows here (a new entry beside OUT, a file of OUT replaced or gone).
    const snapshot = () => JSON.stringify([fs.readdirSync(parent).sort(),
      fs.existsSync(out) ? fs.readdirSync(out).sort().map((n) => [n, fs.statSync(path.join(out, n), { throwIfNoEntry: false })?.mtimeMs]) : null]);
    /** Spawn a merge; resolves when it exits, with the ms from its first change on disk to its exit. */
    const startMerge = (adapter: string) => {
      const before = snapshot();
      const child = spawn(process.execPath, [LMDR, 'merge', '--model', base, '--adapter', adapter, '--output', out], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (c) => { stderr += c; });
      let firstChange = 0;
      const exited = new Promise<{ code: number | null; writeMs: number; stderr: string }>((resolve) => child.on('exit', (code) => resolve({ code, writeMs: Date.now() - firstChange, stderr })));
      const changed = (async () => {
        while (child.exitCode === null && child.signalCode === null) {
          try {
            if (snapshot() !== before) break;
          } catch {
            break; // a file vanished between readdir and stat: that is a change too
          }
          await new Promise((r) => setTimeout(r, 1));
        }
        firstChange = Date.now();
      })();
      return { child, exited, changed };
    };
    // the two possible contents, from merges nobody killed, and how long the writing part takes
    const want: Map<string, number[]>[] = [];
    let writeMs = 0;
    for (const adapter of adapters) {
      const m = startMerge(adapter);
      const r = await m.exited;
      expect(r.code, r.stderr).to.equal(0);
      writeMs = Math.max(writeMs, r.writeMs);
      want.push(weightsOf(out));
    }
    expect(sameWeights(want[0], want[1])).to.equal(false);
    const merge = (adapter: string) => spawnSync(process.execPath, [LMDR, 'merge', '--model', base, '--adapter', adapter, '--output', out], { encoding: 'utf8' });

    const u = uniformRng(77);
    const outcomes = { previous: 0, next: 0 };
    let previous = 1; // OUT holds the merge of adapters[previous]; each trial re-merges the other one
    for (let trial = 0; trial < 10; trial++) {
      // kill at a random moment of the write phase: from its first change on disk to where it would end
      const m = startMerge(adapters[1 - previous]);
      await m.changed;
      await new Promise((r) => setTimeout(r, Math.floor(u() * writeMs)));
      m.child.kill('SIGKILL');
      await m.exited;
      // Whatever the moment of the kill, a reader finds one complete model (a kill between the
      // swap's two renames leaves both dirs beside OUT; the next write finishes the swap).
      if (!fs.existsSync(out)) {
        expect(fs.readdirSync(parent).some((n) => n.endsWith('.tmp.old')), `trial ${trial}: OUT is gone and nothing to roll forward`).to.equal(true);
        const r = merge(adapters[1 - previous]);
        expect(r.status, r.stderr).to.equal(0);
      }
      const got = weightsOf(out);
      const which = sameWeights(got, want[previous]) ? 'previous' : sameWeights(got, want[1 - previous]) ? 'next' : 'mixed';
      expect(which, `trial ${trial}`).to.not.equal('mixed');
      outcomes[which as 'previous' | 'next']++;
      const e = await Engine.load(out, { device: 'cpu' });
      e.dispose();
      // leave OUT holding adapters[1 - previous]'s merge for the next trial, completing the kill's work
      const r = merge(adapters[1 - previous]);
      expect(r.status, `trial ${trial}: ${r.stderr}`).to.equal(0);
      // the killed run's lock was stale: reported, taken over, released
      expect(fs.existsSync(path.join(parent, '.merged.lock'))).to.equal(false);
      // leftovers of the killed write are gone, and nothing but OUT and its lock-free state remains
      expect(fs.readdirSync(parent), `trial ${trial}`).to.deep.equal(['merged']);
      previous = 1 - previous;
    }
    expect(outcomes.previous + outcomes.next).to.equal(10);
  });
});
