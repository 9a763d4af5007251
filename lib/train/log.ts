// OUTPUT/train_log.jsonl (one JSON line per optimizer step) and OUTPUT/eval_log.jsonl (one line
// per evaluation: {step, "ndcg@10": ...}), appended as the run goes.
import fs from 'node:fs';
import { ioError, writeFileAtomic } from '../formats/atomic-write.ts';

export interface StepRecord {
  step: number; // 1-based optimizer step
  total_steps: number;
  epoch: number; // fractional epochs done after this step
  loss: number;
  lr: number;
  grad_norm: number; // before clipping
  tokens: number; // tokens embedded this step (each sequence counted once)
  tokens_per_s: number;
  seconds: number; // wall time of the step
  task?: string; // the step's task (homogeneous batches with a task config)
  lines: number[]; // the data file's 1-based line of each query of the step, in batch order
  contrastive_loss?: number; // the loss's parts when distilling: loss = cw * contrastive + dw * distill
  distill_loss?: number;
}

/** An append-only JSON-lines log keyed by step. */
export class StepLog<T extends { step: number }> {
  private fd: number;

  /** Opens the log; keeps the lines up to `keepThroughStep` (resume: drops what a killed run did after its last checkpoint). */
  constructor(readonly file: string, keepThroughStep: number) {
    let kept = '';
    if (keepThroughStep > 0 && fs.existsSync(file)) {
      const lines = fs.readFileSync(file, 'utf8').split('\n').filter((line) => line.trim() !== '');
      for (const line of lines) {
        let rec: { step?: unknown };
        try {
          rec = JSON.parse(line);
        } catch {
          break; // a line cut by a kill ends the usable log
        }
        if (typeof rec.step !== 'number' || rec.step > keepThroughStep) break;
        kept += line + '\n';
      }
    }
    writeFileAtomic(file, [Buffer.from(kept)]); // a kill now keeps the old log, not half of it
    try {
      this.fd = fs.openSync(file, 'a');
    } catch (err) {
      throw ioError(err, 'open', file);
    }
  }

  append(record: T): void {
    try {
      fs.writeSync(this.fd, JSON.stringify(record) + '\n');
    } catch (err) {
      throw ioError(err, 'append to', this.file);
    }
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

/** All records of a log file (for tests and tools). */
export function readTrainLog(file: string): StepRecord[] {
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as StepRecord);
}
