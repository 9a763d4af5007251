#!/usr/bin/env node
// Build the addon with cmake-js (CPU backend always; CUDA when nvcc is found).
// Falls back to node-gyp (CPU only) when cmake is not installed.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import os from 'node:os';

const env = { ...process.env, CMAKE_BUILD_PARALLEL_LEVEL: process.env.CMAKE_BUILD_PARALLEL_LEVEL ?? String(os.availableParallelism?.() ?? 2) };
const extra = process.argv.slice(2);
const hasCmake = spawnSync('cmake', ['--version'], { stdio: 'ignore' }).status === 0;
const run = (cmd, args) => spawnSync(cmd, args, { stdio: 'inherit', env, shell: false });
let result;
if (hasCmake) {
  // Resolve cmake-js through Node: when lmdr is itself a dependency, npm hoists cmake-js.
  const cmakeJs = createRequire(import.meta.url).resolve('cmake-js/bin/cmake-js');
  result = run(process.execPath, [cmakeJs, 'build', '--log-level', 'warn', ...extra]);
} else {
  console.error('lmdr: cmake not found; building the CPU-only addon with node-gyp');
  // npm sets npm_config_node_gyp to its bundled node-gyp during lifecycle scripts.
  const nodeGyp = process.env.npm_config_node_gyp;
  result = nodeGyp ? run(process.execPath, [nodeGyp, 'rebuild']) : run('npx', ['--no-install', 'node-gyp', 'rebuild']);
}
process.exit(result.status ?? 1);
