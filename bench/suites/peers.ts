// lmdr against the CPU peers users would pick, side by side in one run (issue 16): each side in
// a process of its own with 2 threads, same weights and inputs, outputs checked against each
// other before anything is timed, then medians of interleaved runs. Every comparison runs twice:
// glibc's default malloc and huge-page malloc (GLIBC_TUNABLES=glibc.malloc.hugetlb=1) on both
// sides; the peers always run with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset so OpenBLAS picks
// its best kernel. Minor page faults per run are reported for every side.
//   encode-cpu-peers  Qwen2.5-0.5B shape cut to 4 layers, f32, 64 x 256 tokens, last-token pooling:
//                     PyTorch eager f32 (bench/cpu/torch_peer.py) and llama.cpp (node-llama-cpp,
//                     bench/cpu/llama-cpp.ts); lmdr's model FLOP rate against torch.mm's f32 peak
//   topk-cpu-peers    exact inner-product top-k, 200k x 768 f32, 1k queries, k 10: FAISS IndexFlatIP
//                     and torch.matmul + torch.topk
//   train-cpu-peers   one LoRA InfoNCE step (r 8 on every projection, AdamW), hidden 256, 4 layers,
//                     16 queries x 4 passages of 64 tokens: torch autograd
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { normalRng } from '../../lib/train/random.ts';
import { makeTinyModel } from '../../test/helpers/tiny-models.ts';
import { uniformRng, randInt } from '../../test/helpers/rng.ts';
import { qwen2ToGguf } from '../cpu/gguf.ts';
import { installLlamaCpp, llamaCppMissing, NODE_LLAMA_CPP } from '../cpu/llama-cpp.ts';
import { interleave, MALLOC_MODES, pythonWith, pythonWorker, Worker, workerEnv, type MallocMode, type Timing } from '../cpu/workers.ts';
import type { Figure, Suite, SuiteContext } from './types.ts';

export const PEER_THREADS = 2;

/** A decoder model dir, generated once per machine under $TMPDIR (the 4-layer f32 one is 783 MB). */
function cachedModel(name: string, sizes: { hidden: number; layers: number; heads: number; kvHeads: number; intermediate: number; vocab: number }, log: (m: string) => void): string {
  const dir = path.join(os.tmpdir(), `lmdr-bench-${name}`);
  if (!fs.existsSync(path.join(dir, 'model.safetensors'))) {
    log(`generating ${dir} (random f32 weights, once)`);
    fs.rmSync(dir, { recursive: true, force: true });
    makeTinyModel({ arch: 'qwen2', ...sizes, tieWordEmbeddings: true, seed: 1, dir });
  }
  return dir;
}

/**
 * `n` sequences of `length` random token ids below `vocab`, written as int32 rows; with `pool`,
 * drawn from that many distinct ids spread over the vocabulary (so a compact vocabulary holding
 * just the ids used leaves llama.cpp's per-token vocabulary projection negligible).
 */
function writeIds(file: string, n: number, length: number, vocab: number, seed: number, pool?: number): Int32Array {
  const u = uniformRng(seed);
  const choices = pool ? Array.from({ length: pool }, () => randInt(u, 0, vocab)) : undefined;
  const ids = Int32Array.from({ length: n * length }, () => (choices ? choices[randInt(u, 0, choices.length)] : randInt(u, 0, vocab)));
  fs.writeFileSync(file, ids);
  return ids;
}

const readF32 = (file: string) => {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};
const readI32 = (file: string) => {
  const b = fs.readFileSync(file);
  return new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};

/** Smallest cosine between matching rows of two [rows, dim] embedding sets. */
export function minCosine(a: Float32Array, b: Float32Array, dim: number): number {
  let worst = 1;
  for (let r = 0; r < a.length / dim; r++) {
    let ab = 0, aa = 0, bb = 0;
    for (let h = r * dim; h < (r + 1) * dim; h++) {
      ab += a[h] * b[h];
      aa += a[h] * a[h];
      bb += b[h] * b[h];
    }
    worst = Math.min(worst, ab / Math.sqrt(aa * bb));
  }
  return worst;
}

const int = (v: number) => Math.round(v).toLocaleString('en-US');
const blasName = (info: Record<string, unknown>) => {
  const libs = (info.blas as string[] | undefined) ?? [];
  const pick = libs.find((l) => /openblas|mkl|blis/i.test(l)) ?? libs[0];
  return pick ? path.basename(path.dirname(pick)) === 'blas' ? 'reference BLAS' : pick.includes('openblas') ? 'OpenBLAS' : path.basename(pick) : 'no BLAS mapped';
};

interface Side {
  worker: Worker;
  label: string; // e.g. "PyTorch 1.13.0 eager f32 (OpenBLAS)"
  check: string; // the agreement with lmdr measured before timing
}

/** Starts lmdr's worker for `mode`; stderr lines go to the log with a prefix. */
function lmdrWorker(ctx: SuiteContext, mode: MallocMode): Worker {
  return Worker.node('lmdr', 'bench/cpu/lmdr-worker.ts', workerEnv(mode, PEER_THREADS, false), (l) => ctx.log(`  lmdr: ${l}`));
}

function peerWorker(ctx: SuiteContext, label: string, python: string, script: string, mode: MallocMode): Worker {
  return pythonWorker(label, python, script, workerEnv(mode, PEER_THREADS, true), (l) => ctx.log(`  ${label}: ${l}`));
}

/** Closes every worker, whatever happened. */
async function closeAll(workers: Worker[]): Promise<void> {
  await Promise.allSettled(workers.map((w) => w.close()));
}

const modeNote = (mode: MallocMode) => (mode === 'hugepage' ? 'huge-page malloc on both sides' : 'default malloc');
const faults = (name: string, t: Timing) => `${name} ${int(t.minflt)} minor faults/run`;

/** lmdr and each peer timed in turns; a figure per peer (rate = work / median seconds). */
async function compare(ctx: SuiteContext, lmdr: Worker, sides: Side[], rounds: number, what: { name: string; unit: string; work: number }, mode: MallocMode) {
  const timings = await interleave([lmdr, ...sides.map((s) => s.worker)], rounds, (m) => ctx.log(`  ${mode}: ${m}`));
  const mine = timings.get(lmdr)!;
  const figures: Figure[] = sides.map((s) => {
    const theirs = timings.get(s.worker)!;
    const value = what.work / mine.seconds, baselineValue = what.work / theirs.seconds;
    return {
      name: `${what.name}, ${modeNote(mode)}`, value, unit: what.unit, baseline: s.label, baselineValue, ratio: value / baselineValue,
      check: `${s.check}; ${faults('lmdr', mine)}, ${faults(s.worker.label, theirs)}; median of ${rounds}`,
    };
  });
  return { figures, timings };
}

// ---------------------------------------------------------------- encode

const ENCODE_SHAPE = { hidden: 896, layers: 4, heads: 14, kvHeads: 2, intermediate: 4864, vocab: 151936 };
const ENCODE_QUICK = { hidden: 128, layers: 2, heads: 4, kvHeads: 2, intermediate: 512, vocab: 4096 };

/** Model FLOPs of a causal forward over `sequences` x `length` tokens (the linear layers, QK^T and PV over half the square). */
export function forwardFlops(s: typeof ENCODE_SHAPE, sequences: number, length: number): number {
  const d = s.hidden / s.heads;
  const linear = s.layers * (s.hidden * s.heads * d * 2 + 2 * s.hidden * s.kvHeads * d + 3 * s.hidden * s.intermediate);
  return sequences * (2 * linear * length + s.layers * 2 * length * length * s.heads * d);
}

interface LlamaGguf {
  tag: string; // worker label
  label: string; // the figure's baseline
  file: string;
  vocabIds?: number[]; // the compact vocabulary's ids (new id = index)
  minCos: number; // the agreement required with lmdr's embeddings
}

/**
 * The GGUFs llama.cpp runs, when node-llama-cpp is (or can be) installed: f32 with the full
 * vocabulary (cached next to the model), f32 and f16 weights on the compact vocabulary.
 */
function llamaCppGgufs(ctx: SuiteContext, model: string, vocab: number, vocabIds: number[]): { ggufs: LlamaGguf[]; reason?: string } {
  let reason = llamaCppMissing();
  if (reason && !process.env.CI && process.env.LMDR_BENCH_NO_INSTALL !== '1') reason = installLlamaCpp(ctx.log);
  if (reason) {
    ctx.log(`llama.cpp skipped: ${reason}`);
    return { ggufs: [], reason };
  }
  const full = path.join(model, 'llama-cpp-f32.gguf');
  if (!fs.existsSync(full)) {
    ctx.log(`writing ${full} (once)`);
    qwen2ToGguf(model, full, { weights: 'F32' });
  }
  const compactF32 = path.join(ctx.tmp, 'llama-cpp-compact-f32.gguf'), compactF16 = path.join(ctx.tmp, 'llama-cpp-compact-f16.gguf');
  ctx.log(`writing the compact-vocabulary GGUFs (${vocabIds.length} ids), f32 and f16 weights`);
  qwen2ToGguf(model, compactF32, { weights: 'F32', vocabIds });
  qwen2ToGguf(model, compactF16, { weights: 'F16', vocabIds });
  const v = `llama.cpp (${NODE_LLAMA_CPP})`;
  return {
    ggufs: [
      { tag: 'llama-f32-full', label: `${v} f32, full ${int(vocab)}-token vocabulary`, file: full, minCos: 0.9999 },
      { tag: 'llama-f32-compact', label: `${v} f32, compact ${vocabIds.length}-token vocabulary (layers alone)`, file: compactF32, vocabIds, minCos: 0.9999 },
      { tag: 'llama-f16-compact', label: `${v} f16 weights, compact ${vocabIds.length}-token vocabulary (layers alone)`, file: compactF16, vocabIds, minCos: 0.999 },
    ],
  };
}

export const encodePeersSuite: Suite = {
  name: 'encode-cpu-peers',
  needs: 'cpu',
  describe: 'encode, Qwen2.5-0.5B shape (4 layers, f32), 64 x 256 tokens: lmdr vs PyTorch eager f32 and llama.cpp, 2 threads each',
  unavailable: () => (pythonWith('torch').reason && llamaCppMissing() ? `${pythonWith('torch').reason}; ${llamaCppMissing()}` : undefined),
  async run(ctx) {
    const shape = ctx.quick ? ENCODE_QUICK : ENCODE_SHAPE;
    const [n, length, batch] = ctx.quick ? [8, 64, 4] : [64, 256, 16];
    const rounds = ctx.quick ? 1 : 3;
    const torch = pythonWith('torch');
    if (!torch.python) ctx.log(`PyTorch skipped: ${torch.reason}`);
    const model = cachedModel(ctx.quick ? 'qwen2-quick-f32' : 'qwen2.5-0.5b-4l-f32', shape, ctx.log);
    const ids = path.join(ctx.tmp, 'encode-ids.i32');
    const vocabIds = [...new Set(writeIds(ids, n, length, shape.vocab, 21, 1024))].sort((a, b) => a - b);
    const llamaModels = llamaCppGgufs(ctx, model, shape.vocab, vocabIds);
    const io = { ids, sequences: n, length, batch, model, threads: PEER_THREADS };
    const tokens = n * length;
    const flops = forwardFlops(shape, n, length);
    const figures: Figure[] = [];
    const settings: Record<string, unknown> = {
      model: `qwen2, ${JSON.stringify(shape)}, tied embeddings, f32`, sequences: n, length, batch, threads: PEER_THREADS, rounds, modelGflopPerRun: flops / 1e9,
      inputIds: `${vocabIds.length} distinct ids`, llamaCpp: llamaModels.reason ?? `${NODE_LLAMA_CPP}, prebuilt CPU binary, f32 KV cache, flash attention off, one sequence per getEmbeddingFor call`,
    };
    for (const mode of MALLOC_MODES) {
      const lmdr = lmdrWorker(ctx, mode);
      const workers: Worker[] = [lmdr];
      try {
        ctx.log(`${mode}: lmdr encode set-up`);
        const lmdrOut = path.join(ctx.tmp, `encode-lmdr-${mode}.f32`);
        const info = await lmdr.request<{ dim: number }>({ cmd: 'setup', task: 'encode', ...io, out: lmdrOut });
        const mine = readF32(lmdrOut);
        const sides: Side[] = [];
        let peak: number | undefined;
        if (torch.python) {
          ctx.log(`${mode}: PyTorch set-up (torch.mm peak, then the same forward)`);
          const gemm = peerWorker(ctx, 'torch.mm', torch.python, 'bench/cpu/torch_peer.py', mode);
          try {
            const g = await gemm.request<{ flops: number }>({ cmd: 'setup', task: 'gemm', n: ctx.quick ? 1024 : 4096, threads: PEER_THREADS });
            let best = Infinity;
            for (let i = 0; i < 3; i++) best = Math.min(best, (await gemm.request<{ seconds: number }>({ cmd: 'run' })).seconds);
            peak = g.flops / best;
          } finally {
            await gemm.close();
          }
          const w = peerWorker(ctx, 'torch', torch.python, 'bench/cpu/torch_peer.py', mode);
          workers.push(w);
          const out = path.join(ctx.tmp, `encode-torch-${mode}.f32`);
          const t = await w.request({ cmd: 'setup', task: 'encode', ...io, out });
          const cos = minCosine(mine, readF32(out), info.dim);
          if (!(cos >= 0.9999)) throw new Error(`lmdr and PyTorch embeddings disagree: min cosine ${cos} (< 0.9999)`);
          sides.push({ worker: w, label: `PyTorch ${t.torch} eager f32 (${blasName(t)}), batches of ${batch}`, check: `min cos to lmdr ${cos.toFixed(7)}` });
          settings.torch = t.torch;
          settings.torchBlas = t.blas;
        }
        for (const g of llamaModels.ggufs) {
          ctx.log(`${mode}: ${g.label} set-up`);
          const w = Worker.node(g.tag, 'bench/cpu/llama-cpp.ts', workerEnv(mode, PEER_THREADS, true), (l) => ctx.log(`  ${g.tag}: ${l}`));
          workers.push(w);
          const out = path.join(ctx.tmp, `encode-${g.tag}-${mode}.f32`);
          await w.request({ cmd: 'setup', task: 'encode', ...io, gguf: g.file, vocab_ids: g.vocabIds, out });
          const cos = minCosine(mine, readF32(out), info.dim);
          if (!(cos >= g.minCos)) throw new Error(`lmdr and ${g.label} embeddings disagree: min cosine ${cos} (< ${g.minCos})`);
          sides.push({ worker: w, label: g.label, check: `min cos to lmdr ${cos.toFixed(7)}` });
        }
        if (sides.length === 0) throw new Error(`no peer to compare with (${torch.reason}; ${llamaModels.reason})`);
        const out = await compare(ctx, lmdr, sides, rounds, { name: `encode ${n} x ${length} tokens`, unit: 'tokens/s', work: tokens }, mode);
        figures.push(...out.figures);
        if (peak !== undefined) {
          const lmdrRate = flops / out.timings.get(lmdr)!.seconds;
          const torchRate = flops / out.timings.get(sides[0].worker)!.seconds;
          figures.push({
            name: `encode model FLOP rate vs f32 GEMM peak, ${modeNote(mode)}`, value: lmdrRate / 1e9, unit: 'GFLOP/s',
            baseline: `torch.mm ${ctx.quick ? 1024 : 4096}² f32 peak, best of 3`, baselineValue: peak / 1e9, ratio: lmdrRate / peak,
            check: `lmdr at ${(100 * lmdrRate / peak).toFixed(0)}% of peak, PyTorch eager at ${(100 * torchRate / peak).toFixed(0)}%`,
          });
        }
        settings[`minorFaults_${mode}`] = Object.fromEntries([...out.timings].map(([w, t]) => [w.label, t.minflt]));
      } finally {
        await closeAll(workers);
      }
    }
    return { figures, settings };
  },
};

// ---------------------------------------------------------------- top-k

/** Seeded unit-norm gaussian rows. */
function unitRows(rows: number, dim: number, seed: number): Float32Array {
  const normal = normalRng(seed);
  const out = new Float32Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let norm = 0;
    for (let h = r * dim; h < (r + 1) * dim; h++) {
      out[h] = normal();
      norm += out[h] * out[h];
    }
    const inv = 1 / Math.sqrt(norm);
    for (let h = r * dim; h < (r + 1) * dim; h++) out[h] *= inv;
  }
  return out;
}

/** Share of lmdr's top-k ids the peer also returned, and the largest score difference (scores sorted per query). */
export function topkAgreement(ids: Int32Array, scores: Float32Array, otherIds: Int32Array, otherScores: Float32Array, k: number): { overlap: number; maxScoreDiff: number } {
  let same = 0, maxScoreDiff = 0;
  for (let q = 0; q < ids.length / k; q++) {
    const set = new Set(ids.subarray(q * k, (q + 1) * k));
    for (let j = q * k; j < (q + 1) * k; j++) {
      if (set.has(otherIds[j])) same++;
      maxScoreDiff = Math.max(maxScoreDiff, Math.abs(scores[j] - otherScores[j]));
    }
  }
  return { overlap: same / ids.length, maxScoreDiff };
}

export const topkPeersSuite: Suite = {
  name: 'topk-cpu-peers',
  needs: 'cpu',
  describe: 'exact top-k, 200k x 768 f32, 1k queries, k 10: lmdr vs FAISS IndexFlatIP and torch.matmul + torch.topk, 2 threads each',
  unavailable: () => (pythonWith('faiss').python || pythonWith('torch').python ? undefined : `${pythonWith('faiss').reason}; ${pythonWith('torch').reason}`),
  async run(ctx) {
    const [N, Q, H, k] = ctx.quick ? [20_000, 100, 256, 10] : [200_000, 1000, 768, 10];
    const rounds = ctx.quick ? 1 : 5;
    const faiss = pythonWith('faiss'), torch = pythonWith('torch');
    if (!faiss.python) ctx.log(`FAISS skipped: ${faiss.reason}`);
    if (!torch.python) ctx.log(`PyTorch skipped: ${torch.reason}`);
    if (!faiss.python && !torch.python) throw new Error(`no peer to compare with (${faiss.reason}; ${torch.reason})`);
    ctx.log(`writing ${N} x ${H} corpus and ${Q} queries (seeded unit-norm gaussian rows)`);
    const corpus = path.join(ctx.tmp, 'topk-corpus.f32'), queries = path.join(ctx.tmp, 'topk-queries.f32');
    fs.writeFileSync(corpus, unitRows(N, H, 1234));
    fs.writeFileSync(queries, unitRows(Q, H, 5678));
    const io = { corpus, queries, corpus_rows: N, queries_rows: Q, dim: H, k, threads: PEER_THREADS, score_bytes: 256 << 20 };
    const figures: Figure[] = [];
    const settings: Record<string, unknown> = { corpus: N, queries: Q, dim: H, k, threads: PEER_THREADS, rounds, torchScoreChunkBytes: io.score_bytes };
    for (const mode of MALLOC_MODES) {
      const lmdr = lmdrWorker(ctx, mode);
      const workers: Worker[] = [lmdr];
      try {
        ctx.log(`${mode}: set-up (each side searches once; results compared)`);
        const outs = (who: string) => ({ out_ids: path.join(ctx.tmp, `topk-${who}-${mode}.ids`), out_scores: path.join(ctx.tmp, `topk-${who}-${mode}.scores`) });
        await lmdr.request({ cmd: 'setup', task: 'topk', ...io, ...outs('lmdr') });
        const mineIds = readI32(outs('lmdr').out_ids), mineScores = readF32(outs('lmdr').out_scores);
        const sides: Side[] = [];
        const peers = [
          faiss.python && { who: 'faiss', python: faiss.python, script: 'bench/cpu/faiss_peer.py', label: (i: Record<string, unknown>) => `FAISS ${i.faiss} IndexFlatIP (${blasName(i)})` },
          torch.python && { who: 'torch', python: torch.python, script: 'bench/cpu/torch_peer.py', label: (i: Record<string, unknown>) => `PyTorch ${i.torch} matmul + topk, ${i.chunk}-query chunks (${blasName(i)})` },
        ].filter((p) => !!p);
        for (const p of peers) {
          const w = peerWorker(ctx, p.who, p.python, p.script, mode);
          workers.push(w);
          const info = await w.request({ cmd: 'setup', task: 'topk', ...io, ...outs(p.who) });
          const a = topkAgreement(mineIds, mineScores, readI32(outs(p.who).out_ids), readF32(outs(p.who).out_scores), k);
          if (a.overlap < 0.999 || a.maxScoreDiff > 1e-4) throw new Error(`lmdr and ${p.who} top-k disagree: overlap ${a.overlap}, max score difference ${a.maxScoreDiff}`);
          sides.push({ worker: w, label: p.label(info), check: `top-k overlap ${(100 * a.overlap).toFixed(2)}%, max |score diff| ${a.maxScoreDiff.toExponential(1)}` });
          settings[`${p.who}Blas`] = info.blas;
        }
        const out = await compare(ctx, lmdr, sides, rounds, { name: `exact top-k ${N} x ${H}, ${Q} queries, k ${k}`, unit: 'queries/s', work: Q }, mode);
        figures.push(...out.figures);
        settings[`minorFaults_${mode}`] = Object.fromEntries([...out.timings].map(([w, t]) => [w.label, t.minflt]));
      } finally {
        await closeAll(workers);
      }
    }
    return { figures, settings };
  },
};

// ---------------------------------------------------------------- LoRA train step

export const trainPeersSuite: Suite = {
  name: 'train-cpu-peers',
  needs: 'cpu',
  describe: 'LoRA InfoNCE train step (r 8, all projections), hidden 256, 4 layers, 16 x 4 x 64 tokens: lmdr vs torch autograd, 2 threads each',
  unavailable: () => pythonWith('torch').reason,
  async run(ctx) {
    const torch = pythonWith('torch');
    if (!torch.python) throw new Error(`no peer to compare with (${torch.reason})`);
    const shape = ctx.quick ? { hidden: 64, layers: 2, heads: 4, kvHeads: 2, intermediate: 256, vocab: 1024 } : { hidden: 256, layers: 4, heads: 8, kvHeads: 2, intermediate: 1024, vocab: 4096 };
    const [B, G, L] = ctx.quick ? [4, 2, 16] : [16, 4, 64];
    const rounds = ctx.quick ? 1 : 7;
    const S = B * (1 + G);
    const model = cachedModel(ctx.quick ? 'qwen2-train-quick-f32' : 'qwen2-h256-4l-f32', shape, ctx.log);
    const ids = path.join(ctx.tmp, 'train-ids.i32');
    writeIds(ids, S, L, shape.vocab, 31);
    const step = { r: 8, alpha: 16, temperature: 0.02, lr: 1e-4, weight_decay: 0.01, clip: 1 };
    const io = { ids, sequences: S, length: L, batch: B, group: G, model, threads: PEER_THREADS, ...step };
    const figures: Figure[] = [];
    const settings: Record<string, unknown> = { model: `qwen2, ${JSON.stringify(shape)}, f32`, queries: B, group: G, length: L, ...step, loss: 'InfoNCE, cosine / temperature, in-batch + hard negatives', optimizer: 'AdamW, clip 1', rounds };
    for (const mode of MALLOC_MODES) {
      const lmdr = lmdrWorker(ctx, mode);
      const w = peerWorker(ctx, 'torch', torch.python, 'bench/cpu/torch_peer.py', mode);
      try {
        ctx.log(`${mode}: set-up (one step's loss and gradient norm from each side, compared)`);
        const lora = path.join(ctx.tmp, `train-lora-${mode}.safetensors`);
        const mine = await lmdr.request<{ loss: number; grad_norm: number }>({ cmd: 'setup', task: 'train', ...io, lora });
        const theirs = await w.request<{ loss: number; grad_norm: number; torch: string }>({ cmd: 'setup', task: 'train', ...io, lora });
        const dLoss = Math.abs(mine.loss - theirs.loss) / Math.abs(theirs.loss);
        const dGrad = Math.abs(mine.grad_norm - theirs.grad_norm) / theirs.grad_norm;
        if (!(dLoss < 1e-4 && dGrad < 1e-3)) throw new Error(`lmdr and PyTorch disagree: loss ${mine.loss} vs ${theirs.loss}, gradient norm ${mine.grad_norm} vs ${theirs.grad_norm}`);
        const check = `loss ${mine.loss.toFixed(5)} vs ${theirs.loss.toFixed(5)} (rel ${dLoss.toExponential(1)}), grad norm rel diff ${dGrad.toExponential(1)}`;
        const out = await compare(ctx, lmdr, [{ worker: w, label: `PyTorch ${theirs.torch} autograd, plain LoRA, AdamW (${blasName(theirs as unknown as Record<string, unknown>)})`, check }],
          rounds, { name: `LoRA InfoNCE step, ${B} queries + ${B * G} passages of ${L} tokens`, unit: 'tokens/s', work: S * L }, mode);
        figures.push(...out.figures);
        settings[`minorFaults_${mode}`] = Object.fromEntries([...out.timings].map(([wk, t]) => [wk.label, t.minflt]));
      } finally {
        await closeAll([lmdr, w]);
      }
    }
    return { figures, settings };
  },
};

export const peerSuites: Suite[] = [encodePeersSuite, topkPeersSuite, trainPeersSuite];
