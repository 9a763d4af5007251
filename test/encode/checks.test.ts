// Nothing silent: non-finite weights (checked once at load) and embeddings, invalid UTF-8,
// truncation, a full disk, a NaN in a search matrix and a typo'd command or flag each give one
// clear line (exit 1 for errors, and no output file), never a wrong result with exit 0.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { main } from '../../lib/cli/main.ts';
import { Engine } from '../../lib/engine.ts';
import { UserError } from '../../lib/errors.ts';
import { readNpy, writeNpy } from '../../lib/formats/npy.ts';
import { readSafetensorsHeader, readTensorValues, writeSafetensors } from '../../lib/model/safetensors.ts';
import { makeTinyModel, tinyWords } from '../helpers/tiny-models.ts';
import { tempDir } from '../helpers/tmp.ts';
import { expectReject } from '../helpers/reject.ts';

async function lmdr(...args: string[]): Promise<{ code: number; err: string; out: string }> {
  const [write, writeOut] = [process.stderr.write, process.stdout.write];
  let err = '';
  let out = '';
  process.stderr.write = ((c: string | Uint8Array) => { err += c.toString(); return true; }) as typeof process.stderr.write;
  process.stdout.write = ((c: string | Uint8Array) => { out += c.toString(); return true; }) as typeof process.stdout.write;
  try {
    return { code: await main(args), err, out };
  } finally {
    process.stderr.write = write;
    process.stdout.write = writeOut;
  }
}

/** Rewrites model.safetensors of `dir` (dtype kept) with `edit` applied to the named tensor's values. */
function editTensor(dir: string, name: string, edit: (v: Float64Array) => void): void {
  const file = path.join(dir, 'model.safetensors');
  const header = readSafetensorsHeader(file);
  const tensors = [...header.tensors.values()].map((t) => {
    const data = readTensorValues(file, t);
    if (t.name === name) edit(data);
    return { name: t.name, dtype: t.dtype, shape: t.shape, data };
  });
  if (!header.tensors.has(name)) throw new Error(`no tensor ${name}`);
  writeSafetensors(file, tensors);
}

describe('encode: nothing silent', function () {
  this.timeout(120000);
  const dir = tempDir('lmdr-checks-');
  const f = (name: string) => path.join(dir, name);
  const words = tinyWords.filter((w) => /^[a-z]+$/.test(w));

  for (const dtype of ['F32', 'BF16', 'F16'] as const) {
    it(`a ${dtype} weight holding NaN or Infinity: refused at load, naming the file, tensor and element`, async () => {
      const model = makeTinyModel({ arch: 'qwen2', tokenizer: true, seed: 41, dtype });
      editTensor(model, 'model.layers.1.mlp.up_proj.weight', (v) => { v[2 * 32 + 5] = NaN; });
      await expectReject(Engine.load(model, { device: 'cpu' }),
        new RegExp(`^${path.join(model, 'model.safetensors')}: tensor 'layers\\.1\\.mlp\\.up_proj\\.weight' holds NaN at \\[2,5\\]; a checkpoint must hold finite weights`));
      editTensor(model, 'model.layers.1.mlp.up_proj.weight', (v) => { v[2 * 32 + 5] = 0; v[7] = -Infinity; });
      await expectReject(Engine.load(model, { device: 'cpu' }), /tensor 'layers\.1\.mlp\.up_proj\.weight' holds -Infinity at \[0,7\]/);
    });
  }

  it('lmdr encode with a NaN weight: exit 1, one line, no .npy', async () => {
    const model = makeTinyModel({ arch: 'bert', tokenizer: true, seed: 42 });
    editTensor(model, 'embeddings.LayerNorm.weight', (v) => { v[3] = NaN; });
    fs.writeFileSync(f('in.jsonl'), '"the river"\n');
    const r = await lmdr('encode', '--model', model, '--input', f('in.jsonl'), '--output', f('nan.npy'));
    expect(r.code).to.equal(1);
    expect(r.err).to.match(/^lmdr encode: \S+model\.safetensors: tensor 'embeddings\.LayerNorm\.weight' holds NaN at \[3\]; .*\n$/);
    expect(fs.existsSync(f('nan.npy'))).to.equal(false);
  });

  it('finite weights whose activations overflow: the embedding is refused naming the input line', async () => {
    const model = makeTinyModel({ arch: 'qwen2', tokenizer: true, seed: 43 });
    editTensor(model, 'model.layers.1.mlp.down_proj.weight', (v) => v.fill(3e38)); // finite, but x·W overflows
    fs.writeFileSync(f('ovf.jsonl'), '"the river"\n"a king"\n');
    const r = await lmdr('encode', '--model', model, '--input', f('ovf.jsonl'), '--output', f('ovf.npy'));
    expect(r.code).to.equal(1);
    expect(r.err).to.match(new RegExp(`^lmdr encode: ${f('ovf.jsonl')}:[12]: its embedding has (NaN|-?Infinity) at column \\d+ .*; no output was written\\n$`));
    expect(fs.existsSync(f('ovf.npy'))).to.equal(false);
  });

  it('invalid UTF-8: an error naming FILE:LINE and the byte; --replace-invalid-utf8 reads it as U+FFFD', async () => {
    const model = makeTinyModel({ arch: 'qwen2', tokenizer: true, seed: 44 });
    fs.writeFileSync(f('bad.jsonl'), Buffer.concat([Buffer.from('"the river"\n"a '), Buffer.from([0xff]), Buffer.from('king"\n')]));
    let r = await lmdr('encode', '--model', model, '--input', f('bad.jsonl'), '--output', f('bad.npy'));
    expect(r.code).to.equal(1);
    expect(r.err).to.equal(`lmdr encode: ${f('bad.jsonl')}:2: invalid UTF-8 (byte 0xff at byte 4 of the line); fix the file's encoding, ` +
      'or pass --replace-invalid-utf8 (API: replaceInvalidUtf8: true) to read bad bytes as U+FFFD\n');
    expect(fs.existsSync(f('bad.npy'))).to.equal(false);
    r = await lmdr('encode', '--model', model, '--input', f('bad.jsonl'), '--output', f('bad.npy'), '--replace-invalid-utf8');
    expect(r.code, r.err).to.equal(0);
    const e = await Engine.load(model, { device: 'cpu' });
    try {
      const want = await e.encode(['the river', 'a \uFFFDking']);
      expect(Array.from(readNpy(f('bad.npy')).data)).to.deep.equal(Array.from(want.data));
    } finally {
      e.dispose();
    }
    // a truncated multi-byte sequence and an overlong encoding are invalid too
    fs.writeFileSync(f('bad2.jsonl'), Buffer.concat([Buffer.from('"ok"\n"x'), Buffer.from([0xc0, 0xaf]), Buffer.from('"\n')]));
    r = await lmdr('encode', '--model', model, '--input', f('bad2.jsonl'), '--output', f('bad2.npy'));
    expect(r.err).to.match(/bad2\.jsonl:2: invalid UTF-8 \(byte 0xc0 at byte 3 of the line\)/);
  });

  it('truncation is reported once: how many inputs, the longest length, the flag to change', async () => {
    const model = makeTinyModel({ arch: 'qwen2', tokenizer: true, seed: 45 });
    const long = Array.from({ length: 400 }, (_, i) => words[i % words.length]).join(' '); // 400 tokens + EOS
    const mid = words.slice(0, 20).join(' '); // 20 tokens + EOS
    fs.writeFileSync(f('long.jsonl'), [long, 'the river', mid].map((t) => JSON.stringify(t)).join('\n') + '\n');
    let r = await lmdr('encode', '--model', model, '--input', f('long.jsonl'), '--output', f('long.npy'), '--max-length', '16');
    expect(r.code, r.err).to.equal(0);
    expect(r.err).to.equal('lmdr encode: 2 of 3 inputs were longer than --max-length 16 tokens and were truncated (longest: 401 tokens); raise --max-length to keep more\n');
    r = await lmdr('encode', '--model', model, '--input', f('long.jsonl'), '--output', f('long.npy'), '--max-length', '401');
    expect(r.err).to.equal(''); // nothing cut, nothing said
    // the API reports it on the result
    const e = await Engine.load(model, { device: 'cpu' });
    try {
      expect((await e.encode([long, mid], { maxLength: 16 })).truncated).to.deep.equal({ inputs: 2, longest: 401, maxLength: 16 });
      expect((await e.encode([{ input_ids: [1, 2, 3, 4] }], { maxLength: 3 })).truncated).to.deep.equal({ inputs: 1, longest: 4, maxLength: 3 });
      expect((await e.encode([mid], { maxLength: 64 })).truncated).to.equal(null);
    } finally {
      e.dispose();
    }
  });

  it('a full disk: the error names the file being written, and no partial file is left', async () => {
    const model = makeTinyModel({ arch: 'qwen2', tokenizer: true, seed: 46 });
    fs.writeFileSync(f('ok.jsonl'), '"the river"\n');
    const real = fs.writeSync;
    fs.writeSync = (() => {
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
    }) as typeof fs.writeSync;
    let r;
    try {
      r = await lmdr('encode', '--model', model, '--input', f('ok.jsonl'), '--output', f('full.npy'));
    } finally {
      fs.writeSync = real;
    }
    expect(r.code).to.equal(1);
    expect(r.err).to.equal(`lmdr encode: cannot write ${f('full.npy')}: ENOSPC (no space left on device)\n`);
    expect(fs.readdirSync(dir).filter((n) => n.includes('full.npy'))).to.deep.equal([]);
  });

  it('lmdr search: a NaN in either matrix names the file, row and column', async () => {
    const H = 4;
    const q = new Float32Array(2 * H).fill(0.5);
    const c = new Float32Array(9 * H).fill(0.25);
    c[7 * H + 3] = NaN;
    writeNpy(f('q.npy'), { rows: 2, cols: H, data: q });
    writeNpy(f('c.npy'), { rows: 9, cols: H, data: c });
    let r = await lmdr('search', '--queries', f('q.npy'), '--corpus', f('c.npy'), '--k', '3', '--output', f('run.trec'));
    expect(r.code).to.equal(1);
    expect(r.err).to.equal(`lmdr search: ${f('c.npy')}: row 7, column 3 is NaN; embeddings must be finite\n`);
    c[7 * H + 3] = 0;
    q[1 * H + 2] = Infinity;
    writeNpy(f('c.npy'), { rows: 9, cols: H, data: c });
    writeNpy(f('q.npy'), { rows: 2, cols: H, data: q });
    r = await lmdr('search', '--queries', f('q.npy'), '--corpus', f('c.npy'), '--k', '3', '--output', f('run.trec'));
    expect(r.err).to.equal(`lmdr search: ${f('q.npy')}: row 1, column 2 is Infinity; embeddings must be finite\n`);
    expect(fs.existsSync(f('run.trec'))).to.equal(false);
  });

  it('a typo in a command or a flag suggests the nearest valid one', async () => {
    let r = await lmdr('encdoe', '--model', 'm');
    expect(r.code).to.equal(1);
    expect(r.err.split('\n')[0]).to.equal('lmdr: unknown command "encdoe" (did you mean encode?)');
    r = await lmdr('serach');
    expect(r.err.split('\n')[0]).to.equal('lmdr: unknown command "serach" (did you mean search?)');
    r = await lmdr('frobnicate');
    expect(r.err.split('\n')[0]).to.equal('lmdr: unknown command "frobnicate"');
    r = await lmdr('encode', '--modle', 'm', '--input', 'i', '--output', 'o');
    expect(r.code).to.equal(1);
    expect(r.err).to.equal("lmdr encode: Unknown option '--modle' (did you mean --model? see lmdr encode --help)\n");
    r = await lmdr('train', '--model', 'm', '--data', 'd', '--output', 'o', '--lora-rank', '8');
    expect(r.err).to.equal("lmdr train: Unknown option '--lora-rank' (did you mean --lora-r? see lmdr train --help)\n");
    r = await lmdr('search', '--queries', 'q', '--xyzzy');
    expect(r.err).to.equal("lmdr search: Unknown option '--xyzzy' (see lmdr search --help)\n");
  });

  it('errors are UserErrors (exit 1 in the CLI), never raw internal TypeErrors', async () => {
    const model = makeTinyModel({ arch: 'qwen2', tokenizer: true, seed: 47 });
    const e = await Engine.load(model, { device: 'cpu' });
    try {
      await expectReject(e.encode('the river' as never), /^engine\.encode: inputs must be an array of strings, \{text\} or \{input_ids\} objects, got the string "the river"$/);
      await e.encode(['x'], {}).catch((err) => expect(err).to.be.instanceOf(UserError));
    } finally {
      e.dispose();
    }
  });
});
