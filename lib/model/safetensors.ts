// safetensors files: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the data.
// The reader validates the header completely so the native loader can trust every offset.
import fs from 'node:fs';
import { UserError } from '../errors.ts';
import type { SafetensorsDType } from '../native.ts';
import { decodeTensor, dtypeBytes, encodeTensor, isFloatDtype, otherDtypeBytes, type StoredDType } from './dtypes.ts';
import { writeFileAtomic } from '../formats/atomic-write.ts';

export interface SafetensorsTensor {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  offset: number; // absolute byte offset of the data in the file
  byteLength: number;
}

export interface SafetensorsFile {
  file: string;
  tensors: Map<string, SafetensorsTensor>; // the floating-point tensors
  /** tensors of other dtypes (e.g. BERT's int64 position_ids buffer): validated, never loaded */
  otherTensors: Map<string, { dtype: StoredDType; shape: number[] }>;
  metadata: Record<string, string>;
}

const MAX_HEADER_BYTES = 100 * 1024 * 1024; // the reference implementation's limit

/** Read and validate the header of a safetensors file. Every problem is a UserError naming the file. */
export function readSafetensorsHeader(file: string): SafetensorsFile {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    throw new UserError(`${file}: cannot open safetensors file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size < 8) throw new UserError(`${file}: not a safetensors file (only ${size} bytes, header length missing)`);
    const lenBuf = Buffer.alloc(8);
    fs.readSync(fd, lenBuf, 0, 8, 0);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen < 2 || headerLen > MAX_HEADER_BYTES || 8 + headerLen > size) {
      throw new UserError(`${file}: corrupt safetensors header length ${headerLen} (file has ${size} bytes)`);
    }
    const headerBuf = Buffer.alloc(headerLen);
    fs.readSync(fd, headerBuf, 0, headerLen, 8);
    let header: unknown;
    try {
      header = JSON.parse(headerBuf.toString('utf8'));
    } catch (err) {
      throw new UserError(`${file}: corrupt safetensors header (invalid JSON: ${(err as Error).message})`);
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header)) {
      throw new UserError(`${file}: corrupt safetensors header (not a JSON object)`);
    }
    const dataStart = 8 + headerLen;
    const dataSize = size - dataStart;
    const tensors = new Map<string, SafetensorsTensor>();
    const otherTensors = new Map<string, { dtype: StoredDType; shape: number[] }>();
    let metadata: Record<string, string> = {};
    for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
      if (name === '__metadata__') {
        metadata = (raw ?? {}) as Record<string, string>;
        continue;
      }
      const entry = validateEntry(file, name, raw, dataStart, dataSize);
      if (isFloatDtype(entry.dtype)) tensors.set(name, { ...entry, dtype: entry.dtype });
      else otherTensors.set(name, { dtype: entry.dtype, shape: entry.shape });
    }
    return { file, tensors, otherTensors, metadata };
  } finally {
    fs.closeSync(fd);
  }
}

function validateEntry(file: string, name: string, raw: unknown, dataStart: number, dataSize: number):
  Omit<SafetensorsTensor, 'dtype'> & { dtype: StoredDType } {
  const bad = (what: string) => new UserError(`${file}: tensor "${name}": ${what}`);
  if (typeof raw !== 'object' || raw === null) throw bad('header entry is not an object');
  const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
  if (typeof dtype !== 'string' || !(dtype in dtypeBytes || dtype in otherDtypeBytes)) {
    throw bad(`unsupported dtype ${JSON.stringify(dtype)} (supported: F32, F16, BF16, F64)`);
  }
  const size = dtypeBytes[dtype as SafetensorsDType] ?? otherDtypeBytes[dtype];
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw bad(`invalid shape ${JSON.stringify(shape)}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
    throw bad(`invalid data_offsets ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as number[];
  const numel = (shape as number[]).reduce((a, b) => a * b, 1);
  const expected = numel * size;
  if (end < begin || end - begin !== expected) {
    throw bad(`data_offsets [${begin}, ${end}] hold ${end - begin} bytes but ${dtype} ${JSON.stringify(shape)} needs ${expected}`);
  }
  if (end > dataSize) {
    throw bad(`data_offsets [${begin}, ${end}] lie outside the file (data section has ${dataSize} bytes; truncated file?)`);
  }
  return { name, dtype: dtype as StoredDType, shape: shape as number[], offset: dataStart + begin, byteLength: expected };
}

/** Read one tensor's values as float64 (decoded from its stored dtype). */
export function readTensorValues(file: string, tensor: SafetensorsTensor): Float64Array {
  const bytes = Buffer.alloc(tensor.byteLength);
  const fd = fs.openSync(file, 'r');
  try {
    const got = fs.readSync(fd, bytes, 0, tensor.byteLength, tensor.offset);
    if (got !== tensor.byteLength) throw new UserError(`${file}: tensor "${tensor.name}": file ended early`);
  } finally {
    fs.closeSync(fd);
  }
  return decodeTensor(bytes, tensor.dtype);
}

export interface TensorToWrite {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  data: ArrayLike<number>; // values in row-major order; rounded to dtype on write
}

/** Write a safetensors file atomically (temp file + rename). Metadata defaults to {"format":"pt"}. */
export function writeSafetensors(file: string, tensors: TensorToWrite[],
  metadata: Record<string, string> = { format: 'pt' }): void {
  const header: Record<string, unknown> = { __metadata__: metadata };
  const blobs: Uint8Array[] = [];
  let offset = 0;
  for (const t of tensors) {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (numel !== t.data.length) {
      throw new Error(`writeSafetensors: tensor "${t.name}" has ${t.data.length} values but shape ${JSON.stringify(t.shape)}`);
    }
    if (t.name in header) throw new Error(`writeSafetensors: duplicate tensor "${t.name}"`);
    const bytes = encodeTensor(t.data, t.dtype);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes.byteLength] };
    blobs.push(bytes);
    offset += bytes.byteLength;
  }
  // Pad the header with spaces to a multiple of 8 so the data section is aligned.
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.byteLength));
  writeFileAtomic(file, [len, headerBytes, ...blobs]);
}
