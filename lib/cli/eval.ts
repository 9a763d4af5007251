// lmdr eval: encode a BEIR / MS MARCO split with a model (+ adapter), search the whole corpus,
// write run.trec, metrics.json and reusable corpus embeddings, print the metrics.
import fs from 'node:fs';
import path from 'node:path';

import { Engine, POOLING_MODES } from '../engine.ts';
import { UserError } from '../errors.ts';
import { datasetFiles, evaluateRetrieval } from '../eval/evaluate.ts';
import { DEFAULT_MEASURES, parseMeasures } from '../eval/metrics.ts';
import { writeFileAtomic } from '../formats/atomic-write.ts';
import { lockOutput } from '../formats/output-lock.ts';
import { readTaskConfig, taskSettings } from '../train/task-config.ts';
import { oneOf, parseFlags, positiveInt, requireFlag, truncationNote } from './args.ts';
import { ProgressBar } from './progress.ts';

const HELP = `usage: lmdr eval --model DIR (--beir DIR | --msmarco DIR) [flags]

Encodes the corpus and the split's queries, runs exact top-k search over the whole corpus and
scores the run with trec_eval 9.0.8 semantics. Writes OUTPUT/run.trec, OUTPUT/metrics.json and
OUTPUT/corpus/ (embeddings.npy, ids.txt, meta.json), which a later eval of the same corpus with
the same model, adapter and passage settings reuses. Prints the metrics as one JSON object.

  --adapter DIR              PEFT LoRA adapter applied on top of --model
  --beir DIR                 corpus.jsonl, queries.jsonl, qrels/<split>.tsv
  --msmarco DIR              collection.tsv, queries.<split>.tsv, qrels.<split>.tsv
  --split NAME               default test (BEIR) or dev (MS MARCO)
  --k N                      hits per query (1000)
  --output DIR               default eval-<dataset>-<split>
  --measures LIST            default ${DEFAULT_MEASURES}
  --query-instruction T      prepended to every query
  --passage-instruction T    prepended to every passage
  --task-config FILE|llm-embedder --task NAME
                             instructions (and max lengths) of that task of a training task
                             config; --query-instruction etc. given as well win
  --query-max-len N          tokens (64)
  --passage-max-len N        tokens (256); long passages (8192) run in small batches
  --batch-size N             sequences per forward (32)
  --max-tokens N             tokens per forward (16384)
  --pooling eos|cls|mean     default: the model's
  --no-title                 BEIR: passage = text only (default title + " " + text)
  --all-queries              average over all qrels queries (trec_eval -c)
  --keep-self                BEIR: keep a retrieved doc whose id equals the query id
                             (by default it is left out of the run and the next hit takes
                             its place, as BEIR's evaluator does)
  --drop-self                MS MARCO: leave it out the same way (kept by default)
  --reencode                 ignore cached corpus embeddings
  --replace-invalid-utf8     read invalid UTF-8 in the dataset as U+FFFD (default: an error naming FILE:LINE)
  --device cpu|cuda|cuda:N   default: CUDA when usable, else CPU ($LMDR_DEVICE)
  --no-progress              no progress bars
`;

export async function run(argv: string[]): Promise<void> {
  const values = parseFlags('eval', argv, {
    model: 'string', adapter: 'string', beir: 'string', msmarco: 'string', split: 'string', k: 'string', output: 'string',
    measures: 'string', 'query-instruction': 'string', 'passage-instruction': 'string', 'query-max-len': 'string',
    'passage-max-len': 'string', 'batch-size': 'string', 'max-tokens': 'string', pooling: 'string', device: 'string',
    'no-title': 'boolean', 'all-queries': 'boolean', 'keep-self': 'boolean', 'drop-self': 'boolean', reencode: 'boolean',
    'no-progress': 'boolean', 'replace-invalid-utf8': 'boolean', 'task-config': 'string', task: 'string',
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const model = requireFlag('eval', values.model, 'model', 'DIR');
  if ((values.beir === undefined) === (values.msmarco === undefined)) throw new UserError('give exactly one of --beir DIR or --msmarco DIR (see lmdr eval --help)');
  if (values['keep-self'] && values['drop-self']) throw new UserError('--keep-self and --drop-self contradict each other');
  const pooling = oneOf(values.pooling, 'pooling', POOLING_MODES);
  const split = values.split ?? (values.beir !== undefined ? 'test' : 'dev');
  const dataset = path.basename(path.resolve(values.beir ?? values.msmarco!));
  const output = values.output ?? `eval-${dataset}-${split}`;
  const k = positiveInt(values.k, 'k', 1000);
  const count = (flag: 'query-max-len' | 'passage-max-len' | 'batch-size' | 'max-tokens') =>
    values[flag] === undefined ? undefined : positiveInt(values[flag], flag);
  const [batchSize, maxTokens] = [count('batch-size'), count('max-tokens')];
  // a task of a training task config supplies what the flags leave out
  if ((values['task-config'] === undefined) !== (values.task === undefined)) throw new UserError('--task-config and --task go together (see lmdr eval --help)');
  const task = values['task-config'] !== undefined
    ? taskSettings(readTaskConfig(values['task-config']), values.task, '--task', `--task-config ${values['task-config']}`) : undefined;
  const queryMaxLen = count('query-max-len') ?? task?.query_max_len;
  const passageMaxLen = count('passage-max-len') ?? task?.passage_max_len;
  const queryInstruction = values['query-instruction'] ?? task?.query_instruction;
  const passageInstruction = values['passage-instruction'] ?? task?.passage_instruction;
  if (values.measures !== undefined) parseMeasures(values.measures); // a typo fails before any encoding

  datasetFiles({ beir: values.beir, msmarco: values.msmarco, split }); // fail before loading the model
  const engine = await Engine.load(model, { device: values.device, adapter: values.adapter });
  const enabled = values['no-progress'] ? false : undefined;
  const bars = new Map<string, ProgressBar>();
  const progress = (stage: string, done: number, total: number) => {
    let bar = bars.get(stage);
    if (!bar) {
      for (const b of bars.values()) b.finish();
      bars.clear();
      bars.set(stage, (bar = new ProgressBar(`${stage}`, total, { unit: stage === 'search' ? 'queries' : 'texts', enabled })));
    }
    bar.update(done);
  };
  fs.mkdirSync(output, { recursive: true });
  const lock = lockOutput(output, 'lmdr eval'); // one eval writes OUTPUT at a time
  if (lock.staleNote) process.stderr.write(`lmdr eval: ${lock.staleNote}\n`);
  try {
    const adapterStamp = values.adapter ? adapterFingerprint(values.adapter) : null;
    const result = await evaluateRetrieval(engine, {
      beir: values.beir, msmarco: values.msmarco, split, k, measures: values.measures,
      queryInstruction, passageInstruction,
      queryMaxLen, passageMaxLen, batchSize, maxTokens, pooling,
      titles: !values['no-title'], allQueries: values['all-queries'],
      dropSelf: values['keep-self'] ? false : values['drop-self'] ? true : undefined,
      runFile: path.join(output, 'run.trec'),
      corpusCache: path.join(output, 'corpus'),
      corpusKey: { model: modelFingerprint(model), adapter: adapterStamp, reencode: values.reencode ? Date.now() : 0 },
      device: values.device,
      replaceInvalidUtf8: values['replace-invalid-utf8'] === true,
      onProgress: progress,
    });
    for (const b of bars.values()) b.finish();
    const text = JSON.stringify(result.metrics);
    writeFileAtomic(path.join(output, 'metrics.json'), [Buffer.from(text + '\n')]);
    process.stderr.write(`lmdr eval: ${result.numQueries} queries, ${result.corpusSize} passages` +
      `${result.corpusReused ? ' (corpus embeddings reused)' : ''}; wrote ${path.join(output, 'run.trec')}, ${path.join(output, 'metrics.json')}\n`);
    for (const [what, t, flag] of [['passages', result.truncated.corpus, '--passage-max-len'], ['queries', result.truncated.queries, '--query-max-len']] as const) {
      if (t) process.stderr.write(`lmdr eval: ${truncationNote(t, what, flag)}\n`);
    }
    process.stdout.write(text + '\n');
  } finally {
    lock.release();
    engine.dispose();
  }
}

/** Files of a model/adapter dir that decide its embeddings: path, size and mtime of each. */
function dirFingerprint(dir: string, names: (n: string) => boolean): Record<string, unknown> {
  const abs = path.resolve(dir);
  const files = fs.readdirSync(abs).filter(names).sort();
  return { dir: abs, files: files.map((f) => { const st = fs.statSync(path.join(abs, f)); return [f, st.size, st.mtimeMs]; }) };
}
const modelFingerprint = (dir: string) => dirFingerprint(dir, (n) => n.endsWith('.safetensors') || n.endsWith('.json'));
const adapterFingerprint = (dir: string) => dirFingerprint(dir, (n) => n.startsWith('adapter_'));
