// lmdr encode end to end (spawning bin/lmdr.js): a good run matches the reference; every bad
// input exits 1 with one clear stderr line and leaves no output file.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readNpy } from '../../lib/formats/npy.ts';
import { ReferenceModel } from '../reference/model.ts';
import { makeTinyModel, tinyWords } from '../helpers/tiny-models.ts';
import { tempDir } from '../helpers/tmp.ts';

const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/lmdr.js');

function lmdr(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, LMDR_PROGRESS: '0' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function writeLines(file: string, lines: unknown[]): string {
  fs.writeFileSync(file, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  return file;
}

describe('cli: lmdr encode', () => {
  it('writes one normalized row per line, in input order, equal to the reference', () => {
    const work = tempDir();
    const model = makeTinyModel({ arch: 'llama', seed: 61, tokenizer: true, dir: path.join(work, 'model') });
    const lines = [{ text: 'the river of gold' }, { input_ids: [5, 9, 13, 2] }, 'who build the tower ?', { text: 'a' }];
    const input = writeLines(path.join(work, 'in.jsonl'), lines);
    const output = path.join(work, 'out.npy');
    const r = lmdr(['encode', '--model', model, '--input', input, '--output', output, '--device', 'cpu', '--max-length', '6']);
    // line 3 is <s> + 5 words + </s> = 7 tokens: cut to 6, and said so once
    expect(r.stderr).to.equal('lmdr encode: 1 of 4 inputs were longer than --max-length 6 tokens and were truncated (longest: 7 tokens); raise --max-length to keep more\n');
    expect(r.status).to.equal(0);
    const m = readNpy(output);
    expect([m.rows, m.cols]).to.deep.equal([4, 32]);
    const ref = new ReferenceModel(model);
    // ids from the tiny vocab's layout: <s>=0 </s>=1 [UNK]=2, then tinyWords; BOS, truncate to 5, EOS
    const w = (word: string) => 3 + tinyWords.indexOf(word);
    const expectedIds = [[0, w('the'), w('river'), w('of'), w('gold'), 1], [5, 9, 13, 2],
      [0, w('who'), w('build'), w('the'), w('tower'), 1], [0, w('a'), 1]];
    expectedIds.forEach((ids, i) => {
      const want = ref.embed(ids, 'eos');
      want.forEach((w, j) => expect(m.data[i * 32 + j]).to.be.closeTo(w, 1e-5));
    });
    expect(fs.readdirSync(work).sort()).to.deep.equal(['in.jsonl', 'model', 'out.npy']);
  });

  it('lmdr info prints the version, the backend in use, CUDA devices (or why none) and build flags', () => {
    const version = JSON.parse(fs.readFileSync(path.resolve(path.dirname(bin), '../package.json'), 'utf8')).version;
    const r = spawnSync(process.execPath, [bin, 'info'], { encoding: 'utf8', env: { ...process.env, LMDR_DEVICE: 'cpu' } });
    expect(r.status, r.stderr).to.equal(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).to.match(new RegExp(`^lmdr ${version.replace(/\./g, '\\.')} \\(addon `));
    expect(lines).to.include('backend: cpu (LMDR_DEVICE)');
    expect(lines.find((l) => l.startsWith('compiled backends: '))).to.contain('cpu');
    expect(lines.find((l) => l.startsWith('cuda devices: '))).to.match(/^cuda devices: (none \(.+\)|cuda:0 .+)$/);
    expect(lines.find((l) => l.startsWith('build: '))).to.match(/^build: \S+/);
  });

  it('--help prints the flags and exits 0', () => {
    const r = lmdr(['encode', '--help']);
    expect(r.status).to.equal(0);
    for (const flag of ['--model', '--input', '--output', '--pooling', '--max-length', '--instruction', '--batch-size', '--no-normalize', '--device']) {
      expect(r.stdout).to.contain(flag);
    }
  });

  type Setup = (work: string) => { model: string; input: string; extra?: string[] };
  const goodModel = (work: string, opts: Partial<Parameters<typeof makeTinyModel>[0]> = {}) =>
    makeTinyModel({ arch: 'qwen2', seed: 62, dir: path.join(work, 'model'), ...opts });
  const idsInput = (work: string) => writeLines(path.join(work, 'in.jsonl'), [{ input_ids: [1, 2, 3] }, { input_ids: [4, 5] }]);
  const editConfig = (model: string, patch: Record<string, unknown>) => {
    const file = path.join(model, 'config.json');
    fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), ...patch }));
  };
  const safetensors = (model: string) => path.join(model, 'model.safetensors');

  const bad: [string, Setup, RegExp][] = [
    ['a missing model.safetensors', (w) => { const m = goodModel(w); fs.rmSync(safetensors(m)); return { model: m, input: idsInput(w) }; },
      /no model\.safetensors or model\.safetensors\.index\.json/],
    ['a truncated safetensors file', (w) => {
      const m = goodModel(w);
      const bytes = fs.readFileSync(safetensors(m));
      fs.writeFileSync(safetensors(m), bytes.subarray(0, bytes.length - 100));
      return { model: m, input: idsInput(w) };
    }, /model\.safetensors: tensor ".*": data_offsets .* outside the file/],
    ['a corrupt safetensors header', (w) => {
      const m = goodModel(w);
      const bytes = fs.readFileSync(safetensors(m));
      bytes.write('#garbage#', 8);
      fs.writeFileSync(safetensors(m), bytes);
      return { model: m, input: idsInput(w) };
    }, /model\.safetensors: corrupt safetensors header \(invalid JSON/],
    ['header offsets outside the file', (w) => {
      const m = goodModel(w);
      const bytes = fs.readFileSync(safetensors(m));
      const len = Number(bytes.readBigUInt64LE(0));
      const header = bytes.subarray(8, 8 + len).toString();
      const shifted = header.replace(/"data_offsets":\[0,(\d+)\]/, (_, end) => `"data_offsets":[1000000,${1000000 + Number(end)}]`);
      expect(shifted).to.not.equal(header);
      const newLen = Buffer.alloc(8);
      newLen.writeBigUInt64LE(BigInt(Buffer.byteLength(shifted)));
      fs.writeFileSync(safetensors(m), Buffer.concat([newLen, Buffer.from(shifted), bytes.subarray(8 + len)]));
      return { model: m, input: idsInput(w) };
    }, /model\.safetensors: tensor "model\.embed_tokens\.weight": data_offsets \[1000000, \d+\] lie outside the file/],
    ['a missing tensor', (w) => { const m = goodModel(w); editConfig(m, { num_hidden_layers: 3 }); return { model: m, input: idsInput(w) }; },
      /missing tensor "layers\.2\.input_layernorm\.weight"/],
    ['a wrongly shaped tensor', (w) => { const m = goodModel(w); editConfig(m, { intermediate_size: 48 }); return { model: m, input: idsInput(w) }; },
      /tensor "model\.layers\.0\.mlp\.gate_proj\.weight" has shape \[64,32\], expected \[48,32\]/],
    ['an unknown architecture', (w) => { const m = goodModel(w); editConfig(m, { model_type: 'gpt_neox' }); return { model: m, input: idsInput(w) }; },
      /config\.json: unsupported model_type "gpt_neox" \(supported: qwen2, llama, mistral, bert, qwen3, gemma, gemma2, phi, phi3, t5\)/],
    ['a malformed JSON line', (w) => {
      const input = path.join(w, 'in.jsonl');
      fs.writeFileSync(input, '{"input_ids": [1]}\n{"input_ids": [2]\n');
      return { model: goodModel(w), input };
    }, /in\.jsonl:2: invalid JSON/],
    ['a line that is neither text nor ids', (w) => ({ model: goodModel(w), input: writeLines(path.join(w, 'in.jsonl'), [{ input_ids: [1] }, { query: 'x' }]) }),
      /in\.jsonl:2: expected a JSON string, \{"text": "\.\.\."\} or \{"input_ids": \[\.\.\.\]\}/],
    ['an id outside the vocab', (w) => ({ model: goodModel(w), input: writeLines(path.join(w, 'in.jsonl'), [{ input_ids: [1] }, { input_ids: [7, 100] }]) }),
      /in\.jsonl:2: token id 100 at position 1 is outside the vocabulary \(0\.\.99\)/],
    ['empty input', (w) => { const input = path.join(w, 'in.jsonl'); fs.writeFileSync(input, '\n'); return { model: goodModel(w), input }; },
      /in\.jsonl: no inputs/],
    ['text without a tokenizer', (w) => ({ model: goodModel(w), input: writeLines(path.join(w, 'in.jsonl'), ['hello']) }),
      /in\.jsonl:1: .*has no tokenizer\.json/],
    ['an unknown flag', (w) => ({ model: goodModel(w), input: idsInput(w), extra: ['--bogus', '3'] }), /--bogus/],
    ['a bad --pooling', (w) => ({ model: goodModel(w), input: idsInput(w), extra: ['--pooling', 'max'] }), /--pooling must be eos, cls or mean, got "max"/],
    ['a bad --max-length', (w) => ({ model: goodModel(w), input: idsInput(w), extra: ['--max-length', '0'] }), /--max-length expects a positive integer, got "0"/],
    ['a bad --device', (w) => ({ model: goodModel(w), input: idsInput(w), extra: ['--device', 'tpu'] }), /unknown device "tpu"/],
    // no build has 100 GPUs: the message says why (no CUDA backend, no device, or how many are visible)
    ['an unusable --device cuda:99', (w) => ({ model: goodModel(w), input: idsInput(w), extra: ['--device', 'cuda:99'] }),
      /--device cuda:99: (this build has no CUDA backend|no CUDA device available|only \d+ CUDA device)/],
    ['a missing input file', (w) => ({ model: goodModel(w), input: path.join(w, 'nope.jsonl') }), /nope\.jsonl: file not found/],
  ];

  for (const [what, setup, message] of bad) {
    it(`${what}: exit 1, one stderr line, no output file`, () => {
      const work = tempDir();
      const { model, input, extra = [] } = setup(work);
      const before = fs.readdirSync(work).sort();
      const output = path.join(work, 'out.npy');
      const r = lmdr(['encode', '--model', model, '--input', input, '--output', output, '--device', 'cpu', ...extra]);
      expect(r.status).to.equal(1);
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines, r.stderr).to.have.length(1);
      expect(lines[0]).to.match(/^lmdr encode: /);
      expect(lines[0], lines[0]).to.match(message);
      expect(fs.readdirSync(work).sort()).to.deep.equal(before); // no out.npy, no temp file
    });
  }
});
