#!/usr/bin/env bash
# CI step: the npm tarball (with prebuilds/) installs and loads where there is no cmake, nvcc or
# C++ compiler. The install runs with PATH holding only node, npm and npx, so any attempt to
# compile fails loudly (sh is there too: npm runs scripts through it); then `lmdr info` must load
# the prebuilt addon. Then apps import the installed package (scripts/check-pack/).
#   LMDR_CHECK_NODES="NODE ..."  also run the apps with these Node binaries (e.g. Node 22).
#   --fallback  also check the other path: a tarball without prebuilds/ builds from source on
#               install (needs cmake or node-gyp + a compiler; about a minute on 2 cores).
# Run `npm run prebuildify` first (it makes prebuilds/<platform>-<arch>/lmdr.node).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
platform=$(node -p 'process.platform + "-" + process.arch')
[[ -f "prebuilds/$platform/lmdr.node" ]] || { echo "check-pack: prebuilds/$platform/lmdr.node is missing: run npm run prebuildify" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/lmdr-check-pack.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "== check-pack: npm pack"
tarball=$(npm pack --silent --pack-destination "$work" 2>/dev/null | tail -1)
tarball="$work/$tarball"
listing=$(tar -tzf "$tarball")
grep -qx "package/prebuilds/$platform/lmdr.node" <<<"$listing" || { echo "check-pack: the tarball lacks prebuilds/$platform/lmdr.node" >&2; exit 1; }
if grep -q '^package/build' <<<"$listing"; then echo "check-pack: the tarball contains a build directory (node-gyp-build would load it before the prebuild)" >&2; exit 1; fi
echo "   $(basename "$tarball"): $(wc -l <<<"$listing") files, $(du -h "$tarball" | cut -f1)"

# A bin directory with node, npm, npx and sh (npm runs scripts through sh) only: no cmake, nvcc,
# make, cc, c++, g++, python.
toolbin="$work/toolbin"
mkdir -p "$toolbin"
for tool in node npm npx sh; do ln -s "$(command -v "$tool")" "$toolbin/$tool"; done
bare_path="$toolbin"
for tool in cmake nvcc cc c++ g++ gcc make python3; do
  if PATH="$bare_path" command -v "$tool" >/dev/null 2>&1; then echo "check-pack: $tool is still reachable" >&2; exit 1; fi
done

install_into() { # dir tarball path-for-install
  mkdir -p "$1"
  (cd "$1" && echo '{"name":"lmdr-check-pack","version":"1.0.0","private":true}' >package.json &&
    PATH="$3" npm install --no-audit --no-fund --prefer-offline --loglevel=error "$2")
}

echo "== check-pack: npm install <tarball> with PATH=node,npm,npx,sh only"
app="$work/app"
install_into "$app" "$tarball" "$bare_path"
[[ ! -d "$app/node_modules/lmdr/build" ]] || { echo "check-pack: install compiled the addon instead of using the prebuild" >&2; exit 1; }
info=$(cd "$app" && PATH="$bare_path" npx --no-install lmdr info)
echo "$info" | sed 's/^/   /'
grep -q '^build: cmake' <<<"$info" || { echo "check-pack: lmdr info does not report the prebuilt (cmake) addon" >&2; exit 1; }
(cd "$app" && PATH="$bare_path" node -e "
  const p = require.resolve('node-gyp-build', { paths: ['node_modules/lmdr'] });
  const file = require(p).path('node_modules/lmdr');
  if (!file.includes('/prebuilds/')) { console.error('check-pack: loaded ' + file + ', not the prebuild'); process.exit(1); }
  console.log('   loaded ' + file.slice(file.indexOf('node_modules')));
")

echo "== check-pack: the tarball ships compiled JavaScript, declarations and source maps, and no TypeScript loader"
for f in dist/index.js dist/index.d.ts dist/index.js.map dist/cli/main.js dist/engine.d.ts; do
  grep -qx "package/$f" <<<"$listing" || { echo "check-pack: the tarball lacks $f" >&2; exit 1; }
done
if grep -q '^package/dist/lmdr-bundle' <<<"$listing"; then echo "check-pack: the tarball contains the portable bundle" >&2; exit 1; fi
[[ ! -e "$app/node_modules/tsx" ]] || { echo "check-pack: installing lmdr installed tsx (it must be a dev dependency only)" >&2; exit 1; }
(cd "$app" && PATH="$bare_path" npx --no-install lmdr --help | grep -q '^usage: lmdr') || { echo "check-pack: lmdr --help failed" >&2; exit 1; }
echo "   dist/ with .js, .d.ts and .js.map; no tsx installed; lmdr --help runs (its start-up time: npm run bench -- --only cli-startup)"

echo "== check-pack: apps importing the package (plain JavaScript ESM, CommonJS, TypeScript)"
node --import tsx scripts/check-pack/make-model.ts "$work/fixture"
cp scripts/check-pack/app.mjs scripts/check-pack/app.cjs scripts/check-pack/app.ts "$app/"
(cd "$app" && PATH="$bare_path" node app.mjs "$work/fixture/model" "$work/fixture/train.jsonl" "$work/fixture/run")
(cd "$app" && PATH="$bare_path" node app.cjs)
# LMDR_CHECK_NODES="/path/to/node22 ..." runs the two apps under other Node binaries as well
for other in ${LMDR_CHECK_NODES:-}; do
  echo "   with $other ($("$other" --version)):"
  (cd "$app" && PATH="$bare_path" "$other" app.mjs "$work/fixture/model" "$work/fixture/train.jsonl" "$work/fixture/run-$("$other" --version)")
  (cd "$app" && PATH="$bare_path" "$other" app.cjs)
done
# tsc from this repository's devDependencies; @types/node likewise (an app would have its own)
(cd "$app" && node "$root/node_modules/typescript/bin/tsc" --strict --module nodenext --noEmit \
  --typeRoots "$root/node_modules/@types" --types node app.ts) || { echo "check-pack: app.ts does not type-check against the package's .d.ts files" >&2; exit 1; }
echo "   app.ts: type-checks with tsc --strict --module nodenext ($(node "$root/node_modules/typescript/bin/tsc" --version))"

echo "== check-pack: lmdr demo from the installed package (tiny sizes), with its BM25 row"
demo_out=$(cd "$app" && PATH="$bare_path" npx --no-install lmdr demo --output "$work/demo" --steps 2 --batch-size 4 \
  --max-train 16 --max-test 8 --years 2016-2021 --hidden 16 --layers 1 --device cpu --no-progress 2>/dev/null)
grep -E '^BM25 \(k1 0\.9, b 0\.4\)( +[0-9]\.[0-9]{4}){4}$' <<<"$demo_out" >/dev/null || { echo "check-pack: the demo printed no BM25 row:" >&2; echo "$demo_out" >&2; exit 1; }
grep -E '^after 2 steps' <<<"$demo_out" >/dev/null || { echo "check-pack: the demo printed no after-training row" >&2; exit 1; }
echo "   lmdr demo: before/after/BM25 table printed"

if [[ "${1:-}" == "--fallback" ]]; then
  echo "== check-pack: a tarball without prebuilds/ builds from source on install"
  mkdir -p "$work/unpacked"
  tar -xzf "$tarball" -C "$work/unpacked"
  rm -rf "$work/unpacked/package/prebuilds"
  tar -czf "$work/lmdr-noprebuild.tgz" -C "$work/unpacked" package
  src_app="$work/app-source"
  install_into "$src_app" "$work/lmdr-noprebuild.tgz" "$PATH"
  [[ -f "$src_app/node_modules/lmdr/build/Release/lmdr.node" ]] || { echo "check-pack: install did not build the addon from source" >&2; exit 1; }
  (cd "$src_app" && npx --no-install lmdr info | sed 's/^/   /')
fi
echo "== check-pack: ok"
