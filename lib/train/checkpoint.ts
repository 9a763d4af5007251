// OUTPUT/checkpoint-<step>/: the model's trainable state in its user-facing form (a PEFT
// adapter, or a HF model dir in full mode), optimizer.safetensors (AdamW moments, F32) and
// trainer_state.json (step, data position, seed and the options that must not change on
// resume). The dir is written under a temp name and renamed into place, so a killed run
// leaves either a complete checkpoint or none.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.ts';
import { jsonKeys, number, object, oneOf, optional, parse, record, unknownValue } from '../schema.ts';
import { writeDirAtomic, writeFileAtomic } from '../formats/atomic-write.ts';
import { readSafetensorsHeader, readTensorValues, writeSafetensors } from '../model/safetensors.ts';
import type { HostTensor } from '../native.ts';

export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const TRAINER_STATE_FILE = 'trainer_state.json';
const CHECKPOINT_RE = /^checkpoint-(\d+)$/;

export interface TrainerState {
  step: number; // optimizer steps done
  totalSteps: number;
  epoch: number; // fractional epochs done
  dataPosition: { epoch: number; stepInEpoch: number }; // where the next step's batch comes from
  // The sampler, negatives and dropout masks are pure functions of (seed, step): this is all the RNG state.
  rng: { seed: number; kind: 'counter-based' };
  lastLoss: number;
  // Options a resumed run must share with the run it continues (checked on --resume).
  fingerprint: Record<string, unknown>;
}

export function checkpointDir(output: string, step: number): string {
  return path.join(output, `checkpoint-${step}`);
}

/** Complete checkpoints in OUTPUT, newest first. */
export function listCheckpoints(output: string): { step: number; dir: string }[] {
  if (!fs.existsSync(output)) return [];
  return fs.readdirSync(output)
    .map((name) => ({ m: CHECKPOINT_RE.exec(name), name }))
    .filter(({ m, name }) => m && fs.existsSync(path.join(output, name, TRAINER_STATE_FILE)))
    .map(({ m, name }) => ({ step: Number(m![1]), dir: path.join(output, name) }))
    .sort((a, b) => b.step - a.step);
}

export function writeCheckpoint(output: string, state: TrainerState, optimizer: HostTensor[], writeModel: (dir: string) => void): string {
  const dir = checkpointDir(output, state.step);
  writeDirAtomic(dir, (tmp) => {
    writeModel(tmp);
    writeSafetensors(path.join(tmp, OPTIMIZER_FILE), optimizer.map((t) => ({ name: t.name, dtype: 'F32' as const, shape: t.shape, data: t.data })));
    writeFileAtomic(path.join(tmp, TRAINER_STATE_FILE), [Buffer.from(JSON.stringify(state, null, 2) + '\n')]);
  });
  return dir;
}

// The fields of trainer_state.json a resume relies on (lastLoss may be written as null by JSON for NaN).
const trainerStateSchema = object({
  step: number({ int: true, min: 0 }),
  totalSteps: number({ int: true, min: 1 }),
  epoch: number({ min: 0 }),
  dataPosition: object({ epoch: number({ int: true, min: 0 }), stepInEpoch: number({ int: true, min: 0 }) }),
  rng: object({ seed: number({ int: true, min: 0 }), kind: oneOf(['counter-based'] as const) }),
  lastLoss: optional(number(), { nullable: true }),
  fingerprint: record(unknownValue()),
}, { unknownKeys: 'keep', expected: 'a JSON object' });

export function readTrainerState(dir: string): TrainerState {
  const file = path.join(dir, TRAINER_STATE_FILE);
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UserError(`${file}: cannot read trainer state (${(err as Error).message})`);
  }
  return parse(trainerStateSchema, raw, jsonKeys(file, 'the file')) as TrainerState;
}

export function readOptimizerState(dir: string): HostTensor[] {
  const file = path.join(dir, OPTIMIZER_FILE);
  const header = readSafetensorsHeader(file);
  return [...header.tensors.values()].map((t) => ({ name: t.name, shape: t.shape, data: Float32Array.from(readTensorValues(file, t)) }));
}

/** On resume: every fingerprint entry must equal the checkpoint's; the message names the first that differs. */
export function checkFingerprint(dir: string, saved: Record<string, unknown>, now: Record<string, unknown>): void {
  for (const key of new Set([...Object.keys(saved), ...Object.keys(now)])) {
    const a = JSON.stringify(saved[key]);
    const b = JSON.stringify(now[key]);
    if (a !== b) throw new UserError(`--resume: ${key} is ${b} but ${dir} was trained with ${a}; resume with the same settings or use a new --output`);
  }
}
