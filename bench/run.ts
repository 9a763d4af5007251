// `npm run bench [-- --quick] [--only NAME,...]`: every benchmark suite the machine can run
// (CPU suites always; GPU suites when lmdr sees a CUDA device; the PyTorch-baseline GPU suites
// when `python3 -c "import torch"` works too), with progress on stderr, a table at the end,
// bench/results/<date>-<device>.json, and the table appended to bench/RESULTS.md.
// Every figure is a ratio against a named baseline measured in the same run.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { native } from '../lib/native.ts';
import { packageVersion } from '../lib/version.ts';
import { cliStartupSuite } from './suites/cli-startup.ts';
import { encodeSuite, encodeT5Suite } from './suites/encode.ts';
import { scoreSuite } from './suites/score.ts';
import { gpuSuites, topkCpuSuite } from './suites/scripts.ts';
import { trainStepSuite } from './suites/train-step.ts';
import { peerSuites } from './suites/peers.ts';
import { pythonWith } from './cpu/workers.ts';
import type { Figure, Suite, SuiteOutput } from './suites/types.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const SUITES: Suite[] = [cliStartupSuite, encodeSuite, encodeT5Suite, scoreSuite, trainStepSuite, topkCpuSuite, ...peerSuites, ...gpuSuites];

interface SuiteRecord extends Partial<SuiteOutput> {
  suite: string;
  describe: string;
  status: 'ok' | 'skipped' | 'failed';
  reason?: string;
  seconds: number;
}

function parse(): { quick: boolean; only?: string[]; resultsDir: string; noAppend: boolean } {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false }, only: { type: 'string' },
      'results-dir': { type: 'string' }, 'no-append': { type: 'boolean', default: false }, help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`usage: npm run bench [-- --quick] [--only ${SUITES.map((s) => s.name).join(',')}]\n` +
      '  --quick             smoke-run sizes (seconds per suite)\n  --only LIST         run just these suites\n' +
      '  --results-dir DIR   where <date>-<device>.json goes (bench/results)\n  --no-append         do not append the table to bench/RESULTS.md\n');
    process.exit(0);
  }
  const only = values.only?.split(',').map((s) => s.trim()).filter(Boolean);
  for (const name of only ?? []) if (!SUITES.some((s) => s.name === name)) throw new Error(`--only: unknown suite "${name}" (${SUITES.map((s) => s.name).join(', ')})`);
  return { quick: values.quick!, only, resultsDir: values['results-dir'] ?? path.join(here, 'results'), noAppend: values['no-append']! };
}

const fmt = (v: number) => (v >= 100 ? Math.round(v).toLocaleString('en-US') : v >= 1 ? v.toFixed(2) : v.toPrecision(3));

/** The figures as one Markdown table. */
export function figuresTable(records: SuiteRecord[]): string {
  const lines = ['| suite | measurement | lmdr | baseline | baseline value | ratio (lmdr / baseline) | check |', '|---|---|---|---|---|---|---|'];
  for (const r of records) {
    for (const f of r.figures ?? []) lines.push(`| ${r.suite} | ${f.name} | ${fmt(f.value)} ${f.unit} | ${f.baseline} | ${fmt(f.baselineValue)} ${f.unit} | ${f.ratio.toFixed(2)}x | ${f.check ?? ''} |`);
    if (r.status !== 'ok') lines.push(`| ${r.suite} | ${r.status}: ${r.reason} | | | | | |`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const opts = parse();
  const info = native().buildInfo();
  const gpu = info.cudaDevices.length > 0;
  const torch = pythonWith('torch').python !== undefined;
  const cpuName = `${os.cpus()[0]?.model.trim() ?? 'cpu'} x${os.availableParallelism()} threads`;
  const device = gpu ? `${info.cudaDevices[0]} + ${cpuName}` : cpuName;
  const date = new Date().toISOString().slice(0, 10);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdr-bench-'));
  const command = `npm run bench${opts.quick ? ' -- --quick' : ''}${opts.only ? `${opts.quick ? '' : ' --'} --only ${opts.only.join(',')}` : ''}`;
  const say = (m: string) => process.stderr.write(`bench: ${m}\n`);
  say(`lmdr ${packageVersion()} on ${device}; addon: ${info.flags}; PyTorch: ${torch ? 'yes' : 'no'}${opts.quick ? '; quick sizes' : ''}`);

  const chosen = SUITES.filter((s) => !opts.only || opts.only.includes(s.name));
  const records: SuiteRecord[] = [];
  try {
    for (const [i, suite] of chosen.entries()) {
      const tag = `[${i + 1}/${chosen.length}] ${suite.name}`;
      const missing = (suite.needs === 'cpu' ? undefined
        : !gpu ? `no CUDA device (${info.cudaError || 'none visible'})`
        : suite.needs === 'gpu-torch' && !torch ? 'PyTorch not importable (python3 -c "import torch")' : undefined)
        ?? suite.unavailable?.();
      if (missing) {
        say(`${tag}: skipped: ${missing}`);
        records.push({ suite: suite.name, describe: suite.describe, status: 'skipped', reason: missing, seconds: 0 });
        continue;
      }
      say(`${tag}: ${suite.describe}`);
      const t0 = Date.now();
      try {
        const out = await suite.run({ quick: opts.quick, device, tmp, log: (m) => say(`${tag}: ${m}`) });
        records.push({ suite: suite.name, describe: suite.describe, status: 'ok', seconds: (Date.now() - t0) / 1000, ...out });
        for (const f of out.figures) say(`${tag}: ${f.name}: ${fmt(f.value)} ${f.unit} = ${f.ratio.toFixed(2)}x ${f.baseline}`);
      } catch (err) {
        const reason = (err as Error).message.split('\n')[0];
        say(`${tag}: failed: ${reason}`);
        records.push({ suite: suite.name, describe: suite.describe, status: 'failed', reason, seconds: (Date.now() - t0) / 1000 });
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }

  const table = figuresTable(records);
  const rows = records.flatMap((r) => r.rows ?? []);
  process.stdout.write(`\nlmdr ${packageVersion()} benchmarks, ${date}, ${device}\n\n${table}\n`);
  if (rows.length > 0) process.stdout.write(`\nrows from the standalone scripts (also appended to bench/RESULTS.md by them):\n${rows.join('\n')}\n`);

  fs.mkdirSync(opts.resultsDir, { recursive: true });
  // --only runs get the suite names in the file name, so they do not overwrite a full run's file
  const slug = `${device}${opts.only ? ` ${opts.only.join(' ')}` : ''}`.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '').toLowerCase();
  const file = path.join(opts.resultsDir, `${date}-${slug}.json`);
  const figures: (Figure & { suite: string })[] = records.flatMap((r) => (r.figures ?? []).map((f) => ({ suite: r.suite, ...f })));
  fs.writeFileSync(file, JSON.stringify({ date, device, version: packageVersion(), addon: info.flags, node: process.version, quick: opts.quick, command, torch, suites: records, figures }, null, 2) + '\n');
  say(`wrote ${path.relative(process.cwd(), file)}`);
  if (!opts.noAppend) {
    const results = path.join(here, 'RESULTS.md');
    if (!fs.existsSync(results)) fs.writeFileSync(results, '# Benchmark results\n\nEach figure is a ratio against a named baseline measured in the same run (`npm run bench`).\n');
    fs.appendFileSync(results, `\n## \`${command}\`: ${date}, ${device}\n\nlmdr ${packageVersion()}, addon ${info.flags}, Node ${process.version}${opts.quick ? ' (quick sizes: a smoke run, not a measurement to quote)' : ''}\n\n${table}\n`);
    say(`appended the table to ${path.relative(process.cwd(), results)}`);
  }
  if (records.some((r) => r.status === 'failed')) process.exitCode = 1;
}

await main();
