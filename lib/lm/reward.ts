// LLM reward scoring at scale (`lmdr score`, engine.score): log p(target | context) of many pairs
// through the causal-LM head, written as JSON lines, resumably.
//
// - Pairs mode (input): line i {"context", "target"} (text) or {"context_ids", "target_ids"} ->
//   output line i {"sum_logprob", "mean_logprob", "tokens"}.
// - Training-data mode (data): every candidate (pos then neg) of every line is scored with the
//   template (its {query} and {candidate}) as context and answers[0] (or output) as target; the
//   line is written back with "teacher_scores" aligned to pos ++ neg (reward: mean or sum).
// Text contexts get the tokenizer's special tokens, targets none; a context too long for
// maxLength is cut from the left so the target is always scored whole.
// Work goes in pieces of whole lines: each piece is scored (length-sorted, token-budget batches)
// and appended to OUTPUT.partial with an fsync; a killed run resumed with `resume` skips the
// lines already there, so a kill loses at most one piece. The finished file is renamed onto
// OUTPUT (atomic). OUTPUT.partial.json records the settings a resume must share.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.ts';
import { ioError } from '../formats/atomic-write.ts';
import { readJsonLines } from '../formats/jsonl.ts';
import { lockOutput } from '../formats/output-lock.ts';
import { array, boolean, describeValue, func, jsonKeys, number, object, oneOf, optional, parse, string, type CheckContext, type Infer } from '../schema.ts';
import { checkTemplate, fillTemplate, readTaskConfig, taskSettings, type TaskConfig } from '../train/task-config.ts';
import { scoreTokens, type LmModel } from './score.ts';

export const scoreFileOptionsSchema = object({
  input: optional(string({ nonEmpty: true })), // pairs JSON lines
  data: optional(string({ nonEmpty: true })), // training JSON lines (FlagEmbedding + answers/output)
  output: string({ nonEmpty: true }),
  template: optional(string()), // data mode: context template with {query} and {candidate}
  taskConfig: optional(string({ nonEmpty: true })), // data mode: per-task templates (a file or a preset)
  reward: optional(oneOf(['mean', 'sum'] as const)), // data mode: mean (default) or sum of log p
  maxLength: optional(number({ int: true, min: 2 })), // tokens of context + target (default 2048)
  batchTokens: optional(number({ int: true, min: 1 })), // tokens per forward pass (default 8192)
  pieceSize: optional(number({ int: true, min: 1 })), // pairs per resumable piece (default 4096)
  resume: optional(boolean()),
  replaceInvalidUtf8: optional(boolean()),
  onProgress: optional(func<(done: number, total: number) => void>()), // scored pairs so far, of all
}, { expected: 'an options object' });
export type ScoreFileOptions = Infer<typeof scoreFileOptionsSchema>;

export interface ScoreFileSummary {
  output: string;
  lines: number; // lines written in all
  resumedLines: number; // lines found done in OUTPUT.partial
  pairs: number; // pairs scored by this call
  tokens: number; // tokens through the model in this call
  seconds: number;
  warnings: string[];
}

type Ids = number[];
interface Unit {
  line: number; // 1-based source line
  pairs: { context: Ids; target: Ids }[];
  write: (scores: { sum: number; mean: number; count: number }[]) => string; // the output line
}

const pairText = object({ context: string(), target: string() }, { unknownKeys: 'keep' });
const pairIds = object({ context_ids: array(number({ int: true, min: 0 })), target_ids: array(number({ int: true, min: 0 })) }, { unknownKeys: 'keep' });
const dataLine = object({
  query: string(),
  pos: array(string()),
  neg: optional(array(string()), { nullable: true }),
  answers: optional(array(string())),
  output: optional(string()),
  task: optional(string()),
}, { unknownKeys: 'keep', expected: 'a JSON object {"query", "pos", "neg", "answers"}' });

/** Score a file; naming words the options for the caller (the CLI's flags or the API's keys). */
export async function scoreFile(m: LmModel, options: ScoreFileOptions, naming: CheckContext = { where: 'engine.score' }): Promise<ScoreFileSummary> {
  const o = parse(scoreFileOptionsSchema, options, naming);
  const name = (k: keyof ScoreFileOptions) => (naming.label ?? ((x: string) => x))(k);
  const fail = (msg: string): never => {
    throw new UserError(`${naming.where ? `${naming.where}: ` : ''}${msg}`);
  };
  if ((o.input === undefined) === (o.data === undefined)) fail(`give ${name('input')} (pairs) or ${name('data')} (training data), one of them`);
  if (o.input !== undefined && (o.template !== undefined || o.taskConfig !== undefined || o.reward !== undefined)) {
    fail(`${name('template')}, ${name('taskConfig')} and ${name('reward')} apply to ${name('data')} only`);
  }
  if (o.data !== undefined && o.template === undefined && o.taskConfig === undefined) fail(`${name('data')} needs ${name('template')} or ${name('taskConfig')} (the context each candidate is scored in)`);
  if (o.template !== undefined) checkTemplate(o.template, name('template'));
  if (m.config.native.arch !== 'decoder') fail(`${m.modelDir}: scoring needs a causal LM; a ${m.config.modelType} model has no LM head`);
  const maxLength = o.maxLength ?? 2048;
  const batchTokens = Math.max(o.batchTokens ?? 8192, maxLength);
  const pieceSize = o.pieceSize ?? 4096;
  const outDir = path.dirname(path.resolve(o.output));
  if (!fs.existsSync(outDir)) fail(`${name('output')} ${o.output}: directory ${outDir} does not exist`);
  const tasks = o.taskConfig !== undefined ? readTaskConfig(o.taskConfig, name('taskConfig')) : undefined;

  const units = await readUnits(m, o, tasks, name, maxLength);
  const lock = lockOutput(o.output, naming.where === 'engine.score' ? 'engine.score' : 'lmdr score');
  try {
    const summary = await scoreUnits(m, o, units, { maxLength, batchTokens, pieceSize, name });
    if (lock.staleNote) summary.warnings.unshift(lock.staleNote);
    return summary;
  } finally {
    lock.release();
  }
}

/** Every line read and tokenized before any scoring: bad input fails at once, naming file:line. */
async function readUnits(m: LmModel, o: ScoreFileOptions, tasks: TaskConfig | undefined, name: (k: keyof ScoreFileOptions) => string, maxLength: number): Promise<Unit[]> {
  const file = (o.input ?? o.data)!;
  const vocab = m.config.native.vocab;
  const encode = (text: string, special: boolean, where: string): Ids => {
    if (!m.tokenizer) throw new UserError(`${where}: ${m.modelDir} has no tokenizer.json, so only {"context_ids", "target_ids"} pairs can be scored`);
    return m.tokenizer.hf.encode(text, { add_special_tokens: special }).ids;
  };
  // the target whole, the context cut from the left to fit maxLength
  const fit = (context: Ids, target: Ids, where: string) => {
    if (target.length === 0) throw new UserError(`${where}: the target has no tokens to score`);
    if (context.length === 0) throw new UserError(`${where}: the context has no tokens (the first target token needs one to be predicted from)`);
    if (target.length >= maxLength) throw new UserError(`${where}: the target alone has ${target.length} tokens, leaving no room for context in ${name('maxLength')} ${maxLength}`);
    for (const [ids, what] of [[context, 'context'], [target, 'target']] as const)
      ids.forEach((id, j) => {
        if (id >= vocab) throw new UserError(`${where}: ${what} token id ${id} at position ${j} is outside the vocabulary (0..${vocab - 1})`);
      });
    const room = maxLength - target.length;
    const cut = context.length > room ? context.slice(context.length - room) : context;
    const window = m.config.slidingWindow;
    if (window !== null && cut.length + target.length > window) {
      throw new UserError(`${where}: ${cut.length + target.length} tokens exceed the model's sliding window ${window}, which lmdr does not implement; use ${name('maxLength')} ${window} or less`);
    }
    return { context: cut, target };
  };
  const units: Unit[] = [];
  for await (const { value, line } of readJsonLines(file, o.input !== undefined ? name('input') : name('data'), { replaceInvalidUtf8: o.replaceInvalidUtf8 })) {
    const where = `${file}:${line}`;
    const keys = jsonKeys(where, 'the line');
    const write = (s: { sum: number; mean: number; count: number }[]) => JSON.stringify({ sum_logprob: s[0].sum, mean_logprob: s[0].mean, tokens: s[0].count });
    if (o.input !== undefined) {
      const v = value as Record<string, unknown>;
      const isObj = typeof value === 'object' && value !== null && !Array.isArray(value);
      if (isObj && 'context_ids' in v) {
        const p = parse(pairIds, value, keys);
        units.push({ line, pairs: [fit(p.context_ids, p.target_ids, where)], write });
      } else if (isObj && 'context' in v) {
        const p = parse(pairText, value, keys);
        units.push({ line, pairs: [fit(encode(p.context, true, where), encode(p.target, false, where), where)], write });
      } else {
        throw new UserError(`${where}: expected {"context": str, "target": str} or {"context_ids": [int], "target_ids": [int]}, got ${describeValue(value)}`);
      }
      continue;
    }
    const d = parse(dataLine, value, keys);
    const answer = d.answers?.[0] ?? d.output;
    if (answer === undefined) throw new UserError(`${where}: no "answers" (or "output") to score the candidates against`);
    let template = o.template;
    if (tasks) {
      const t = taskSettings(tasks, d.task, where, `${name('taskConfig')} ${o.taskConfig}`);
      template = t.template ?? o.template;
      if (template === undefined) throw new UserError(`${where}: task "${d.task}" has no "template" in ${name('taskConfig')} ${o.taskConfig} and no ${name('template')} was given`);
      checkTemplate(template, `${where}: task "${d.task}" template`);
    }
    const target = encode(answer, false, where);
    const candidates = [...d.pos, ...(d.neg ?? [])];
    if (candidates.length === 0) throw new UserError(`${where}: no candidates ("pos" and "neg" are empty)`);
    const pairs = candidates.map((c, k) => fit(encode(fillTemplate(template!, d.query, c), true, where), target, `${where} candidate ${k}`));
    const mean = o.reward !== 'sum';
    units.push({ line, pairs, write: (s) => JSON.stringify({ ...(value as object), teacher_scores: s.map((x) => (mean ? x.mean : x.sum)) }) });
  }
  if (units.length === 0) throw new UserError(`${file}: no lines to score (the file is empty)`);
  return units;
}

interface Meta {
  version: 1;
  source: string;
  size: number;
  model: string;
  settings: Record<string, unknown>;
}

async function scoreUnits(m: LmModel, o: ScoreFileOptions, units: Unit[], s: { maxLength: number; batchTokens: number; pieceSize: number; name: (k: keyof ScoreFileOptions) => string }): Promise<ScoreFileSummary> {
  const started = performance.now();
  const partial = `${o.output}.partial`;
  const metaFile = `${partial}.json`;
  const source = path.resolve((o.input ?? o.data)!);
  const meta: Meta = {
    version: 1, source, size: fs.statSync(source).size, model: path.resolve(m.modelDir),
    settings: { mode: o.input !== undefined ? 'pairs' : 'data', template: o.template ?? null, taskConfig: o.taskConfig ?? null, reward: o.reward ?? 'mean', maxLength: s.maxLength },
  };
  let done = 0; // lines already in the partial file
  const warnings: string[] = [];
  if (fs.existsSync(partial)) {
    if (!o.resume) throw new UserError(`${partial} holds an unfinished run; pass ${s.name('resume')} to continue it, or delete it to start over`);
    let old: Meta | undefined;
    try {
      old = JSON.parse(fs.readFileSync(metaFile, 'utf8')) as Meta;
    } catch {
      throw new UserError(`${metaFile} is missing or unreadable, so ${partial} cannot be resumed safely; delete ${partial} to start over`);
    }
    if (JSON.stringify(old) !== JSON.stringify(meta)) {
      throw new UserError(`${partial} was written with other settings (${JSON.stringify(old)}), not ${JSON.stringify(meta)}; delete it to start over`);
    }
    // keep the complete lines; a piece cut short by the kill is dropped
    const bytes = fs.readFileSync(partial);
    const end = bytes.lastIndexOf(0x0a) + 1;
    for (let i = 0; i < end; i++) if (bytes[i] === 0x0a) done++;
    if (done > units.length) throw new UserError(`${partial} has ${done} lines, more than the ${units.length} of ${source}; delete it to start over`);
    if (end < bytes.length) fs.truncateSync(partial, end);
  } else {
    try {
      fs.writeFileSync(metaFile, JSON.stringify(meta) + '\n');
    } catch (err) {
      throw ioError(err, 'write', metaFile);
    }
  }
  let fd: number;
  try {
    fd = fs.openSync(partial, 'a');
  } catch (err) {
    throw ioError(err, 'open', partial);
  }
  const total = units.reduce((n, u) => n + u.pairs.length, 0);
  let scored = units.slice(0, done).reduce((n, u) => n + u.pairs.length, 0);
  const resumedLines = done;
  let pairsRun = 0;
  let tokens = 0;
  o.onProgress?.(scored, total);
  try {
    while (done < units.length) {
      // a piece: whole lines, about pieceSize pairs
      let end = done;
      let n = 0;
      while (end < units.length && (end === done || n + units[end].pairs.length <= s.pieceSize)) n += units[end++].pairs.length;
      const flat = units.slice(done, end).flatMap((u) => u.pairs);
      // length-sorted so each token-budget batch holds similar lengths
      const order = flat.map((_, i) => i).sort((a, b) => flat[a].context.length + flat[a].target.length - (flat[b].context.length + flat[b].target.length));
      const sortedScores = await scoreTokens(m, order.map((i) => ({ context: { input_ids: flat[i].context }, target: { input_ids: flat[i].target } })), { maxTokens: s.batchTokens });
      const scores = new Array<(typeof sortedScores)[number]>(flat.length);
      order.forEach((i, k) => (scores[i] = sortedScores[k]));
      let text = '';
      let at = 0;
      for (let u = done; u < end; u++) {
        const mine = scores.slice(at, at + units[u].pairs.length);
        at += units[u].pairs.length;
        const bad = mine.findIndex((x) => !Number.isFinite(x.sum));
        if (bad >= 0) throw new UserError(`${(o.input ?? o.data)!}:${units[u].line}: pair ${bad} scored ${mine[bad].sum} (the model overflowed)`);
        text += units[u].write(mine) + '\n';
      }
      try {
        fs.writeSync(fd, text);
        fs.fsyncSync(fd);
      } catch (err) {
        throw ioError(err, 'write', partial);
      }
      for (const p of flat) tokens += p.context.length + p.target.length;
      pairsRun += flat.length;
      scored += flat.length;
      done = end;
      o.onProgress?.(scored, total);
    }
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.renameSync(partial, o.output);
    fs.rmSync(metaFile, { force: true });
  } catch (err) {
    throw ioError(err, 'rename', partial);
  }
  return { output: o.output, lines: units.length, resumedLines, pairs: pairsRun, tokens, seconds: (performance.now() - started) / 1000, warnings };
}
