// TREC run files (`qid Q0 docno rank score tag`) in and out, and qrels in both spellings:
// TREC (`qid iter docno rel`, whitespace-separated) and BEIR TSV (`query-id corpus-id score`
// with a header line). Read line by line; errors name file:line.
import type { Qrels, Run } from '../eval/metrics.ts';
import { UserError } from '../errors.ts';
import { parse, string } from '../schema.ts';
import { readLines, TextWriter } from './lines.ts';

const WS = /\s+/;

/** A run-file score: a decimal number, or inf/-inf like C's atof; NaN and junk are errors. */
function parseScore(text: string, at: string): number {
  const v = Number(text);
  if (!Number.isNaN(v) && text.trim() !== '') return v;
  const inf = /^([+-]?)inf(inity)?$/i.exec(text);
  if (inf) return inf[1] === '-' ? -Infinity : Infinity;
  if (/^[+-]?nan$/i.test(text)) throw new UserError(`${at}: score is NaN`);
  throw new UserError(`${at}: score "${text}" is not a number`);
}

export interface RunFile {
  run: Run;
  lines: number; // result lines read
  /** Later lines repeating a (qid, docno) already seen: ignored, the first line wins. */
  duplicates: number;
  firstDuplicate?: string; // "file:line" of the first ignored line
}

/**
 * Reads a TREC run. Blank lines and lines starting with '#' are skipped (as trec_eval does);
 * fields after the sixth are ignored. trec_eval 9.0.8 stops with "duplicate docs" on a
 * repeated (qid, docno); lmdr keeps the first occurrence and reports the count instead.
 */
export async function readTrecRun(file: string): Promise<RunFile> {
  parse(string({ nonEmpty: true }), file, { where: 'readTrecRun', label: () => 'file' });
  const run: Run = new Map();
  let lines = 0;
  let duplicates = 0;
  let firstDuplicate: string | undefined;
  for await (const { text, lineNo } of readLines(file, 'run file')) {
    const trimmed = text.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const at = `${file}:${lineNo}`;
    const f = trimmed.split(WS);
    if (f.length < 6) throw new UserError(`${at}: expected 6 fields "qid Q0 docno rank score tag", found ${f.length}`);
    const score = parseScore(f[4], at);
    let docs = run.get(f[0]);
    if (!docs) run.set(f[0], (docs = new Map()));
    if (docs.has(f[2])) {
      duplicates++;
      firstDuplicate ??= at;
      continue;
    }
    docs.set(f[2], score);
    lines++;
  }
  return { run, lines, duplicates, firstDuplicate };
}

function parseRel(text: string, at: string): number {
  const v = Number(text);
  if (text.trim() === '' || !Number.isInteger(v)) throw new UserError(`${at}: relevance "${text}" is not an integer`);
  return v;
}

/**
 * Reads qrels: TREC (4 fields) or BEIR TSV (3 tab-separated fields, header line optional).
 * The first content line decides the format. A repeated (qid, docno) is an error, as in
 * trec_eval. A query whose judgements are all 0 (or negative) stays a query: it scores 0.
 */
export async function readQrels(file: string): Promise<Qrels> {
  parse(string({ nonEmpty: true }), file, { where: 'readQrels', label: () => 'file' });
  const qrels: Qrels = new Map();
  let columns = 0;
  for await (const { text, lineNo } of readLines(file, 'qrels file')) {
    const trimmed = text.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const at = `${file}:${lineNo}`;
    const f = trimmed.includes('\t') ? trimmed.split('\t').map((s) => s.trim()) : trimmed.split(WS);
    if (columns === 0) {
      if (f.length !== 3 && f.length !== 4)
        throw new UserError(`${at}: expected "qid iter docno rel" (TREC) or "query-id<TAB>corpus-id<TAB>score" (BEIR), found ${f.length} fields`);
      columns = f.length;
      if (columns === 3 && !Number.isInteger(Number(f[2]))) continue; // BEIR header line
    }
    if (f.length !== columns) throw new UserError(`${at}: expected ${columns} fields like the first line, found ${f.length}`);
    const [qid, doc, relText] = columns === 4 ? [f[0], f[2], f[3]] : [f[0], f[1], f[2]];
    const rel = parseRel(relText, at);
    let judged = qrels.get(qid);
    if (!judged) qrels.set(qid, (judged = new Map()));
    if (judged.has(doc)) throw new UserError(`${at}: duplicate judgement for query "${qid}", doc "${doc}"`);
    judged.set(doc, rel);
  }
  if (qrels.size === 0) throw new UserError(`qrels file ${file}: no judgements`);
  return qrels;
}

/** Streams a run file: one line `qid Q0 docno rank score tag` per hit, ranks 1..n as given; atomic (see TextWriter). */
export class TrecRunWriter {
  private out: TextWriter;

  constructor(file: string, readonly tag = 'lmdr') {
    parse(string({ nonEmpty: true }), file, { where: 'new TrecRunWriter', label: () => 'file' });
    parse(string({ nonEmpty: true }), tag, { where: 'new TrecRunWriter', label: () => 'tag' });
    this.out = new TextWriter(file);
  }

  /** Hits already in rank order (score descending). */
  writeQuery(qid: string, docs: ArrayLike<string>, scores: ArrayLike<number>): void {
    for (let i = 0; i < docs.length; i++) this.out.write(`${qid} Q0 ${docs[i]} ${i + 1} ${scores[i]} ${this.tag}\n`);
  }

  /** Moves the complete run into place (it is written under a temp name until then). */
  close(): void {
    this.out.close();
  }

  /** Drops a run that failed half-way: no file appears. */
  abort(): void {
    this.out.abort();
  }
}
