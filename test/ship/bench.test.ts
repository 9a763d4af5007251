// The bench harness at smoke sizes: it writes its JSON, every figure has a baseline and a ratio
// that is the quotient of the two absolute numbers; and the top-k row parser reads the row
// format bench/topk.ts prints.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { topkFigure } from '../../bench/suites/scripts.ts';

const root = path.resolve(import.meta.dirname, '..', '..');

describe('ship: npm run bench harness', function () {
  this.timeout(180000);

  it('parses bench/topk.ts rows into a figure with its baseline', () => {
    const row = '| exact top-k 20000x256, 200 queries, k=100 | cpu x2 threads | 2026-01-01 | lmdr 0.250 s (800 q/s) | usearch exactSearch 1.000 s (200 q/s) | 4.00x | top-k overlap 100.00% | `cmd` |';
    const f = topkFigure(row)!;
    expect(f.value).to.be.closeTo(800, 1e-9);
    expect(f.baselineValue).to.be.closeTo(200, 1e-9);
    expect(f.ratio).to.be.closeTo(4, 1e-12);
    expect(f.baseline).to.match(/^usearch exactSearch/);
    expect(f.check).to.equal('top-k overlap 100.00%');
    expect(topkFigure('| something else | x |')).to.equal(undefined);
  });

  it('--quick --only encode-cpu writes results JSON with consistent figures and skips nothing it ran', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdr-bench-test-'));
    try {
      const tsx = path.join(root, 'node_modules', 'tsx', 'dist', 'cli.mjs');
      const r = spawnSync(process.execPath, [tsx, 'bench/run.ts', '--quick', '--only', 'encode-cpu', '--results-dir', dir, '--no-append'], { cwd: root, encoding: 'utf8', env: { ...process.env, LMDR_PROGRESS: '0' } });
      expect(r.status, r.stderr).to.equal(0);
      expect(r.stderr).to.match(/\[1\/1\] encode-cpu/);
      expect(r.stdout).to.match(/\| encode-cpu \| encode 32 passages/);
      const files = fs.readdirSync(dir);
      expect(files).to.have.length(1);
      expect(files[0]).to.match(/^\d{4}-\d{2}-\d{2}-.+\.json$/);
      const json = JSON.parse(fs.readFileSync(path.join(dir, files[0]), 'utf8'));
      expect(json.device).to.be.a('string').and.not.equal('');
      expect(json.suites.map((s: { suite: string; status: string }) => [s.suite, s.status])).to.deep.equal([['encode-cpu', 'ok']]);
      expect(json.figures).to.have.length(2);
      for (const f of json.figures) {
        expect(f.value).to.be.greaterThan(0);
        expect(f.baselineValue).to.be.greaterThan(0);
        expect(f.ratio).to.be.closeTo(f.value / f.baselineValue, 1e-9 * f.ratio);
        expect(f.baseline).to.be.a('string').and.not.equal('');
      }
      // the check against the float64 reference passed (cosine close to 1)
      const cos = Number(/>= ([\d.]+)/.exec(json.figures[0].check)![1]);
      expect(cos).to.be.greaterThan(0.9999);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
