// Learning-rate schedules with Hugging Face `get_*_schedule_with_warmup` semantics: the
// optimizer step with 0-based index s uses lr * factor(s), so with warmup the first step has lr 0.
import { UserError } from '../errors.ts';

export type LrScheduler = 'linear' | 'constant';

export interface ScheduleSpec {
  kind: LrScheduler;
  lr: number;
  totalSteps: number;
  warmupSteps: number;
}

/** Warmup length from --warmup-steps or --warmup-ratio (HF: ceil(ratio * total)); both given is an error. */
export function warmupSteps(totalSteps: number, steps?: number, ratio?: number): number {
  if (steps !== undefined && ratio !== undefined) throw new UserError('give --warmup-steps or --warmup-ratio, not both');
  if (steps !== undefined) {
    if (!Number.isInteger(steps) || steps < 0) throw new UserError(`--warmup-steps must be an integer >= 0, got ${steps}`);
    return steps;
  }
  if (ratio !== undefined) {
    if (!(ratio >= 0 && ratio <= 1)) throw new UserError(`--warmup-ratio must be in [0, 1], got ${ratio}`);
    return Math.ceil(totalSteps * ratio);
  }
  return 0;
}

/** Learning rate of the optimizer step with 0-based index `step`. */
export function learningRate(spec: ScheduleSpec, step: number): number {
  const { kind, lr, totalSteps, warmupSteps: warmup } = spec;
  if (step < warmup) return (lr * step) / Math.max(1, warmup);
  if (kind === 'constant') return lr;
  return lr * Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmup));
}
