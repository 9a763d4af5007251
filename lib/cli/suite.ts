// lmdr suite: the papers' experiments as one command (lib/suite/): every task of a suite file or
// preset for one or more models, resumable, into results.json, results.md and charts.
import fs from 'node:fs';
import path from 'node:path';

import { ADAPTER_CONFIG } from '../adapters/peft.ts';
import { UserError } from '../errors.ts';
import { SUITE_PRESETS, presetSuite } from '../suite/presets.ts';
import { checkRun, runSuite, type SuiteModel } from '../suite/runner.ts';
import { readSuite, type Suite } from '../suite/schema.ts';
import { listCheckpoints } from '../train/checkpoint.ts';
import { lockOutput } from '../formats/output-lock.ts';
import { parseFlags } from './args.ts';
import { ProgressBar } from './progress.ts';

const HELP = `usage: lmdr suite SUITE.json --model DIR [--adapter DIR] --output DIR [flags]
       lmdr suite --preset NAME --data-root DIR --model DIR --output DIR [flags]

Runs every task of a suite (retrieval, sts, length-sweep, instructions, rag; see README
"Evaluation suites") for each model and writes OUTPUT/results.json, OUTPUT/results.md and
OUTPUT/charts/*.svg. A task already finished with the same model, settings and data is not
run again (OUTPUT/results/<model>/<task>.json), so a stopped run resumes.

  --model DIR|bm25|none      the retriever under test; repeat for several models side by side
                             ("bm25": BM25 k1 0.9 b 0.4; "none": rag tasks without retrieval)
  --adapter DIR              PEFT LoRA adapter on the --model before it
  --models LIST              comma-separated models, each DIR, bm25, none or LABEL=DIR
  --checkpoints RUN_DIR      every checkpoint-<step> of a training run (LoRA checkpoints on top
                             of --model, else of the base model their adapter_config.json names)
                             and the data-efficiency curve
  --lm DIR                   causal LM of rag tasks
  --preset NAME[,NAME]       a built-in suite (several are joined): ${Object.keys(SUITE_PRESETS).join(', ')}
  --data-root DIR            relative "data" paths are taken from here (default: the suite file's folder)
  --print-preset             print the preset's suite JSON and exit
  --output DIR               default suite-<suite name>
  --device cpu|cuda|cuda:N   default: CUDA when usable, else CPU ($LMDR_DEVICE)
  --no-progress              no progress bars
`;

/** --model/--adapter pairs in order and the suite file (the first argument, when not a flag); the rest goes to parseFlags. */
function splitArgs(argv: string[]): { pairs: { model: string; adapter?: string }[]; positional: string[]; rest: string[] } {
  const pairs: { model: string; adapter?: string }[] = [];
  const positional = argv.length > 0 && !argv[0].startsWith('-') ? [argv[0]] : [];
  const rest: string[] = [];
  for (let i = positional.length; i < argv.length; i++) {
    const a = argv[i];
    const m = /^--(model|adapter)(?:=(.*))?$/.exec(a);
    if (!m) {
      rest.push(a);
      continue;
    }
    const value = m[2] ?? argv[++i];
    if (value === undefined || value === '') throw new UserError(`--${m[1]} needs a value (see lmdr suite --help)`);
    if (m[1] === 'model') pairs.push({ model: value });
    else {
      const last = pairs[pairs.length - 1];
      if (!last || last.adapter !== undefined || last.model === 'bm25' || last.model === 'none') throw new UserError(`--adapter ${value} must follow the --model DIR it applies to`);
      last.adapter = value;
    }
  }
  return { pairs, positional, rest };
}

function checkpointModels(runDir: string, base: string | undefined): SuiteModel[] {
  if (!fs.existsSync(runDir) || !fs.statSync(runDir).isDirectory()) throw new UserError(`--checkpoints ${runDir}: no such folder`);
  const found = listCheckpoints(runDir).reverse();
  if (found.length === 0) throw new UserError(`--checkpoints ${runDir}: no checkpoint-<step> folder with trainer_state.json`);
  return found.map(({ step, dir }) => {
    const configFile = path.join(dir, ADAPTER_CONFIG);
    if (!fs.existsSync(configFile)) return { model: dir, label: `step-${step}`, step }; // full fine-tuning: a model dir
    let model = base;
    if (model === undefined) {
      const named = (JSON.parse(fs.readFileSync(configFile, 'utf8')) as { base_model_name_or_path?: unknown }).base_model_name_or_path;
      if (typeof named === 'string' && fs.existsSync(named)) model = named;
      else throw new UserError(`--checkpoints: ${dir} is a LoRA adapter; give its base model with --model DIR`);
    }
    return { model, adapter: dir, label: `step-${step}`, step };
  });
}

export async function run(argv: string[]): Promise<void> {
  const { pairs, positional, rest } = splitArgs(argv);
  const values = parseFlags('suite', rest, {
    models: 'string', checkpoints: 'string', lm: 'string', preset: 'string', 'data-root': 'string', 'print-preset': 'boolean',
    output: 'string', device: 'string', 'no-progress': 'boolean',
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  if (positional.length > 1) throw new UserError(`one suite file, got ${positional.length}: ${positional.join(' ')}`);
  if ((positional.length === 1) === (values.preset !== undefined)) throw new UserError('give a suite file or --preset NAME (see lmdr suite --help)');
  const dataRoot = values['data-root'];
  if (dataRoot !== undefined && !(fs.existsSync(dataRoot) && fs.statSync(dataRoot).isDirectory())) throw new UserError(`--data-root ${dataRoot}: no such folder`);
  let suite: Suite;
  let suiteName: string;
  if (values.preset !== undefined) {
    if (values['print-preset']) {
      process.stdout.write(JSON.stringify(presetSuite(values.preset), null, 2) + '\n');
      return;
    }
    if (dataRoot === undefined) throw new UserError(`--preset ${values.preset} needs --data-root DIR (the folder holding its datasets)`);
    suite = presetSuite(values.preset, dataRoot);
    suiteName = values.preset;
  } else {
    if (values['print-preset']) throw new UserError('--print-preset goes with --preset NAME');
    suite = readSuite(positional[0], { dataRoot });
    suiteName = path.basename(positional[0]).replace(/\.json$/i, '');
  }

  const models: SuiteModel[] = [];
  if (values.checkpoints !== undefined) {
    if (pairs.length > 1 || pairs[0]?.adapter !== undefined || values.models !== undefined) throw new UserError('--checkpoints takes at most one --model (the base of LoRA checkpoints) and no --adapter or --models');
    models.push(...checkpointModels(values.checkpoints, pairs[0]?.model));
  } else {
    models.push(...pairs);
    for (const item of (values.models ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '')) {
      const eq = /^([^=/\\]+)=(.+)$/.exec(item);
      models.push(eq ? { label: eq[1], model: eq[2] } : { model: item });
    }
  }
  if (models.length === 0) throw new UserError('--model DIR is required (or --models LIST, or --checkpoints RUN_DIR; see lmdr suite --help)');

  checkRun({ suite, models, lm: values.lm }); // before OUTPUT exists
  const output = values.output ?? `suite-${suiteName}`;
  fs.mkdirSync(output, { recursive: true });
  const lock = lockOutput(output, 'lmdr suite');
  if (lock.staleNote) process.stderr.write(`lmdr suite: ${lock.staleNote}\n`);
  const enabled = values['no-progress'] ? false : undefined;
  let bar: ProgressBar | undefined;
  let barKey = '';
  try {
    const { files } = await runSuite({
      suite, models, output, lm: values.lm, device: values.device,
      onProgress: (label, unit, stage, done, total) => {
        const key = `${label} ${unit} ${stage}`;
        if (key !== barKey) {
          bar?.finish();
          bar = new ProgressBar(key, total, { unit: stage === 'search' ? 'queries' : 'items', enabled });
          barKey = key;
        }
        bar!.update(done);
      },
      onUnit: (e) => {
        bar?.finish();
        bar = undefined;
        barKey = '';
        const shown = Object.entries(e.metrics).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ');
        process.stderr.write(`lmdr suite: ${e.label} ${e.unit}: ${e.status === 'reused' ? 'finished earlier (reused)' : `${e.seconds.toFixed(1)} s`}: ${shown}\n`);
      },
    });
    process.stderr.write(`lmdr suite: wrote ${files.join(', ')}\n`);
    process.stdout.write(fs.readFileSync(path.join(output, 'results.md'), 'utf8'));
  } finally {
    bar?.finish();
    lock.release();
  }
}
