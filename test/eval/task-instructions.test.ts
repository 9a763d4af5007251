// lmdr eval --task-config FILE --task NAME: the task's instructions (and lengths) reach the
// encoders exactly as the explicit flags would; explicit flags win; bad use is one clear line.
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { main } from '../../lib/cli/main.ts';
import { makeTinyModel } from '../helpers/tiny-models.ts';
import { tempDir } from '../helpers/tmp.ts';

async function lmdr(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const w1 = process.stdout.write.bind(process.stdout);
  const w2 = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  try {
    return { code: await main(argv), out, err };
  } finally {
    process.stdout.write = w1;
    process.stderr.write = w2;
  }
}

describe('cli: lmdr eval with a task of a task config', function () {
  this.timeout(300_000);
  it('takes the task\'s instructions; the same run as the explicit flags, another than none', async () => {
    const dir = tempDir('lmdr-eval-task-');
    const beir = path.join(dir, 'beir');
    fs.mkdirSync(path.join(beir, 'qrels'), { recursive: true });
    const docs = ['the old river', 'a new city', 'gold and iron', 'the blue ocean', 'a long bridge', 'the red tower'];
    fs.writeFileSync(path.join(beir, 'corpus.jsonl'), docs.map((t, i) => JSON.stringify({ _id: `d${i}`, title: '', text: t })).join('\n') + '\n');
    fs.writeFileSync(path.join(beir, 'queries.jsonl'), ['river', 'city', 'ocean'].map((t, i) => JSON.stringify({ _id: `q${i}`, text: t })).join('\n') + '\n');
    fs.writeFileSync(path.join(beir, 'qrels', 'test.tsv'), 'query-id\tcorpus-id\tscore\nq0\td0\t1\nq1\td1\t1\nq2\td3\t1\n');
    const model = makeTinyModel({ arch: 'qwen2', tokenizer: true, seed: 91, dir: tempDir() });
    const config = path.join(dir, 'tasks.json');
    fs.writeFileSync(config, JSON.stringify({ qa: { query_instruction: 'what is the ', passage_instruction: 'a text: ' } }));
    const common = ['--model', model, '--beir', beir, '--k', '6', '--no-progress', '--device', 'cpu'];
    const scores = (out: string) => fs.readFileSync(path.join(out, 'run.trec'), 'utf8').trim().split('\n').map((l) => Number(l.split(' ')[4]));
    const a = await lmdr('eval', ...common, '--task-config', config, '--task', 'qa', '--output', path.join(dir, 'a'));
    expect(a.code, a.err).to.equal(0);
    const b = await lmdr('eval', ...common, '--query-instruction', 'what is the ', '--passage-instruction', 'a text: ', '--output', path.join(dir, 'b'));
    expect(b.code, b.err).to.equal(0);
    const c = await lmdr('eval', ...common, '--output', path.join(dir, 'c'));
    expect(c.code, c.err).to.equal(0);
    expect(scores(path.join(dir, 'a'))).to.deep.equal(scores(path.join(dir, 'b')));
    expect(scores(path.join(dir, 'a'))).to.not.deep.equal(scores(path.join(dir, 'c')));
    // an explicit flag wins over the task's
    const d = await lmdr('eval', ...common, '--task-config', config, '--task', 'qa', '--query-instruction', '', '--passage-instruction', '', '--output', path.join(dir, 'd'));
    expect(d.code, d.err).to.equal(0);
    expect(scores(path.join(dir, 'd'))).to.deep.equal(scores(path.join(dir, 'c')));
    const e = await lmdr('eval', ...common, '--task-config', config, '--task', 'tool', '--output', path.join(dir, 'e'));
    expect(e.code).to.equal(1);
    expect(e.err).to.equal(`lmdr eval: --task: task "tool" is not in --task-config ${config} (tasks: qa)\n`);
    const f = await lmdr('eval', ...common, '--task', 'qa', '--output', path.join(dir, 'f'));
    expect(f.err).to.equal('lmdr eval: --task-config and --task go together (see lmdr eval --help)\n');
  });
});
