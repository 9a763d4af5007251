// Plain Hugging Face model dirs from a loaded model: `lmdr merge` (W + (alpha/r)·B·A folded into
// each LoRA-targeted weight) and full fine-tuning's output. The source dir's layout is kept:
// every non-weight file is copied, every shard is rewritten under its own name with the same
// HF tensor names, untouched tensors keep their values and dtype. A merge builds the whole dir
// beside its target and swaps it in (writeDirAtomic), holding the target's lock meanwhile.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from './errors.ts';
import { writeDirAtomic, writeFileAtomic } from './formats/atomic-write.ts';
import { lockOutput } from './formats/output-lock.ts';
import { boolean, func, object, optional, parse, string, type Infer } from './schema.ts';
import { canonicalName, checkpointFiles } from './model/checkpoint.ts';
import type { ModelInfo } from './model/config.ts';
import { readSafetensorsHeader, readTensorValues, writeSafetensors, type TensorToWrite } from './model/safetensors.ts';
import type { NativeModel, SafetensorsDType } from './native.ts';

const INDEX_FILE = 'model.safetensors.index.json';
const CONFIG_FILE = 'config.json';
/** What a merged dir holds besides the model: the list of files `lmdr merge` wrote there. */
export const MERGE_MANIFEST = '.lmdr-merge.json';
// Weight files a loader may pick up: a stale one must never survive a rewrite of the dir.
const WEIGHT_FILE = /^(model(-.+)?\.safetensors|model\.safetensors\.index\.json|pytorch_model(-.+)?\.bin|pytorch_model\.bin\.index\.json)$/;

export interface ReplacedTensor {
  data: Float32Array;
  dtype?: SafetensorsDType; // default: the source tensor's dtype
}

/**
 * Write `outDir` as a copy of the HF model dir `srcDir` in which tensors get new values from
 * `replace(canonical name)` (undefined = keep). Non-float buffers (BERT's int64 position_ids)
 * are left out: transformers rebuilds them.
 */
export function writeHfModelDir(srcDir: string, outDir: string, info: ModelInfo, replace: (canonical: string) => ReplacedTensor | undefined): void {
  if (path.resolve(srcDir) === path.resolve(outDir)) throw new UserError(`--output ${outDir} is the model dir itself; choose another dir`);
  fs.mkdirSync(outDir, { recursive: true });
  // config.json is written last and removed first: a dir with a config.json holds the weights written with it.
  fs.rmSync(path.join(outDir, CONFIG_FILE), { force: true });
  const shards = checkpointFiles(srcDir);
  // Weight files of an earlier model in outDir that this one does not rewrite (a single file
  // where shards come now, or other shard names) would be picked up by loaders: remove them.
  const writing = new Set([...shards.map((f) => path.basename(f)), ...(fs.existsSync(path.join(srcDir, INDEX_FILE)) ? [INDEX_FILE] : [])]);
  for (const name of fs.readdirSync(outDir)) {
    if (WEIGHT_FILE.test(name) && !writing.has(name)) fs.rmSync(path.join(outDir, name), { force: true });
  }
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  for (const file of shards) {
    const header = readSafetensorsHeader(file);
    const tensors: TensorToWrite[] = [];
    for (const t of [...header.tensors.values()].sort((a, b) => a.offset - b.offset)) {
      const rep = replace(canonicalName(t.name, info));
      const dtype = rep?.dtype ?? t.dtype;
      const data = rep ? rep.data : t.dtype === 'F64' ? readTensorValues(file, t) : Float32Array.from(readTensorValues(file, t));
      if (data.length !== t.shape.reduce((a, b) => a * b, 1)) throw new Error(`writeHfModelDir: "${t.name}" got ${data.length} values for shape [${t.shape}]`);
      tensors.push({ name: t.name, dtype, shape: t.shape, data });
      weightMap[t.name] = path.basename(file);
      totalSize += data.length * { F64: 8, F32: 4, F16: 2, BF16: 2 }[dtype];
    }
    writeSafetensors(path.join(outDir, path.basename(file)), tensors, Object.keys(header.metadata).length ? header.metadata : { format: 'pt' });
  }
  if (fs.existsSync(path.join(srcDir, INDEX_FILE))) {
    const index = { metadata: { total_size: totalSize }, weight_map: weightMap };
    writeFileAtomic(path.join(outDir, INDEX_FILE), [Buffer.from(JSON.stringify(index, null, 2) + '\n')]);
  }
  // tokenizer files, generation_config.json, ...: copied as they are, config.json last.
  const copied = fs.readdirSync(srcDir).filter((name) => !name.endsWith('.safetensors') && name !== INDEX_FILE && fs.statSync(path.join(srcDir, name)).isFile());
  for (const name of [...copied.filter((n) => n !== CONFIG_FILE), ...copied.filter((n) => n === CONFIG_FILE)]) {
    writeFileAtomic(path.join(outDir, name), [fs.readFileSync(path.join(srcDir, name))]);
  }
}

/**
 * The canonical base weights an adapter changes: "<module>.weight" for each "<module>.lora_A.weight".
 * A model whose adapter is frozen (Engine.load with an adapter) is switched to 'lora' to list them, then back to 'none'.
 */
export function loraTargetWeights(model: NativeModel): string[] {
  let params = model.params();
  if (params.length === 0) {
    model.setTrainable('lora');
    params = model.params();
    model.setTrainable('none');
  }
  return params.filter((p) => p.name.endsWith('.lora_A.weight')).map((p) => p.name.replace(/\.lora_A\.weight$/, '.weight'));
}

const mergeOptionsSchema = object({
  overwrite: optional(boolean()), // replace an output dir that holds files lmdr merge did not write
  onWarning: optional(func<(message: string) => void>()), // notes that do not stop the merge (a stale lock taken over)
}, { expected: 'an options object' });
export type MergeOptions = Infer<typeof mergeOptionsSchema>;

/**
 * Files in `outDir` that an earlier `lmdr merge` did not write (none when the dir is missing,
 * empty, or holds exactly a previous merge's files).
 */
export function foreignFiles(outDir: string): string[] {
  if (!fs.existsSync(outDir)) return [];
  if (!fs.statSync(outDir).isDirectory()) return [path.basename(outDir)];
  const names = fs.readdirSync(outDir);
  let written: string[] = [];
  try {
    const manifest = JSON.parse(fs.readFileSync(path.join(outDir, MERGE_MANIFEST), 'utf8')) as { files?: unknown };
    if (Array.isArray(manifest.files)) written = manifest.files.filter((f): f is string => typeof f === 'string');
  } catch {
    // no manifest: nothing in the dir was written by lmdr merge
  }
  return names.filter((n) => n !== MERGE_MANIFEST && !written.includes(n)).sort();
}

/**
 * Fold the model's LoRA weights into the base weights and write a plain HF model dir (original
 * dtypes). The dir is built beside `outDir` and swapped in whole, under `outDir`'s lock: a
 * reader (or a kill) sees the previous dir or the new one, never a mix. An `outDir` holding
 * files an earlier merge did not write is refused unless `overwrite`.
 */
export function writeMergedModel(model: NativeModel, srcDir: string, info: ModelInfo, outDir: string, options: MergeOptions = {}): number {
  const where = 'writeMergedModel';
  if (typeof model !== 'object' || model === null || typeof (model as NativeModel).baseWeight !== 'function') {
    throw new UserError(`${where}: model must be a loaded NativeModel (engine.native), got ${model === null ? 'null' : typeof model}`);
  }
  parse(string({ nonEmpty: true }), srcDir, { where, label: () => 'srcDir' });
  parse(string({ nonEmpty: true }), outDir, { where, label: () => 'outDir' });
  if (typeof info !== 'object' || info === null || typeof (info as ModelInfo).native !== 'object') {
    throw new UserError(`${where}: info must be the model's ModelInfo (engine.config)`);
  }
  const o = parse(mergeOptionsSchema, options, { where });
  if (path.resolve(srcDir) === path.resolve(outDir)) throw new UserError(`output ${outDir} is the model dir itself; choose another dir`);
  const lock = lockOutput(outDir, 'lmdr merge');
  try {
    if (lock.staleNote) o.onWarning?.(lock.staleNote);
    const foreign = foreignFiles(outDir);
    if (foreign.length > 0 && !o.overwrite) {
      const what = fs.statSync(outDir).isDirectory() ? `holds files lmdr merge did not write (${foreign.slice(0, 3).join(', ')}${foreign.length > 3 ? ', ...' : ''})` : 'is a file';
      throw new UserError(`output ${outDir} ${what}; choose a new or empty dir, or replace it with --overwrite (API: overwrite: true)`);
    }
    return mergeInto(model, srcDir, info, outDir);
  } finally {
    lock.release();
  }
}

function mergeInto(model: NativeModel, srcDir: string, info: ModelInfo, outDir: string): number {
  const targets = new Set(loraTargetWeights(model));
  if (targets.size === 0) throw new Error('writeMergedModel: the model has no LoRA weights');
  let merged = 0;
  writeDirAtomic(outDir, (tmp) => {
    writeHfModelDir(srcDir, tmp, info, (name) => {
      if (!targets.has(name)) return undefined;
      merged++;
      return { data: model.baseWeight(name, true) };
    });
    const files = fs.readdirSync(tmp).sort();
    writeFileAtomic(path.join(tmp, MERGE_MANIFEST), [Buffer.from(JSON.stringify({ writer: 'lmdr merge', model: path.resolve(srcDir), files }, null, 2) + '\n')]);
  });
  if (merged !== targets.size) throw new Error(`writeMergedModel: merged ${merged} of ${targets.size} LoRA-targeted weights`);
  return merged;
}
