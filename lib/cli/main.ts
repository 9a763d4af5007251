// lmdr command-line entry: dispatches to one file per command. Exit codes: 0 ok, 1 user error.
import { UserError } from '../errors.ts';
import { nearest } from '../schema.ts';

type Command = (argv: string[]) => Promise<void>;

const commands: Record<string, { summary: string; load: () => Promise<Command> }> = {
  info: { summary: 'version, backend, CUDA devices and build flags', load: async () => (await import('./info.ts')).run },
  encode: { summary: 'embed JSON-lines text into a .npy matrix', load: async () => (await import('./encode.ts')).run },
  train: { summary: 'contrastive LoRA / full fine-tuning of a retriever', load: async () => (await import('./train.ts')).run },
  score: { summary: 'LLM reward scoring: log p(target | context) of pairs or of training candidates', load: async () => (await import('./score.ts')).run },
  merge: { summary: 'fold a LoRA adapter into a plain Hugging Face model dir', load: async () => (await import('./merge.ts')).run },
  search: { summary: 'exact top-k inner-product search between two .npy matrices', load: async () => (await import('./search.ts')).run },
  metrics: { summary: 'trec_eval-equal metrics of a TREC run against qrels', load: async () => (await import('./metrics.ts')).run },
  eval: { summary: 'encode + search + metrics on a BEIR or MS MARCO folder', load: async () => (await import('./eval.ts')).run },
  suite: { summary: 'the papers\' experiments as one command: task suites, tables and charts', load: async () => (await import('./suite.ts')).run },
  demo: { summary: 'the whole pipeline on a built-in dataset and a generated model, in minutes', load: async () => (await import('./demo.ts')).run },
};

export function usage(): string {
  const lines = ['usage: lmdr <command> [flags]', '', 'commands:'];
  for (const [name, c] of Object.entries(commands)) lines.push(`  ${name.padEnd(8)} ${c.summary}`);
  lines.push('', 'Run "lmdr <command> --help" for its flags.');
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h') {
    process.stdout.write(usage() + '\n');
    return name ? 0 : 1;
  }
  const command = commands[name];
  if (!command) {
    const near = nearest(name, Object.keys(commands));
    process.stderr.write(`lmdr: unknown command "${name}"${near ? ` (did you mean ${near}?)` : ''}\n${usage()}\n`);
    return 1;
  }
  try {
    await (await command.load())(rest);
    return 0;
  } catch (err) {
    const message = err instanceof UserError || err instanceof Error ? err.message : String(err);
    process.stderr.write(`lmdr ${name}: ${message}\n`);
    if (process.env.LMDR_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    return 1;
  }
}
