// The suite runner: every unit of every task for every model, each unit's metrics saved as
// OUTPUT/results/<label>/<unit>.json together with the key it was computed under (model and
// adapter files, LM files for rag, the unit's settings, the data files). A unit whose saved key
// equals the current one is not run again, so a killed or extended suite resumes where it
// stopped. OUTPUT/suite_log.jsonl records every unit as "ran" or "reused". At the end
// results.json, results.md and the charts are written from the saved units.
import fs from 'node:fs';
import path from 'node:path';
import { Engine } from '../engine.ts';
import { UserError } from '../errors.ts';
import { writeFileAtomic } from '../formats/atomic-write.ts';
import { array, func, number, object, optional, parse, string, unknownValue } from '../schema.ts';
import { instructionUnits } from './instructions.ts';
import { lengthSweepUnits } from './length-sweep.ts';
import { ragUnits } from './rag.ts';
import { writeReport, type SuiteResults } from './report.ts';
import { retrievalUnits } from './retrieval.ts';
import type { InstructionsTask, LengthSweepTask, RagTask, RetrievalTask, StsTask, Suite, SuiteTask } from './schema.ts';
import { stsUnits } from './sts.ts';
import type { Retriever, Unit } from './unit.ts';

/** A model of the run: a model dir (+ adapter), or "bm25", or "none" (rag rows without retrieval). */
export interface SuiteModel {
  model: string;
  adapter?: string;
  label?: string; // default: "bm25", "none", or the dir's name (+ "+" the adapter's)
  step?: number; // a training checkpoint's step (--checkpoints): the x of the data-efficiency curve
}

export interface RunSuiteOptions {
  suite: Suite;
  models: SuiteModel[];
  output: string;
  lm?: string; // causal LM dir of rag tasks
  device?: string;
  /** per unit: "ran" (with its metrics) or "reused" */
  onUnit?: (e: { label: string; unit: string; status: 'ran' | 'reused'; metrics: Record<string, number>; seconds: number }) => void;
  onProgress?: (label: string, unit: string, stage: string, done: number, total: number) => void;
}

export interface SuiteRun {
  results: SuiteResults;
  files: string[]; // results.json, results.md, charts
}

export const SUITE_LOG = 'suite_log.jsonl';

export function taskUnits(task: SuiteTask): Unit[] {
  switch (task.type) {
    case 'retrieval': return retrievalUnits(task as RetrievalTask);
    case 'sts': return stsUnits(task as StsTask);
    case 'length-sweep': return lengthSweepUnits(task as LengthSweepTask);
    case 'instructions': return instructionUnits(task as InstructionsTask);
    case 'rag': return ragUnits(task as RagTask);
  }
}

/** The labels of the models: given, or derived from the dirs; repeated names get "-2", "-3". */
export function modelLabels(models: SuiteModel[]): string[] {
  const used = new Map<string, number>();
  return models.map((m) => {
    let label = m.label ?? (m.model === 'bm25' || m.model === 'none' ? m.model
      : path.basename(path.resolve(m.model)) + (m.adapter ? `+${path.basename(path.resolve(m.adapter))}` : ''));
    const n = (used.get(label) ?? 0) + 1;
    used.set(label, n);
    if (n > 1) label = `${label}-${n}`;
    return label;
  });
}

/** Path, size and mtime of the files under `p` (2 levels deep): what decides whether saved results still hold. */
function fingerprint(p: string, keep: (name: string) => boolean = () => true): unknown {
  const abs = path.resolve(p);
  const st = fs.statSync(abs);
  if (!st.isDirectory()) return { path: abs, bytes: st.size, mtimeMs: st.mtimeMs };
  const files: unknown[] = [];
  const walk = (dir: string, depth: number) => {
    for (const name of fs.readdirSync(dir).sort()) {
      const full = path.join(dir, name);
      const s = fs.statSync(full);
      if (s.isDirectory()) { if (depth < 2) walk(full, depth + 1); } else if (keep(name)) files.push([path.relative(abs, full), s.size, s.mtimeMs]);
    }
  };
  walk(abs, 0);
  return { path: abs, files };
}
const modelFiles = (n: string) => n.endsWith('.json') || n.endsWith('.safetensors');

/** A file-name-safe form of a label or unit name. */
const safe = (s: string) => s.replace(/[^A-Za-z0-9._+-]/g, '_');

/** The checks a run makes before it writes anything (the CLI calls it before creating OUTPUT). */
export function checkRun(o: Pick<RunSuiteOptions, 'suite' | 'models' | 'lm'>): void {
  if (o.models.length === 0) throw new UserError('no model to evaluate (give --model DIR, --models a,b or --checkpoints RUN_DIR)');
  if (o.suite.tasks.some((t) => t.type === 'rag') && o.lm === undefined) throw new UserError(`${o.suite.file}: rag tasks need a causal LM (--lm DIR)`);
  for (const m of o.models) {
    for (const [dir, what] of [[m.model, 'model'], [m.adapter, 'adapter']] as const) {
      if (dir === undefined || (what === 'model' && (dir === 'bm25' || dir === 'none'))) continue;
      if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UserError(`--${what} ${dir}: no such folder`);
    }
  }
  if (o.lm !== undefined && (!fs.existsSync(o.lm) || !fs.statSync(o.lm).isDirectory())) throw new UserError(`--lm ${o.lm}: no such folder`);
  o.suite.tasks.flatMap(taskUnits); // a bad rag template fails here
}

const optionsSchema = object({
  suite: object({ file: string(), tasks: array(unknownValue()) }, { expected: 'a suite (readSuite, checkSuite or presetSuite)' }),
  models: array(object({ model: string({ nonEmpty: true }), adapter: optional(string({ nonEmpty: true })), label: optional(string({ nonEmpty: true })), step: optional(number({ int: true, min: 0 })) })),
  output: string({ nonEmpty: true }),
  lm: optional(string({ nonEmpty: true })),
  device: optional(string({ nonEmpty: true })),
  onUnit: optional(func<NonNullable<RunSuiteOptions['onUnit']>>()),
  onProgress: optional(func<NonNullable<RunSuiteOptions['onProgress']>>()),
}, { expected: 'an options object' });

/** Evaluate every model on every task of the suite (see the top of this file). */
export async function runSuite(options: RunSuiteOptions): Promise<SuiteRun> {
  parse(optionsSchema, options, { where: 'runSuite' });
  const o = options;
  checkRun(o);
  const labels = modelLabels(o.models);
  const units = o.suite.tasks.flatMap(taskUnits);
  const lmPrint = o.lm !== undefined ? fingerprint(o.lm, modelFiles) : null;
  const dataPrints = new Map(o.suite.tasks.map((t) => [t.name, fingerprint(t.data)]));

  fs.mkdirSync(o.output, { recursive: true });
  const logFile = path.join(o.output, SUITE_LOG);
  let lm: Engine | undefined;
  const loadLm = async () => (lm ??= await Engine.load(o.lm!, { device: o.device }));
  const results: SuiteResults = { models: {}, steps: {}, units: units.map((u) => ({ name: u.name, task: u.task, variant: u.variant })) };
  try {
    for (let mi = 0; mi < o.models.length; mi++) {
      const m = o.models[mi];
      const label = labels[mi];
      results.models[label] = {};
      if (m.step !== undefined) results.steps[label] = m.step;
      let engine: Engine | undefined;
      const kind: Retriever['kind'] = m.model === 'bm25' ? 'bm25' : m.model === 'none' ? 'none' : 'dense';
      const retriever: Retriever = kind === 'dense'
        ? { kind, engine: async () => (engine ??= await Engine.load(m.model, { device: o.device, adapter: m.adapter })) }
        : { kind };
      const modelPrint = kind === 'dense'
        ? { model: fingerprint(m.model, modelFiles), adapter: m.adapter ? fingerprint(m.adapter, (n) => n.startsWith('adapter_')) : null }
        : { model: kind };
      try {
        for (const unit of units) {
          if (!unit.accepts(kind)) continue;
          const key = JSON.stringify({ ...modelPrint, lm: unit.task.type === 'rag' ? lmPrint : null, settings: unit.settings, data: dataPrints.get(unit.task.name) });
          const file = path.join(o.output, 'results', safe(label), `${safe(unit.name)}.json`);
          const saved = readSaved(file);
          let metrics: Record<string, number>;
          if (saved && saved.key === key) {
            metrics = saved.metrics;
            o.onUnit?.({ label, unit: unit.name, status: 'reused', metrics, seconds: 0 });
            fs.appendFileSync(logFile, JSON.stringify({ time: new Date().toISOString(), label, unit: unit.name, status: 'reused' }) + '\n');
          } else {
            const workDir = path.join(o.output, 'work', safe(label), safe(unit.name));
            fs.mkdirSync(workDir, { recursive: true });
            const t0 = performance.now();
            metrics = await unit.run({
              label, retriever, lm: loadLm, device: o.device, workDir, modelKey: modelPrint,
              corpusCache: path.join(o.output, 'work', safe(label), safe(unit.task.name), 'corpus'),
              progress: (stage, done, total) => o.onProgress?.(label, unit.name, stage, done, total),
            });
            const seconds = (performance.now() - t0) / 1000;
            fs.mkdirSync(path.dirname(file), { recursive: true });
            writeFileAtomic(file, [Buffer.from(JSON.stringify({ label, unit: unit.name, metrics, seconds, key }, null, 1) + '\n')]);
            o.onUnit?.({ label, unit: unit.name, status: 'ran', metrics, seconds });
            fs.appendFileSync(logFile, JSON.stringify({ time: new Date().toISOString(), label, unit: unit.name, status: 'ran', seconds }) + '\n');
          }
          results.models[label][unit.name] = metrics;
        }
      } finally {
        engine?.dispose();
      }
    }
  } finally {
    lm?.dispose();
  }
  const files = writeReport(o.output, results);
  return { results, files };
}

function readSaved(file: string): { key: string; metrics: Record<string, number> } | undefined {
  try {
    const v = JSON.parse(fs.readFileSync(file, 'utf8')) as { key?: unknown; metrics?: unknown };
    if (typeof v.key !== 'string' || typeof v.metrics !== 'object' || v.metrics === null) return undefined;
    // NaN (a constant STS column) is saved as null
    const metrics = Object.fromEntries(Object.entries(v.metrics as Record<string, unknown>).map(([k, x]) => [k, typeof x === 'number' ? x : NaN]));
    return { key: v.key, metrics };
  } catch {
    return undefined; // none yet, or damaged: run the unit again
  }
}
