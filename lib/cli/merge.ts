// lmdr merge: fold a PEFT LoRA adapter into its base model and write a plain HF model dir.
import fs from 'node:fs';
import { parseFlags } from './args.ts';
import { Engine } from '../engine.ts';
import { UserError } from '../errors.ts';
import { foreignFiles, writeMergedModel } from '../merge.ts';

const HELP = `usage: lmdr merge --model DIR --adapter DIR --output DIR [--overwrite] [--device cpu|cuda|cuda:N]

Writes OUTPUT as a plain Hugging Face model dir: config and tokenizer files copied, every
LoRA-targeted weight replaced by W + (alpha/r)·B·A in its original dtype and HF tensor name.
The dir is built beside OUTPUT and swapped in whole: OUTPUT holds the previous merge or the new
one, never a mix. An OUTPUT holding files lmdr merge did not write is refused unless --overwrite.
`;

export async function run(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP);
    return;
  }
  const values = parseFlags('merge', argv, { model: 'string', adapter: 'string', output: 'string', device: 'string', overwrite: 'boolean' });
  for (const flag of ['model', 'adapter', 'output'] as const) {
    if (!values[flag]) throw new UserError(`--${flag} DIR is required`);
  }
  // The same check writeMergedModel makes (under the lock), before the model is loaded.
  if (!values.overwrite && foreignFiles(values.output!).length > 0 && fs.statSync(values.output!).isDirectory()) {
    throw new UserError(`--output ${values.output} holds files lmdr merge did not write (${foreignFiles(values.output!).slice(0, 3).join(', ')}); choose a new or empty dir, or pass --overwrite to replace it`);
  }
  const engine = await Engine.load(values.model!, { device: values.device, adapter: values.adapter });
  try {
    const merged = writeMergedModel(engine.native, engine.modelDir, engine.config, values.output!, {
      overwrite: values.overwrite === true,
      onWarning: (message) => process.stderr.write(`lmdr merge: ${message}\n`),
    });
    process.stderr.write(`merged ${merged} weights; wrote ${values.output}\n`);
  } finally {
    engine.dispose();
  }
}
