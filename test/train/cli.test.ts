// `lmdr train` and `lmdr merge` from the command line: flags reach the run, and every bad input
// exits 1 with one line naming the file/line/flag/step, leaving no adapter file behind.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { runCli as lmdr } from '../helpers/run-cli.ts';
import { readAdapterConfig, readAdapterTensors } from '../../lib/adapters/peft.ts';
import { Engine } from '../../lib/engine.ts';
import { readNpy } from '../../lib/formats/npy.ts';
import { listCheckpoints } from '../../lib/train/checkpoint.ts';
import { readTrainLog } from '../../lib/train/log.ts';
import { mappedPairs, maxAbsDiff, tmpDir, tinyModel, writeJsonl } from './fixtures.ts';

const LMDR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'lmdr.js');


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
    ['a negative value without "="', () => writeJsonl(path.join(dataDir, 'ok6.jsonl'), rows), ['--weight-decay', '-1'], /'--weight-decay' .* needs the form --flag=VALUE/],
    ['a negative value', () => writeJsonl(path.join(dataDir, 'ok6.jsonl'), rows), ['--weight-decay=-1'], /--weight-decay must be a number >= 0, got -1/],
    ['a missing data file', () => path.join(dataDir, 'nope.jsonl'), [], /nope\.jsonl: file not found/],
    ['an unreadable init adapter', () => writeJsonl(path.join(dataDir, 'ok7.jsonl'), rows), ['--init-adapter', '/nonexistent-adapter'], /\/nonexistent-adapter: not a PEFT adapter dir/],
    ['a bad "task"', () => writeJsonl(path.join(dataDir, 'bad-task.jsonl'), [rows[0], { ...rows[1], task: ['qa'] }]), [], /bad-task\.jsonl:2: "task" must be a string/],
    ['too many --steps', () => writeJsonl(path.join(dataDir, 'ok9.jsonl'), rows), ['--steps', '3000000000'], /^lmdr train: --steps must be an integer >= 1 and <= 2147483647, got 3000000000\n$/],
    ['invalid UTF-8 in --data', () => {
      const f = path.join(dataDir, 'bad-utf8.jsonl');
      fs.writeFileSync(f, Buffer.concat([Buffer.from(JSON.stringify(rows[0]) + '\n{"query": "a'), Buffer.from([0xfe]), Buffer.from('", "pos": ["b"]}\n')]));
      return f;
    }, [], /^lmdr train: \S+bad-utf8\.jsonl:2: invalid UTF-8 \(byte 0xfe at byte 13 of the line\); .*--replace-invalid-utf8/],
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

  it('exits 1 with one line when --output is a file', async () => {
    const data = writeJsonl(path.join(dataDir, 'ok8.jsonl'), rows);
    const file = path.join(tmpDir('cli-file'), 'taken');
    fs.writeFileSync(file, 'x');
    const r = await lmdr(['train', '--model', modelDir, '--data', data, '--output', file, ...small, '--steps', '1']);
    expect([r.code, r.stderr]).to.deep.equal([1, `lmdr train: --output ${file} exists and is not a directory\n`]);
  });

  it('shows a progress bar on stderr with the loss and throughput', async () => {
    const data = writeJsonl(path.join(dataDir, 'ok9.jsonl'), rows);
    const out = path.join(tmpDir('cli-progress'), 'run');
    const before = process.env.LMDR_PROGRESS;
    process.env.LMDR_PROGRESS = '1';
    const args = ['train', '--model', modelDir, '--data', data, '--output', out, ...small.filter((a) => a !== '--no-progress'), '--steps', '3'];
    const r = await lmdr(args).finally(() => {
      if (before === undefined) delete process.env.LMDR_PROGRESS;
      else process.env.LMDR_PROGRESS = before;
    });
    expect(r.code, r.stderr).to.equal(0);
    const last = readTrainLog(path.join(out, 'train_log.jsonl')).at(-1)!;
    expect(r.stderr).to.match(/^train \[[#.]+\] 1\/3 steps 33% \S+ steps\/s .* loss \d+\.\d{4} lr \S+ \d+ tokens\/s\n/);
    expect(r.stderr).to.include(`3/3 steps 100%`);
    expect(r.stderr).to.include(`loss ${last.loss.toFixed(4)}`);
    // resuming a finished run says so
    const again = await lmdr([...args, '--resume', '--no-progress']);
    expect(again.code).to.equal(0);
    expect(again.stderr).to.equal(`nothing to train: ${path.join(out, 'checkpoint-3')} is step 3 of 3; wrote ${out}\n`);
  });

  it('kill -9 mid-run, then --resume: the same losses and adapter as an uninterrupted run', async function () {
    const data = writeJsonl(path.join(dataDir, 'kill.jsonl'), mappedPairs(32, 6));
    const args = ['--model', modelDir, '--data', data, ...small, '--steps', '400', '--save-steps', '5', '--seed', '2', '--lr', '1e-3', '--chunk-size', '5'];
    const whole = path.join(tmpDir('cli-kill'), 'whole');
    expect((await lmdr(['train', ...args, '--output', whole])).code).to.equal(0);

    const killed = path.join(tmpDir('cli-kill'), 'killed');
    const child = spawn(process.execPath, [LMDR, 'train', ...args, '--output', killed], { stdio: ['ignore', 'ignore', 'pipe'] });
    let childStderr = '';
    child.stderr.on('data', (chunk) => { childStderr += chunk; });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    // kill as soon as a checkpoint exists, while the run is somewhere in the middle of a step or a write
    while (listCheckpoints(killed).length === 0 && child.exitCode === null) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 30));
    child.kill('SIGKILL');
    const { code, signal } = await exited;
    if (signal !== 'SIGKILL') {
      expect(code, childStderr).to.equal(0);
      this.skip(); // the run finished before the kill landed: nothing to resume
    }
    expect(fs.existsSync(path.join(killed, 'adapter_config.json'))).to.equal(false);
    const resumed = await lmdr(['train', ...args, '--output', killed, '--resume']);
    expect(resumed.code, resumed.stderr).to.equal(0);
    // the killed run's lock is stale: reported (once) and taken over
    expect(resumed.stderr).to.match(new RegExp(`^lmdr train: warning: removed the stale lock ${path.join(path.dirname(killed), '.killed.lock')} of lmdr train \\(pid ${child.pid} on .*\\), which is no longer running\ntrained steps \\d+-400 of 400 \\(resumed\\)`));
    expect(fs.existsSync(path.join(path.dirname(killed), '.killed.lock'))).to.equal(false);
    const logA = readTrainLog(path.join(whole, 'train_log.jsonl'));
    const logB = readTrainLog(path.join(killed, 'train_log.jsonl'));
    expect(logB.map((x) => [x.step, x.loss, x.grad_norm])).to.deep.equal(logA.map((x) => [x.step, x.loss, x.grad_norm]));
    const ta = readAdapterTensors(whole);
    const tb = readAdapterTensors(killed);
    for (const [k, t] of ta) expect(Array.from(tb.get(k)!.data), k).to.deep.equal(Array.from(t.data));
    expect(fs.readdirSync(killed).filter((f) => f.startsWith('.'))).to.deep.equal([]);
  });

  it('refuses an --epochs that works out to more than 2^31 - 1 steps, before creating OUTPUT', async () => {
    const data = writeJsonl(path.join(dataDir, 'ok8.jsonl'), rows);
    const out = path.join(tmpDir('cli-epochs'), 'run');
    const r = await lmdr(['train', '--model', modelDir, '--data', data, '--output', out, ...small, '--epochs', '1e20']);
    expect(r.code).to.equal(1);
    // 10 records, batch 4: ceil(10 / 4) = 3 steps per epoch
    expect(r.stderr).to.equal('lmdr train: --epochs 100000000000000000000 is 3.00e+20 steps of 4 queries (3 per epoch), more than the limit of 2147483647 steps; give fewer epochs or --steps\n');
    expect(fs.existsSync(out)).to.equal(false);
    expect((await lmdr(['train', '--model', modelDir, '--data', data, '--output', out, ...small, '--epochs', '0.5'])).code).to.equal(0);
  });

  it('reports truncated queries and passages once, at the end, naming the flag', async () => {
    const long = (n: number) => Array.from({ length: n }, (_, i) => ['river', 'stone', 'king', 'blue'][i % 4]).join(' ');
    const data = writeJsonl(path.join(dataDir, 'long.jsonl'), mappedPairs(8, 5).map((r, i) => (i === 2 ? { ...r, query: long(30), pos: [long(50)] } : r)));
    const out = path.join(tmpDir('cli-trunc'), 'run');
    const r = await lmdr(['train', '--model', modelDir, '--data', data, '--output', out, ...small, '--steps', '2']);
    expect(r.code, r.stderr).to.equal(0);
    // 2 steps of 4 from a seeded permutation of 8 records: record 3 (line 3) is in one of them; EOS adds 1 token
    const lines = r.stderr.split('\n');
    expect(lines).to.include(`lmdr train: warning: 1 queries were longer than --query-max-len 16 tokens and were truncated (longest: 31 tokens, e.g. ${data}:3 query); raise --query-max-len to keep more`);
    expect(lines).to.include(`lmdr train: warning: 1 passages were longer than --passage-max-len 16 tokens and were truncated (longest: 51 tokens, e.g. ${data}:3 pos[0]); raise --passage-max-len to keep more`);
  });

  it('a full disk: the error names the file being written', async () => {
    const data = writeJsonl(path.join(dataDir, 'enospc.jsonl'), rows);
    const out = path.join(tmpDir('cli-enospc'), 'run');
    const real = fs.writeSync;
    let writes = 0;
    fs.writeSync = ((...args: Parameters<typeof fs.writeSync>) => {
      if (++writes === 1) return real(...args); // the lock file; then the disk is full
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    }) as typeof fs.writeSync;
    let r;
    try {
      r = await lmdr(['train', '--model', modelDir, '--data', data, '--output', out, ...small, '--steps', '2']);
    } finally {
      fs.writeSync = real;
    }
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(new RegExp(`^lmdr train: cannot (write|append to) ${path.join(out, '(train_log\\.jsonl|checkpoint-\\d+)')}: ENOSPC \\(no space left on device\\)\n$`));
    expect(fs.existsSync(path.join(out, 'adapter_model.safetensors'))).to.equal(false);
    expect(fs.existsSync(path.join(path.dirname(out), '.run.lock'))).to.equal(false); // released on the error
  });

  it('invalid UTF-8 in --data trains with --replace-invalid-utf8', async () => {
    const f = path.join(dataDir, 'utf8-ok.jsonl');
    fs.writeFileSync(f, Buffer.concat([Buffer.from(rows.slice(0, 7).map((x) => JSON.stringify(x)).join('\n') + '\n{"query": "a'), Buffer.from([0xfe]), Buffer.from('", "pos": ["b"]}\n')]));
    const out = path.join(tmpDir('cli-utf8'), 'run');
    const r = await lmdr(['train', '--model', modelDir, '--data', f, '--output', out, ...small, '--steps', '1', '--replace-invalid-utf8']);
    expect(r.code, r.stderr).to.equal(0);
  });

  it('lmdr encode --adapter embeds like Engine.load(dir, {adapter})', async () => {
    const data = writeJsonl(path.join(dataDir, 'ok10.jsonl'), rows);
    const out = path.join(tmpDir('cli-enc'), 'run');
    expect((await lmdr(['train', '--model', modelDir, '--data', data, '--output', out, ...small, '--steps', '3', '--lr', '1e-2'])).code).to.equal(0);
    const input = writeJsonl(path.join(dataDir, 'texts.jsonl'), rows.map((r) => r.query));
    const npy = path.join(tmpDir('cli-enc'), 'q.npy');
    const r = await lmdr(['encode', '--model', modelDir, '--adapter', out, '--input', input, '--output', npy, '--max-length', '16']);
    expect(r.code, r.stderr).to.equal(0);
    const got = readNpy(npy);
    const embed = async (adapter?: string) => {
      const e = await Engine.load(modelDir, { device: 'cpu', adapter });
      try {
        return (await e.encode(rows.map((x) => x.query), { maxLength: 16 })).data;
      } finally {
        e.dispose();
      }
    };
    expect(Array.from(got.data)).to.deep.equal(Array.from(await embed(out)));
    expect(maxAbsDiff(got.data, await embed())).to.be.above(1e-4); // the adapter changed something
  });

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
