// .npy files, JSON lines and the progress bar.
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { ProgressBar, formatDuration } from '../../lib/cli/progress.ts';
import { UserError } from '../../lib/errors.ts';
import { readJsonLines, readJsonLinesAll } from '../../lib/formats/jsonl.ts';
import { readNpy, writeNpy } from '../../lib/formats/npy.ts';
import { normalRng } from '../helpers/rng.ts';
import { tempDir } from '../helpers/tmp.ts';

describe('encode: .npy files', () => {
  it('writes the NPY 1.0 layout byte for byte and reads it back', () => {
    const file = path.join(tempDir(), 'e.npy');
    const rand = normalRng(4);
    const data = Float32Array.from({ length: 12 }, rand);
    writeNpy(file, { rows: 3, cols: 4, data });
    const bytes = fs.readFileSync(file);
    // NEP 1 layout: magic, version 1.0, u16 header length, dict padded with spaces to a 64-byte boundary, '\n'
    expect([...bytes.subarray(0, 8)]).to.deep.equal([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
    const headerLen = bytes.readUInt16LE(8);
    expect((10 + headerLen) % 64).to.equal(0);
    const dict = bytes.subarray(10, 10 + headerLen).toString('latin1');
    expect(dict.trimEnd()).to.equal("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }");
    expect(dict.endsWith('\n')).to.equal(true);
    for (let i = 0; i < 12; i++) expect(bytes.readFloatLE(10 + headerLen + 4 * i)).to.equal(data[i]);
    expect(bytes.length).to.equal(10 + headerLen + 48);
    const back = readNpy(file);
    expect([back.rows, back.cols]).to.deep.equal([3, 4]);
    expect([...back.data]).to.deep.equal([...data]);
  });

  it('reads a hand-built version 2.0 float64 vector as one row', () => {
    const file = path.join(tempDir(), 'v.npy');
    const dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }\n";
    const head = Buffer.alloc(12);
    Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 2, 0]).copy(head);
    head.writeUInt32LE(dict.length, 8);
    const body = Buffer.alloc(24);
    [0.5, -2, 3.25].forEach((v, i) => body.writeDoubleLE(v, 8 * i));
    fs.writeFileSync(file, Buffer.concat([head, Buffer.from(dict, 'latin1'), body]));
    const m = readNpy(file);
    expect([m.rows, m.cols, ...m.data]).to.deep.equal([1, 3, 0.5, -2, 3.25]);
  });

  it('rejects truncated, non-npy and integer files naming them', () => {
    const dir = tempDir();
    const good = path.join(dir, 'g.npy');
    writeNpy(good, { rows: 2, cols: 2, data: new Float32Array([1, 2, 3, 4]) });
    const cut = path.join(dir, 'cut.npy');
    fs.writeFileSync(cut, fs.readFileSync(good).subarray(0, -3));
    expect(() => readNpy(cut)).to.throw(UserError, /cut\.npy: truncated/);
    const txt = path.join(dir, 'x.npy');
    fs.writeFileSync(txt, 'hello world, not numpy');
    expect(() => readNpy(txt)).to.throw(UserError, /x\.npy: not a \.npy file/);
    const ints = path.join(dir, 'i.npy');
    fs.writeFileSync(ints, fs.readFileSync(good).toString('latin1').replace("'<f4'", "'<i4'"), 'latin1');
    expect(() => readNpy(ints)).to.throw(UserError, /i\.npy: dtype <i4/);
  });

  it('a failed write leaves no file behind', () => {
    const dir = tempDir();
    expect(() => writeNpy(path.join(dir, 'missing-dir', 'e.npy'), { rows: 1, cols: 1, data: new Float32Array(1) })).to.throw();
    expect(fs.readdirSync(dir)).to.deep.equal([]);
  });
});

describe('encode: JSON lines', () => {
  it('streams values with their line numbers, skipping blank lines and a BOM', async () => {
    const file = path.join(tempDir(), 'a.jsonl');
    fs.writeFileSync(file, '\uFEFF{"text": "a"}\n\n  \n"b"\r\n{"input_ids": [1, 2]}');
    const got = await readJsonLinesAll(file);
    expect(got).to.deep.equal([{ value: { text: 'a' }, line: 1 }, { value: 'b', line: 4 }, { value: { input_ids: [1, 2] }, line: 5 }]);
  });

  it('names file:line of malformed JSON', async () => {
    const file = path.join(tempDir(), 'bad.jsonl');
    fs.writeFileSync(file, '{"text": "a"}\n{"text": "b"}\n{"text": oops}\n');
    let err: unknown;
    try { await readJsonLinesAll(file); } catch (e) { err = e; }
    expect(err).to.be.instanceOf(UserError);
    expect((err as Error).message).to.match(new RegExp(`^${file.replace(/[.]/g, '\\.')}:3: invalid JSON`));
  });

  it('stopping early works; a missing file is named', async () => {
    const file = path.join(tempDir(), 'many.jsonl');
    fs.writeFileSync(file, Array.from({ length: 1000 }, (_, i) => JSON.stringify({ text: `t${i}` })).join('\n'));
    let n = 0;
    for await (const _ of readJsonLines(file)) if (++n === 3) break;
    expect(n).to.equal(3);
    let err: unknown;
    try { await readJsonLinesAll('/nonexistent/in.jsonl'); } catch (e) { err = e; }
    expect((err as Error).message).to.match(/\/nonexistent\/in\.jsonl/);
  });
});

describe('encode: progress bar', () => {
  function fakeStream(tty: boolean) {
    const writes: string[] = [];
    return { writes, stream: { isTTY: tty, write: (s: string) => { writes.push(s); return true; } } as unknown as NodeJS.WriteStream };
  }

  it('shows count/total, percentage, rate, ETA and extra text', () => {
    const { stream } = fakeStream(false);
    let now = 1000;
    const bar = new ProgressBar('encode', 200, { unit: 'texts', stream, enabled: true, clock: () => now });
    now += 10_000; // 50 texts in 10 s: 5/s, 150 left -> 30 s
    bar.update(50, 'loss 0.125');
    expect(bar.render()).to.equal('encode [#####...............] 50/200 texts 25% 5.00 texts/s ETA 0:30 loss 0.125');
  });

  it('is silent when disabled and throttled when enabled', () => {
    const off = fakeStream(false);
    const quiet = new ProgressBar('x', 10, { stream: off.stream, enabled: false });
    quiet.update(1);
    quiet.finish();
    expect(off.writes).to.deep.equal([]);
    const on = fakeStream(true);
    const bar = new ProgressBar('x', 10, { stream: on.stream, enabled: true });
    for (let i = 1; i <= 10; i++) bar.update(i);
    bar.finish();
    expect(on.writes.length).to.equal(3); // first update, the final redraw, the newline
    expect(on.writes[1]).to.match(/^\rx .* 10\/10 100% /);
  });

  it('draws the final state once, however often update(total) and finish() are called', () => {
    const log = fakeStream(false);
    let now = 10_000;
    const bar = new ProgressBar('x', 4, { stream: log.stream, enabled: true, clock: () => now });
    bar.update(1);
    now += 5000;
    bar.update(4);
    bar.finish();
    bar.finish();
    expect(log.writes.length).to.equal(2);
    expect(log.writes[0]).to.match(/^x .* 1\/4 25% /);
    expect(log.writes[1]).to.match(/^x .* 4\/4 100% /);
  });

  it('is off by default when stderr is not a TTY, on with LMDR_PROGRESS=1', () => {
    const saved = process.env.LMDR_PROGRESS;
    try {
      delete process.env.LMDR_PROGRESS;
      const a = fakeStream(false);
      new ProgressBar('x', 1, { stream: a.stream }).finish();
      expect(a.writes).to.deep.equal([]);
      process.env.LMDR_PROGRESS = '1';
      const b = fakeStream(false);
      new ProgressBar('x', 1, { stream: b.stream }).finish();
      expect(b.writes.length).to.equal(1);
    } finally {
      if (saved === undefined) delete process.env.LMDR_PROGRESS; else process.env.LMDR_PROGRESS = saved;
    }
  });

  it('formats durations', () => {
    expect([formatDuration(0), formatDuration(65), formatDuration(3725)]).to.deep.equal(['0:00', '1:05', '1:02:05']);
  });
});
