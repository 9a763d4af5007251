// lmdr eval: one eval writes an OUTPUT at a time (a second fails at once naming the holder),
// invalid UTF-8 in the dataset names FILE:LINE (--replace-invalid-utf8 reads it as U+FFFD), a bad
// field names FILE:LINE and the key, and truncated passages/queries are reported once.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { main } from '../../lib/cli/main.ts';
import { lockOutput } from '../../lib/formats/output-lock.ts';
import { makeTinyModel } from '../helpers/tiny-models.ts';
import { tempDir } from '../helpers/tmp.ts';

async function lmdr(...args: string[]): Promise<{ code: number; err: string }> {
  const [write, writeOut] = [process.stderr.write, process.stdout.write];
  let err = '';
  process.stderr.write = ((c: string | Uint8Array) => { err += c.toString(); return true; }) as typeof process.stderr.write;
  process.stdout.write = (() => true) as typeof process.stdout.write;
  try {
    return { code: await main(args), err };
  } finally {
    process.stderr.write = write;
    process.stdout.write = writeOut;
  }
}

describe('cli: lmdr eval checks', function () {
  this.timeout(120000);
  const root = tempDir('lmdr-eval-checks-');
  const beir = path.join(root, 'beir');
  let model: string;
  const long = Array.from({ length: 30 }, () => 'river').join(' '); // 30 tokens + EOS

  before(() => {
    model = makeTinyModel({ arch: 'qwen2', seed: 95, tokenizer: true });
    fs.mkdirSync(path.join(beir, 'qrels'), { recursive: true });
    const docs = [{ _id: 'd0', text: 'the river' }, { _id: 'd1', text: long }, { _id: 'd2', text: 'a king' }];
    fs.writeFileSync(path.join(beir, 'corpus.jsonl'), docs.map((d) => JSON.stringify(d)).join('\n') + '\n');
    fs.writeFileSync(path.join(beir, 'queries.jsonl'), [{ _id: 'q0', text: 'the river' }, { _id: 'q1', text: long }].map((q) => JSON.stringify(q)).join('\n') + '\n');
    fs.writeFileSync(path.join(beir, 'qrels', 'test.tsv'), 'query-id\tcorpus-id\tscore\nq0\td0\t1\nq1\td1\t1\n');
  });

  it('reports truncated passages and queries once each, naming the flag', async () => {
    const r = await lmdr('eval', '--model', model, '--beir', beir, '--output', path.join(root, 'o1'), '--device', 'cpu', '--no-progress',
      '--passage-max-len', '8', '--query-max-len', '8', '--k', '2');
    expect(r.code, r.err).to.equal(0);
    const lines = r.err.trim().split('\n');
    expect(lines).to.include('lmdr eval: 1 passages were longer than --passage-max-len 8 tokens and were truncated (longest: 31 tokens); raise --passage-max-len to keep more');
    expect(lines).to.include('lmdr eval: 1 queries were longer than --query-max-len 8 tokens and were truncated (longest: 31 tokens); raise --query-max-len to keep more');
  });

  it('a second eval into a locked OUTPUT fails at once naming the holder', async () => {
    const out = path.join(root, 'o2');
    const lock = lockOutput(out, 'lmdr eval');
    try {
      const r = await lmdr('eval', '--model', model, '--beir', beir, '--output', out, '--device', 'cpu', '--no-progress');
      expect(r.code).to.equal(1);
      expect(r.err).to.match(new RegExp(`^lmdr eval: ${out} is in use by lmdr eval \\(pid ${process.pid} on ${os.hostname()}, this process, since \\S+\\); wait for that run to end or choose another output\\n$`));
      expect(fs.existsSync(path.join(out, 'metrics.json'))).to.equal(false);
    } finally {
      lock.release();
    }
  });

  it('invalid UTF-8 and a bad field in the corpus name FILE:LINE', async () => {
    const bad = path.join(root, 'bad');
    fs.cpSync(beir, bad, { recursive: true });
    // the bad byte follows the 24 characters of '{"_id": "d3", "text": "x': it is byte 25
    fs.appendFileSync(path.join(bad, 'corpus.jsonl'), Buffer.concat([Buffer.from('{"_id": "d3", "text": "x'), Buffer.from([0xe2, 0x28]), Buffer.from('"}\n')]));
    let r = await lmdr('eval', '--model', model, '--beir', bad, '--output', path.join(root, 'o3'), '--device', 'cpu', '--no-progress');
    expect(r.code).to.equal(1);
    expect(r.err).to.match(new RegExp(`^lmdr eval: ${path.join(bad, 'corpus.jsonl')}:4: invalid UTF-8 \\(byte 0xe2 at byte 25 of the line\\); .*--replace-invalid-utf8`));
    r = await lmdr('eval', '--model', model, '--beir', bad, '--output', path.join(root, 'o3'), '--device', 'cpu', '--no-progress', '--replace-invalid-utf8');
    expect(r.code, r.err).to.equal(0);

    fs.writeFileSync(path.join(bad, 'corpus.jsonl'), '{"_id": "d0", "text": "ok"}\n{"_id": "d1", "text": ["not", "a", "string"]}\n');
    r = await lmdr('eval', '--model', model, '--beir', bad, '--output', path.join(root, 'o4'), '--device', 'cpu', '--no-progress');
    expect(r.err).to.equal(`lmdr eval: ${path.join(bad, 'corpus.jsonl')}:2: "text" must be a string, got an array (3 items)\n`);
  });
});
