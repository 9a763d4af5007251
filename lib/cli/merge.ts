// lmdr merge: fold a PEFT LoRA adapter into its base model and write a plain HF model dir.
import { parseFlags } from './args.ts';
import { Engine } from '../engine.ts';
import { UserError } from '../errors.ts';
import { writeMergedModel } from '../merge.ts';

const HELP = `usage: lmdr merge --model DIR --adapter DIR --output DIR [--device cpu|cuda|cuda:N]

Writes OUTPUT as a plain Hugging Face model dir: config and tokenizer files copied, every
LoRA-targeted weight replaced by W + (alpha/r)·B·A in its original dtype and HF tensor name.
`;

export async function run(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP);
    return;
  }
  const values = parseFlags('merge', argv, { model: 'string', adapter: 'string', output: 'string', device: 'string' });
  for (const flag of ['model', 'adapter', 'output'] as const) {
    if (!values[flag]) throw new UserError(`--${flag} DIR is required`);
  }
  const engine = await Engine.load(values.model!, { device: values.device, adapter: values.adapter });
  try {
    const merged = writeMergedModel(engine.native, engine.modelDir, engine.config, values.output!);
    process.stderr.write(`merged ${merged} weights; wrote ${values.output}\n`);
  } finally {
    engine.dispose();
  }
}
