// Task configs (LLM-Embedder's multi-task recipe): per task of the training data's "task" field,
// the instructions, group size, temperature, lengths, distillation mode and weights, the reward
// template of `lmdr score`, and whether in-batch negatives are used. Read once, checked whole
// (unknown keys are errors), into one table every stage consults; a setting a task leaves out
// falls back to the run's global option.
import fs from 'node:fs';
import { UserError } from '../errors.ts';
import { boolean, number, object, oneOf, optional, parse, record, string, type Infer } from '../schema.ts';

export const DISTILL_MODES = ['none', 'kl', 'stable'] as const;
export type DistillMode = (typeof DISTILL_MODES)[number];

/** One task's settings, as a task config file writes them (snake_case keys). */
export const taskSettingsSchema = object({
  query_instruction: optional(string()),
  passage_instruction: optional(string()),
  group_size: optional(number({ int: true, min: 1 })),
  temperature: optional(number({ above: 0 })),
  query_max_len: optional(number({ int: true, min: 2 })),
  passage_max_len: optional(number({ int: true, min: 2 })),
  distill: optional(oneOf(DISTILL_MODES)),
  contrastive_weight: optional(number({ min: 0 })),
  distill_weight: optional(number({ min: 0 })),
  teacher_temperature: optional(number({ above: 0 })),
  student_temperature: optional(number({ above: 0 })),
  template: optional(string()),
  in_batch_negatives: optional(boolean()),
}, { expected: 'an object of task settings' });
export type TaskSettings = Infer<typeof taskSettingsSchema>;

const taskConfigSchema = record(taskSettingsSchema);
export type TaskConfig = Record<string, TaskSettings>;

const QA_TEMPLATE = 'Knowledge: {candidate}\n\nQuestion: {query}\n\nAnswer: ';

/** The paper's six tasks (REFERENCE.md: instructions of FlagEmbedding's llm_embedder; reward for qa, icl, lrlm, chat). */
export const LLM_EMBEDDER_TASKS: TaskConfig = {
  qa: {
    query_instruction: 'Represent this query for retrieving relevant documents: ',
    passage_instruction: 'Represent this document for retrieval: ',
    distill: 'stable', template: QA_TEMPLATE,
  },
  convsearch: {
    query_instruction: 'Encode this query and context for searching relevant passages: ',
    passage_instruction: 'Encode this passage for retrieval: ',
    distill: 'none',
  },
  chat: {
    query_instruction: 'Embed this dialogue to find useful historical dialogues: ',
    passage_instruction: 'Embed this historical dialogue for retrieval: ',
    distill: 'stable', template: '{candidate}\n{query}',
  },
  lrlm: {
    query_instruction: 'Embed this text chunk for finding useful historical chunks: ',
    passage_instruction: 'Embed this historical text chunk for retrieval: ',
    distill: 'stable', template: '{candidate}\n{query}',
  },
  icl: {
    query_instruction: 'Convert this example into vector to look for useful examples: ',
    passage_instruction: 'Convert this example into vector for retrieval: ',
    distill: 'stable', template: '{candidate}\n\n{query}',
  },
  tool: {
    query_instruction: 'Transform this user request for fetching helpful tool descriptions: ',
    passage_instruction: 'Transform this tool description for retrieval: ',
    distill: 'none',
  },
};

export const TASK_PRESETS: Record<string, TaskConfig> = { 'llm-embedder': LLM_EMBEDDER_TASKS };

/** A preset name or a JSON file {"task": {settings}}; `flag` names the option in messages. */
export function readTaskConfig(source: string, flag = '--task-config'): TaskConfig {
  const preset = TASK_PRESETS[source];
  if (preset) return preset;
  if (!fs.existsSync(source)) {
    throw new UserError(`${flag} ${source}: no such file (and not a preset: ${Object.keys(TASK_PRESETS).join(', ')})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(fs.readFileSync(source, 'utf8'));
  } catch (err) {
    throw new UserError(`${flag} ${source}: invalid JSON (${(err as Error).message})`);
  }
  const config = parse(taskConfigSchema, value, { where: `${flag} ${source}`, label: (p) => (p === '' ? 'the config' : p) });
  if (Object.keys(config).length === 0) throw new UserError(`${flag} ${source}: no tasks`);
  return config;
}

/** The settings of `task` (a line's "task" field); `where` ("FILE:LINE") names the line when it is missing. */
export function taskSettings(config: TaskConfig, task: string | undefined, where: string, source: string): TaskSettings {
  if (task === undefined) throw new UserError(`${where}: the line has no "task", but ${source} configures tasks (${Object.keys(config).join(', ')})`);
  const s = config[task];
  if (!s || !Object.hasOwn(config, task)) throw new UserError(`${where}: task "${task}" is not in ${source} (tasks: ${Object.keys(config).join(', ')})`);
  return s;
}

/** A reward template: "{query}" and "{candidate}" replaced in one pass (braces in the texts stay as they are). */
export function fillTemplate(template: string, query: string, candidate: string): string {
  return template.replace(/\{(query|candidate)\}/g, (_, k: string) => (k === 'query' ? query : candidate));
}

export function checkTemplate(template: string, what: string): void {
  if (!template.includes('{candidate}')) throw new UserError(`${what} ${JSON.stringify(template)} has no {candidate} placeholder (every candidate would score the same)`);
}

/** Everything one training step's loss and tokenization depend on (a task's settings over the run's). */
export interface StepSettings {
  groupSize: number;
  temperature: number;
  queryMaxLen: number;
  passageMaxLen: number;
  queryInstructions: string[]; // one is drawn per query (seeded) when there are several
  passageInstruction: string;
  distill: DistillMode;
  contrastiveWeight: number;
  distillWeight: number;
  teacherTemperature: number;
  studentTemperature: number;
  inBatch: boolean;
}

export interface GlobalStepOptions {
  groupSize: number; temperature: number; queryMaxLen: number; passageMaxLen: number; passageInstruction: string;
  distill: DistillMode; contrastiveWeight: number; distillWeight: number; teacherTemperature: number; studentTemperature: number;
  inBatchNegatives: boolean;
}

export function stepSettings(g: GlobalStepOptions, queryInstructions: string[], t?: TaskSettings): StepSettings {
  return {
    groupSize: t?.group_size ?? g.groupSize,
    temperature: t?.temperature ?? g.temperature,
    queryMaxLen: t?.query_max_len ?? g.queryMaxLen,
    passageMaxLen: t?.passage_max_len ?? g.passageMaxLen,
    queryInstructions: t?.query_instruction !== undefined ? [t.query_instruction] : queryInstructions,
    passageInstruction: t?.passage_instruction ?? g.passageInstruction,
    distill: t?.distill ?? g.distill,
    contrastiveWeight: t?.contrastive_weight ?? g.contrastiveWeight,
    distillWeight: t?.distill_weight ?? g.distillWeight,
    teacherTemperature: t?.teacher_temperature ?? g.teacherTemperature,
    studentTemperature: t?.student_temperature ?? g.studentTemperature,
    inBatch: t?.in_batch_negatives ?? g.inBatchNegatives,
  };
}

/**
 * An instruction option's instructions: the text itself, or, when it names an existing file,
 * that file's non-empty lines (each query then takes one at random, seeded).
 */
export function readInstructions(value: string, flag: string): string[] {
  if (value === '' || !fs.existsSync(value) || !fs.statSync(value).isFile()) return [value];
  const lines = fs.readFileSync(value, 'utf8').split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l.trim() !== '');
  if (lines.length === 0) throw new UserError(`${flag} ${value}: the file holds no instructions (one per line)`);
  return lines;
}
