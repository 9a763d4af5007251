// Atomic file output: write a temp file beside the target, then rename it into place, so a
// failure (or a killed process) never leaves a partial file under the final name. Directories
// the same way: built under a temp name beside the target, then swapped in. Every I/O error
// names the path it was reading or writing.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.ts';

/** A temp file name beside `target` (same dir, so rename stays atomic), hidden and unique to this process. */
export function tempPathFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${Date.now()}.tmp`);
}

// .<name>.<pid>.<ms>.tmp, and .<name>.<pid>.<ms>.tmp.old while a dir is being swapped (older writers: .<name>.<pid>.tmp).
const TEMP_NAME = /^\.(.+)\.(\d+)\.\d+\.tmp(\.old)?$/;
const OLD_TEMP_NAME = /^\.(.+)\.(\d+)\.tmp(\.old)?$/;

/** Whether a process with this pid runs on this machine (EPERM: it runs, as another user). */
export function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * An fs error as a UserError that names the path and what was being done
 * ("cannot write out/model.safetensors: ENOSPC (no space left on device)").
 */
export function ioError(err: unknown, action: string, file: string): Error {
  if (err instanceof UserError) return err;
  const e = err as NodeJS.ErrnoException;
  if (!e || typeof e.code !== 'string') return err as Error;
  const detail = e.message.replace(/^[A-Z]+: /, '').replace(/, \w+( '.*')?$/, '');
  return new UserError(`cannot ${action} ${file}: ${e.code} (${detail})`);
}

/**
 * Temp files and dirs that writers killed mid-write left in `dir` (pid no longer running; this
 * process's own are left alone), optionally only those of the target named `name`. A dir swap
 * interrupted between its two renames is finished first (the new dir was complete).
 */
export function removeDeadTemps(dir: string, name?: string): string[] {
  let entries: string[];
  try {
    entries = fs.readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw ioError(err, 'list', dir);
  }
  const removed: string[] = [];
  for (const entry of entries) {
    const m = TEMP_NAME.exec(entry) ?? OLD_TEMP_NAME.exec(entry);
    if (!m || (name !== undefined && m[1] !== name)) continue;
    const pid = Number(m[2]);
    if (pid === process.pid || processAlive(pid)) continue;
    const full = path.join(dir, entry);
    if (m[3] === '.old') {
      const fresh = full.slice(0, -'.old'.length);
      const target = path.join(dir, m[1]);
      if (!fs.existsSync(target) && fs.existsSync(fresh)) fs.renameSync(fresh, target); // roll the swap forward
    }
    fs.rmSync(full, { recursive: true, force: true });
    removed.push(full);
  }
  return removed;
}

/** Write `chunks` to a temp file and rename it to `target`. The temp file is removed on failure. */
export function writeFileAtomic(target: string, chunks: Uint8Array[]): void {
  const tmp = tempPathFor(target);
  let fd: number | undefined;
  try {
    try {
      fd = fs.openSync(tmp, 'w');
    } catch (err) {
      throw ioError(err, 'create', target);
    }
    try {
      for (const chunk of chunks) {
        let off = 0;
        while (off < chunk.byteLength) off += fs.writeSync(fd, chunk, off, chunk.byteLength - off);
      }
      fs.closeSync(fd);
      fd = undefined;
    } catch (err) {
      throw ioError(err, 'write', target);
    }
    try {
      fs.renameSync(tmp, target);
    } catch (err) {
      throw ioError(err, 'rename into place', target);
    }
  } catch (err) {
    if (fd !== undefined) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * Write a directory atomically: `fill` writes into a fresh temp dir beside `target`, which then
 * replaces `target` whole (rename the old one aside, rename the new one in, remove the old).
 * Readers see the old dir or the new one; a kill between the two renames leaves both beside
 * the target, and the next write of the target finishes the swap. Leftovers of killed writes
 * of the same target are removed first.
 */
export function writeDirAtomic(target: string, fill: (dir: string) => void): void {
  const parent = path.dirname(target);
  fs.mkdirSync(parent, { recursive: true });
  removeDeadTemps(parent, path.basename(target));
  const tmp = tempPathFor(target);
  try {
    fs.mkdirSync(tmp, { recursive: true });
  } catch (err) {
    throw ioError(err, 'create', tmp);
  }
  const old = `${tmp}.old`;
  try {
    fill(tmp);
    if (fs.existsSync(target)) {
      fs.renameSync(target, old);
      fs.renameSync(tmp, target);
      fs.rmSync(old, { recursive: true, force: true });
    } else {
      fs.renameSync(tmp, target);
    }
  } catch (err) {
    if (fs.existsSync(old) && !fs.existsSync(target)) fs.renameSync(old, target); // the old dir stays in place
    fs.rmSync(tmp, { recursive: true, force: true });
    throw ioError(err, 'write', target);
  }
}
