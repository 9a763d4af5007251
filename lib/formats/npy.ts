// .npy matrices: float32 [N, H], C order. Writes are atomic (temp file + rename); reads accept
// format versions 1-3 and little-endian float32 or float64 (converted to float32).
import fs from 'node:fs';
import { UserError } from '../errors.ts';
import { writeFileAtomic } from './atomic-write.ts';

export interface Matrix {
  rows: number;
  cols: number;
  data: Float32Array; // row-major, rows * cols
}

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // "\x93NUMPY"

/** The v1.0 header for a float32 [rows, cols] array, padded so the data starts 64-byte aligned. */
export function npyHeader(rows: number, cols: number): Buffer {
  let dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${rows}, ${cols}), }`;
  const unpadded = MAGIC.length + 2 + 2 + dict.length + 1; // magic, version, u16 length, dict, '\n'
  dict += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const header = Buffer.alloc(MAGIC.length + 4 + dict.length);
  MAGIC.copy(header, 0);
  header[6] = 1; // major version
  header[7] = 0; // minor version
  header.writeUInt16LE(dict.length, 8);
  header.write(dict, 10, 'latin1');
  return header;
}

/** Write a float32 [rows, cols] matrix atomically. */
export function writeNpy(file: string, m: Matrix): void {
  if (m.data.length !== m.rows * m.cols) throw new Error(`writeNpy: ${m.data.length} values for shape [${m.rows}, ${m.cols}]`);
  const bytes = new Uint8Array(m.data.buffer, m.data.byteOffset, m.data.byteLength);
  writeFileAtomic(file, [npyHeader(m.rows, m.cols), bytes]);
}

/** Read a 2-D float matrix (a 1-D array reads as one row). Errors name the file. */
export function readNpy(file: string): Matrix {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    throw new UserError(`${file}: cannot open .npy file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    const size = fs.fstatSync(fd).size;
    const pre = Buffer.alloc(12);
    const got = fs.readSync(fd, pre, 0, 12, 0);
    if (got < 10 || !pre.subarray(0, 6).equals(MAGIC)) throw new UserError(`${file}: not a .npy file (bad magic)`);
    const major = pre[6];
    if (major < 1 || major > 3) throw new UserError(`${file}: unsupported .npy version ${major}.${pre[7]}`);
    const lenBytes = major === 1 ? 2 : 4;
    const headerLen = major === 1 ? pre.readUInt16LE(8) : pre.readUInt32LE(8);
    const dataStart = 8 + lenBytes + headerLen;
    if (dataStart > size) throw new UserError(`${file}: truncated .npy header`);
    const headerBuf = Buffer.alloc(headerLen);
    fs.readSync(fd, headerBuf, 0, headerLen, 8 + lenBytes);
    const header = headerBuf.toString(major === 3 ? 'utf8' : 'latin1');
    const descr = /'descr':\s*'([^']*)'/.exec(header)?.[1];
    const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
    const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
    if (descr === undefined || fortran === undefined || shapeText === undefined) {
      throw new UserError(`${file}: malformed .npy header ${JSON.stringify(header.trim())}`);
    }
    if (descr !== '<f4' && descr !== '<f8') throw new UserError(`${file}: dtype ${descr}, expected float32 ('<f4') or float64 ('<f8')`);
    if (fortran === 'True') throw new UserError(`${file}: Fortran-ordered arrays are not supported (save with C order)`);
    const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
    if (shape.length < 1 || shape.length > 2 || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new UserError(`${file}: shape (${shapeText}) is not a 1-D or 2-D array`);
    }
    const [rows, cols] = shape.length === 2 ? shape : [1, shape[0]];
    const itemSize = descr === '<f4' ? 4 : 8;
    const byteLength = rows * cols * itemSize;
    if (dataStart + byteLength > size) {
      throw new UserError(`${file}: truncated: shape [${rows}, ${cols}] needs ${byteLength} data bytes, file has ${size - dataStart}`);
    }
    const raw = new Uint8Array(byteLength);
    for (let off = 0; off < byteLength;) {
      const n = fs.readSync(fd, raw, off, Math.min(byteLength - off, 1 << 30), dataStart + off);
      if (n <= 0) throw new UserError(`${file}: file ended early`);
      off += n;
    }
    const data = itemSize === 4 ? new Float32Array(raw.buffer) : Float32Array.from(new Float64Array(raw.buffer));
    return { rows, cols, data };
  } finally {
    fs.closeSync(fd);
  }
}
