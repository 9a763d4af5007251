// One writer per output: a run that writes an output dir (train, merge, eval) first creates
// the lock file `.<name>.lock` beside it with O_EXCL, holding {pid, host, command, since}. A
// second run into the same output fails at once naming the holder. A lock whose process is
// gone (same host, pid not running) is stale: it is reported and taken over. A lock from
// another host cannot be checked and is never taken over.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../errors.ts';
import { ioError, processAlive } from './atomic-write.ts';

export interface LockHolder {
  pid: number;
  host: string;
  command: string; // "lmdr train", "engine.train", ...
  since: string; // ISO time
}

export interface OutputLock {
  readonly file: string;
  /** What a stale lock that was taken over said ("" when there was none): callers print it. */
  readonly staleNote: string;
  release(): void;
}

/** The lock file of an output (a dir or a file): beside it, so the output itself can be swapped whole. */
export function lockFileFor(output: string): string {
  const abs = path.resolve(output);
  return path.join(path.dirname(abs), `.${path.basename(abs)}.lock`);
}

function readHolder(file: string): { text: string; holder: LockHolder | null } | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw ioError(err, 'read', file);
  }
  try {
    const h = JSON.parse(text) as LockHolder;
    return { text, holder: Number.isSafeInteger(h.pid) && typeof h.host === 'string' ? h : null };
  } catch {
    return { text, holder: null }; // being written this instant, or damaged
  }
}

function describeHolder(h: LockHolder): string {
  const self = h.pid === process.pid && h.host === os.hostname() ? ', this process' : '';
  return `${h.command || 'lmdr'} (pid ${h.pid} on ${h.host}${self}, since ${h.since})`;
}

/**
 * Take the lock of `output` for `command` or fail naming the holder. Release it when the run
 * ends (also on errors); a killed run leaves a stale lock the next run takes over.
 */
export function lockOutput(output: string, command: string): OutputLock {
  const file = lockFileFor(output);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const me: LockHolder = { pid: process.pid, host: os.hostname(), command, since: new Date().toISOString() };
  const content = JSON.stringify(me) + '\n';
  let staleNote = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    let fd: number | undefined;
    try {
      fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o644);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(err, 'create lock file', file);
    }
    if (fd !== undefined) {
      try {
        fs.writeSync(fd, content);
      } catch (err) {
        fs.closeSync(fd);
        fs.rmSync(file, { force: true });
        throw ioError(err, 'write', file);
      }
      fs.closeSync(fd);
      let released = false;
      return {
        file, staleNote,
        release() {
          if (released) return;
          released = true;
          const now = readHolder(file);
          if (now?.text === content) fs.rmSync(file, { force: true }); // never remove a lock someone else took over
        },
      };
    }
    const seen = readHolder(file);
    if (seen === null) continue; // released between our open and our read: try again
    const h = seen.holder;
    if (h === null) {
      // A holder writes its 60 bytes right after creating the file: give it a moment before calling it damaged.
      const age = Date.now() - (fs.statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age < 2000) {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
        continue;
      }
      throw new UserError(`${output} is locked by ${file}, which is not a valid lock file; if no lmdr run writes ${output}, delete it`);
    }
    if (h.host !== os.hostname()) {
      throw new UserError(`${output} is in use by ${describeHolder(h)}; wait for that run to end or choose another output ` +
        `(if it is gone, delete ${file}: a lock from another host cannot be checked)`);
    }
    if (processAlive(h.pid)) {
      throw new UserError(`${output} is in use by ${describeHolder(h)}; wait for that run to end or choose another output`);
    }
    // Stale: move it aside under a name of our own, and check that what we moved is the stale lock we read.
    const aside = `${file}.${process.pid}.stale`;
    try {
      fs.renameSync(file, aside);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // another run took it over first
      throw ioError(err, 'move stale lock', file);
    }
    const moved = fs.readFileSync(aside, 'utf8');
    if (moved !== seen.text) {
      // A live lock taken over a moment ago by another run: put it back and report that run.
      try {
        fs.linkSync(aside, file);
      } catch {
        // someone holds the name again; theirs stands
      }
      fs.rmSync(aside, { force: true });
      continue;
    }
    fs.rmSync(aside, { force: true });
    staleNote = `removed the stale lock ${file} of ${describeHolder(h)}, which is no longer running`;
  }
  const last = readHolder(file)?.holder;
  throw new UserError(`${output} is in use${last ? ` by ${describeHolder(last)}` : ''}; wait for that run to end or choose another output`);
}

/** Run `fn` holding the lock of `output`; the lock is released however fn ends. */
export async function withOutputLock<T>(output: string, command: string, fn: (lock: OutputLock) => Promise<T> | T): Promise<T> {
  const lock = lockOutput(output, command);
  try {
    return await fn(lock);
  } finally {
    lock.release();
  }
}
