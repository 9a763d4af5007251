// MS MARCO passage ranking files: collection.tsv ("pid<TAB>passage", 8.8M lines, streamed),
// queries.<split>.tsv ("qid<TAB>query") and qrels.<split>.tsv (TREC "qid 0 pid rel").
import path from 'node:path';
import { UserError } from '../errors.ts';
import { readLines, requireFile, type ReadLinesOptions } from './lines.ts';
import type { DatasetFiles, TextRecord } from './beir.ts';

export function msmarcoFiles(dir: string, split: string): DatasetFiles {
  const files = {
    corpus: path.join(dir, 'collection.tsv'),
    queries: path.join(dir, `queries.${split}.tsv`),
    qrels: path.join(dir, `qrels.${split}.tsv`),
  };
  requireFile(files.corpus, 'MS MARCO collection');
  requireFile(files.queries, `MS MARCO queries for split "${split}"`);
  requireFile(files.qrels, `MS MARCO qrels for split "${split}"`);
  return files;
}

/** "id<TAB>text" lines in file order; blank lines are skipped. */
export async function* readIdTextTsv(file: string, what: string, options: ReadLinesOptions = {}): AsyncGenerator<TextRecord> {
  for await (const { text, lineNo } of readLines(file, what, options)) {
    if (text.trim() === '') continue;
    const where = `${file}:${lineNo}`;
    const tab = text.indexOf('\t');
    if (tab <= 0) throw new UserError(`${where}: expected "id<TAB>text"`);
    const id = text.slice(0, tab).trim();
    if (id === '' || /\s/.test(id)) throw new UserError(`${where}: id ${JSON.stringify(id)} is empty or contains whitespace`);
    yield { id, text: text.slice(tab + 1), where };
  }
}

export function readMsmarcoCollection(file: string, options: ReadLinesOptions = {}): AsyncGenerator<TextRecord> {
  return readIdTextTsv(file, 'MS MARCO collection', options);
}

export async function readMsmarcoQueries(file: string, options: ReadLinesOptions = {}): Promise<Map<string, TextRecord>> {
  const out = new Map<string, TextRecord>();
  for await (const r of readIdTextTsv(file, 'MS MARCO queries', options)) {
    if (out.has(r.id)) throw new UserError(`${r.where}: duplicate query id "${r.id}" (first at ${out.get(r.id)!.where})`);
    out.set(r.id, r);
  }
  return out;
}
