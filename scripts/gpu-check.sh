#!/usr/bin/env bash
# The whole GPU check in one command, for a GPU host that has PyTorch but maybe no Node.js or npm:
#   info       the addon loads, sees the GPU and finds cuBLASLt
#   tests      the GPU tests (test/gpu/*.test.ts but golden) with LMDR_REQUIRE_GPU=1
#   golden     Hugging Face / PEFT / sentence-transformers golden fixtures (make_golden.py, every
#              architecture), then test/gpu/golden.test.ts on the CPU and the GPU backend
#   encode     bench: encode vs transformers bf16 SDPA            (npm run bench -- --only encode-gpu)
#   train      bench: LoRA InfoNCE step vs PyTorch + PEFT         (train-step-gpu)
#   score      bench: LLM reward scoring vs transformers bf16     (score-gpu)
#   topk       bench: exact top-k vs torch.matmul + topk          (topk-gpu)
#   attention  bench: attention kernel TFLOP/s vs SDPA            (attention-gpu)
#   profile    GPU time per op (LMDR_CUDA_PROFILE=1) of a small encode and two training steps
# Each part is time-boxed and logged, so one that fails or hangs still leaves the others' results.
# Without a GPU (or PyTorch) every part says why it skipped and the script exits 0: CI runs it so
# (a dry run that checks that every file a part needs is there and that the Python scripts parse).
#
# usage: bash scripts/gpu-check.sh [--out DIR] [--parts info,tests,...] [--budget SECONDS]
#   --out DIR       where everything goes (default $OUT, else ./gpu-check-out); it gets at most
#                   four files: gpu-check.log (all output), summary.txt (a line per part),
#                   results.tar.gz (fixtures, bench/results JSON, RESULTS.md rows, part logs)
#   --budget S      stop starting parts once S seconds have passed (default 540); each part's own
#                   limit is cut to what is left
# Tools it looks for: `node` on PATH, else node.xz in the GPU pack (scripts/gpu-pack.sh makes
# .gpu/: node.xz, node_modules.tar.xz, lmdr.node, src/); node_modules here, else the pack's;
# the addon from LMDR_ADDON, else the pack's lmdr.node, else build/Release; libcublasLt from
# LMDR_CUBLASLT, else the first one found under /usr, /opt or python's site-packages.
# Exit code: 1 if a part that ran failed, else 0.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

out=${OUT:-$root/gpu-check-out}
parts=info,tests,golden,encode,train,score,topk,attention,profile
budget=540
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --parts) parts=$2; shift 2 ;;
    --budget) budget=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown argument $1 (see --help)" >&2; exit 1 ;;
  esac
done
for p in ${parts//,/ }; do
  case "$p" in info|tests|golden|encode|train|score|topk|attention|profile) ;; *) echo "gpu-check: --parts: unknown part \"$p\"" >&2; exit 1 ;; esac
done
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/lmdr-gpu-check.XXXXXX")
mkdir -p "$work/logs" "$work/bench-results"
log="$out/gpu-check.log"
summary="$out/summary.txt"
: >"$log"
: >"$summary"
exec > >(tee -a "$log") 2>&1
started=$(date +%s)
say() { echo "gpu-check: $*"; }
say "$(date -u +%FT%TZ) in $root, parts $parts, budget ${budget}s"

# --- the pack (node, node_modules, addon) --------------------------------------------------------
pack=${LMDR_GPU_PACK:-}
[[ -z "$pack" && -f "$root/.gpu/node.xz" ]] && pack=$root/.gpu
[[ -z "$pack" && -f "$root/../node.xz" ]] && pack=$(cd "$root/.." && pwd)
if ! command -v node >/dev/null 2>&1; then
  if [[ -n "$pack" && -f "$pack/node.xz" ]]; then
    if command -v xz >/dev/null 2>&1; then xz -dc "$pack/node.xz" >"$work/node"
    else python3 -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],'wb'))" "$pack/node.xz" "$work/node"; fi
    chmod +x "$work/node"
    export PATH="$work:$PATH"
  else
    say "no node on PATH and no node.xz in a GPU pack (run scripts/gpu-pack.sh): nothing can run"; exit 1
  fi
fi
if [[ ! -d node_modules/mocha && -n "$pack" && -f "$pack/node_modules.tar.xz" ]]; then
  if command -v xz >/dev/null 2>&1; then tar -xJf "$pack/node_modules.tar.xz"
  else python3 -c "import tarfile,sys; tarfile.open(sys.argv[1]).extractall('.')" "$pack/node_modules.tar.xz"; fi
fi
[[ -d node_modules/mocha && -d node_modules/tsx ]] || { say "node_modules (mocha, tsx) missing: run npm install, or carry the GPU pack"; exit 1; }
if [[ -z "${LMDR_ADDON:-}" && -n "$pack" && -f "$pack/lmdr.node" ]]; then export LMDR_ADDON="$pack/lmdr.node"; fi
# An addon built elsewhere may not load here (another libstdc++): build it here if the tools are here.
if ! node -e "require(process.env.LMDR_ADDON || './build/Release/lmdr.node')" 2>"$work/addon-error"; then
  say "the addon does not load: $(head -c 400 "$work/addon-error")"
  if command -v cmake >/dev/null && command -v nvcc >/dev/null; then
    say "building it here (cmake + nvcc)"; unset LMDR_ADDON
    node scripts/build.mjs >"$work/build.log" 2>&1 || { tail -20 "$work/build.log"; say "build failed"; }
  fi
fi
say "node $(node --version), addon ${LMDR_ADDON:-build/Release (node-gyp-build)}"

# --- what this host has ----------------------------------------------------------------------------
if [[ -z "${LMDR_CUBLASLT:-}" ]]; then
  for dir in $(python3 -c 'import site,sys; print(" ".join(site.getsitepackages()+[site.getusersitepackages()]))' 2>/dev/null) /usr/local/cuda /usr/lib /opt; do
    [[ -d "$dir" ]] || continue
    found=$(find "$dir" -name 'libcublasLt.so*' -type f 2>/dev/null | sort | head -1)
    if [[ -n "$found" ]]; then export LMDR_CUBLASLT=$found; break; fi
  done
fi
say "cuBLASLt: ${LMDR_CUBLASLT:-not found (the addon searches its own list)}"
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv,noheader 2>&1 | sed 's/^/gpu-check: nvidia-smi: /'
gpu_reason=$(node --import tsx --input-type=module -e "
  import { noGpuReason } from './test/gpu/gpu.ts';
  console.log(noGpuReason());" 2>&1 | tail -1)
torch_reason=$(python3 -c 'import torch, transformers; assert torch.cuda.is_available(), "torch sees no CUDA device"' 2>&1 | tail -1)
command -v python3 >/dev/null 2>&1 || torch_reason="no python3"
[[ -n "$gpu_reason" ]] && say "no GPU for lmdr: $gpu_reason"
[[ -n "$torch_reason" ]] && say "no PyTorch with CUDA + transformers: $torch_reason"

# --- running one part --------------------------------------------------------------------------------
failed=0
pack_results() { # everything so far into one archive, so a later timeout still returns it
  cp bench/RESULTS.md "$work/RESULTS.md" 2>/dev/null
  local items=(logs bench-results RESULTS.md)
  [[ -d test/fixtures/golden ]] && { rm -rf "$work/golden"; cp -r test/fixtures/golden "$work/golden"; items+=(golden); }
  tar -czf "$out/results.tar.gz.tmp" -C "$work" "${items[@]}" && mv "$out/results.tar.gz.tmp" "$out/results.tar.gz"
}
# part NAME LIMIT_S NEEDS(gpu|gpu-torch) FILES... -- COMMAND...
part() {
  local name=$1 limit=$2 needs=$3; shift 3
  local files=()
  while [[ "$1" != "--" ]]; do files+=("$1"); shift; done
  shift
  [[ ",$parts," == *",$name,"* ]] || return 0
  for f in "${files[@]}"; do
    if [[ ! -e "$f" ]]; then say "[$name] FAILED: $f is missing"; echo "$name failed: $f missing" >>"$summary"; failed=1; return; fi
  done
  local why=""
  [[ -n "$gpu_reason" ]] && why="no GPU ($gpu_reason)"
  [[ -z "$why" && "$needs" == gpu-torch && -n "$torch_reason" ]] && why="no PyTorch with CUDA ($torch_reason)"
  if [[ -n "$why" ]]; then say "[$name] skipped: $why"; echo "$name skipped: $why" >>"$summary"; return; fi
  local left=$((budget - ($(date +%s) - started)))
  if (( left < 20 )); then say "[$name] skipped: the ${budget}s budget is spent"; echo "$name skipped: budget spent" >>"$summary"; return; fi
  (( limit > left )) && limit=$left
  say "[$name] start (limit ${limit}s): $*"
  local t0=$(date +%s)
  timeout -k 10 "$limit" "$@" > >(tee "$work/logs/$name.log") 2>&1
  local rc=$? secs=$(( $(date +%s) - t0 ))
  sleep 0.2 # let tee finish the part's log
  if (( rc == 0 )); then say "[$name] ok in ${secs}s"; echo "$name ok ${secs}s" >>"$summary"
  elif (( rc == 124 || rc == 137 )); then say "[$name] FAILED: timed out after ${limit}s"; echo "$name failed: timed out after ${limit}s" >>"$summary"; failed=1
  else say "[$name] FAILED: exit $rc after ${secs}s"; echo "$name failed: exit $rc after ${secs}s" >>"$summary"; failed=1; fi
  pack_results
}

# The dry-run checks that cost nothing: the Python scripts parse.
if command -v python3 >/dev/null 2>&1; then
  python3 -m py_compile test/fixtures/make_golden.py bench/gpu/torch_baseline.py && say "python scripts parse" || failed=1
  find test/fixtures bench/gpu -name __pycache__ -prune -exec rm -rf {} + 2>/dev/null
fi

mocha=(node node_modules/mocha/bin/mocha.js --no-config --node-option import=tsx --timeout 600000 --reporter spec)
bench=(node node_modules/tsx/dist/cli.mjs bench/run.ts --no-append)
part info 30 gpu lib/cli/info.ts -- node --import tsx --input-type=module -e "
  import { native } from './lib/native.ts';
  const i = native().buildInfo(); console.log(JSON.stringify(i, null, 1));
  const { noGpuReason } = await import('./test/gpu/gpu.ts'); const r = noGpuReason(); if (r) throw new Error(r);"
gpu_tests=$(ls test/gpu/*.test.ts | grep -v golden.test.ts)
part tests 150 gpu $gpu_tests -- env LMDR_REQUIRE_GPU=1 "${mocha[@]}" $gpu_tests
part golden 150 gpu-torch test/fixtures/make_golden.py test/gpu/golden.test.ts -- bash -c '
  python3 test/fixtures/make_golden.py --out test/fixtures/golden; made=$?
  LMDR_REQUIRE_GPU=1 "$@" test/gpu/golden.test.ts && exit $made' golden "${mocha[@]}"
part encode 120 gpu-torch bench/gpu/encode.ts -- "${bench[@]}" --only encode-gpu --results-dir "$work/bench-results/encode"
part train 120 gpu-torch bench/gpu/train-step.ts -- "${bench[@]}" --only train-step-gpu --results-dir "$work/bench-results/train"
part score 90 gpu-torch bench/gpu/score.ts -- "${bench[@]}" --only score-gpu --results-dir "$work/bench-results/score"
part topk 120 gpu-torch bench/gpu/topk.ts -- "${bench[@]}" --only topk-gpu --results-dir "$work/bench-results/topk"
part attention 60 gpu-torch bench/gpu/attention.ts bench/gpu/attention_bench.cu -- "${bench[@]}" --only attention-gpu --results-dir "$work/bench-results/attention"
part profile 90 gpu-torch bench/gpu/encode.ts bench/gpu/train-step.ts -- env LMDR_CUDA_PROFILE=1 bash -c '
  node node_modules/tsx/dist/cli.mjs bench/gpu/encode.ts --passages 512 --repeats 1 --lmdr-only &&
  node node_modules/tsx/dist/cli.mjs bench/gpu/train-step.ts --steps 2 --lmdr-only'
pack_results
rm -rf "$work"

say "summary ($(( $(date +%s) - started ))s):"
sed 's/^/  /' "$summary"
exit $failed
