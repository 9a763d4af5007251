// lmdr encode: JSON lines in, a float32 .npy matrix out (row i = line i's embedding).
import fs from 'node:fs';
import path from 'node:path';
import { Engine, POOLING_MODES, type EncodeInput } from '../engine.ts';
import { UserError } from '../errors.ts';
import { readJsonLines } from '../formats/jsonl.ts';
import { writeNpy } from '../formats/npy.ts';
import type { PoolingMode } from '../native.ts';
import { oneOf, parseFlags, positiveInt, requireFlag, truncationNote } from './args.ts';
import { ProgressBar } from './progress.ts';
import { array, describeValue, jsonKeys, number, object, parse, string } from '../schema.ts';

const HELP = `usage: lmdr encode --model DIR --input FILE.jsonl --output FILE.npy [flags]

Embed every line of FILE.jsonl and write a float32 [lines, hidden] .npy matrix, row i = line i.
A line is a JSON string, {"text": "..."} or pre-tokenized {"input_ids": [...]} (used exactly as
given: no special tokens, no EOS; a model dir without tokenizer.json needs this form).

  --model DIR               Hugging Face model dir (config.json, *.safetensors, tokenizer.json)
  --input FILE.jsonl        one input per line
  --output FILE.npy         written atomically: no file is left behind on error
  --pooling eos|cls|mean    default: eos for decoders (EOS appended after truncating to
                            max-length - 1), cls for BERT
  --max-length N            tokens per input, longer inputs are truncated (512; a
                            sentence-transformers dir's max_seq_length when it sets one)
  --instruction TEXT        prepended to every text input, e.g. "query: "
  --prompt TEXT             the same, sentence-transformers style
  --prompt-name NAME        a prompt of config_sentence_transformers.json (its default_prompt_name
                            applies when none is given)
  --dim N                   keep the first N dimensions and re-normalise (Matryoshka)
  --batch-size N            sequences per forward pass (32)
  --no-normalize            keep raw pooled vectors (default: L2-normalized)
  --adapter DIR             a PEFT LoRA adapter dir applied on top of the model
  --device cpu|cuda|cuda:N  default: CUDA when usable, else CPU ($LMDR_DEVICE)
  --replace-invalid-utf8    read invalid UTF-8 as U+FFFD (default: an error naming FILE:LINE)
  --help                    this text
`;

interface EncodeFlags {
  model: string;
  input: string;
  output: string;
  pooling?: PoolingMode;
  maxLength?: number;
  instruction?: string;
  prompt?: string;
  promptName?: string;
  dim?: number;
  batchSize: number;
  normalize: boolean;
  adapter?: string;
  device?: string;
  replaceInvalidUtf8: boolean;
  help: boolean;
}

export function parseEncodeFlags(argv: string[]): EncodeFlags {
  const values = parseFlags('encode', argv, {
    model: 'string', input: 'string', output: 'string', pooling: 'string', 'max-length': 'string', instruction: 'string',
    'batch-size': 'string', 'no-normalize': 'boolean', prompt: 'string', 'prompt-name': 'string', dim: 'string', adapter: 'string', device: 'string', 'replace-invalid-utf8': 'boolean',
  });
  const help = values.help === true;
  const required = (value: string | undefined, flag: string, what: string) => (help ? value ?? '' : requireFlag('encode', value, flag, what));
  return {
    model: required(values.model, 'model', 'DIR'),
    input: required(values.input, 'input', 'FILE.jsonl'),
    output: required(values.output, 'output', 'FILE.npy'),
    pooling: oneOf(values.pooling, 'pooling', POOLING_MODES),
    maxLength: values['max-length'] === undefined ? undefined : positiveInt(values['max-length'], 'max-length'),
    instruction: values.instruction,
    prompt: values.prompt,
    promptName: values['prompt-name'],
    dim: values.dim === undefined ? undefined : positiveInt(values.dim, 'dim', 1),
    batchSize: positiveInt(values['batch-size'], 'batch-size', 32),
    normalize: values['no-normalize'] !== true,
    adapter: values.adapter,
    device: values.device,
    replaceInvalidUtf8: values['replace-invalid-utf8'] === true,
    help,
  };
}

// The three forms of an input line; extra keys (ids, metadata) are allowed and ignored.
const textLine = object({ text: string() }, { unknownKeys: 'keep' });
const idsLine = object({ input_ids: array(number({ int: true, min: 0 })) }, { unknownKeys: 'keep' });

/** One input per JSON line; shape errors name file:line and the key. */
async function readInputs(file: string, replaceInvalidUtf8: boolean): Promise<{ inputs: EncodeInput[]; lines: number[] }> {
  const inputs: EncodeInput[] = [];
  const lines: number[] = [];
  for await (const { value, line } of readJsonLines(file, 'input', { replaceInvalidUtf8 })) {
    const naming = jsonKeys(`${file}:${line}`, 'the line');
    const v = value as Record<string, unknown>;
    if (typeof value === 'string') inputs.push(value);
    else if (typeof value === 'object' && value !== null && !Array.isArray(value) && 'text' in v) inputs.push({ text: parse(textLine, value, naming).text });
    else if (typeof value === 'object' && value !== null && !Array.isArray(value) && 'input_ids' in v) inputs.push({ input_ids: parse(idsLine, value, naming).input_ids });
    else throw new UserError(`${file}:${line}: expected a JSON string, {"text": "..."} or {"input_ids": [...]}, got ${describeValue(value)}`);
    lines.push(line);
  }
  if (inputs.length === 0) throw new UserError(`${file}: no inputs (the file is empty)`);
  return { inputs, lines };
}

export async function run(argv: string[]): Promise<void> {
  const flags = parseEncodeFlags(argv);
  if (flags.help) {
    process.stdout.write(HELP);
    return;
  }
  const outDir = path.dirname(path.resolve(flags.output));
  if (!fs.existsSync(outDir)) throw new UserError(`--output ${flags.output}: directory ${outDir} does not exist`);
  const { inputs, lines } = await readInputs(flags.input, flags.replaceInvalidUtf8);
  const engine = await Engine.load(flags.model, { device: flags.device, adapter: flags.adapter });
  try {
    const opts = {
      pooling: flags.pooling, maxLength: flags.maxLength, instruction: flags.instruction, prompt: flags.prompt,
      promptName: flags.promptName, dim: flags.dim, batchSize: flags.batchSize,
      normalize: flags.normalize, describeInput: (i: number) => `${flags.input}:${lines[i]}`,
    };
    let bar: ProgressBar | undefined; // made at the first batch, after every input tokenized without error
    const embeddings = await engine.encode(inputs, { ...opts, onProgress: (done) => (bar ??= new ProgressBar('encode', inputs.length, { unit: 'inputs' })).update(done) });
    bar?.finish();
    if (embeddings.truncated) process.stderr.write(`lmdr encode: ${truncationNote(embeddings.truncated, 'inputs', '--max-length', inputs.length)}\n`);
    writeNpy(flags.output, { rows: embeddings.rows, cols: embeddings.dim, data: embeddings.data });
  } finally {
    engine.dispose();
  }
}
