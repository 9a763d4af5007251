// Suite files: {"tasks": [{"name", "type", "data", "metrics", ...settings}]}. Read once and
// checked whole before anything runs: one schema per task type (unknown keys are errors naming
// the file, the task and the key), metrics parsed, data paths resolved (absolute, else relative
// to --data-root when given, else to the suite file's folder) and required to exist.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.ts';
import { parseMeasures } from '../eval/metrics.ts';
import { array, boolean, number, object, oneOf, optional, parse, refine, string, type Infer, type Schema } from '../schema.ts';

export const TASK_TYPES = ['retrieval', 'sts', 'length-sweep', 'instructions', 'rag'] as const;
export type TaskType = (typeof TASK_TYPES)[number];

export const STS_METRICS = ['spearman', 'pearson'] as const;
export const RAG_QA_METRICS = ['loglik', 'accuracy'] as const;
export const RAG_MEMORY_METRICS = ['perplexity'] as const;

// Task names become file names (results/<label>/<name>.json): keep them plain.
const taskName = refine(string({ nonEmpty: true }), (s) => /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(s) && s.length <= 100,
  'must be letters, digits, ".", "_" or "-" (at most 100, starting with a letter or digit)');
const positive = () => number({ int: true, min: 1 });

const common = {
  name: taskName,
  type: oneOf(TASK_TYPES),
  data: string({ nonEmpty: true }),
  metrics: optional(array(string({ nonEmpty: true }), { nonEmpty: true })),
  description: optional(string()),
};
// what `lmdr eval` takes for one BEIR split
const retrievalSettings = {
  split: optional(string({ nonEmpty: true })), // default "test"
  k: optional(positive()), // hits per query, default 1000
  query_instruction: optional(string()),
  passage_instruction: optional(string()),
  query_max_len: optional(positive()), // default 64
  passage_max_len: optional(positive()), // default 256
  titles: optional(boolean()), // passage = title + " " + text (default true)
  all_queries: optional(boolean()), // trec_eval -c averaging
  keep_self: optional(boolean()), // keep a retrieved doc whose id equals the query id
  batch_size: optional(positive()),
  max_tokens: optional(positive()),
};

const instructionSchema = object({
  name: taskName,
  query_instruction: string(),
  passage_instruction: optional(string()),
  seen: optional(boolean()), // seen in training (a column of the table)
}, { expected: 'an object {"name", "query_instruction", "seen"?}' });

export const TASK_SCHEMAS = {
  retrieval: object({ ...common, ...retrievalSettings }, { expected: 'a task object' }),
  sts: object({
    ...common,
    instruction: optional(string()), // prepended to both sentences
    max_len: optional(positive()), // tokens per sentence, default 128
    batch_size: optional(positive()),
    max_tokens: optional(positive()),
  }, { expected: 'a task object' }),
  'length-sweep': object({ ...common, ...retrievalSettings, lengths: array(positive(), { nonEmpty: true }) }, { expected: 'a task object' }),
  instructions: object({ ...common, ...retrievalSettings, instructions: array(instructionSchema, { nonEmpty: true }) }, { expected: 'a task object' }),
  rag: object({
    ...common,
    mode: optional(oneOf(['qa', 'memory'] as const)), // default qa
    k: optional(positive()), // passages (qa, default 3) or chunks (memory, default 1) retrieved
    template: optional(string()), // qa: "{knowledge}" and "{query}"
    no_retrieval_template: optional(string()), // qa without retrieval: "{query}"
    separator: optional(string()), // between retrieved passages (default "\n")
    choice_score: optional(oneOf(['sum', 'mean'] as const)), // multiple choice: likelihood (sum, default) or per-token mean
    chunk_size: optional(positive()), // memory: LM tokens per chunk (default 128)
    max_length: optional(positive()), // LM tokens of context + target; the context is cut from the left (default 2048)
    titles: optional(boolean()),
    query_instruction: optional(string()),
    passage_instruction: optional(string()),
    query_max_len: optional(positive()),
    passage_max_len: optional(positive()),
    batch_size: optional(positive()),
    max_tokens: optional(positive()),
  }, { expected: 'a task object' }),
} satisfies Record<TaskType, Schema<unknown>>;

export type RetrievalTask = Infer<(typeof TASK_SCHEMAS)['retrieval']>;
export type StsTask = Infer<(typeof TASK_SCHEMAS)['sts']>;
export type LengthSweepTask = Infer<(typeof TASK_SCHEMAS)['length-sweep']>;
export type InstructionsTask = Infer<(typeof TASK_SCHEMAS)['instructions']>;
export type RagTask = Infer<(typeof TASK_SCHEMAS)['rag']>;
export type SuiteTask = RetrievalTask | StsTask | LengthSweepTask | InstructionsTask | RagTask;

export interface Suite {
  file: string; // where it came from (messages)
  tasks: SuiteTask[]; // data resolved to absolute paths, metrics in canonical spelling
}

const suiteSchema = object({
  tasks: array(object({ type: oneOf(TASK_TYPES), name: string() }, { unknownKeys: 'keep', expected: 'a task object' }), { nonEmpty: true }),
  description: optional(string()),
}, { expected: 'a suite object {"tasks": [...]}' });

/** Read and check a suite file. */
export function readSuite(file: string, options: { dataRoot?: string } = {}): Suite {
  let value: unknown;
  try {
    value = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UserError(code === 'ENOENT' ? `${file}: no such suite file` : `${file}: ${code ? `cannot read (${code})` : `invalid JSON (${(err as Error).message})`}`);
  }
  return checkSuite(value, file, path.dirname(path.resolve(file)), options.dataRoot);
}

/** Check a suite value (a parsed file or a preset); `base` resolves relative data paths unless dataRoot is given. */
export function checkSuite(value: unknown, file: string, base: string, dataRoot?: string): Suite {
  // the type decides the schema: check the outline first, then each task whole
  parse(suiteSchema, value, { where: file, label: (p) => (p === '' ? 'the suite' : p) });
  const raw = (value as { tasks: Record<string, unknown>[] }).tasks;
  const seen = new Set<string>();
  const tasks = raw.map((t, i) => {
    const where = `${file}: tasks[${i}]${typeof t.name === 'string' && t.name ? ` ("${t.name}")` : ''}`;
    const task = parse(TASK_SCHEMAS[t.type as TaskType] as Schema<SuiteTask>, t, { where, label: (p) => (p === '' ? 'the task' : p) });
    if (seen.has(task.name)) throw new UserError(`${where}: "name" ${JSON.stringify(task.name)} is used by an earlier task (names must be unique)`);
    seen.add(task.name);
    const data = path.resolve(dataRoot ?? base, task.data);
    checkData(task, data, where);
    return { ...task, data, metrics: checkMetrics(task, where) } as SuiteTask;
  });
  return { file, tasks };
}

/** Metrics in canonical spelling, with the type's defaults. */
function checkMetrics(task: SuiteTask, where: string): string[] {
  const given = task.metrics;
  const fixed = (allowed: readonly string[], fallback: readonly string[]): string[] => {
    for (const m of given ?? []) {
      if (!allowed.includes(m)) throw new UserError(`${where}: "metrics" has ${JSON.stringify(m)}, which a ${task.type} task does not compute (it computes: ${allowed.join(', ')})`);
    }
    return [...(given ?? fallback)];
  };
  switch (task.type) {
    case 'sts': return fixed(STS_METRICS, STS_METRICS);
    case 'rag': return (task as RagTask).mode === 'memory' ? fixed(RAG_MEMORY_METRICS, RAG_MEMORY_METRICS) : fixed(RAG_QA_METRICS, ['loglik']);
    default: {
      try {
        return parseMeasures((given ?? ['ndcg@10']).join(',')).map((m) => m.key);
      } catch (err) {
        throw new UserError(`${where}: "metrics": ${(err as Error).message}`);
      }
    }
  }
}

function checkData(task: SuiteTask, data: string, where: string): void {
  const need = (p: string, what: 'file' | 'folder', why: string) => {
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(p);
    } catch {
      st = undefined;
    }
    if (!st || (what === 'file' ? !st.isFile() : !st.isDirectory())) {
      throw new UserError(`${where}: "data" ${JSON.stringify(task.data)}: ${p} is not ${what === 'file' ? 'a file' : 'a folder'}${why ? ` (${why})` : ''}`);
    }
  };
  const rag = task.type === 'rag' ? (task as RagTask) : undefined;
  if (task.type === 'sts' || rag?.mode === 'memory') {
    need(data, 'file', task.type === 'sts' ? 'JSON lines {"sentence1", "sentence2", "score"}' : 'JSON lines {"text"}');
    return;
  }
  need(data, 'folder', rag ? 'corpus.jsonl and queries.jsonl' : 'a BEIR folder');
  need(path.join(data, 'corpus.jsonl'), 'file', 'the corpus');
  need(path.join(data, 'queries.jsonl'), 'file', 'the queries');
  if (!rag) need(path.join(data, 'qrels', `${(task as RetrievalTask).split ?? 'test'}.tsv`), 'file', `the qrels of split "${(task as RetrievalTask).split ?? 'test'}"`);
}
