// Mocha global setup (.mocharc.json "require"): tests that spawn bin/lmdr.js run the compiled
// dist/, so rebuild it (npm run build:js) when any lib/ source is newer than the last build.
// Type errors do not stop the tests here (tsc still emits; `npm test` type-checks first).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// outside dist/ so that npm pack never ships it
const stamp = path.join(root, 'node_modules', '.cache', 'lmdr', 'dist-built-by-tests');

function newestSource(dir: string): number {
  let newest = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

export function mochaGlobalSetup(): void {
  const built = fs.existsSync(stamp) && fs.existsSync(path.join(root, 'dist', 'cli', 'main.js')) ? fs.statSync(stamp).mtimeMs : -1;
  const sources = Math.max(newestSource(path.join(root, 'lib')), fs.statSync(path.join(root, 'tsconfig.build.json')).mtimeMs);
  if (built >= sources) return;
  const started = Date.now();
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { cwd: root, encoding: 'utf8' });
  if (!fs.existsSync(path.join(root, 'dist', 'cli', 'main.js'))) {
    throw new Error(`compiling lib/ to dist/ failed (exit ${r.status}):\n${r.stdout}${r.stderr}`);
  }
  fs.mkdirSync(path.dirname(stamp), { recursive: true });
  fs.writeFileSync(stamp, `dist/ compiled from lib/ by the test setup (${r.status === 0 ? 'no type errors' : 'with type errors'})\n`);
  process.stderr.write(`test setup: compiled lib/ to dist/ in ${((Date.now() - started) / 1000).toFixed(1)} s${r.status === 0 ? '' : ' (tsc reported type errors; npm test fails on them)'}\n`);
}
