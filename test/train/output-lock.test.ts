// One writer per output dir: the O_EXCL lock beside OUTPUT refuses a second run at once naming
// the holder, takes over (and reports) a stale lock of a dead process, never one from another
// host; two real `lmdr train` runs into one OUTPUT: one trains, the other fails at once; a run's
// cleanup removes dead runs' temp files only.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { readAdapterConfig } from '../../lib/adapters/peft.ts';
import { Engine } from '../../lib/engine.ts';
import { UserError } from '../../lib/errors.ts';
import { lockFileFor, lockOutput } from '../../lib/formats/output-lock.ts';
import { readTrainLog } from '../../lib/train/log.ts';
import { mappedPairs, tmpDir, tinyModel, writeJsonl } from './fixtures.ts';

const LMDR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'lmdr.js');

/** The pid of a process that has exited (so no process has it, barring reuse). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '0']);
  return r.pid!;
}

describe('train: one writer per output dir', function () {
  this.timeout(300000);

  it('a second lock on the same output fails at once naming the holder; release frees it', () => {
    const out = path.join(tmpDir('lock'), 'run');
    const lock = lockOutput(out, 'lmdr train');
    expect(lock.file).to.equal(path.join(path.dirname(out), '.run.lock'));
    expect(JSON.parse(fs.readFileSync(lock.file, 'utf8'))).to.include({ pid: process.pid, host: os.hostname(), command: 'lmdr train' });
    expect(() => lockOutput(out, 'lmdr merge')).to.throw(UserError,
      new RegExp(`^${out} is in use by lmdr train \\(pid ${process.pid} on ${os.hostname()}, this process, since \\S+\\); wait for that run to end or choose another output$`));
    lock.release();
    expect(fs.existsSync(lock.file)).to.equal(false);
    const again = lockOutput(out, 'lmdr merge');
    again.release();
  });

  it('a stale lock (its process is gone) is reported and taken over; one from another host is refused', () => {
    const out = path.join(tmpDir('lock-stale'), 'run');
    const file = lockFileFor(out);
    const pid = deadPid();
    fs.writeFileSync(file, JSON.stringify({ pid, host: os.hostname(), command: 'lmdr train', since: '2026-01-01T00:00:00.000Z' }));
    const lock = lockOutput(out, 'lmdr eval');
    expect(lock.staleNote).to.equal(`removed the stale lock ${file} of lmdr train (pid ${pid} on ${os.hostname()}, since 2026-01-01T00:00:00.000Z), which is no longer running`);
    expect(JSON.parse(fs.readFileSync(file, 'utf8')).pid).to.equal(process.pid);
    lock.release();

    fs.writeFileSync(file, JSON.stringify({ pid: 1, host: 'elsewhere', command: 'lmdr merge', since: 'then' }));
    expect(() => lockOutput(out, 'lmdr train')).to.throw(UserError, /is in use by lmdr merge \(pid 1 on elsewhere, since then\); .*if it is gone, delete .*\.run\.lock: a lock from another host cannot be checked/);
    expect(JSON.parse(fs.readFileSync(file, 'utf8')).host).to.equal('elsewhere'); // left alone
  });

  it('two lmdr train runs into one --output at once: one trains, the other fails at once naming it', async () => {
    const model = tinyModel();
    const data = writeJsonl(path.join(tmpDir('lock-data'), 'd.jsonl'), mappedPairs(16, 3));
    const out = path.join(tmpDir('lock-two'), 'run');
    const args = ['train', '--model', model, '--data', data, '--output', out, '--batch-size', '4', '--group-size', '2',
      '--query-max-len', '16', '--passage-max-len', '16', '--steps', '40', '--save-steps', '10', '--no-progress'];
    const run = () => {
      const child = spawn(process.execPath, [LMDR, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (c) => { stderr += c; });
      return new Promise<{ code: number | null; stderr: string; pid: number }>((resolve) => child.on('exit', (code) => resolve({ code, stderr, pid: child.pid! })));
    };
    const results = await Promise.all([run(), run()]);
    const ok = results.filter((r) => r.code === 0);
    const refused = results.filter((r) => r.code === 1);
    expect(ok.length, results.map((r) => r.stderr).join('\n')).to.equal(1);
    expect(refused.length).to.equal(1);
    // (on a slow machine the second may start only after the first ended: then OUTPUT holds a run, also refused)
    expect(refused[0].stderr).to.match(new RegExp(`^lmdr train: (${out} is in use by lmdr train \\(pid ${ok[0].pid} on [^,]+, since \\S+\\); wait for that run to end or choose another output|--output ${out} already holds a training run .*)\\n$`));
    expect(ok[0].stderr).to.match(/trained 40 steps/);
    // the winner's run is whole: 40 log lines, 4 checkpoints, an adapter; no lock or temp file is left
    expect(readTrainLog(path.join(out, 'train_log.jsonl')).map((r) => r.step)).to.deep.equal(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(readAdapterConfig(out).r).to.equal(32);
    expect(fs.readdirSync(path.dirname(out))).to.deep.equal(['run']);
    expect(fs.readdirSync(out).filter((f) => f.startsWith('.'))).to.deep.equal([]);
  });

  it("a run's cleanup removes temp files of dead runs only, never a live run's in-flight write", async () => {
    const model = tinyModel();
    const data = writeJsonl(path.join(tmpDir('lock-data'), 'd2.jsonl'), mappedPairs(8, 4));
    const out = path.join(tmpDir('lock-clean'), 'run');
    fs.mkdirSync(out);
    const live = spawn('sleep', ['60']);
    try {
      const liveTemp = path.join(out, `.checkpoint-9.${live.pid}.${Date.now()}.tmp`);
      const deadTemp = path.join(out, `.checkpoint-9.${deadPid()}.${Date.now()}.tmp`);
      for (const d of [liveTemp, deadTemp]) {
        fs.mkdirSync(d);
        fs.writeFileSync(path.join(d, 'optimizer.safetensors'), 'partial');
      }
      const e = await Engine.load(model, { device: 'cpu' });
      try {
        await e.train({ data, output: out, batchSize: 4, groupSize: 2, queryMaxLen: 16, passageMaxLen: 16, steps: 2 });
      } finally {
        e.dispose();
      }
      expect(fs.existsSync(liveTemp)).to.equal(true);
      expect(fs.existsSync(deadTemp)).to.equal(false);
    } finally {
      live.kill('SIGKILL');
    }
  });
});
