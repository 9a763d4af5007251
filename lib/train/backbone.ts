// An Engine seen as the trainer's TrainBackbone: its native model, its tokenization (the same
// code path as encode) and, for full fine-tuning, its weights as a plain HF model dir.
import type { Engine } from '../engine.ts';
import { UserError } from '../errors.ts';
import { canonicalName, checkpointFiles } from '../model/checkpoint.ts';
import { readSafetensorsHeader, readTensorValues } from '../model/safetensors.ts';
import { writeHfModelDir } from '../merge.ts';
import { evaluateRetrieval } from '../eval/evaluate.ts';
import type { TrainBackbone } from './trainer.ts';

export function engineBackbone(engine: Engine): TrainBackbone {
  const model = engine.native;
  const pooling = engine.config.defaultPooling;
  return {
    model,
    modelDir: engine.modelDir,
    arch: engine.config.native.arch,
    loraTargets: engine.config.loraTargets,
    pooling,
    tokenize(texts, maxLength, instruction, describe) {
      if (!engine.tokenizer) throw new UserError(`${engine.modelDir} has no tokenizer.json; training needs it to tokenize the texts of --data`);
      const { sequences: seqs, lengths } = engine.tokenizeWithLengths(texts, { pooling, maxLength, instruction, describeInput: describe });
      const cut = lengths.flatMap((length, index) => (length > seqs[index].length ? [{ index, length }] : []));
      const cuSeqlens = new Int32Array(seqs.length + 1);
      seqs.forEach((s, i) => { cuSeqlens[i + 1] = cuSeqlens[i] + s.length; });
      const ids = new Int32Array(cuSeqlens[seqs.length]);
      seqs.forEach((s, i) => ids.set(s, cuSeqlens[i]));
      return { ids, cuSeqlens, cut };
    },
    checkMaxLength(flag, maxLength) {
      // Longer texts are truncated to maxLength, so a sequence past the sliding window would come up sooner or later.
      const window = engine.config.slidingWindow;
      if (window !== null && maxLength > window) {
        throw new UserError(`${flag} ${maxLength} exceeds the sliding window of ${engine.modelDir} (${window} tokens), which lmdr does not implement; use ${flag} ${window} or less`);
      }
    },
    writeFullModel(dir) {
      // Trained weights in F32 (exact for resume); the rest keeps its stored dtype.
      const trained = new Map(model.params().map((p) => [p.name, p.data]));
      writeHfModelDir(engine.modelDir, dir, engine.config, (name) => {
        const data = trained.get(name);
        return data && { data, dtype: 'F32' };
      });
    },
    loadFullModel(dir) {
      const missing = new Set(model.params().map((p) => p.name));
      for (const file of checkpointFiles(dir)) {
        for (const t of readSafetensorsHeader(file).tensors.values()) {
          const name = canonicalName(t.name, engine.config);
          if (!missing.delete(name)) continue;
          model.setParam(name, Float32Array.from(readTensorValues(file, t)));
        }
      }
      if (missing.size > 0) throw new UserError(`${dir}: checkpoint lacks ${missing.size} trained weights (e.g. "${[...missing][0]}")`);
    },
    async evaluate(beir, split, o) {
      const r = await evaluateRetrieval(engine, {
        beir, split, queryInstruction: o.queryInstruction, passageInstruction: o.passageInstruction,
        queryMaxLen: o.queryMaxLen, passageMaxLen: o.passageMaxLen, device: model.device,
      });
      return r.metrics;
    },
  };
}
