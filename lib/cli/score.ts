// lmdr score: LLM reward scoring (log p(target | context) through the causal-LM head) of a pairs
// file, or of every candidate of a training file -> teacher_scores; resumable.
import { Engine } from '../engine.ts';
import { UserError } from '../errors.ts';
import type { ScoreFileOptions } from '../lm/reward.ts';
import { FLAG_NAMING } from '../train/options.ts';
import { scoreFile } from '../lm/reward.ts';
import { oneOf, parseFlags, positiveInt } from './args.ts';
import { ProgressBar } from './progress.ts';

const HELP = `usage: lmdr score --model LM_DIR --input PAIRS.jsonl --output SCORES.jsonl [flags]
       lmdr score --model LM_DIR --data TRAIN.jsonl --output SCORED.jsonl --template T [flags]

Log-likelihood of a target given a context under a causal LM (LLM-Embedder's reward).
Pairs: each line {"context": str, "target": str} or {"context_ids": [int], "target_ids": [int]};
output line i is {"sum_logprob": x, "mean_logprob": y, "tokens": n} for input line i. Text
contexts get the tokenizer's special tokens, targets none; ids are used exactly as given.
Training data: every candidate ("pos" then "neg") of a line is scored with the template as the
context and the line's answers[0] (or "output") as the target; the line is written back with
"teacher_scores" aligned to pos ++ neg. Blank lines are skipped.

  --model LM_DIR            a causal LM (decoder) model dir
  --input FILE.jsonl        pairs to score
  --data FILE.jsonl         training lines to score (FlagEmbedding form plus "answers")
  --output FILE.jsonl       written whole at the end (OUTPUT.partial meanwhile)
  --template T              (--data) the context, with {query} and {candidate}, e.g.
                            "Knowledge: {candidate}\\n\\nQuestion: {query}\\n\\nAnswer: "
  --task-config FILE|llm-embedder   (--data) per-task templates, keyed by each line's "task"
  --reward mean|sum         (--data) mean log-probability (FlagEmbedding's -NLL, default) or
                            the sum (the log of the paper's equation 1)
  --max-length N            tokens of context + target; longer contexts are cut from the left,
                            a target that alone does not fit is an error (2048)
  --batch-tokens N          tokens per forward pass (8192)
  --resume                  continue a killed run from OUTPUT.partial (same settings)
  --replace-invalid-utf8    read invalid UTF-8 as U+FFFD (default: an error naming FILE:LINE)
  --device cpu|cuda|cuda:N  (default: CUDA when usable, else CPU; $LMDR_DEVICE)
  --no-progress             no progress bar (LMDR_PROGRESS=0|1 also decides)
`;

export function parseScoreFlags(argv: string[]): { model: string; device?: string; options: ScoreFileOptions; progress: boolean } {
  const v = parseFlags('score', argv, {
    model: 'string', input: 'string', data: 'string', output: 'string', template: 'string', 'task-config': 'string', reward: 'string',
    'max-length': 'string', 'batch-tokens': 'string', 'piece-size': 'string', resume: 'boolean', 'replace-invalid-utf8': 'boolean',
    device: 'string', 'no-progress': 'boolean',
  });
  if (!v.model) throw new UserError('--model LM_DIR is required (see lmdr score --help)');
  if (!v.output) throw new UserError('--output FILE.jsonl is required (see lmdr score --help)');
  const options: ScoreFileOptions = {
    input: v.input, data: v.data, output: v.output, template: v.template, taskConfig: v['task-config'],
    reward: oneOf(v.reward, 'reward', ['mean', 'sum'] as const),
    maxLength: v['max-length'] === undefined ? undefined : positiveInt(v['max-length'], 'max-length'),
    batchTokens: v['batch-tokens'] === undefined ? undefined : positiveInt(v['batch-tokens'], 'batch-tokens'),
    pieceSize: v['piece-size'] === undefined ? undefined : positiveInt(v['piece-size'], 'piece-size'),
    resume: v.resume === true || undefined,
    replaceInvalidUtf8: v['replace-invalid-utf8'] === true || undefined,
  };
  return { model: v.model, device: v.device, options, progress: v['no-progress'] !== true };
}

export async function run(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP);
    return;
  }
  const { model, device, options, progress } = parseScoreFlags(argv);
  const engine = await Engine.load(model, { device });
  try {
    let bar: ProgressBar | undefined;
    const summary = await scoreFile(engine, {
      ...options,
      onProgress: progress ? (done, total) => (bar ??= new ProgressBar('score', total, { unit: 'pairs' })).update(done) : undefined,
    }, FLAG_NAMING);
    bar?.finish();
    for (const w of summary.warnings) process.stderr.write(`lmdr score: warning: ${w}\n`);
    const resumed = summary.resumedLines > 0 ? ` (resumed after ${summary.resumedLines} lines)` : '';
    process.stderr.write(`scored ${summary.pairs} pairs, ${summary.tokens} tokens in ${summary.seconds.toFixed(1)} s${resumed}; wrote ${summary.lines} lines to ${summary.output}\n`);
  } finally {
    engine.dispose();
  }
}
