// Shared setup for the native model tests: tiny random checkpoints loaded into the addon,
// random packed batches, and a fixed random projection of the embeddings as a scalar loss.
import { makeTinyModel, type TinyModelOptions } from '../helpers/tiny-models.ts';
import { normalRng, randInt, uniformRng } from '../helpers/rng.ts';
import { readModelConfig, type ModelInfo } from '../../lib/model/config.ts';
import { loadCheckpoint } from '../../lib/model/checkpoint.ts';
import { native, type ForwardOptions, type NativeModel, type TensorSource } from '../../lib/native.ts';

export interface Tiny {
  dir: string;
  info: ModelInfo;
  sources: TensorSource[];
}

const cache = new Map<string, Tiny>();

/** A tiny checkpoint (made once per option set) with its config and tensor sources. */
export function tiny(opts: TinyModelOptions): Tiny {
  const key = JSON.stringify(opts);
  let t = cache.get(key);
  if (!t) {
    const dir = makeTinyModel(opts);
    const info = readModelConfig(dir);
    t = { dir, info, sources: loadCheckpoint(dir, info) };
    cache.set(key, t);
  }
  return t;
}

export async function load(t: Tiny, device = 'cpu-f64'): Promise<NativeModel> {
  return native().loadModel(t.info.native, t.sources, device);
}

export interface PackedBatch {
  ids: Int32Array;
  cu: Int32Array;
  seqs: number;
}

/** Random sequences of the given lengths, packed. */
export function randomBatch(seed: number, lengths: number[], vocab: number): PackedBatch {
  const u = uniformRng(seed);
  const cu = new Int32Array(lengths.length + 1);
  lengths.forEach((l, i) => (cu[i + 1] = cu[i] + l));
  const ids = new Int32Array(cu[lengths.length]);
  for (let i = 0; i < ids.length; i++) ids[i] = randInt(u, 0, vocab);
  return { ids, cu, seqs: lengths.length };
}

/** Sequences [from, to) of a packed batch as their own packed batch. */
export function sliceBatch(b: PackedBatch, from: number, to: number): PackedBatch {
  const start = b.cu[from];
  const cu = new Int32Array(to - from + 1);
  for (let i = from; i <= to; i++) cu[i - from] = b.cu[i] - start;
  return { ids: b.ids.slice(start, b.cu[to]), cu, seqs: to - from };
}

/** A fixed random projection P [B,H] with float32-exact values: loss = sum(P * embeddings). */
export function projection(seed: number, n: number): Float32Array {
  const r = normalRng(seed);
  const p = new Float32Array(n);
  for (let i = 0; i < n; i++) p[i] = r();
  return p;
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

export async function loss(m: NativeModel, b: PackedBatch, p: Float32Array, opts: ForwardOptions): Promise<number> {
  return dot(await m.forward64(b.ids, b.cu, { ...opts, keep: false }), p);
}

/** Pins every trainable parameter to float64 copies we own (so perturbations are exact). */
export function pinParams(m: NativeModel): Map<string, Float64Array> {
  const values = new Map<string, Float64Array>();
  for (const t of m.params()) {
    const v = Float64Array.from(t.data);
    m.setParam(t.name, v);
    values.set(t.name, v);
  }
  return values;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return Number.isNaN(m) ? Infinity : m;
}

/** Gives a LoRA B matrix random non-zero values (B = 0 would hide every gradient of A). */
export function randomizeLoraB(m: NativeModel, seed: number, std = 0.2): void {
  const r = normalRng(seed);
  for (const t of m.params()) {
    if (!t.name.endsWith('.lora_B.weight')) continue;
    const v = new Float64Array(t.data.length);
    for (let i = 0; i < v.length; i++) v[i] = std * r();
    m.setParam(t.name, v);
  }
}
