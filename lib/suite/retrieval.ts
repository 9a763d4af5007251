// `retrieval` tasks: one BEIR split, scored as `lmdr eval` scores it (lib/eval/evaluate.ts for a
// dense retriever; BM25 runs through the same metrics). length-sweep and instructions tasks are
// this unit with one setting varied.
import path from 'node:path';
import { evaluateRetrieval } from '../eval/evaluate.ts';
import { evaluateRun, parseMeasures } from '../eval/metrics.ts';
import { beirFiles } from '../formats/beir.ts';
import { readQrels } from '../formats/trec.ts';
import { bm25Run } from './bm25.ts';
import type { InstructionsTask, LengthSweepTask, RetrievalTask } from './schema.ts';
import type { Unit, UnitContext } from './unit.ts';

type AnyRetrievalTask = RetrievalTask | LengthSweepTask | InstructionsTask;

/** The settings of one retrieval evaluation (the task's, with a variant's overrides). */
export interface RetrievalSettings {
  split: string;
  k: number;
  metrics: string[];
  queryInstruction?: string;
  passageInstruction?: string;
  queryMaxLen: number;
  passageMaxLen: number;
  titles: boolean;
  allQueries: boolean;
  keepSelf: boolean;
  batchSize?: number;
  maxTokens?: number;
}

export function retrievalSettings(task: AnyRetrievalTask, over: Partial<RetrievalSettings> = {}): RetrievalSettings {
  return {
    split: task.split ?? 'test', k: task.k ?? 1000, metrics: task.metrics!,
    queryInstruction: task.query_instruction, passageInstruction: task.passage_instruction,
    queryMaxLen: task.query_max_len ?? 64, passageMaxLen: task.passage_max_len ?? 256,
    titles: task.titles ?? true, allQueries: task.all_queries ?? false, keepSelf: task.keep_self ?? false,
    batchSize: task.batch_size, maxTokens: task.max_tokens,
    ...over,
  };
}

// Passages per encode call: bounded by tokens (4M ids held at once), so an 8192-token sweep
// point tokenizes 512 passages at a time, not 8192.
const CHUNK_TOKENS = 1 << 22;

/** Evaluate one BEIR split with the unit's retriever. */
export async function evaluateSplit(dir: string, s: RetrievalSettings, ctx: UnitContext): Promise<Record<string, number>> {
  const runFile = path.join(ctx.workDir, 'run.trec');
  if (ctx.retriever.kind === 'bm25') {
    const files = beirFiles(dir, s.split);
    const qrels = await readQrels(files.qrels);
    const run = await bm25Run(files, [...qrels.keys()], { k: s.k, titles: s.titles, dropSelf: !s.keepSelf, runFile });
    return evaluateRun(qrels, run, parseMeasures(s.metrics.join(',')), { allQueries: s.allQueries }).means;
  }
  if (ctx.retriever.kind !== 'dense') throw new Error('evaluateSplit: no retriever');
  const engine = await ctx.retriever.engine();
  const result = await evaluateRetrieval(engine, {
    beir: dir, split: s.split, k: s.k, measures: s.metrics.join(','),
    queryInstruction: s.queryInstruction, passageInstruction: s.passageInstruction,
    queryMaxLen: s.queryMaxLen, passageMaxLen: s.passageMaxLen, titles: s.titles, allQueries: s.allQueries,
    dropSelf: s.keepSelf ? false : undefined, batchSize: s.batchSize, maxTokens: s.maxTokens,
    corpusChunk: Math.max(16, Math.min(8192, Math.floor(CHUNK_TOKENS / s.passageMaxLen))),
    runFile, device: ctx.device, corpusCache: ctx.corpusCache, corpusKey: ctx.modelKey,
    onProgress: (stage, done, total) => ctx.progress(stage, done, total),
  }, 'lmdr suite');
  return result.metrics;
}

export function retrievalUnits(task: RetrievalTask): Unit[] {
  const s = retrievalSettings(task);
  return [{
    task, name: task.name, settings: { type: task.type, ...s },
    accepts: (r) => r !== 'none',
    run: (ctx) => evaluateSplit(task.data, s, ctx),
  }];
}
