// OUTPUT/curves.svg: the loss curve from train_log.jsonl and, when OUTPUT/eval_log.jsonl
// exists (one line per evaluation: {step, "ndcg@10": ..., ...}), the metric curves.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.ts';
import { writeFileAtomic } from '../formats/atomic-write.ts';
import { readJsonLinesAll } from '../formats/jsonl.ts';
import { lineChartSvg, type Panel, type Series } from './line-chart.ts';

export const TRAIN_LOG = 'train_log.jsonl';
export const EVAL_LOG = 'eval_log.jsonl';
export const CURVES_SVG = 'curves.svg';

/** The JSON-object lines of a log (file:line errors come from the shared reader). */
async function readLog(file: string): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for (const { value, line } of await readJsonLinesAll<unknown>(file, 'log')) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new UserError(`${file}:${line}: expected a JSON object`);
    out.push(value as Record<string, unknown>);
  }
  return out;
}

/** Exponential moving average with bias correction (as TensorBoard-style smoothing). */
export function smooth(values: number[], beta: number): number[] {
  let avg = 0;
  let weight = 0;
  return values.map((v) => {
    if (!Number.isFinite(v)) return NaN;
    avg = beta * avg + (1 - beta) * v;
    weight = beta * weight + (1 - beta);
    return avg / weight;
  });
}

/** One series per numeric field (other than x) over the records that have it. */
function seriesOf(records: Record<string, unknown>[], x: string, skip: Set<string>): Series[] {
  const names: string[] = [];
  for (const r of records) for (const k of Object.keys(r)) if (k !== x && !skip.has(k) && typeof r[k] === 'number' && !names.includes(k)) names.push(k);
  return names.map((name) => ({
    name,
    points: records.filter((r) => typeof r[x] === 'number' && typeof r[name] === 'number').map((r) => [r[x] as number, r[name] as number]),
  }));
}

/** Panels for a training run's logs (exported for the demo, which adds its own). */
export function trainingPanels(trainRecords: Record<string, unknown>[], evalRecords: Record<string, unknown>[]): Panel[] {
  const panels: Panel[] = [];
  const loss = trainRecords.filter((r) => typeof r.step === 'number' && typeof r.loss === 'number');
  if (loss.length > 0) {
    const steps = loss.map((r) => r.step as number);
    const values = loss.map((r) => r.loss as number);
    const series: Series[] = [{ name: 'loss', points: steps.map((s, i) => [s, values[i]]) }];
    if (loss.length >= 10) {
      const avg = smooth(values, 0.9);
      series.push({ name: 'loss (smoothed)', points: steps.map((s, i) => [s, avg[i]]) });
    }
    panels.push({ title: 'InfoNCE training loss', xLabel: 'optimizer step', yLabel: 'loss', series });
    // homogeneous multi-task runs: the loss of each task's steps
    const tasks = [...new Set(loss.flatMap((r) => (typeof r.task === 'string' ? [r.task] : [])))];
    if (tasks.length > 0) {
      panels.push({
        title: 'Training loss per task', xLabel: 'optimizer step', yLabel: 'loss',
        series: tasks.map((t) => ({ name: t, points: loss.filter((r) => r.task === t).map((r) => [r.step as number, r.loss as number] as [number, number]) })),
      });
    }
  }
  const metrics = seriesOf(evalRecords, 'step', new Set(['epoch', 'seconds']));
  if (metrics.length > 0) panels.push({ title: 'Retrieval metrics (held-out queries)', xLabel: 'optimizer step', yLabel: 'score', series: metrics });
  return panels;
}

/**
 * Write OUTPUT/curves.svg from OUTPUT/train_log.jsonl (+ eval_log.jsonl if present).
 * Returns the SVG path, or undefined when there is nothing to plot yet.
 */
export async function writeTrainingCurves(outputDir: string): Promise<string | undefined> {
  const trainFile = path.join(outputDir, TRAIN_LOG);
  const evalFile = path.join(outputDir, EVAL_LOG);
  const train = fs.existsSync(trainFile) ? await readLog(trainFile) : [];
  const evals = fs.existsSync(evalFile) ? await readLog(evalFile) : [];
  const panels = trainingPanels(train, evals);
  if (panels.length === 0) return undefined;
  const target = path.join(outputDir, CURVES_SVG);
  writeFileAtomic(target, [Buffer.from(lineChartSvg(panels), 'utf8')]);
  return target;
}
