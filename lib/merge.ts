// Plain Hugging Face model dirs from a loaded model: `lmdr merge` (W + (alpha/r)·B·A folded into
// each LoRA-targeted weight) and full fine-tuning's output. The source dir's layout is kept:
// every non-weight file is copied, every shard is rewritten under its own name with the same
// HF tensor names, untouched tensors keep their values and dtype.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from './errors.ts';
import { writeFileAtomic } from './formats/atomic-write.ts';
import { canonicalName, checkpointFiles } from './model/checkpoint.ts';
import type { ModelInfo } from './model/config.ts';
import { readSafetensorsHeader, readTensorValues, writeSafetensors, type TensorToWrite } from './model/safetensors.ts';
import type { NativeModel, SafetensorsDType } from './native.ts';

const INDEX_FILE = 'model.safetensors.index.json';
const CONFIG_FILE = 'config.json';

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

/** Fold the model's LoRA weights into the base weights and write a plain HF model dir (original dtypes). */
export function writeMergedModel(model: NativeModel, srcDir: string, info: ModelInfo, outDir: string): number {
  const targets = new Set(loraTargetWeights(model));
  if (targets.size === 0) throw new Error('writeMergedModel: the model has no LoRA weights');
  let merged = 0;
  writeHfModelDir(srcDir, outDir, info, (name) => {
    if (!targets.has(name)) return undefined;
    merged++;
    return { data: model.baseWeight(name, true) };
  });
  if (merged !== targets.size) throw new Error(`writeMergedModel: merged ${merged} of ${targets.size} LoRA-targeted weights`);
  return merged;
}
