// Atomic file output: write a temp file beside the target, then rename it into place, so a
// failure (or a killed process) never leaves a partial file under the final name.
import fs from 'node:fs';
import path from 'node:path';

/** A temp file name beside `target` (same dir, so rename stays atomic), hidden and unique to this process. */
export function tempPathFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${Date.now()}.tmp`);
}

/** Write `chunks` to a temp file and rename it to `target`. The temp file is removed on failure. */
export function writeFileAtomic(target: string, chunks: Uint8Array[]): void {
  const tmp = tempPathFor(target);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'w');
    for (const chunk of chunks) {
      let off = 0;
      while (off < chunk.byteLength) off += fs.writeSync(fd, chunk, off, chunk.byteLength - off);
    }
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, target);
  } catch (err) {
    if (fd !== undefined) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}
