// The only import of the native addon: its types, its loading, and error translation.
// Everything heavy returns a Promise (the N-API layer runs it in an AsyncWorker).
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type DeviceName = string; // "cpu", "cpu-f64", "cuda", "cuda:N"
export type SafetensorsDType = 'F32' | 'F16' | 'BF16' | 'F64';
export type PoolingMode = 'eos' | 'cls' | 'mean';

export interface BuildInfo {
  version: string; // addon build version (package version at build time)
  backends: string[]; // compiled backends, e.g. ["cpu", "cpu-f64", "cuda"]
  cudaCompiled: boolean;
  cudaDevices: string[]; // names of visible devices
  cudaError: string; // why no CUDA device can be used ("" when one can)
  flags: string; // compiler, flags, archs
}

/** One tensor inside a safetensors file, located by the TS loader (offsets validated there). */
export interface TensorSource {
  name: string; // canonical module path of the base model, e.g. "layers.0.self_attn.q_proj.weight"
  file: string; // absolute path
  offset: number; // absolute byte offset of the data in the file
  dtype: SafetensorsDType;
  shape: number[];
}

export interface ModelConfigNative {
  arch: 'decoder' | 'bert' | 't5';
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  vocab: number;
  normEps: number;
  // decoder
  ropeTheta: number;
  ropeScaling: null | { factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number };
  qkvBias: boolean; // qwen2
  // The rest of the decoder description (cpp/core/model_config.h); each optional, defaults = llama.
  rotaryDim?: number; // rotated dims per head (partial rotary); 0 = headDim
  oBias?: boolean;
  mlpBias?: boolean;
  norm?: 'rms' | 'layer';
  normOffset?: number; // RMSNorm scales by (w + normOffset): gemma 1
  qkNorm?: boolean; // qwen3
  parallelBlock?: boolean; // phi
  sandwichNorms?: boolean; // gemma2
  fusedQkv?: boolean; // phi3
  gatedMlp?: boolean; // false: fc1 -> act -> fc2 (phi)
  fusedGateUp?: boolean; // phi3
  activation?: 'silu' | 'gelu' | 'gelu_tanh' | 'relu';
  embedScale?: number; // gemma
  attnScale?: number; // 0 = 1/sqrt(headDim)
  attnSoftcap?: number;
  finalSoftcap?: number;
  slidingWindow?: number;
  slidingLayers?: boolean[] | null; // per layer: attends within slidingWindow
  tieWordEmbeddings?: boolean; // LM head = embed_tokens
  // bert
  maxPositions: number;
  typeVocab: number;
  // t5 (with gatedMlp and activation above): the relative position bias's buckets
  relBuckets?: number;
  relMaxDistance?: number;
}

export interface LoraSpec {
  targets: string[]; // module-name suffixes, PEFT target_modules semantics (e.g. "q_proj", "dense")
  r: number;
  alpha: number;
  dropout: number;
  seed: number; // initialisation of A (Kaiming-uniform like PEFT), B = 0
}

export interface HostTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

export interface ForwardOptions {
  pooling: PoolingMode;
  normalize: boolean;
  /** train=true: LoRA dropout on (masks from dropoutSeed + rowKeys), activations kept for backward when keep=true */
  train?: boolean;
  keep?: boolean;
  dropoutSeed?: number;
  /** one key per sequence, stable across chunking (e.g. the sequence's index in the step) */
  seqKeys?: Int32Array;
}

export interface OptimizerStep {
  kind: 'adamw' | 'sgd';
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  step: number; // 1-based
  gradScale: number; // multiply gradients by this first (clipping)
}

export interface NativeModel {
  readonly hidden: number;
  readonly device: string;
  /** ids: all sequences concatenated; cuSeqlens: B+1 offsets. Returns [B, hidden] row-major. */
  forward(ids: Int32Array, cuSeqlens: Int32Array, opts: ForwardOptions): Promise<Float32Array>;
  /** forward() with the embeddings in float64 (for finite-difference checks on "cpu-f64"). */
  forward64(ids: Int32Array, cuSeqlens: Int32Array, opts: ForwardOptions): Promise<Float64Array>;
  /** Last hidden states [T, hidden] (after the final norm for decoders), for golden tests. */
  hiddenStates(ids: Int32Array, cuSeqlens: Int32Array): Promise<Float32Array>;
  /** Back-propagate dL/d(pooled) [B, hidden] through the activations kept by the last forward(keep). Accumulates grads. */
  backward(dPooled: Float32Array): Promise<void>;
  /** Per-layer recompute during backward instead of keeping every activation. */
  setRecompute(on: boolean): void;
  /** Upload the causal-LM head (lm_head.weight, and lm_head.bias when given); not needed when the embeddings are tied. */
  loadLmHead(tensors: TensorSource[]): Promise<void>;
  /** log p(ids[j] | ids[<j]) for j = targetStart[b] .. L_b-1 of each sequence, concatenated; the vocabulary in blocks (vocabBlock ids per block). */
  tokenLogprobs(ids: Int32Array, cuSeqlens: Int32Array, targetStart: Int32Array, vocabBlock?: number): Promise<Float64Array>;

  addLora(spec: LoraSpec): void;
  /** 'lora': only LoRA weights train; 'full': every base weight trains (no LoRA); 'none' */
  setTrainable(mode: 'lora' | 'full' | 'none'): void;
  /** trainable parameters in a stable order (LoRA: "<module path>.lora_A.weight"/"lora_B.weight") */
  params(): HostTensor[];
  /** any parameter by name (base weight or LoRA), trainable or not; Float64Array keeps full precision on cpu-f64 */
  setParam(name: string, data: Float32Array | Float64Array): void;
  grads(): HostTensor[];
  zeroGrad(): void;
  gradSumSquares(): number;
  optimizerStep(step: OptimizerStep): void;
  /** AdamW moments for checkpoints */
  optimizerState(): HostTensor[];
  setOptimizerState(tensors: HostTensor[]): void;
  /** A base weight (after LoRA merge when merged=true), as float32, for lmdr merge. */
  baseWeight(name: string, merged: boolean): Float32Array;
  dispose(): void;
}

/** The fused loss's modes beyond plain InfoNCE (defaults: in-batch negatives, weight 1, no distillation). */
export interface LossModes {
  inBatch?: boolean;
  contrastiveWeight?: number;
  distill?: 'none' | 'kl' | 'stable';
  distillWeight?: number; // 1 with distillation
  teacherTemperature?: number; // 1
  studentTemperature?: number; // 1 (KL only)
  teacher?: Float64Array; // [batch * group] teacher scores, group order
}

export interface InfoNceResult {
  loss: number; // contrastiveWeight * contrastive + distillWeight * distill
  contrastive: number; // mean InfoNCE over the queries
  distill: number; // mean distillation loss (0 without distillation)
  dq: Float32Array;
  dp: Float32Array;
}

export interface NativeAddon {
  buildInfo(): BuildInfo;
  loadModel(config: ModelConfigNative, tensors: TensorSource[], device: DeviceName): Promise<NativeModel>;
  /** The fused retrieval loss (cpp/core/retrieval_loss.h): InfoNCE, and KL or stabilized distillation when modes say so. */
  infonce(q: Float32Array, p: Float32Array, batch: number, group: number, hidden: number,
    temperature: number, cosine: boolean, device: DeviceName, modes?: LossModes): InfoNceResult;
  /** Exact top-k by inner product; corpus processed in blocks. Returns scores [Q,k] and ids [Q,k].
   * k larger than numCorpus returns numCorpus columns (result.k). blockRows: corpus rows per
   * backend call (default: sized for the backend). The inputs must not change until it settles. */
  topk(queries: Float32Array, corpus: Float32Array, numQueries: number, numCorpus: number, hidden: number,
    k: number, device: DeviceName, blockRows?: number): Promise<{ scores: Float32Array; ids: BigInt64Array; k: number }>;
  /** Test hook (cpp/napi/ops.cpp): run one backend op on float64 host data; overwritten outputs
   * are NaN-poisoned first. Returns the op's outputs by name (numbers for scalar results). */
  runOp?(device: DeviceName, op: string, args: Record<string, OpArg>): Record<string, Float64Array | number>;
}

/** An argument of runOp: tensors as Float64Array, host int arrays (cuSeqlens, ids) as Int32Array. */
export type OpArg = Float64Array | Int32Array | number | boolean | string;

const here = path.dirname(fileURLToPath(import.meta.url));
const packageRoot = path.resolve(here, '..');

let cached: NativeAddon | undefined;

/** Load the addon: $LMDR_ADDON (a .node path, for development builds) or node-gyp-build. */
export function native(): NativeAddon {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  try {
    const override = process.env.LMDR_ADDON;
    cached = (override ? require(path.resolve(override)) : require('node-gyp-build')(packageRoot)) as NativeAddon;
  } catch (err) {
    throw new Error(`lmdr: cannot load the native addon (${(err as Error).message}); run "npm run build"`);
  }
  return cached;
}
