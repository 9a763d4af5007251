// The one timer every benchmark uses: best (smallest) wall time of repeated runs.

export interface BestOfOptions {
  /** one untimed run first (allocators, cuBLASLt heuristics, JIT) */
  warmup?: boolean;
  /** called after each timed run, e.g. to log progress */
  onRun?: (run: number, seconds: number) => void;
}

/** Runs fn `repeats` times; returns the smallest wall time in seconds and the last run's result. */
export async function bestOf<T>(repeats: number, fn: () => Promise<T> | T, options: BestOfOptions = {}): Promise<{ seconds: number; result: T }> {
  if (options.warmup) await fn();
  let best = Infinity;
  let result!: T;
  for (let i = 0; i < repeats; i++) {
    const t0 = process.hrtime.bigint();
    result = await fn();
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    best = Math.min(best, seconds);
    options.onRun?.(i + 1, seconds);
  }
  return { seconds: best, result };
}
