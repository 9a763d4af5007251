// Engine: a loaded model (native weights + config + tokenizer) that turns inputs into
// embeddings. Inputs are tokenized, sorted by length, packed into batches under a sequence
// and token budget, run through the native forward, and returned in input order.
import { UserError } from './errors.ts';
import { readModelConfig, type ModelInfo } from './model/config.ts';
import { loadCheckpoint } from './model/checkpoint.ts';
import { TextTokenizer } from './model/tokenizer.ts';
import { applyModules, normalizeInPlace, readSentenceTransformers, type SentenceTransformersDir } from './model/sentence-transformers.ts';
import { native, type DeviceName, type NativeModel, type PoolingMode } from './native.ts';
import { applyAdapter } from './adapters/peft.ts';
import { engineBackbone } from './train/backbone.ts';
import type { TrainOptions } from './train/options.ts';
import { train, type TrainSummary } from './train/trainer.ts';
import { scoreTokens, type ScoreOptions, type ScorePair, type TokenScore } from './lm/score.ts';
import { scoreFile, type ScoreFileOptions, type ScoreFileSummary } from './lm/reward.ts';
import type { EvaluateRetrievalOptions, RetrievalEvaluation } from './eval/evaluate.ts';
import type { SearchResult, VectorIndex } from './search/index.ts';
import { array, boolean, describeValue, func, number, object, oneOf, optional, parse, string, type Infer } from './schema.ts';

export type EncodeInput = string | { text: string } | { input_ids: number[] };

export const POOLING_MODES: readonly PoolingMode[] = ['eos', 'cls', 'mean'];

const tokenizeShape = {
  pooling: optional(oneOf(POOLING_MODES)), // default: the model's (eos for decoders, cls for BERT)
  maxLength: optional(number({ int: true, min: 1 })), // tokens per sequence, default 512
  instruction: optional(string()), // prepended to every text input (not to input_ids)
  prompt: optional(string()), // sentence-transformers style: prepended to every text input
  promptName: optional(string({ nonEmpty: true })), // a prompt of config_sentence_transformers.json
  /** how errors name input i (default "input i"; the CLI says "FILE:LINE") */
  describeInput: optional(func<(i: number) => string>()),
};
const tokenizeOptionsSchema = object(tokenizeShape, { expected: 'an options object' });
const encodeShape = {
  ...tokenizeShape,
  batchSize: optional(number({ int: true, min: 1 })), // sequences per forward call, default 32
  maxTokens: optional(number({ int: true, min: 1 })), // tokens per forward call, default 16384
  normalize: optional(boolean()), // L2-normalize embeddings, default true
  dim: optional(number({ int: true, min: 1 })), // Matryoshka: keep the first dim dimensions (re-normalised)
  onProgress: optional(func<(done: number, total: number) => void>()),
};
const encodeOptionsSchema = object(encodeShape, { expected: 'an options object' });
const encodeIdsOptionsSchema = object({
  pooling: tokenizeShape.pooling, batchSize: encodeShape.batchSize, maxTokens: encodeShape.maxTokens,
  normalize: encodeShape.normalize, dim: encodeShape.dim, onProgress: encodeShape.onProgress, describeInput: tokenizeShape.describeInput,
}, { expected: 'an options object' });
const searchOptionsSchema = object({ ...encodeShape, k: optional(number({ int: true, min: 1 })) }, { expected: 'an options object' });
const loadOptionsSchema = object({
  device: optional(string({ nonEmpty: true })), // cpu, cuda, cuda:N (default: $LMDR_DEVICE, else CUDA when usable)
  adapter: optional(string({ nonEmpty: true })), // a PEFT LoRA dir applied without merging
}, { expected: 'an options object' });

export type EncodeOptions = Infer<typeof encodeOptionsSchema>;
export type TokenizeOptions = Infer<typeof tokenizeOptionsSchema>;
export type EncodeIdsOptions = Infer<typeof encodeIdsOptionsSchema>;
export type SearchOptions = Infer<typeof searchOptionsSchema>;
export type LoadOptions = Infer<typeof loadOptionsSchema>;

/** Inputs longer than maxLength that were cut: how many, and the longest untruncated length. */
export interface Truncation {
  inputs: number;
  longest: number; // tokens the longest input would have had
  maxLength: number; // the limit they were cut to
}

/** Row-major float32 embeddings, one row per input in input order. */
export class Embeddings {
  readonly rows: number;
  readonly dim: number;
  readonly data: Float32Array;
  /** Inputs cut to maxLength (null: none was). */
  readonly truncated: Truncation | null;
  constructor(rows: number, dim: number, data: Float32Array, truncated: Truncation | null = null) {
    this.rows = rows;
    this.dim = dim;
    this.data = data;
    this.truncated = truncated;
  }
  row(i: number): Float32Array {
    if (!Number.isInteger(i) || i < 0 || i >= this.rows) throw new RangeError(`row ${i} outside 0..${this.rows - 1}`);
    return this.data.subarray(i * this.dim, (i + 1) * this.dim);
  }
}

const devicePattern = /^(cpu|cpu-f64|cuda(:\d+)?)$/;

/** The device a model loads on: explicit, then $LMDR_DEVICE, then CUDA when usable, else CPU. */
export function resolveDevice(device?: string): DeviceName {
  const chosen = device ?? process.env.LMDR_DEVICE;
  if (chosen !== undefined && chosen !== '') {
    if (!devicePattern.test(chosen)) throw new UserError(`unknown device "${chosen}" (expected cpu, cuda or cuda:N)`);
    return chosen;
  }
  const info = native().buildInfo();
  return info.cudaCompiled && info.cudaError === '' && info.cudaDevices.length > 0 ? 'cuda' : 'cpu';
}

export class Engine {
  readonly modelDir: string;
  readonly native: NativeModel;
  readonly config: ModelInfo;
  readonly tokenizer: TextTokenizer | null;
  /** The sentence-transformers pipeline when the dir has modules.json (pooling, Dense, Normalize, prompts). */
  readonly sentenceTransformers: SentenceTransformersDir | null;

  private constructor(modelDir: string, model: NativeModel, config: ModelInfo, tokenizer: TextTokenizer | null,
    st: SentenceTransformersDir | null) {
    this.modelDir = modelDir;
    this.native = model;
    this.config = config;
    this.tokenizer = tokenizer;
    this.sentenceTransformers = st;
  }

  /** Load a Hugging Face model dir (config.json, safetensors, optional tokenizer.json); opts.adapter: a PEFT LoRA dir used without merging. */
  static async load(modelDir: string, options: LoadOptions = {}): Promise<Engine> {
    parse(string({ nonEmpty: true }), modelDir, { where: 'Engine.load', label: () => 'modelDir' });
    const opts = parse(loadOptionsSchema, options, { where: 'Engine.load' });
    // a sentence-transformers dir: the Transformer module's dir holds the HF model
    const st = readSentenceTransformers(modelDir);
    if (st) modelDir = st.transformerDir;
    const config = readModelConfig(modelDir);
    const tensors = loadCheckpoint(modelDir, config);
    const tokenizer = TextTokenizer.load(modelDir, config);
    const device = resolveDevice(opts.device);
    const model = await native().loadModel(config.native, tensors, device);
    if (opts.adapter) {
      try {
        applyAdapter(model, opts.adapter);
        model.setTrainable('none');
      } catch (err) {
        model.dispose();
        throw err;
      }
    }
    return new Engine(modelDir, model, config, tokenizer, st);
  }

  /** Width of an embedding: the hidden size, or the last Dense layer's outputs of a sentence-transformers dir. */
  get dim(): number {
    const dense = this.sentenceTransformers?.dense;
    return dense && dense.length > 0 ? dense[dense.length - 1].outFeatures : this.config.native.hidden;
  }

  /** The prefix of every text input: --prompt, a named prompt, the dir's default prompt, or --instruction. */
  private textPrefix(opts: TokenizeOptions): string {
    const given = [opts.instruction, opts.prompt, opts.promptName].filter((x) => x !== undefined).length;
    if (given > 1) throw new UserError('give one of instruction, prompt and promptName');
    if (opts.instruction !== undefined) return opts.instruction;
    if (opts.prompt !== undefined) return opts.prompt;
    const prompts = this.sentenceTransformers?.prompts ?? {};
    if (opts.promptName !== undefined) {
      if (!(opts.promptName in prompts)) {
        const names = Object.keys(prompts);
        throw new UserError(`prompt name "${opts.promptName}" is not defined by ${this.modelDir} (${names.length ? `its prompts: ${names.join(', ')}` : 'it defines no prompts'})`);
      }
      return prompts[opts.promptName];
    }
    const def = this.sentenceTransformers?.defaultPromptName;
    return def ? prompts[def] : '';
  }

  /** Token ids of each input exactly as encode() would run them. */
  tokenize(inputs: EncodeInput[], options: TokenizeOptions = {}): number[][] {
    return this.tokenizeWithLengths(inputs, options).sequences;
  }

  /**
   * tokenize(), and what truncation did: `lengths[i]` is the length input i would have without
   * truncation (> sequences[i].length when it was cut), `truncated` sums it up.
   */
  tokenizeWithLengths(inputs: EncodeInput[], options: TokenizeOptions = {}): { sequences: number[][]; lengths: number[]; truncated: Truncation | null } {
    const opts = parse(tokenizeOptionsSchema, options, { where: 'engine.tokenize' });
    return this.tokenizeInputs(checkInputs(inputs, 'engine.tokenize'), opts);
  }

  private tokenizeInputs(inputs: EncodeInput[], opts: TokenizeOptions): { sequences: number[][]; lengths: number[]; truncated: Truncation | null; promptTokens: number } {
    const st = this.sentenceTransformers;
    const stPooling = opts.pooling === undefined ? st?.pooling ?? null : null;
    const pooling = opts.pooling ?? (stPooling ? (stPooling.mode === 'lasttoken' ? 'eos' : stPooling.mode) : this.config.defaultPooling);
    // sentence-transformers' lasttoken: the last token the tokenizer produced, no EOS appended
    const appendEos = pooling === 'eos' && stPooling?.mode !== 'lasttoken';
    const prefix = this.textPrefix(opts);
    // include_prompt=false: sentence-transformers drops the prompt's tokens (its length with
    // special tokens, minus one) from the mean
    const promptTokens = stPooling && !stPooling.includePrompt && stPooling.mode === 'mean' && prefix !== '' && this.tokenizer
      ? Math.max(0, this.tokenizer.hf.encode(prefix, { add_special_tokens: true }).ids.length - 1) : 0;
    let maxLength = opts.maxLength ?? st?.maxSeqLength ?? 512;
    if (this.config.maxSequence !== null) maxLength = Math.min(maxLength, this.config.maxSequence);
    const vocab = this.config.native.vocab;
    const describe = opts.describeInput ?? ((i: number) => `input ${i}`);
    let cut = 0;
    let longest = 0;
    const lengths: number[] = [];
    const sequences = inputs.map((input, i) => {
      let ids: number[];
      const untruncated = { length: 0 };
      if (typeof input === 'string' || (typeof input === 'object' && input !== null && typeof (input as { text?: unknown }).text === 'string')) {
        const text = typeof input === 'string' ? input : (input as { text: string }).text;
        if (!this.tokenizer) {
          throw new UserError(`${describe(i)}: ${this.modelDir} has no tokenizer.json, so only {"input_ids": [...]} inputs can be encoded`);
        }
        ids = appendEos ? this.tokenizer.encode(prefix + text, pooling, maxLength, untruncated)
          : this.tokenizer.encodeTruncated(prefix + text, maxLength, untruncated);
        const outside = ids.findIndex((id) => id >= vocab);
        if (outside >= 0) {
          throw new UserError(`${describe(i)}: the tokenizer gave id ${ids[outside]} at position ${outside}, outside the model's vocabulary ` +
            `(0..${vocab - 1}): ${this.modelDir}/tokenizer.json does not belong to this config.json`);
        }
      } else if (typeof input === 'object' && input !== null && Array.isArray((input as { input_ids?: unknown }).input_ids)) {
        ids = (input as { input_ids: unknown[] }).input_ids as number[];
        for (let j = 0; j < ids.length; j++) {
          const id = ids[j];
          if (!Number.isInteger(id) || id < 0 || id >= vocab) {
            throw new UserError(`${describe(i)}: token id ${JSON.stringify(id)} at position ${j} is outside the vocabulary (0..${vocab - 1})`);
          }
        }
        untruncated.length = ids.length;
        if (ids.length > maxLength) ids = ids.slice(0, maxLength);
      } else {
        throw new UserError(`${describe(i)}: expected a string, {"text": "..."} or {"input_ids": [...]}, got ${describeValue(input)}`);
      }
      if (ids.length === 0) throw new UserError(`${describe(i)}: empty sequence (no tokens to embed)`);
      if (this.config.slidingWindow !== null && ids.length > this.config.slidingWindow) {
        throw new UserError(`${describe(i)}: ${ids.length} tokens exceed the model's sliding window ${this.config.slidingWindow} (lower --max-length)`);
      }
      if (untruncated.length > ids.length) {
        cut++;
        longest = Math.max(longest, untruncated.length);
      }
      lengths.push(Math.max(untruncated.length, ids.length));
      return ids;
    });
    return { sequences, lengths, truncated: cut > 0 ? { inputs: cut, longest, maxLength } : null, promptTokens };
  }

  /** Embed inputs; row i of the result belongs to inputs[i] whatever the batching. */
  async encode(inputs: EncodeInput[], options: EncodeOptions = {}): Promise<Embeddings> {
    const opts = parse(encodeOptionsSchema, options, { where: 'engine.encode' });
    const st = this.sentenceTransformers?.pooling;
    const pooling = opts.pooling ?? (st ? (st.mode === 'lasttoken' ? 'eos' : st.mode) : this.config.defaultPooling);
    const { sequences, truncated, promptTokens } = this.tokenizeInputs(checkInputs(inputs, 'engine.encode'), opts);
    return this.embedSequences(sequences, { ...opts, pooling }, truncated, opts.pooling === undefined ? promptTokens : 0);
  }

  /** Embed already-final token id sequences (no templates or truncation; ids must lie in the vocabulary). */
  async encodeIds(sequences: number[][], options: EncodeIdsOptions = {}): Promise<Embeddings> {
    const opts = parse(encodeIdsOptionsSchema, options, { where: 'engine.encodeIds' });
    parse(array(array(number({ int: true, min: 0, max: this.config.native.vocab - 1 }), { nonEmpty: true })), sequences,
      { where: 'engine.encodeIds', label: (p) => `sequences${p}` });
    return this.embedSequences(sequences, opts, null);
  }

  /** The forward passes of encode()/encodeIds(): length-sorted batches, input order restored, every value checked finite. */
  private async embedSequences(sequences: number[][], opts: EncodeIdsOptions, truncated: Truncation | null, skipTokens = 0): Promise<Embeddings> {
    const pooling = opts.pooling ?? this.config.defaultPooling;
    const batchSize = opts.batchSize ?? 32;
    const maxTokens = opts.maxTokens ?? 16384;
    const st = this.sentenceTransformers;
    const normalize = opts.normalize ?? true;
    const describe = opts.describeInput ?? ((i: number) => `input ${i}`);
    const H = this.config.native.hidden;
    const dim = opts.dim ?? this.dim;
    if (dim > this.dim) throw new UserError(`dim ${dim} exceeds the model's embedding size ${this.dim}`);
    const out = new Float32Array(sequences.length * H);
    // Longest first: the biggest batch runs (and fails, if memory is short) before any work is wasted.
    const order = sequences.map((_, i) => i).sort((a, b) => sequences[b].length - sequences[a].length || a - b);
    let done = 0;
    for (const batch of packBatches(order, sequences, batchSize, maxTokens)) {
      const cu = new Int32Array(batch.length + 1);
      batch.forEach((idx, b) => { cu[b + 1] = cu[b] + sequences[idx].length; });
      const ids = new Int32Array(cu[batch.length]);
      batch.forEach((idx, b) => ids.set(sequences[idx], cu[b]));
      // sentence-transformers: raw pooled vectors, then its modules; include_prompt=false: the mean skips the prompt
      const pooled = skipTokens > 0 && pooling === 'mean'
        ? meanAfter(await this.native.hiddenStates(ids, cu), cu, H, skipTokens)
        : await this.native.forward(ids, cu, { pooling, normalize: normalize && !st && dim === this.dim });
      for (let j = 0; j < pooled.length; j++) {
        if (!Number.isFinite(pooled[j])) {
          const idx = batch[Math.floor(j / H)];
          throw new UserError(`${describe(idx)}: its embedding has ${pooled[j]} at column ${j % H} (the model's activations overflow ` +
            `or it holds non-finite weights); no output was written`);
        }
      }
      batch.forEach((idx, b) => out.set(pooled.subarray(b * H, (b + 1) * H), idx * H));
      done += batch.length;
      opts.onProgress?.(done, sequences.length);
    }
    if (!st && dim === H) return new Embeddings(sequences.length, H, out, truncated);
    // Dense / Normalize modules, then Matryoshka truncation (re-normalised)
    const result = new Float32Array(sequences.length * dim);
    for (let i = 0; i < sequences.length; i++) {
      const row = st ? applyModules(st, out.subarray(i * H, (i + 1) * H)) : Float64Array.from(out.subarray(i * H, (i + 1) * H));
      const kept = row.slice(0, dim);
      if (normalize) normalizeInPlace(kept);
      result.set(kept, i * dim);
    }
    return new Embeddings(sequences.length, dim, result, truncated);
  }

  /** Contrastive training of this engine's model (LoRA, or full with options.full); see TrainOptions. */
  async train(options: TrainOptions): Promise<TrainSummary> {
    return train(engineBackbone(this), options);
  }

  /** Encode queries (same options as encode) and return their top-k rows of `index` (an index of passage embeddings). */
  async search(queries: EncodeInput[], index: VectorIndex, options: SearchOptions = {}): Promise<SearchResult> {
    const { k = 10, ...encodeOptions } = parse(searchOptionsSchema, options, { where: 'engine.search' });
    checkInputs(queries, 'engine.search', 'queries');
    if (typeof index !== 'object' || index === null || typeof (index as VectorIndex).search !== 'function' || typeof (index as VectorIndex).dim !== 'number') {
      throw new UserError(`engine.search: index must be a VectorIndex (CorpusIndex, HnswIndex, FaissIndex), got ${describeValue(index)}`);
    }
    if (index.dim !== this.dim) throw new UserError(`engine.search: the index holds ${index.dim}-dim vectors but this model embeds ${this.dim}-dim ones`);
    const embedded = await this.encode(queries, encodeOptions);
    return index.search(embedded.data, k);
  }

  /** Full-corpus retrieval evaluation on a BEIR or MS MARCO folder (what `lmdr eval` runs). */
  async evaluate(options: EvaluateRetrievalOptions): Promise<RetrievalEvaluation> {
    // Imported on use: the evaluation module imports Engine itself.
    const { evaluateRetrieval } = await import('./eval/evaluate.ts');
    return evaluateRetrieval(this, options, 'engine.evaluate');
  }

  /** Causal LMs: per pair, the sum and mean of log p(target tokens | context) and the token count (lib/lm/score.ts). */
  async scoreTokens(pairs: ScorePair[], opts: ScoreOptions = {}): Promise<TokenScore[]> {
    return scoreTokens(this, pairs, opts);
  }

  /** LLM reward scoring of a pairs file or a training file into JSON lines, resumably (lib/lm/reward.ts; the options of `lmdr score`). */
  async score(options: ScoreFileOptions): Promise<ScoreFileSummary> {
    return scoreFile(this, options);
  }

  dispose(): void {
    this.native.dispose();
  }
}

/** Mean over tokens skip.. of each sequence (all tokens when a sequence is not longer than skip). */
function meanAfter(h: Float32Array, cu: Int32Array, H: number, skip: number): Float32Array {
  const B = cu.length - 1;
  const out = new Float32Array(B * H);
  for (let b = 0; b < B; b++) {
    const from = cu[b + 1] - cu[b] > skip ? cu[b] + skip : cu[b];
    const acc = new Float64Array(H);
    for (let t = from; t < cu[b + 1]; t++) for (let j = 0; j < H; j++) acc[j] += h[t * H + j];
    for (let j = 0; j < H; j++) out[b * H + j] = acc[j] / (cu[b + 1] - from);
  }
  return out;
}

/** Consecutive runs of `order` holding at most batchSize sequences and maxTokens tokens (at least one sequence). */
export function packBatches(order: number[], sequences: number[][], batchSize: number, maxTokens: number): number[][] {
  const batches: number[][] = [];
  let current: number[] = [];
  let tokens = 0;
  for (const idx of order) {
    const len = sequences[idx].length;
    if (current.length > 0 && (current.length >= batchSize || tokens + len > maxTokens)) {
      batches.push(current);
      current = [];
      tokens = 0;
    }
    current.push(idx);
    tokens += len;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

/** The inputs argument must be an array (its items are checked as they are tokenized). */
function checkInputs(inputs: unknown, where: string, name = 'inputs'): EncodeInput[] {
  if (!Array.isArray(inputs)) {
    throw new UserError(`${where}: ${name} must be an array of strings, {text} or {input_ids} objects, got ${describeValue(inputs)}`);
  }
  return inputs as EncodeInput[];
}
