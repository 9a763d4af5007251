#!/usr/bin/env node
// Release prebuild: prebuilds/<platform>-<arch>/lmdr.node with the CPU backend and, where nvcc
// exists, the CUDA backend (sm_80 + sm_90, cudart linked statically) in one file, which
// node-gyp-build loads on machines without a compiler. Built with cmake-js in its own
// directory (never build/, which node-gyp-build would prefer over the prebuild), stripped,
// then loaded once in a fresh process to prove it works before it is copied into place.
//
// usage: node scripts/prebuildify.mjs [--cpu-only] [--archs 80;90]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const cpuOnly = args.includes('--cpu-only');
const archIndex = args.indexOf('--archs');
const archs = archIndex >= 0 ? args[archIndex + 1] : '80;90';
const buildDir = 'build-prebuild';
const target = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'lmdr.node');

function fail(message) {
  console.error(`prebuildify: ${message}`);
  process.exit(1);
}

function run(cmd, cmdArgs, env = process.env) {
  console.error(`prebuildify: ${cmd} ${cmdArgs.join(' ')}`);
  const r = spawnSync(cmd, cmdArgs, { cwd: root, stdio: 'inherit', env });
  if (r.status !== 0) fail(`${path.basename(cmd)} failed (exit ${r.status ?? r.signal})`);
}

const hasNvcc = spawnSync('nvcc', ['--version'], { stdio: 'ignore' }).status === 0;
if (!cpuOnly && !hasNvcc) fail('nvcc not found: a release prebuild carries the CUDA backend (use --cpu-only for a CPU-only one)');

const env = { ...process.env, CMAKE_BUILD_PARALLEL_LEVEL: process.env.CMAKE_BUILD_PARALLEL_LEVEL ?? String(os.availableParallelism?.() ?? 2) };
run(process.execPath, [
  'node_modules/cmake-js/bin/cmake-js', 'rebuild', '-O', buildDir, '--log-level', 'warn',
  `--CDLMDR_NO_CUDA=${cpuOnly ? 'ON' : 'OFF'}`,
  ...(cpuOnly ? [] : [`--CDCMAKE_CUDA_ARCHITECTURES=${archs}`]),
], env);

const built = path.join(root, buildDir, 'Release', 'lmdr.node');
if (!fs.existsSync(built)) fail(`${built} was not produced`);
const staged = path.join(root, buildDir, 'lmdr.stripped.node');
fs.copyFileSync(built, staged);
if (spawnSync('strip', ['--strip-unneeded', staged], { stdio: 'inherit' }).status !== 0) console.error('prebuildify: strip not available, keeping symbols');

// Dynamic dependencies: only the system's C/C++ runtime; never the CUDA toolkit's libraries.
const ldd = spawnSync('ldd', [staged], { encoding: 'utf8' });
if (ldd.status === 0) {
  const toolkitLibs = ldd.stdout.split('\n').filter((l) => /libcudart|libcublas|libnvrtc/.test(l));
  if (toolkitLibs.length > 0) fail(`the addon links CUDA toolkit libraries dynamically:\n${toolkitLibs.join('\n')}`);
}

// Load it in a fresh process: it must report how it was built, with CUDA compiled in unless --cpu-only.
const probe = spawnSync(process.execPath, ['-e', `console.log(JSON.stringify(require(${JSON.stringify(staged)}).buildInfo()))`], { encoding: 'utf8' });
if (probe.status !== 0) fail(`the built addon does not load:\n${probe.stderr}`);
const info = JSON.parse(probe.stdout);
if (!cpuOnly && !info.cudaCompiled) fail(`the addon was built without CUDA (${info.flags})`);

fs.mkdirSync(path.dirname(target), { recursive: true });
fs.copyFileSync(staged, target);
const mb = (fs.statSync(target).size / 1e6).toFixed(1);
console.error(`prebuildify: ${path.relative(root, target)} (${mb} MB): backends ${info.backends.join(', ')}; ${info.flags}`);
