// BEIR folders: corpus.jsonl ({"_id", "title", "text"}), queries.jsonl ({"_id", "text"}),
// qrels/<split>.tsv ("query-id<TAB>corpus-id<TAB>score" with a header line). Streamed.
import path from 'node:path';
import { UserError } from '../errors.ts';
import type { Qrels } from '../eval/metrics.ts';
import { readJsonLines } from './jsonl.ts';
import { requireFile, type ReadLinesOptions } from './lines.ts';
import { readQrels } from './trec.ts';
import { jsonKeys, number, object, optional, parse, string, union } from '../schema.ts';

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

// One line of corpus.jsonl / queries.jsonl: the fields lmdr reads (others, e.g. "metadata", pass).
const idField = union(string({ nonEmpty: true }), number(), 'a non-empty string (or a number)');
const beirLine = object({
  _id: idField,
  title: optional(string(), { nullable: true }),
  text: optional(string(), { nullable: true }),
}, { unknownKeys: 'keep', expected: 'a JSON object {"_id", "title", "text"}' });

function readLine(value: unknown, where: string): { id: string; title: string; text: string } {
  const v = parse(beirLine, value, jsonKeys(where, 'the line'));
  return { id: String(v._id), title: v.title ?? '', text: v.text ?? '' };
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
    const v = readLine(value, where);
    const title = titles ? v.title : '';
    yield { id: v.id, text: title ? `${title} ${v.text}`.trim() : v.text.trim(), where };
  }
}

/** Queries of queries.jsonl: id -> record (all splits; callers keep those in their qrels). */
export async function readBeirQueries(file: string, options: ReadLinesOptions = {}): Promise<Map<string, TextRecord>> {
  const out = new Map<string, TextRecord>();
  for await (const { value, line } of readJsonLines(file, 'BEIR queries', options)) {
    const where = `${file}:${line}`;
    const { id, text } = readLine(value, where);
    if (out.has(id)) throw new UserError(`${where}: duplicate query id "${id}" (first at ${out.get(id)!.where})`);
    out.set(id, { id, text, where });
  }
  return out;
}

export function readBeirQrels(file: string): Promise<Qrels> {
  return readQrels(file);
}
