import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../lib/errors.ts';
import { bf16ToFloat, f16ToFloat, floatToBf16, floatToF16 } from '../../lib/model/dtypes.ts';
import { readSafetensorsHeader, readTensorValues, writeSafetensors } from '../../lib/model/safetensors.ts';
import { normalRng } from '../helpers/rng.ts';
import { tempDir } from '../helpers/tmp.ts';

/** A safetensors file built byte by byte, independent of the writer under test. */
function rawSafetensors(file: string, header: unknown, dataBytes: number, lengthOverride?: bigint): void {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lengthOverride ?? BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([len, json, Buffer.alloc(dataBytes, 7)]));
}

describe('encode: half-precision conversions (hand-computed IEEE cases)', () => {
  it('bf16 rounds to nearest, ties to even', () => {
    expect(floatToBf16(1)).to.equal(0x3f80);
    expect(floatToBf16(-2.5)).to.equal(0xc020);
    expect(floatToBf16(1 + 2 ** -8)).to.equal(0x3f80); // tie, 0x3f80 is even
    expect(floatToBf16(1 + 3 * 2 ** -8)).to.equal(0x3f82); // tie, rounds up to even
    expect(floatToBf16(1 + 2 ** -8 + 2 ** -20)).to.equal(0x3f81); // just above the tie
    expect(Number.isNaN(bf16ToFloat(floatToBf16(NaN)))).to.equal(true);
    expect(bf16ToFloat(0x3f81)).to.equal(1 + 2 ** -7);
  });

  it('f16 rounds to nearest even, with subnormals and overflow', () => {
    expect(floatToF16(1)).to.equal(0x3c00);
    expect(floatToF16(65504)).to.equal(0x7bff);
    expect(floatToF16(65520)).to.equal(0x7c00); // tie between 65504 and 2^16 -> even -> infinity
    expect(floatToF16(2 ** -24)).to.equal(0x0001);
    expect(floatToF16(2 ** -25)).to.equal(0x0000); // tie -> even (zero)
    expect(floatToF16(0.75 * 2 ** -24)).to.equal(0x0001);
    expect(floatToF16(1 + 2 ** -11)).to.equal(0x3c00);
    expect(floatToF16(1 + 3 * 2 ** -11)).to.equal(0x3c02);
    expect(floatToF16(-0)).to.equal(0x8000);
    expect(f16ToFloat(0x3555)).to.equal(0.333251953125);
    expect(f16ToFloat(0x0001)).to.equal(2 ** -24);
    expect(f16ToFloat(0xfc00)).to.equal(-Infinity);
  });
});

describe('encode: safetensors writer and reader', () => {
  it('round-trips F32 exactly and BF16/F16 to the nearest representable value', () => {
    const dir = tempDir();
    const rand = normalRng(11);
    const values = Array.from({ length: 60 }, () => rand());
    const file = path.join(dir, 'w.safetensors');
    writeSafetensors(file, [
      { name: 'a', dtype: 'F32', shape: [3, 20], data: values },
      { name: 'b', dtype: 'BF16', shape: [60], data: values },
      { name: 'c', dtype: 'F16', shape: [2, 30], data: values },
    ]);
    const h = readSafetensorsHeader(file);
    expect(h.metadata).to.deep.equal({ format: 'pt' });
    expect([...h.tensors.keys()]).to.deep.equal(['a', 'b', 'c']);
    expect(h.tensors.get('c')!.shape).to.deep.equal([2, 30]);
    const a = readTensorValues(file, h.tensors.get('a')!);
    const b = readTensorValues(file, h.tensors.get('b')!);
    const c = readTensorValues(file, h.tensors.get('c')!);
    values.forEach((v, i) => {
      expect(a[i]).to.equal(Math.fround(v));
      expect(Math.abs(b[i] - v)).to.be.at.most(Math.abs(v) * 2 ** -8); // half an ulp of an 8-bit significand
      expect(Math.abs(c[i] - v)).to.be.at.most(Math.abs(v) * 2 ** -11 + 2 ** -25);
    });
    expect(h.tensors.get('a')!.offset % 8).to.equal(0); // data section aligned
    expect(fs.readdirSync(dir)).to.deep.equal(['w.safetensors']); // no temp file left
  });

  it('reads the header of a hand-built file (offsets relative to the data section)', () => {
    const dir = tempDir();
    const file = path.join(dir, 'h.safetensors');
    const header = { __metadata__: { format: 'pt' }, x: { dtype: 'F32', shape: [2], data_offsets: [4, 12] }, p: { dtype: 'I64', shape: [1], data_offsets: [12, 20] } };
    rawSafetensors(file, header, 20);
    const h = readSafetensorsHeader(file);
    const hdrLen = Buffer.byteLength(JSON.stringify(header));
    expect(h.tensors.get('x')!.offset).to.equal(8 + hdrLen + 4);
    expect(h.tensors.has('p')).to.equal(false); // integer tensors are tolerated, never loaded
    expect(h.otherTensors.get('p')).to.deep.equal({ dtype: 'I64', shape: [1] });
  });

  const cases: [string, (file: string) => void, RegExp][] = [
    ['a file shorter than the length field', (f) => fs.writeFileSync(f, Buffer.alloc(5)), /header length missing/],
    ['a header length beyond the file', (f) => rawSafetensors(f, {}, 0, 10_000n), /corrupt safetensors header length/],
    ['a header that is not JSON', (f) => { const b = Buffer.alloc(8 + 4); b.writeBigUInt64LE(4n); b.write('{{{{', 8); fs.writeFileSync(f, b); }, /invalid JSON/],
    ['an unknown dtype', (f) => rawSafetensors(f, { t: { dtype: 'Q4', shape: [1], data_offsets: [0, 4] } }, 4), /tensor "t".*unsupported dtype "Q4"/],
    ['offsets that disagree with the shape', (f) => rawSafetensors(f, { t: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 16), /tensor "t".*needs 12/],
    ['offsets outside the file', (f) => rawSafetensors(f, { t: { dtype: 'F32', shape: [4], data_offsets: [8, 24] } }, 16), /tensor "t".*outside the file/],
    ['a negative shape', (f) => rawSafetensors(f, { t: { dtype: 'F32', shape: [-1], data_offsets: [0, 0] } }, 0), /tensor "t".*invalid shape/],
  ];
  for (const [what, make, message] of cases) {
    it(`rejects ${what} with an error naming the file`, () => {
      const file = path.join(tempDir(), 'bad.safetensors');
      make(file);
      expect(() => readSafetensorsHeader(file)).to.throw(UserError, message).with.property('message').that.contains(file);
    });
  }

  it('rejects a missing file naming it', () => {
    expect(() => readSafetensorsHeader('/nonexistent/x.safetensors')).to.throw(UserError, /x\.safetensors.*ENOENT/);
  });
});
