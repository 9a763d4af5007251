// sentence-transformers model dirs: modules.json names the pipeline (Transformer -> Pooling ->
// Dense* -> Normalize), config_sentence_transformers.json the prompts. lmdr runs the
// Transformer natively and the modules after it here, the way sentence-transformers does:
// its "lasttoken" pooling takes the last token the tokenizer produced (no EOS of lmdr's own),
// include_prompt=false leaves the prompt's tokens out of the mean.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.ts';
import { array, boolean, jsonKeys, number, object, optional, parse, record, string, type CheckContext, type Infer, type Schema } from '../schema.ts';
import { readSafetensorsHeader, readTensorValues } from './safetensors.ts';

export type StPoolingMode = 'cls' | 'mean' | 'lasttoken';

export interface StDense {
  inFeatures: number;
  outFeatures: number;
  weight: Float64Array; // [out, in]
  bias: Float64Array | null;
  activation: (x: number) => number;
}

export interface SentenceTransformersDir {
  /** the dir holding the Transformer module's config.json and weights */
  transformerDir: string;
  pooling: { mode: StPoolingMode; includePrompt: boolean } | null;
  dense: StDense[];
  normalize: boolean;
  prompts: Record<string, string>;
  defaultPromptName: string | null;
  /** sentence_bert_config.json max_seq_length */
  maxSeqLength: number | null;
}

const ACTIVATIONS: Record<string, (x: number) => number> = {
  'torch.nn.modules.activation.Tanh': Math.tanh,
  'torch.nn.modules.linear.Identity': (x) => x,
  'torch.nn.modules.activation.ReLU': (x) => Math.max(0, x),
  'torch.nn.modules.activation.Sigmoid': (x) => 1 / (1 + Math.exp(-x)),
};

// The keys of each sentence-transformers file lmdr reads (lib/schema.ts): a wrong type is one
// UserError naming the file and the key; other keys (word_embedding_dimension, similarity_fn_name,
// ...) pass through unread. null reads as absent.
const opt = <T>(s: Schema<T>) => optional(s, { nullable: true });
const keep = { unknownKeys: 'keep', expected: 'a JSON object' } as const;
const modulesSchema = array(object({ type: string(), path: opt(string()) }, { unknownKeys: 'keep' }));
const sentenceBertConfigSchema = object({ max_seq_length: opt(number({ int: true, above: 0, expected: 'a positive integer' })) }, keep);
const poolingSchema = object({
  pooling_mode: opt(string()), include_prompt: opt(boolean()), // sentence-transformers 6
  pooling_mode_cls_token: opt(boolean()), pooling_mode_mean_tokens: opt(boolean()), pooling_mode_lasttoken: opt(boolean()), // earlier
  pooling_mode_max_tokens: opt(boolean()), pooling_mode_mean_sqrt_len_tokens: opt(boolean()), pooling_mode_weightedmean_tokens: opt(boolean()),
}, keep);
const denseSchema = object({
  in_features: number({ int: true, above: 0, expected: 'a positive integer' }), out_features: number({ int: true, above: 0, expected: 'a positive integer' }),
  bias: opt(boolean()), activation_function: opt(string()),
}, keep);
const stConfigSchema = object({ prompts: opt(record(string())), default_prompt_name: opt(string()) }, keep);
export type StModulesJson = Infer<typeof modulesSchema>;
export type StPoolingJson = Infer<typeof poolingSchema>;
export type StDenseJson = Infer<typeof denseSchema>;
export type StConfigJson = Infer<typeof stConfigSchema>;

/** <file> read and checked against its schema; messages name the file and the key. */
function readJson<T>(file: string, schema: Schema<T>, ctx: CheckContext = jsonKeys(file, path.basename(file))): T {
  let v: unknown;
  try {
    v = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UserError(`${file}: cannot read JSON (${(err as Error).message})`);
  }
  return parse(schema, v, ctx);
}

/** modules.json keys as module N "key" ("[1].path" -> module 1 "path"). */
function moduleKeys(file: string): CheckContext {
  return {
    where: file,
    label: (p) => {
      const m = /^\[(\d+)\](?:\.(.*))?$/.exec(p);
      return p === '' ? 'modules.json' : m ? (m[2] ? `module ${m[1]} "${m[2]}"` : `module ${m[1]}`) : `"${p}"`;
    },
  };
}

/** The dir's sentence-transformers pipeline, or null when it has no modules.json. */
export function readSentenceTransformers(dir: string): SentenceTransformersDir | null {
  const modulesFile = path.join(dir, 'modules.json');
  if (!fs.existsSync(modulesFile)) return null;
  const modules = readJson(modulesFile, modulesSchema, moduleKeys(modulesFile));
  const st: SentenceTransformersDir = { transformerDir: dir, pooling: null, dense: [], normalize: false, prompts: {}, defaultPromptName: null, maxSeqLength: null };
  modules.forEach((m, i) => {
    const type = m.type;
    const sub = m.path ?? '';
    if (path.isAbsolute(sub) || sub.split(/[\\/]/).includes('..')) throw new UserError(`${modulesFile}: module ${i} path "${sub}" must lie inside the dir`);
    const mdir = path.join(dir, sub);
    const kind = type.split('.').pop();
    if (i === 0) {
      if (kind !== 'Transformer') throw new UserError(`${modulesFile}: the first module must be a Transformer, got "${type}"`);
      st.transformerDir = mdir;
      const bert = path.join(mdir, 'sentence_bert_config.json');
      if (fs.existsSync(bert)) {
        st.maxSeqLength = readJson(bert, sentenceBertConfigSchema).max_seq_length ?? null;
      }
      return;
    }
    if (kind === 'Pooling') st.pooling = readPooling(path.join(mdir, 'config.json'));
    else if (kind === 'Dense') st.dense.push(readDense(mdir));
    else if (kind === 'Normalize') st.normalize = true;
    else throw new UserError(`${modulesFile}: module ${i} type "${type}" is not supported (supported: Transformer, Pooling, Dense, Normalize)`);
  });
  const cfgFile = path.join(dir, 'config_sentence_transformers.json');
  if (fs.existsSync(cfgFile)) {
    const cfg = readJson(cfgFile, stConfigSchema);
    if (cfg.prompts) st.prompts = cfg.prompts;
    if (cfg.default_prompt_name !== undefined) {
      if (!(cfg.default_prompt_name in st.prompts)) throw new UserError(`${cfgFile}: default_prompt_name "${cfg.default_prompt_name}" is not one of the prompts`);
      st.defaultPromptName = cfg.default_prompt_name;
    }
  }
  return st;
}

function readPooling(file: string): { mode: StPoolingMode; includePrompt: boolean } {
  const c = readJson(file, poolingSchema);
  // sentence-transformers 6 writes "pooling_mode": "<name>"; earlier versions one boolean per mode
  if (typeof c.pooling_mode === 'string') {
    const names: Record<string, StPoolingMode> = { cls: 'cls', mean: 'mean', lasttoken: 'lasttoken' };
    const mode = names[c.pooling_mode];
    if (!mode) throw new UserError(`${file}: "pooling_mode" ${JSON.stringify(c.pooling_mode)} is not supported (supported: "cls", "mean", "lasttoken")`);
    return { mode, includePrompt: c.include_prompt !== false };
  }
  const modes: [keyof StPoolingJson, StPoolingMode | null][] = [
    ['pooling_mode_cls_token', 'cls'], ['pooling_mode_mean_tokens', 'mean'], ['pooling_mode_lasttoken', 'lasttoken'],
    ['pooling_mode_max_tokens', null], ['pooling_mode_mean_sqrt_len_tokens', null], ['pooling_mode_weightedmean_tokens', null],
  ];
  const on = modes.filter(([key]) => c[key] === true);
  if (on.length !== 1) throw new UserError(`${file}: exactly one pooling mode must be true (lmdr supports pooling_mode_cls_token, pooling_mode_mean_tokens, pooling_mode_lasttoken), got ${on.length}`);
  const [key, mode] = on[0];
  if (!mode) throw new UserError(`${file}: "${key}": true is not supported (supported: pooling_mode_cls_token, pooling_mode_mean_tokens, pooling_mode_lasttoken)`);
  return { mode, includePrompt: c.include_prompt !== false };
}

function readDense(dir: string): StDense {
  const cfgFile = path.join(dir, 'config.json');
  const c = readJson(cfgFile, denseSchema);
  const inFeatures = c.in_features, outFeatures = c.out_features;
  const actName = c.activation_function ?? 'torch.nn.modules.activation.Tanh';
  const activation = ACTIVATIONS[actName];
  if (!activation) throw new UserError(`${cfgFile}: activation_function "${actName}" is not supported (supported: ${Object.keys(ACTIVATIONS).join(', ')})`);
  const file = path.join(dir, 'model.safetensors');
  if (!fs.existsSync(file)) {
    const bin = path.join(dir, 'pytorch_model.bin');
    if (fs.existsSync(bin)) {
      throw new UserError(`${bin}: a Dense layer stored only as pytorch_model.bin is not supported; convert it to safetensors, e.g. ` +
        `python -c "import torch; from safetensors.torch import save_file; save_file(torch.load('${bin}'), '${file}')"`);
    }
    throw new UserError(`${dir}: no model.safetensors for the Dense layer`);
  }
  const header = readSafetensorsHeader(file);
  const get = (name: string, shape: number[]) => {
    const t = header.tensors.get(name);
    if (!t) return null;
    if (t.shape.join() !== shape.join()) throw new UserError(`${file}: tensor "${name}" has shape ${JSON.stringify(t.shape)}, expected ${JSON.stringify(shape)}`);
    return Float64Array.from(readTensorValues(file, t));
  };
  const weight = get('linear.weight', [outFeatures, inFeatures]);
  if (!weight) throw new UserError(`${file}: missing tensor "linear.weight"`);
  const bias = get('linear.bias', [outFeatures]);
  if (c.bias !== false && !bias) throw new UserError(`${file}: missing tensor "linear.bias" (config.json says bias)`);
  return { inFeatures, outFeatures, weight, bias, activation };
}

/** Dense layers then Normalize on one pooled row (float64). */
export function applyModules(st: SentenceTransformersDir, pooled: ArrayLike<number>): Float64Array {
  let x = Float64Array.from(pooled);
  for (const d of st.dense) {
    if (x.length !== d.inFeatures) throw new UserError(`Dense layer expects ${d.inFeatures} inputs, got ${x.length}`);
    const y = new Float64Array(d.outFeatures);
    for (let o = 0; o < d.outFeatures; o++) {
      let s = d.bias ? d.bias[o] : 0;
      for (let i = 0; i < d.inFeatures; i++) s += d.weight[o * d.inFeatures + i] * x[i];
      y[o] = d.activation(s);
    }
    x = y;
  }
  if (st.normalize) normalizeInPlace(x);
  return x;
}

export function normalizeInPlace(x: Float64Array | Float32Array): void {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i] * x[i];
  const n = Math.max(Math.sqrt(ss), 1e-12);
  for (let i = 0; i < x.length; i++) x[i] /= n;
}
