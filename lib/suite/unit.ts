// What the runner and the task types share. A task expands into units (one per passage length
// of a sweep, one per instruction, else one): the unit is what runs, resumes and lands in
// results.json as one row entry "<task>" or "<task>/<variant>".
import type { Engine } from '../engine.ts';
import type { SuiteTask } from './schema.ts';

/** The model under test: a dense retriever (model dir + adapter), BM25, or no retrieval (rag rows only). */
export type Retriever =
  | { kind: 'dense'; engine: () => Promise<Engine> }
  | { kind: 'bm25' }
  | { kind: 'none' };

export interface UnitContext {
  label: string;
  retriever: Retriever;
  /** the causal LM of rag tasks (--lm), loaded on first use */
  lm?: () => Promise<Engine>;
  device?: string;
  /** a folder of this unit's own (its run file) */
  workDir: string;
  /** a folder the units of one task share for corpus embeddings (reused while the passage settings match) */
  corpusCache: string;
  /** what embeddings depend on besides the data and the settings: the model and adapter files */
  modelKey: Record<string, unknown>;
  progress: (stage: string, done: number, total: number) => void;
}

export interface Unit {
  task: SuiteTask;
  /** "<task>" or "<task>/<variant>": the key in results.json */
  name: string;
  /** the variant's value: a passage length, an instruction name */
  variant?: { key: string; value: number | string; seen?: boolean };
  /** everything the result depends on besides the model and the data files (the resume key) */
  settings: Record<string, unknown>;
  /** which retrievers the unit can run with */
  accepts: (r: Retriever['kind']) => boolean;
  run: (ctx: UnitContext) => Promise<Record<string, number>>;
}
