// What a suite run writes at the end: results.json ({"models": {label: {unit: {metric: x}}}},
// plus "steps" for checkpoint runs), results.md (a summary table with the average, then one
// table per sweep, instruction set and the rag tasks) and SVG charts (charts/<sweep>.svg: the
// metric over passage length; charts/data-efficiency.svg: the metrics over training steps).
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../formats/atomic-write.ts';
import { lineChartSvg, type Series } from '../plot/line-chart.ts';
import type { SuiteTask } from './schema.ts';

export interface SuiteResults {
  models: Record<string, Record<string, Record<string, number>>>;
  /** checkpoint runs: label -> training step */
  steps: Record<string, number>;
  units: { name: string; task: SuiteTask; variant?: { key: string; value: number | string; seen?: boolean } }[];
}

const primary = (t: SuiteTask) => t.metrics![0];
const fmt = (v: number | undefined) => (v === undefined ? '–' : Number.isNaN(v) ? 'NaN' : v.toFixed(4));

function table(header: string[], rows: (string | number | undefined)[][]): string[] {
  const cell = (c: string | number | undefined) => (typeof c === 'number' || c === undefined ? fmt(c as number | undefined) : c.replace(/\|/g, '\\|'));
  return [`| ${header.map(cell).join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`)];
}

/** Summary columns: single-unit retrieval and sts tasks, by their first metric. */
function summaryColumns(r: SuiteResults): { unit: string; metric: string }[] {
  return r.units.filter((u) => (u.task.type === 'retrieval' || u.task.type === 'sts')).map((u) => ({ unit: u.name, metric: primary(u.task) }));
}

/** The mean of a model's summary columns; undefined unless it has every one. */
export function summaryAverage(r: SuiteResults, label: string): number | undefined {
  const cols = summaryColumns(r);
  const vals = cols.map((c) => r.models[label]?.[c.unit]?.[c.metric]);
  if (cols.length === 0 || vals.some((v) => v === undefined)) return undefined;
  return (vals as number[]).reduce((a, b) => a + b, 0) / vals.length;
}

export function markdownReport(r: SuiteResults): string {
  const labels = Object.keys(r.models);
  const out: string[] = ['# lmdr suite results', ''];
  const cols = summaryColumns(r);
  const shown = labels.filter((l) => cols.some((c) => r.models[l][c.unit] !== undefined));
  if (cols.length > 0 && shown.length > 0) {
    out.push('## Summary', '', 'Each task by its first metric; the average is over these columns.', '');
    out.push(...table(['model', ...cols.map((c) => `${c.unit} (${c.metric})`), 'average'],
      shown.map((l) => [l, ...cols.map((c) => r.models[l][c.unit]?.[c.metric]), summaryAverage(r, l)])), '');
  }
  const tasks = [...new Map(r.units.map((u) => [u.task.name, u.task])).values()];
  for (const task of tasks) {
    const units = r.units.filter((u) => u.task.name === task.name);
    const has = labels.filter((l) => units.some((u) => r.models[l][u.name] !== undefined));
    if (has.length === 0 || task.type === 'rag') continue;
    if (task.type === 'length-sweep' || task.type === 'instructions') {
      const m = primary(task);
      const head = units.map((u) => task.type === 'length-sweep' ? `${u.variant!.value}` : `${u.variant!.value}${u.variant!.seen === undefined ? '' : u.variant!.seen ? ' (seen)' : ' (unseen)'}`);
      out.push(`## ${task.name}: ${m} by ${task.type === 'length-sweep' ? 'passage max length (tokens)' : 'query instruction'}`, '');
      out.push(...table(['model', ...head, 'average'], has.map((l) => {
        const v = units.map((u) => r.models[l][u.name]?.[m]);
        return [l, ...v, v.some((x) => x === undefined) ? undefined : (v as number[]).reduce((a, b) => a + b, 0) / v.length];
      })), '');
      if (task.type === 'length-sweep') out.push(`Chart: charts/${task.name}.svg`, '');
    }
    // every metric of the task (one row per model and unit), when there is more than the first
    if (task.metrics!.length > 1) {
      out.push(`### ${task.name}: all metrics`, '');
      out.push(...table(['model', ...(units.length > 1 ? ['variant'] : []), ...task.metrics!],
        has.flatMap((l) => units.map((u) => [l, ...(units.length > 1 ? [String(u.variant!.value)] : []), ...task.metrics!.map((m) => r.models[l][u.name]?.[m])]))), '');
    }
  }
  // retrieval augmentation, one row per retriever (the second paper's tables)
  const rag = r.units.filter((u) => u.task.type === 'rag');
  const ragRows = labels.filter((l) => rag.some((u) => r.models[l][u.name] !== undefined));
  if (rag.length > 0 && ragRows.length > 0) {
    const ragCols = rag.flatMap((u) => u.task.metrics!.map((m) => ({ unit: u.name, metric: m })));
    out.push('## Retrieval augmentation', '', 'One row per retriever ("none": no retrieval). loglik: mean log-likelihood of the gold answer; accuracy: multiple choice; perplexity: lower is better.', '');
    out.push(...table(['retriever', ...ragCols.map((c) => `${c.unit} (${c.metric})`)], ragRows.map((l) => [l, ...ragCols.map((c) => r.models[l][c.unit]?.[c.metric])])), '');
  }
  const stepLabels = labels.filter((l) => r.steps[l] !== undefined).sort((a, b) => r.steps[a] - r.steps[b]);
  if (stepLabels.length > 0 && cols.length > 0) {
    out.push('## Data efficiency (metrics over training steps)', '');
    out.push(...table(['step', ...cols.map((c) => `${c.unit} (${c.metric})`), 'average'],
      stepLabels.map((l) => [String(r.steps[l]), ...cols.map((c) => r.models[l][c.unit]?.[c.metric]), summaryAverage(r, l)])), '');
    out.push('Chart: charts/data-efficiency.svg', '');
  }
  return out.join('\n');
}

/** Write results.json, results.md and the charts; returns their paths. */
export function writeReport(output: string, r: SuiteResults): string[] {
  const files: string[] = [];
  const write = (name: string, text: string) => {
    const file = path.join(output, name);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    writeFileAtomic(file, [Buffer.from(text, 'utf8')]);
    files.push(file);
  };
  const json: Record<string, unknown> = { models: r.models };
  if (Object.keys(r.steps).length > 0) json.steps = r.steps;
  write('results.json', JSON.stringify(json, null, 2) + '\n');
  write('results.md', markdownReport(r));
  const labels = Object.keys(r.models);
  for (const task of [...new Map(r.units.map((u) => [u.task.name, u.task])).values()]) {
    if (task.type !== 'length-sweep') continue;
    const units = r.units.filter((u) => u.task.name === task.name);
    const series: Series[] = labels.map((l) => ({
      name: l, points: units.filter((u) => r.models[l][u.name] !== undefined).map((u) => [u.variant!.value as number, r.models[l][u.name][primary(task)]] as [number, number]),
    })).filter((s) => s.points.length > 0);
    if (series.length > 0) write(path.join('charts', `${task.name}.svg`), lineChartSvg([{ title: `${task.name}: ${primary(task)} by passage length`, xLabel: 'passage max length (tokens)', yLabel: primary(task), series }]));
  }
  const stepLabels = labels.filter((l) => r.steps[l] !== undefined).sort((a, b) => r.steps[a] - r.steps[b]);
  const cols = summaryColumns(r);
  if (stepLabels.length > 0 && cols.length > 0) {
    const series: Series[] = cols.map((c) => ({ name: `${c.unit} (${c.metric})`, points: stepLabels.filter((l) => r.models[l][c.unit] !== undefined).map((l) => [r.steps[l], r.models[l][c.unit][c.metric]] as [number, number]) }));
    if (cols.length > 1) series.push({ name: 'average', points: stepLabels.filter((l) => summaryAverage(r, l) !== undefined).map((l) => [r.steps[l], summaryAverage(r, l)!] as [number, number]) });
    write(path.join('charts', 'data-efficiency.svg'), lineChartSvg([{ title: 'Data efficiency', xLabel: 'training step', yLabel: 'score', series }]));
  }
  return files;
}
