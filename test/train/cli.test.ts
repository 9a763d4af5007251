// `lmdr train` and `lmdr merge` from the command line: flags reach the run, and every bad input
// exits 1 with one line naming the file/line/flag/step, leaving no adapter file behind.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { main } from '../../lib/cli/main.ts';
import { readAdapterConfig } from '../../lib/adapters/peft.ts';
import { readTrainLog } from '../../lib/train/log.ts';
import { mappedPairs, tmpDir, tinyModel, writeJsonl } from './fixtures.ts';

/** Run the CLI in-process, capturing stderr. */
async function lmdr(args: string[]): Promise<{ code: number; stderr: string }> {
  const write = process.stderr.write;
  let stderr = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += chunk.toString();
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: await main(args), stderr };
  } finally {
    process.stderr.write = write;
  }
}

describe('train: lmdr train / merge CLI', function () {
  let modelDir: string;
  let dataDir: string;
  const small = ['--batch-size', '4', '--group-size', '2', '--query-max-len', '16', '--passage-max-len', '16', '--no-progress'];
  before(() => {
    modelDir = tinyModel();
    dataDir = tmpDir('cli-data');
  });

  it('trains with the given flags and writes the adapter and log', async () => {
    const data = writeJsonl(path.join(dataDir, 'ok.jsonl'), mappedPairs(8, 3));
    const out = path.join(tmpDir('cli'), 'run');
    const r = await lmdr(['train', '--model', modelDir, '--data', data, '--output', out, ...small, '--steps', '3',
      '--lora-r', '3', '--lora-alpha', '6', '--lora-targets', 'q_proj,up_proj', '--optimizer', 'sgd', '--lr', '0.01',
      '--query-instruction', 'query: ', '--seed', '3']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stderr).to.match(/trained 3 steps/);
    expect(readAdapterConfig(out)).to.deep.include({ r: 3, alpha: 6, targets: ['q_proj', 'up_proj'] });
    const lrs = readTrainLog(path.join(out, 'train_log.jsonl')).map((x) => x.lr);
    [0.01, 0.01 * 2 / 3, 0.01 / 3].forEach((want, i) => expect(lrs[i]).to.be.closeTo(want, 1e-15));
  });

  const rows = mappedPairs(10, 4);
  const bad: [string, () => string, string[], RegExp][] = [
    ['a malformed JSON line', () => {
      const f = path.join(dataDir, 'bad-json.jsonl');
      fs.writeFileSync(f, `${JSON.stringify(rows[0])}\n${JSON.stringify(rows[1])}\n{"query": "x", "pos": [}\n`);
      return f;
    }, [], /bad-json\.jsonl:3: invalid JSON/],
    ['a missing query', () => writeJsonl(path.join(dataDir, 'no-query.jsonl'), [rows[0], { pos: ['a'] }]), [], /no-query\.jsonl:2: missing "query"/],
    ['a missing pos', () => writeJsonl(path.join(dataDir, 'no-pos.jsonl'), [{ query: 'a', neg: ['b'] }]), [], /no-pos\.jsonl:1: missing "pos"/],
    ['an empty pos', () => writeJsonl(path.join(dataDir, 'empty-pos.jsonl'), [rows[0], rows[1], { query: 'a', pos: [] }]), [], /empty-pos\.jsonl:3: "pos" is empty/],
    ['an unknown target module', () => writeJsonl(path.join(dataDir, 'ok2.jsonl'), rows), ['--lora-targets', 'q_proj,qkv_proj'], /--lora-targets q_proj,qkv_proj: .*'qkv_proj' matches no module/],
    ['group size < 2', () => writeJsonl(path.join(dataDir, 'ok3.jsonl'), rows), ['--group-size', '1'], /--group-size must be an integer >= 2/],
    ['a batch larger than the data', () => writeJsonl(path.join(dataDir, 'ok4.jsonl'), rows), ['--batch-size', '11'], /--batch-size 11 is larger than the 10 queries in .*ok4\.jsonl/],
    ['a non-numeric flag', () => writeJsonl(path.join(dataDir, 'ok5.jsonl'), rows), ['--lr', 'fast'], /--lr expects a number, got "fast"/],
    ['an unknown flag', () => writeJsonl(path.join(dataDir, 'ok6.jsonl'), rows), ['--lora-rank', '8'], /--lora-rank/],
    ['a missing data file', () => path.join(dataDir, 'nope.jsonl'), [], /nope\.jsonl: file not found/],
    ['an unreadable init adapter', () => writeJsonl(path.join(dataDir, 'ok7.jsonl'), rows), ['--init-adapter', '/nonexistent-adapter'], /\/nonexistent-adapter: not a PEFT adapter dir/],
  ];
  for (const [what, makeData, extra, re] of bad) {
    it(`exits 1 with one line for ${what}`, async () => {
      const out = path.join(tmpDir('cli-bad'), 'run');
      const r = await lmdr(['train', '--model', modelDir, '--data', makeData(), '--output', out, ...small, '--steps', '2', ...extra]);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.match(re);
      expect(r.stderr.trim().split('\n'), r.stderr).to.have.length(1);
      expect(r.stderr).to.match(/^lmdr train: /);
      expect(fs.existsSync(path.join(out, 'adapter_model.safetensors'))).to.equal(false);
      expect(fs.existsSync(path.join(out, 'adapter_config.json'))).to.equal(false);
    });
  }

  it('exits 1 naming the step when the loss diverges', async () => {
    const data = writeJsonl(path.join(dataDir, 'nan.jsonl'), rows);
    const out = path.join(tmpDir('cli-nan'), 'run');
    const r = await lmdr(['train', '--model', modelDir, '--data', data, '--output', out, ...small, '--steps', '4', '--save-steps', '1',
      '--optimizer', 'sgd', '--lr', '1e36', '--max-grad-norm', '0', '--lr-scheduler', 'constant']);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(/^lmdr train: (loss|gradient norm) is \S+ at step \d+; stopped, the last good checkpoint is .*checkpoint-\d+\n$/);
    expect(fs.existsSync(path.join(out, 'adapter_model.safetensors'))).to.equal(false);
  });

  it('merge: requires its flags and names a bad adapter dir', async () => {
    let r = await lmdr(['merge', '--model', modelDir, '--output', tmpDir('m')]);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(/--adapter DIR is required/);
    r = await lmdr(['merge', '--model', modelDir, '--adapter', '/nonexistent-adapter', '--output', tmpDir('m')]);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(/\/nonexistent-adapter: not a PEFT adapter dir/);
  });
});
