// Streaming text input: files are read line by line, never into one string, so an
// 8.8M-line collection costs memory only for what the caller keeps.
import fs from 'node:fs';
import readline from 'node:readline';
import { UserError } from '../errors.ts';
import { tempPathFor } from './atomic-write.ts';

export interface Line {
  text: string; // without the line terminator (\n or \r\n)
  lineNo: number; // 1-based
}

/** Fails with a clear message when `file` is missing or is not a regular file. */
export function requireFile(file: string, what: string): void {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    throw new UserError(`${what} ${file}: file not found`);
  }
  if (!stat.isFile()) throw new UserError(`${what} ${file}: not a regular file`);
}

/** Every line of a UTF-8 text file, in order, with its 1-based number. */
export async function* readLines(file: string, what = 'file'): AsyncGenerator<Line> {
  requireFile(file, what);
  const input = fs.createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 });
  const rl = readline.createInterface({ input, crlfDelay: Infinity });
  let lineNo = 0;
  try {
    for await (const text of rl) {
      lineNo++;
      yield { text, lineNo };
    }
  } finally {
    rl.close();
    input.destroy();
  }
}

/**
 * Buffered synchronous writer for large text outputs (runs of millions of lines). It writes a
 * temp file beside `file` and renames it on close(), so an error never leaves a partial file
 * under the final name; abort() removes the temp file.
 */
export class TextWriter {
  private fd: number;
  private readonly tmp: string;
  private parts: string[] = [];
  private pending = 0;

  constructor(readonly file: string) {
    this.tmp = tempPathFor(file);
    try {
      this.fd = fs.openSync(this.tmp, 'w');
    } catch (err) {
      throw new UserError(`cannot write ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }

  write(text: string): void {
    this.parts.push(text);
    this.pending += text.length;
    if (this.pending >= 1 << 20) this.flush();
  }

  private flush(): void {
    if (this.parts.length === 0) return;
    const buf = Buffer.from(this.parts.join(''), 'utf8');
    let off = 0;
    while (off < buf.length) off += fs.writeSync(this.fd, buf, off, buf.length - off);
    this.parts = [];
    this.pending = 0;
  }

  /** Writes what is buffered and moves the file into place. */
  close(): void {
    try {
      this.flush();
    } catch (err) {
      this.abort();
      throw err;
    }
    fs.closeSync(this.fd);
    fs.renameSync(this.tmp, this.file);
  }

  /** Drops the output: nothing appears under the final name. */
  abort(): void {
    try {
      fs.closeSync(this.fd);
    } catch {
      // already closed
    }
    fs.rmSync(this.tmp, { force: true });
  }
}
