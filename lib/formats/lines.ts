// Streaming text input: files are read line by line, never into one string, so an
// 8.8M-line collection costs memory only for what the caller keeps.
import fs from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { UserError } from '../errors.ts';
import { ioError, tempPathFor } from './atomic-write.ts';

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

export interface ReadLinesOptions {
  /** replace invalid UTF-8 with U+FFFD (the old, silent behaviour) instead of failing on it; when
   * this key is given (true or false), the error tells how to ask for it */
  replaceInvalidUtf8?: boolean;
}

/** Byte offset of the first byte that does not belong to a valid UTF-8 sequence, or -1. */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length;) {
    const b = bytes[i];
    let n = 0;
    let min = 0;
    if (b < 0x80) {
      i++;
      continue;
    } else if (b >= 0xc2 && b <= 0xdf) [n, min] = [1, 0x80];
    else if (b >= 0xe0 && b <= 0xef) [n, min] = [2, 0x800];
    else if (b >= 0xf0 && b <= 0xf4) [n, min] = [3, 0x10000];
    else return i;
    let cp = b & (0x3f >> n);
    for (let k = 1; k <= n; k++) {
      const c = bytes[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += n + 1;
  }
  return -1;
}

/**
 * Every line of a UTF-8 text file, in order, with its 1-based number. Lines end at "\n" (a "\r"
 * before it is dropped). Invalid UTF-8 is an error naming FILE:LINE and the byte, unless
 * options.replaceInvalidUtf8 (then each bad sequence becomes U+FFFD). Read errors name the file.
 */
export async function* readLines(file: string, what = 'file', options: ReadLinesOptions = {}): AsyncGenerator<Line> {
  requireFile(file, what);
  const input = fs.createReadStream(file, { highWaterMark: 1 << 20 });
  let lineNo = 0;
  let carry: Buffer | null = null;
  const decode = (raw: Buffer): string => {
    lineNo++;
    const bytes = raw.length > 0 && raw[raw.length - 1] === 0x0d ? raw.subarray(0, raw.length - 1) : raw;
    if (!options.replaceInvalidUtf8 && !isUtf8(bytes)) {
      const at = firstInvalidUtf8(bytes);
      const hint = 'replaceInvalidUtf8' in options ? ', or pass --replace-invalid-utf8 (API: replaceInvalidUtf8: true) to read bad bytes as U+FFFD' : '';
      throw new UserError(`${file}:${lineNo}: invalid UTF-8 (byte 0x${bytes[at].toString(16).padStart(2, '0')} at byte ${at + 1} of the line); ` +
        `fix the file's encoding${hint}`);
    }
    return bytes.toString('utf8');
  };
  try {
    try {
      for await (const chunk of input as AsyncIterable<Buffer>) {
        let buf: Buffer = carry ? Buffer.concat([carry, chunk]) : chunk;
        let start = 0;
        for (let nl = buf.indexOf(10, start); nl >= 0; nl = buf.indexOf(10, start)) {
          yield { text: decode(buf.subarray(start, nl)), lineNo };
          start = nl + 1;
        }
        carry = start < buf.length ? Buffer.from(buf.subarray(start)) : null;
        buf = Buffer.alloc(0);
      }
    } catch (err) {
      if (err instanceof UserError) throw err;
      throw ioError(err, 'read', file);
    }
    if (carry && carry.length > 0) yield { text: decode(carry), lineNo };
  } finally {
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
      throw ioError(err, 'create', file);
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
    try {
      while (off < buf.length) off += fs.writeSync(this.fd, buf, off, buf.length - off);
    } catch (err) {
      throw ioError(err, 'write', this.file);
    }
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
    try {
      fs.closeSync(this.fd);
      fs.renameSync(this.tmp, this.file);
    } catch (err) {
      this.abort();
      throw ioError(err, 'write', this.file);
    }
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
