#!/usr/bin/env node
// The one list of native sources, read by CMakeLists.txt and binding.gyp alike.
// Usage: node scripts/sources.mjs cpu|cuda [--sep ;]  (paths relative to the package root)
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const kind = process.argv[2] ?? 'cpu';
const sepIndex = process.argv.indexOf('--sep');
const sep = sepIndex > 0 ? process.argv[sepIndex + 1] : ' ';

function walk(dir, ext) {
  const out = [];
  for (const entry of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
    const rel = path.posix.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...walk(rel, ext));
    else if (entry.name.endsWith(ext)) out.push(rel);
  }
  return out.sort();
}

const files = kind === 'cuda' ? walk('cuda', '.cu') : walk('cpp', '.cpp');
process.stdout.write(files.join(sep));
