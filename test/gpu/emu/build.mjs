#!/usr/bin/env node
// Builds build-emu/lmdr.node: the normal addon, except that the CUDA backend's sources
// (cuda/*.cu) are compiled as host C++ against the SIMT emulator (cuda_emu.h, emu_runtime.cpp),
// and build-emu/fake-cublaslt/libcublasLt.so.13 (fake_cublaslt.cpp) stands in for cuBLASLt. It
// lets test/gpu/ run every kernel on a machine without a GPU:
//   node test/gpu/emu/build.mjs
//   LMDR_ADDON=build-emu/lmdr.node LMDR_CUBLASLT=build-emu/fake-cublaslt npx mocha test/gpu/*.test.ts
// Emulation checks indexing, synchronisation and numerics, not speed or memory limits.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../..');
const out = process.env.LMDR_EMU_OUT ? path.resolve(process.env.LMDR_EMU_OUT) : path.join(root, 'build-emu'); // another dir lets two builds coexist
const objDir = path.join(out, 'obj');
const srcDir = path.join(out, 'src');
fs.mkdirSync(objDir, { recursive: true });
fs.mkdirSync(srcDir, { recursive: true });

// `k<<<cfg>>>(args);` -> `::emu::launch(cfg, [&] { k(args); });`; extern shared arrays -> the block buffer
function rewrite(text) {
  text = text.replace(/extern __shared__ ([\w ]+?) (\w+)\[\];/g, '$1* $2 = reinterpret_cast<$1*>(::emu::dyn_smem());');
  let result = '';
  let i = 0;
  for (;;) {
    const at = text.indexOf('<<<', i);
    if (at < 0) break;
    let start = at;
    while (start > 0 && !/\s/.test(text[start - 1])) start--;
    const callee = text.slice(start, at);
    const cfgEnd = text.indexOf('>>>', at);
    const cfg = text.slice(at + 3, cfgEnd);
    let j = cfgEnd + 3;
    if (text[j] !== '(') throw new Error(`unexpected launch syntax near ${text.slice(start, j + 20)}`);
    let depth = 0;
    let k = j;
    for (; k < text.length; k++) {
      if (text[k] === '(') depth++;
      else if (text[k] === ')' && --depth === 0) break;
    }
    const args = text.slice(j + 1, k);
    result += text.slice(i, start) + `::emu::launch(${cfg}, [&] { ${callee}(${args}); })`;
    i = k + 1;
  }
  return result + text.slice(i);
}

const cxx = process.env.CXX ?? 'g++';
const cudaInc = process.env.CUDA_HOME ? path.join(process.env.CUDA_HOME, 'include') : '/usr/local/cuda/include';
const napiInc = [path.join(root, 'node_modules/node-api-headers/include'), path.join(root, 'node_modules/node-addon-api')];
const version = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version;
const flags = ['-std=c++17', '-O1', '-g', '-fPIC', '-Wno-attributes', `-I${path.join(root, 'cpp')}`, `-I${cudaInc}`, `-I${here}`,
  ...napiInc.map((d) => `-I${d}`), '-DNAPI_VERSION=8', '-DNAPI_CPP_EXCEPTIONS', '-DNODE_ADDON_API_DISABLE_DEPRECATED',
  '-DLMDR_CUDA=1', `-DLMDR_VERSION="${version}"`, '-DLMDR_BUILD_FLAGS="emulated CUDA (test/gpu/emu)"'];

const units = [];
const walk = (dir, ext) => fs.readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((e) =>
  e.isDirectory() ? walk(path.join(dir, e.name), ext) : e.name.endsWith(ext) ? [path.join(dir, e.name)] : []);
for (const f of walk('cpp', '.cpp')) units.push({ src: path.join(root, f), extra: [] });
// a rewritten mirror of cuda/ (headers too: they hold launches) next to a link to cpp/
fs.mkdirSync(path.join(srcDir, 'cuda'), { recursive: true });
if (!fs.existsSync(path.join(srcDir, 'cpp'))) fs.symlinkSync(path.join(root, 'cpp'), path.join(srcDir, 'cpp'));
for (const f of [...walk('cuda', '.cuh'), ...walk('cuda', '.h')]) {
  const dst = path.join(srcDir, f);
  const text = rewrite(fs.readFileSync(path.join(root, f), 'utf8'));
  if (!fs.existsSync(dst) || fs.readFileSync(dst, 'utf8') !== text) fs.writeFileSync(dst, text);
}
for (const f of walk('cuda', '.cu')) {
  const dst = path.join(srcDir, f + '.cpp');
  const text = rewrite(fs.readFileSync(path.join(root, f), 'utf8'));
  if (!fs.existsSync(dst) || fs.readFileSync(dst, 'utf8') !== text) fs.writeFileSync(dst, text);
  units.push({ src: dst, extra: ['-include', path.join(here, 'cuda_emu.h')] });
}
units.push({ src: path.join(here, 'emu_runtime.cpp'), extra: [] });

const objs = [];
const jobs = Math.max(1, Math.min(Number(process.env.JOBS ?? 2), os.cpus().length));
let pending = [...units];
const { spawn } = await import('node:child_process');
async function compile(u) {
  const obj = path.join(objDir, path.relative(root, u.src).replace(/[\/]/g, '_') + '.o');
  objs.push(obj);
  if (fs.existsSync(obj) && fs.statSync(obj).mtimeMs > Math.max(fs.statSync(u.src).mtimeMs, newestHeader)) return;
  await new Promise((resolve, reject) => {
    const p = spawn(cxx, [...flags, ...u.extra, '-c', u.src, '-o', obj], { stdio: 'inherit' });
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cxx} failed on ${u.src}`))));
  });
}
const headers = [...walk('cpp', '.h'), ...walk('cuda', '.h'), ...walk('cuda', '.cuh')].map((f) => path.join(root, f));
headers.push(path.join(here, 'emu_runtime.cpp'));
headers.push(path.join(here, 'cuda_emu.h'));
const newestHeader = Math.max(...headers.map((h) => fs.statSync(h).mtimeMs));
await Promise.all(Array.from({ length: jobs }, async () => {
  while (pending.length) await compile(pending.shift());
}));
execFileSync(cxx, ['-shared', '-o', path.join(out, 'lmdr.node'), ...objs, '-lpthread', '-ldl'], { stdio: 'inherit' });
// the fake cuBLASLt, found through LMDR_CUBLASLT like a real one
const fakeDir = path.join(out, 'fake-cublaslt');
fs.mkdirSync(fakeDir, { recursive: true });
execFileSync(cxx, [...flags, '-shared', '-o', path.join(fakeDir, 'libcublasLt.so.13'), path.join(here, 'fake_cublaslt.cpp')], { stdio: 'inherit' });
process.stdout.write(`built ${path.join(out, 'lmdr.node')}; run with LMDR_CUBLASLT=${fakeDir}\n`);
