// The demo's model, generated on the spot (nothing to download): a small BERT encoder (default)
// or Llama-architecture decoder with random weights and a word-level WordPiece tokenizer built
// from the training texts (the most frequent words; any other word is [UNK], since spelling it
// out in shared character pieces only adds the same noise to every text).
// It is a plain Hugging Face model dir, so every lmdr command and transformers can load it.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.ts';
import { writeSafetensors, type TensorToWrite } from '../model/safetensors.ts';
import { normalRng } from '../train/random.ts';

export interface DemoModelOptions {
  /** bert: bidirectional encoder ([CLS] text [SEP]); llama: causal decoder (text </s>); bert */
  arch?: DemoArch;
  hidden?: number; // 64
  layers?: number; // 2
  heads?: number; // 4
  kvHeads?: number; // 2
  intermediate?: number; // 4 * hidden
  maxWords?: number; // whole-word vocabulary entries, most frequent first; 6000
  minCount?: number; // a word must occur this often to get its own entry; 2
  /** init scale of a linear layer: N(0, initGain^2 / fan_in); 1 */
  initGain?: number;
  /** init std of the token embeddings; 0.02 (RMSNorm makes the scale invisible to the forward, but small rows move fast under Adam) */
  embedStd?: number;
  /**
   * token embeddings of the generated BERT: 'idf' (default) starts mean pooling as an
   * IDF-weighted bag of words (see idfEmbeddings); 'random' as an unweighted bag of random
   * word vectors. The decoder's are always random.
   */
  embedInit?: 'idf' | 'random';
  /** beta^2 = (idf / max idf)^idfPower in idfEmbeddings; 2 */
  idfPower?: number;
  seed?: number; // 42
}

export type DemoArch = 'bert' | 'llama';
export const DEMO_ARCHS: readonly DemoArch[] = ['bert', 'llama'];

export const UNK = '[UNK]';
export const EOS = '</s>';
const PAD = '[PAD]';
const CLS = '[CLS]';
const SEP = '[SEP]';
const MASK = '[MASK]';

// Lowercase, then words (letters/digits) and single punctuation marks: what the tokenizer's
// Lowercase normalizer + BertPreTokenizer produce for ordinary text.
const PIECES = /[\p{L}\p{N}\p{M}]+|[^\s\p{L}\p{N}\p{M}]/gu;
export function pretokenize(text: string): string[] {
  return text.toLowerCase().match(PIECES) ?? [];
}

/** Vocabulary in id order: special tokens, every character alone (punctuation, one-letter words), frequent words. */
export function buildVocab(texts: Iterable<string>, maxWords: number, minCount: number, specials: string[] = [UNK, EOS]): string[] {
  const counts = new Map<string, number>();
  const chars = new Set<string>();
  for (const text of texts) {
    for (const piece of pretokenize(text)) {
      counts.set(piece, (counts.get(piece) ?? 0) + 1);
      for (const c of piece) chars.add(c);
    }
  }
  const words = [...counts.entries()]
    .filter(([w, n]) => n >= minCount && [...w].length > 1)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, maxWords)
    .map(([w]) => w);
  const single = [...chars].sort();
  return [...specials, ...single, ...words];
}

function tokenizerJson(vocab: string[], arch: DemoArch): Record<string, unknown> {
  const special = (content: string) => ({ id: vocab.indexOf(content), content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const token = (id: string, typeId: number) => ({ SpecialToken: { id, type_id: typeId } });
  const seq = (id: string, typeId: number) => ({ Sequence: { id, type_id: typeId } });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: (arch === 'bert' ? [PAD, UNK, CLS, SEP, MASK] : [UNK, EOS]).map(special),
    normalizer: { type: 'Lowercase' },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    // bert: [CLS] text [SEP], like BERT checkpoints; llama: no BOS, lmdr appends EOS for eos pooling
    post_processor: arch === 'bert'
      ? {
        type: 'TemplateProcessing',
        single: [token(CLS, 0), seq('A', 0), token(SEP, 0)],
        pair: [token(CLS, 0), seq('A', 0), token(SEP, 0), seq('B', 1), token(SEP, 1)],
        special_tokens: Object.fromEntries([CLS, SEP].map((t) => [t, { id: t, ids: [vocab.indexOf(t)], tokens: [t] }])),
      }
      : null,
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: UNK, continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab: Object.fromEntries(vocab.map((t, i) => [t, i])) },
  };
}

/**
 * Inverse document frequency of every vocabulary entry over `texts` (each text one document),
 * BM25's form ln(1 + (N - df + 0.5) / (df + 0.5)); a word outside the vocabulary counts as [UNK].
 */
export function vocabIdf(vocab: string[], texts: Iterable<string>): Float64Array {
  const id = new Map(vocab.map((t, i) => [t, i]));
  const unk = id.get(UNK);
  const df = new Float64Array(vocab.length);
  let n = 0;
  for (const text of texts) {
    n++;
    const seen = new Set<number>();
    for (const piece of pretokenize(text)) {
      const i = id.get(piece) ?? unk;
      if (i !== undefined) seen.add(i);
    }
    for (const i of seen) df[i]++;
  }
  return df.map((d) => Math.log(1 + (n - d + 0.5) / (d + 0.5)));
}

/**
 * Token embeddings that make the untrained BERT, mean-pooled, an IDF-weighted bag of random word
 * vectors (≈ TF-IDF cosine). Every LayerNorm gives each token vector the same length, so a weight
 * cannot live in the length through the layers; it lives in the direction instead:
 * row t = alpha_t u + beta_t r_t, with u = (e_0 - e_1)/√2 shared by every token, r_t a random
 * unit direction on the other coordinates (zero-mean, so LayerNorm keeps it as it is), and
 * beta_t^2 = (idf_t / max idf)^power, alpha_t^2 = 1 - beta_t^2; special tokens are u alone.
 * The last layer's output LayerNorm then has weight 0 on coordinates 0 and 1
 * (U_COORDINATES), which removes u: token t leaves the encoder as beta_t r_t (times √hidden),
 * and two pooled texts have inner product ≈ sum over shared words of beta^2, plus noise of
 * random directions, smaller the wider the model. `std` is the per-coordinate scale of a row.
 */
export function idfEmbeddings(idf: Float64Array, specials: Set<number>, hidden: number, std: number, normal: () => number, power = 1): Float32Array {
  if (hidden < 4) throw new UserError(`demo model: hidden ${hidden} is too small for IDF-weighted embeddings (at least 4)`);
  const maxIdf = Math.max(...idf);
  const out = new Float32Array(idf.length * hidden);
  const scale = std * Math.sqrt(hidden);
  const r = new Float64Array(hidden);
  for (let t = 0; t < idf.length; t++) {
    // a random zero-mean unit direction on coordinates 2.. (orthogonal to u)
    r.fill(0);
    for (let i = 2; i < hidden; i++) r[i] = normal();
    const mean = r.reduce((a, v) => a + v, 0) / (hidden - 2);
    for (let i = 2; i < hidden; i++) r[i] -= mean;
    const norm = Math.hypot(...r);
    const beta2 = specials.has(t) || !(maxIdf > 0) ? 0 : (idf[t] / maxIdf) ** power;
    const alpha = Math.sqrt(1 - beta2);
    const beta = Math.sqrt(beta2);
    const row = out.subarray(t * hidden, (t + 1) * hidden);
    for (let i = 2; i < hidden; i++) row[i] = (scale * beta * r[i]) / norm;
    row[0] = (scale * alpha) / Math.SQRT2;
    row[1] = (-scale * alpha) / Math.SQRT2;
  }
  return out;
}

/** The coordinates of the shared direction u of idfEmbeddings. */
export const U_COORDINATES = [0, 1];

/** Write a randomly initialised demo model dir (config.json, model.safetensors, tokenizer files). */
export function writeDemoModel(dir: string, textsIn: Iterable<string>, options: DemoModelOptions = {}): { arch: DemoArch; vocabSize: number; parameters: number } {
  const texts = [...textsIn];
  const arch = options.arch ?? 'bert';
  if (!DEMO_ARCHS.includes(arch)) throw new UserError(`demo model: unknown architecture "${arch}" (expected ${DEMO_ARCHS.join(' or ')})`);
  const hidden = options.hidden ?? 64;
  const layers = options.layers ?? 2;
  const heads = options.heads ?? 4;
  const kvHeads = arch === 'bert' ? heads : (options.kvHeads ?? 2);
  const intermediate = options.intermediate ?? 4 * hidden;
  const gain = options.initGain ?? 1;
  if (hidden % heads !== 0 || heads % kvHeads !== 0 || (arch === 'llama' && (hidden / heads) % 2 !== 0)) {
    throw new UserError(`demo model: hidden ${hidden}, heads ${heads}, kv heads ${kvHeads} do not fit (hidden must be a multiple of heads${arch === 'llama' ? ', hidden/heads even, heads a multiple of kv heads' : ''})`);
  }
  const headDim = hidden / heads;
  const vocab = buildVocab(texts, options.maxWords ?? 6000, options.minCount ?? 2, arch === 'bert' ? [PAD, UNK, CLS, SEP, MASK] : [UNK, EOS]);

  const normal = normalRng(options.seed ?? 42);
  const tensors: TensorToWrite[] = [];
  const add = (name: string, shape: number[], init: () => number) => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = init();
    tensors.push({ name, dtype: 'F32', shape, data });
  };
  // Decoder: unit-scale values (not HF's 0.02) and near-zero queries/keys: attention starts
  // uniform, so the EOS state starts as the mean of the (randomly projected) tokens before it:
  // a random bag-of-words retriever that training sharpens, rather than a constant vector that
  // takes many steps to break. BERT: zero position/type embeddings (no component shared by
  // every text) and zero attention/MLP output projections, so every layer starts as the
  // identity and mean pooling starts as an exact bag of random word vectors (measured on the
  // demo set: better before and after training than random projections or position noise).
  const linear = (fanIn: number, scale = gain) => () => (scale / Math.sqrt(fanIn)) * normal();
  const one = () => 1;
  const zero = () => 0;
  const embedStd = options.embedStd ?? 0.02;
  const maxPositions = 512;
  const idfInit = arch === 'bert' && (options.embedInit ?? 'idf') === 'idf';
  if (arch === 'bert') {
    if (idfInit) {
      const specials = new Set([PAD, CLS, SEP, MASK].map((t) => vocab.indexOf(t)));
      const data = idfEmbeddings(vocabIdf(vocab, texts), specials, hidden, embedStd, normal, options.idfPower ?? 2);
      tensors.push({ name: 'embeddings.word_embeddings.weight', dtype: 'F32', shape: [vocab.length, hidden], data });
    } else {
      add('embeddings.word_embeddings.weight', [vocab.length, hidden], () => embedStd * normal());
    }
    add('embeddings.position_embeddings.weight', [maxPositions, hidden], zero);
    add('embeddings.token_type_embeddings.weight', [2, hidden], zero);
    add('embeddings.LayerNorm.weight', [hidden], one);
    add('embeddings.LayerNorm.bias', [hidden], zero);
    for (let l = 0; l < layers; l++) {
      const p = `encoder.layer.${l}`;
      for (const [m, scale] of [['query', 0.1 * gain], ['key', 0.1 * gain], ['value', gain]] as const) {
        add(`${p}.attention.self.${m}.weight`, [hidden, hidden], linear(hidden, scale));
        add(`${p}.attention.self.${m}.bias`, [hidden], zero);
      }
      add(`${p}.attention.output.dense.weight`, [hidden, hidden], zero);
      add(`${p}.attention.output.dense.bias`, [hidden], zero);
      add(`${p}.attention.output.LayerNorm.weight`, [hidden], one);
      add(`${p}.attention.output.LayerNorm.bias`, [hidden], zero);
      add(`${p}.intermediate.dense.weight`, [intermediate, hidden], linear(hidden));
      add(`${p}.intermediate.dense.bias`, [intermediate], zero);
      add(`${p}.output.dense.weight`, [hidden, intermediate], zero);
      add(`${p}.output.dense.bias`, [hidden], zero);
      // idf init: the last layer's LayerNorm drops the shared direction u (see idfEmbeddings)
      const dropU = idfInit && l === layers - 1;
      const gamma = new Float32Array(hidden).fill(1);
      if (dropU) for (const i of U_COORDINATES) gamma[i] = 0;
      tensors.push({ name: `${p}.output.LayerNorm.weight`, dtype: 'F32', shape: [hidden], data: gamma });
      add(`${p}.output.LayerNorm.bias`, [hidden], zero);
    }
  } else {
    add('model.embed_tokens.weight', [vocab.length, hidden], () => embedStd * normal());
    for (let l = 0; l < layers; l++) {
      const p = `model.layers.${l}`;
      add(`${p}.input_layernorm.weight`, [hidden], one);
      add(`${p}.self_attn.q_proj.weight`, [heads * headDim, hidden], linear(hidden, 0.1 * gain));
      add(`${p}.self_attn.k_proj.weight`, [kvHeads * headDim, hidden], linear(hidden, 0.1 * gain));
      add(`${p}.self_attn.v_proj.weight`, [kvHeads * headDim, hidden], linear(hidden));
      add(`${p}.self_attn.o_proj.weight`, [hidden, heads * headDim], linear(heads * headDim));
      add(`${p}.post_attention_layernorm.weight`, [hidden], one);
      add(`${p}.mlp.gate_proj.weight`, [intermediate, hidden], linear(hidden));
      add(`${p}.mlp.up_proj.weight`, [intermediate, hidden], linear(hidden));
      add(`${p}.mlp.down_proj.weight`, [hidden, intermediate], linear(intermediate));
    }
    add('model.norm.weight', [hidden], one);
  }

  fs.mkdirSync(dir, { recursive: true });
  const json = (file: string, value: unknown) => fs.writeFileSync(path.join(dir, file), JSON.stringify(value, null, 2) + '\n');
  if (arch === 'bert') {
    json('config.json', {
      architectures: ['BertModel'], model_type: 'bert', attention_probs_dropout_prob: 0.0, hidden_dropout_prob: 0.0,
      hidden_act: 'gelu', hidden_size: hidden, intermediate_size: intermediate, num_attention_heads: heads,
      num_hidden_layers: layers, layer_norm_eps: 1e-12, max_position_embeddings: maxPositions,
      position_embedding_type: 'absolute', type_vocab_size: 2, initializer_range: 0.02,
      torch_dtype: 'float32', vocab_size: vocab.length, pad_token_id: vocab.indexOf(PAD),
    });
    json('tokenizer_config.json', {
      tokenizer_class: 'BertTokenizerFast', model_max_length: maxPositions, clean_up_tokenization_spaces: false, do_lower_case: true,
      cls_token: CLS, sep_token: SEP, pad_token: PAD, unk_token: UNK, mask_token: MASK,
    });
  } else {
    json('config.json', {
      architectures: ['LlamaForCausalLM'], model_type: 'llama', attention_bias: false, attention_dropout: 0.0, mlp_bias: false,
      hidden_act: 'silu', hidden_size: hidden, intermediate_size: intermediate, num_attention_heads: heads,
      num_hidden_layers: layers, num_key_value_heads: kvHeads, head_dim: headDim, rms_norm_eps: 1e-5,
      rope_theta: 10000.0, rope_scaling: null, max_position_embeddings: 2048, initializer_range: 0.02,
      tie_word_embeddings: true, torch_dtype: 'float32', vocab_size: vocab.length,
      bos_token_id: null, eos_token_id: vocab.indexOf(EOS), pad_token_id: vocab.indexOf(EOS),
    });
    json('tokenizer_config.json', {
      tokenizer_class: 'PreTrainedTokenizerFast', model_max_length: 2048, clean_up_tokenization_spaces: false,
      eos_token: EOS, pad_token: EOS, unk_token: UNK, bos_token: null,
    });
  }
  json('tokenizer.json', tokenizerJson(vocab, arch));
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  return { arch, vocabSize: vocab.length, parameters: tensors.reduce((n, t) => n + t.data.length, 0) };
}
