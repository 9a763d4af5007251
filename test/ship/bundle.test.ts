// The portable bundle runs from a folder outside the repository with only node on PATH, and
// encodes exactly like the package does with the same addon.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { Engine } from '../../lib/engine.ts';
import { readNpy } from '../../lib/formats/npy.ts';
import { makeTinyModel } from '../helpers/tiny-models.ts';

const root = path.resolve(import.meta.dirname, '..', '..');

/** The addon file this test run uses ($LMDR_ADDON, else what node-gyp-build picks). */
function addonInUse(): string {
  if (process.env.LMDR_ADDON) return path.resolve(process.env.LMDR_ADDON);
  return createRequire(import.meta.url)('node-gyp-build').path(root);
}

describe('ship: portable bundle', function () {
  this.timeout(120000);
  let work: string;
  let bundle: string;
  let bareBin: string;
  before(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdr-bundle-test-'));
    const built = path.join(work, 'built');
    const r = spawnSync(process.execPath, [path.join(root, 'scripts', 'bundle.mjs'), '--addon', addonInUse(), '--out', built], { encoding: 'utf8' });
    expect(r.status, r.stderr).to.equal(0);
    // move it: nothing may point back into the build location or the repository
    bundle = path.join(work, 'copied', 'lmdr-bundle');
    fs.mkdirSync(path.dirname(bundle));
    fs.cpSync(built, bundle, { recursive: true });
    fs.rmSync(built, { recursive: true });
    bareBin = path.join(work, 'bin');
    fs.mkdirSync(bareBin);
    fs.symlinkSync(process.execPath, path.join(bareBin, 'node'));
  });
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  const runBundle = (args: string[]) =>
    spawnSync(path.join(bundle, 'lmdr'), args, {
      cwd: work,
      encoding: 'utf8',
      env: { PATH: bareBin, HOME: work, LMDR_PROGRESS: '0', ...(process.env.LMDR_DEVICE ? { LMDR_DEVICE: process.env.LMDR_DEVICE } : {}) },
    });

  it('has the launcher, the bundled JavaScript and the addon, and no TypeScript', () => {
    expect(fs.statSync(path.join(bundle, 'lmdr')).mode & 0o111).to.not.equal(0);
    expect(fs.existsSync(path.join(bundle, 'lib', 'lmdr.mjs'))).to.equal(true);
    expect(fs.existsSync(path.join(bundle, 'prebuilds', `${process.platform}-${process.arch}`, 'lmdr.node'))).to.equal(true);
    const files = fs.readdirSync(bundle, { recursive: true }) as string[];
    expect(files.filter((f) => f.endsWith('.ts'))).to.deep.equal([]);
  });

  it('lmdr info runs with only node on PATH and reports the package version and build', () => {
    const r = runBundle(['info']);
    expect(r.status, r.stderr).to.equal(0);
    const version = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version;
    expect(r.stdout).to.contain(`lmdr ${version}`);
    expect(r.stdout).to.match(/^build: /m);
    expect(r.stdout).to.match(/^compiled backends: cpu/m);
  });

  it('an unknown command fails with exit 1 and a clear message', () => {
    const r = runBundle(['no-such-command']);
    expect(r.status).to.equal(1);
    expect(r.stderr).to.contain('unknown command "no-such-command"');
  });

  it('lmdr encode gives the same embeddings as the package with the same addon', async () => {
    const model = makeTinyModel({ arch: 'qwen2', tokenizer: true, seed: 17, dir: path.join(work, 'model') });
    const texts = ['the river flows to the ocean', 'a small city of gold', 'who did build the old tower ?'];
    const input = path.join(work, 'in.jsonl');
    fs.writeFileSync(input, texts.map((t) => JSON.stringify({ text: t })).join('\n') + '\n');
    const output = path.join(work, 'out.npy');
    const r = runBundle(['encode', '--model', model, '--input', input, '--output', output, '--device', 'cpu']);
    expect(r.status, r.stderr).to.equal(0);
    const got = readNpy(output);
    const engine = await Engine.load(model, { device: 'cpu' });
    try {
      const want = await engine.encode(texts);
      expect([got.rows, got.cols]).to.deep.equal([want.rows, want.dim]);
      for (let i = 0; i < want.data.length; i++) expect(got.data[i]).to.equal(want.data[i]);
    } finally {
      engine.dispose();
    }
  });
});
