// JSON lines: one JSON value per line, streamed (lines come from readLines, so large files
// never sit in memory whole). Every error names file:line. Blank lines are skipped.
import { UserError } from '../errors.ts';
import { readLines, type ReadLinesOptions } from './lines.ts';

export interface JsonLine<T = unknown> {
  value: T;
  line: number; // 1-based line number in the file
}

/** Stream the JSON values of a .jsonl file with their line numbers. */
export async function* readJsonLines<T = unknown>(file: string, what = 'input', options: ReadLinesOptions = {}): AsyncGenerator<JsonLine<T>> {
  const lines = readLines(file, what, options);
  let lineNo = 0;
  try {
    for (;;) {
      let next: IteratorResult<{ text: string; lineNo: number }>;
      try {
        next = await lines.next();
      } catch (err) {
        if (err instanceof UserError) throw err;
        throw new UserError(`${file}:${lineNo + 1}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      }
      if (next.done) return;
      lineNo = next.value.lineNo;
      const raw = lineNo === 1 ? next.value.text.replace(/^\uFEFF/, '') : next.value.text; // tolerate a BOM
      if (raw.trim() === '') continue;
      let value: T;
      try {
        value = JSON.parse(raw) as T;
      } catch (err) {
        throw new UserError(`${file}:${lineNo}: invalid JSON (${(err as Error).message})`);
      }
      yield { value, line: lineNo };
    }
  } finally {
    await lines.return(undefined); // closes the file when the consumer stops early or fails
  }
}

/** Read a whole .jsonl file into an array (convenience over readJsonLines). */
export async function readJsonLinesAll<T = unknown>(file: string, what = 'input', options: ReadLinesOptions = {}): Promise<JsonLine<T>[]> {
  const out: JsonLine<T>[] = [];
  for await (const item of readJsonLines<T>(file, what, options)) out.push(item);
  return out;
}
