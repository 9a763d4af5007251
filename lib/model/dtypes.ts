// Conversions between JS numbers and the half-precision storage formats of safetensors files.
// Encoders round to nearest, ties to even (what torch's .to(bfloat16 / float16) does).
import type { SafetensorsDType } from '../native.ts';

export const dtypeBytes: Record<SafetensorsDType, number> = { F64: 8, F32: 4, F16: 2, BF16: 2 };

/** Non-float dtypes a checkpoint may carry in tensors we never load (e.g. BERT's int64
 * "embeddings.position_ids" buffer): the header reader accepts them, the loader rejects them. */
export const otherDtypeBytes: Record<string, number> = { I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };
export type StoredDType = SafetensorsDType | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export function isFloatDtype(d: StoredDType): d is SafetensorsDType {
  return d in dtypeBytes;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function bf16ToFloat(bits: number): number {
  u32[0] = bits << 16;
  return f32[0];
}

/** float32(x) -> bf16 bits, round-to-nearest-even; NaN stays a quiet NaN. */
export function floatToBf16(x: number): number {
  f32[0] = x;
  const u = u32[0];
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

export function f16ToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** float32(x) -> IEEE half bits, round-to-nearest-even, overflow to infinity, subnormals kept. */
export function floatToF16(x: number): number {
  f32[0] = x;
  const u = u32[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  const mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15; // rebiased exponent
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal
    const m = mant | 0x800000; // implicit leading one
    const shift = 14 - e; // 24-bit significand -> subnormal 10-bit field
    const half = 1 << (shift - 1);
    const rest = m & ((1 << shift) - 1);
    let r = m >>> shift;
    if (rest > half || (rest === half && r & 1)) r++;
    return sign | r; // a carry into bit 10 gives the smallest normal, which is correct
  }
  let r = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && r & 1)) r++; // a carry may round up to infinity: correct
  return sign | r;
}

/** Decode raw little-endian tensor bytes to float64 values. */
export function decodeTensor(bytes: Uint8Array, dtype: SafetensorsDType): Float64Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength / dtypeBytes[dtype];
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    switch (dtype) {
      case 'F64': out[i] = view.getFloat64(i * 8, true); break;
      case 'F32': out[i] = view.getFloat32(i * 4, true); break;
      case 'BF16': out[i] = bf16ToFloat(view.getUint16(i * 2, true)); break;
      case 'F16': out[i] = f16ToFloat(view.getUint16(i * 2, true)); break;
    }
  }
  return out;
}

/** Encode values to little-endian bytes of the given dtype. */
export function encodeTensor(values: ArrayLike<number>, dtype: SafetensorsDType): Uint8Array {
  const bytes = new Uint8Array(values.length * dtypeBytes[dtype]);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) {
    switch (dtype) {
      case 'F64': view.setFloat64(i * 8, values[i], true); break;
      case 'F32': view.setFloat32(i * 4, values[i], true); break;
      case 'BF16': view.setUint16(i * 2, floatToBf16(values[i]), true); break;
      case 'F16': view.setUint16(i * 2, floatToF16(values[i]), true); break;
    }
  }
  return bytes;
}
