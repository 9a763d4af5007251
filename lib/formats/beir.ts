// BEIR folders: corpus.jsonl ({"_id", "title", "text"}), queries.jsonl ({"_id", "text"}),
// qrels/<split>.tsv ("query-id<TAB>corpus-id<TAB>score" with a header line). Streamed.
import path from 'node:path';
import { UserError } from '../errors.ts';
import type { Qrels } from '../eval/metrics.ts';
import { readJsonLines } from './jsonl.ts';
import { requireFile, type ReadLinesOptions } from './lines.ts';
import { readQrels } from './trec.ts';

/** One passage or query, with where it came from for error messages. */
export interface TextRecord {
  id: string;
  text: string;
  where: string; // "file:line"
}

export interface DatasetFiles {
  corpus: string;
  queries: string;
  qrels: string;
}

function idOf(v: Record<string, unknown>, where: string): string {
  const id = v._id;
  if (typeof id === 'number' && Number.isFinite(id)) return String(id);
  if (typeof id !== 'string' || id === '') throw new UserError(`${where}: missing "_id" (a non-empty string)`);
  return id;
}

function fieldText(v: Record<string, unknown>, key: string, where: string): string {
  const t = v[key];
  if (t === undefined || t === null) return '';
  if (typeof t !== 'string') throw new UserError(`${where}: "${key}" must be a string`);
  return t;
}

function asObject(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new UserError(`${where}: expected a JSON object`);
  return value as Record<string, unknown>;
}

export function beirFiles(dir: string, split: string): DatasetFiles {
  const files = {
    corpus: path.join(dir, 'corpus.jsonl'),
    queries: path.join(dir, 'queries.jsonl'),
    qrels: path.join(dir, 'qrels', `${split}.tsv`),
  };
  requireFile(files.corpus, 'BEIR corpus');
  requireFile(files.queries, 'BEIR queries');
  requireFile(files.qrels, `BEIR qrels for split "${split}"`);
  return files;
}

/**
 * Passages of corpus.jsonl in file order. The passage text is title + " " + text, trimmed
 * (BEIR's dense-retrieval convention), or the text alone with titles=false.
 */
export async function* readBeirCorpus(file: string, titles = true, options: ReadLinesOptions = {}): AsyncGenerator<TextRecord> {
  for await (const { value, line } of readJsonLines(file, 'BEIR corpus', options)) {
    const where = `${file}:${line}`;
    const v = asObject(value, where);
    const text = fieldText(v, 'text', where);
    const title = titles ? fieldText(v, 'title', where) : '';
    yield { id: idOf(v, where), text: title ? `${title} ${text}`.trim() : text.trim(), where };
  }
}

/** Queries of queries.jsonl: id -> record (all splits; callers keep those in their qrels). */
export async function readBeirQueries(file: string, options: ReadLinesOptions = {}): Promise<Map<string, TextRecord>> {
  const out = new Map<string, TextRecord>();
  for await (const { value, line } of readJsonLines(file, 'BEIR queries', options)) {
    const where = `${file}:${line}`;
    const v = asObject(value, where);
    const id = idOf(v, where);
    if (out.has(id)) throw new UserError(`${where}: duplicate query id "${id}" (first at ${out.get(id)!.where})`);
    out.set(id, { id, text: fieldText(v, 'text', where), where });
  }
  return out;
}

export function readBeirQrels(file: string): Promise<Qrels> {
  return readQrels(file);
}
