// What a benchmark suite is and what it reports. Every figure carries its baseline, measured
// in the same run on the same machine, and the ratio between them.

export interface Figure {
  name: string; // what was measured, e.g. "encode, 128-token passages"
  value: number; // lmdr's absolute number
  unit: string; // e.g. "tokens/s", "queries/s"
  baseline: string; // the named baseline, e.g. "float64 JS reference model"
  baselineValue: number; // the baseline's absolute number, same unit
  /** lmdr / baseline for rates (higher is better), so > 1 means lmdr is faster */
  ratio: number;
  check?: string; // a correctness check done on the same outputs, e.g. "max |cos - 1| 2e-7"
}

export interface SuiteContext {
  quick: boolean; // smoke-run sizes
  device: string; // the machine, in words
  log: (message: string) => void; // progress lines on stderr
  tmp: string; // scratch dir for this run
}

export interface SuiteOutput {
  figures: Figure[];
  /** Rows printed by a standalone script the suite ran (they keep their own format). */
  rows?: string[];
  settings?: Record<string, unknown>;
}

export interface Suite {
  name: string;
  /** which machines it runs on: cpu = always, gpu = a CUDA device is visible, gpu-torch = that and `import torch` works */
  needs: 'cpu' | 'gpu' | 'gpu-torch';
  describe: string;
  /** why this machine cannot run it (e.g. its peer does not import); undefined when it can */
  unavailable?: () => string | undefined;
  run(ctx: SuiteContext): Promise<SuiteOutput>;
}
