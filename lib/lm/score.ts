// Causal-LM scoring: log p(target | context) from the model's LM head (lm_head, or the tied
// embeddings; Gemma 2's final soft-cap), summed and averaged over the target's tokens. The
// native side scores only the target positions and walks the vocabulary in blocks, so no
// [tokens x vocab] matrix is ever built. This is what LLM-reward scoring and RAG evaluation use.
import { UserError } from '../errors.ts';
import { lmHeadSources } from '../model/checkpoint.ts';
import type { ModelInfo } from '../model/config.ts';
import type { TextTokenizer } from '../model/tokenizer.ts';
import type { NativeModel } from '../native.ts';

/** Text (tokenized by the model's tokenizer) or token ids used as they are. */
export type ScoreText = string | { input_ids: number[] };

export interface ScorePair {
  /** what the target is conditioned on; text gets the tokenizer's special tokens (e.g. BOS) */
  context: ScoreText;
  /** the tokens scored; text is tokenized without special tokens and appended to the context */
  target: ScoreText;
}

export interface TokenScore {
  sum: number; // sum of log p over the target tokens
  mean: number; // sum / count (−NLL, LLM-Embedder's reward)
  count: number; // target tokens
}

export interface ScoreOptions {
  /** tokens per native call (default 8192) */
  maxTokens?: number;
  /** how errors name pair i (default "pair i") */
  describePair?: (i: number) => string;
}

/** The part of an Engine scoring needs. */
export interface LmModel {
  readonly modelDir: string;
  readonly native: NativeModel;
  readonly config: ModelInfo;
  readonly tokenizer: TextTokenizer | null;
}

const headLoaded = new WeakSet<NativeModel>();

export async function scoreTokens(m: LmModel, pairs: ScorePair[], opts: ScoreOptions = {}): Promise<TokenScore[]> {
  if (m.config.native.arch !== 'decoder') throw new UserError(`${m.modelDir}: scoreTokens needs a causal LM; a ${m.config.modelType} model has no LM head`);
  const maxTokens = opts.maxTokens ?? 8192;
  if (!Number.isSafeInteger(maxTokens) || maxTokens <= 0) throw new UserError(`maxTokens must be a positive integer, got ${maxTokens}`);
  const describe = opts.describePair ?? ((i: number) => `pair ${i}`);
  const vocab = m.config.native.vocab;
  const ids = (t: ScoreText, special: boolean, what: string): number[] => {
    if (typeof t === 'string') {
      if (!m.tokenizer) throw new UserError(`${what}: ${m.modelDir} has no tokenizer.json, so only {"input_ids": [...]} can be scored`);
      return m.tokenizer.hf.encode(t, { add_special_tokens: special }).ids;
    }
    if (typeof t !== 'object' || t === null || !Array.isArray(t.input_ids)) throw new UserError(`${what}: expected a string or {"input_ids": [...]}`);
    return t.input_ids;
  };
  const seqs = pairs.map((p, i) => {
    const context = ids(p.context, true, `${describe(i)} context`);
    const target = ids(p.target, false, `${describe(i)} target`);
    if (context.length === 0) throw new UserError(`${describe(i)}: the context has no tokens (the first target token needs one to be predicted from)`);
    if (target.length === 0) throw new UserError(`${describe(i)}: the target has no tokens to score`);
    const all = [...context, ...target];
    all.forEach((id, j) => {
      if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new UserError(`${describe(i)}: token id ${JSON.stringify(id)} at position ${j} is outside the vocabulary (0..${vocab - 1})`);
    });
    const window = m.config.slidingWindow;
    if (window !== null && all.length > window) throw new UserError(`${describe(i)}: ${all.length} tokens exceed the model's sliding window ${window}`);
    return { ids: all, start: context.length };
  });
  if (!headLoaded.has(m.native)) {
    await m.native.loadLmHead(lmHeadSources(m.modelDir, m.config));
    headLoaded.add(m.native);
  }
  const out: TokenScore[] = new Array(pairs.length);
  for (let i = 0; i < seqs.length;) {
    let j = i, tokens = 0;
    while (j < seqs.length && (j === i || tokens + seqs[j].ids.length <= maxTokens)) tokens += seqs[j++].ids.length;
    const cu = new Int32Array(j - i + 1);
    for (let k = i; k < j; k++) cu[k - i + 1] = cu[k - i] + seqs[k].ids.length;
    const flat = new Int32Array(tokens);
    for (let k = i; k < j; k++) flat.set(seqs[k].ids, cu[k - i]);
    const lp = await m.native.tokenLogprobs(flat, cu, Int32Array.from(seqs.slice(i, j).map((s) => s.start)));
    let at = 0;
    for (let k = i; k < j; k++) {
      const count = seqs[k].ids.length - seqs[k].start;
      let sum = 0;
      for (let t = 0; t < count; t++) sum += lp[at + t];
      at += count;
      out[k] = { sum, mean: sum / count, count };
    }
    i = j;
  }
  return out;
}
