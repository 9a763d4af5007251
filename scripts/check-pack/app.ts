// check-pack: a TypeScript app type-checked against the installed package's .d.ts files with
// tsc --strict --module nodenext (never run). The @ts-expect-error lines must be errors.
import { Engine, evaluateRun, parseMeasures, UserError, type EncodeInput, type TrainOptions, type TrainSummary } from 'lmdr';

const inputs: EncodeInput[] = ['what is dense retrieval?', { text: 'a passage' }, { input_ids: [1, 2, 3] }];
const options: TrainOptions = { data: 'train.jsonl', output: 'out', steps: 2, batchSize: 2, groupSize: 2 };

export async function run(dir: string): Promise<number> {
  const engine: Engine = await Engine.load(dir, { device: 'cpu' });
  const e = await engine.encode(inputs);
  const row: Float32Array = e.row(0);
  const summary: TrainSummary = await engine.train(options);
  const m = evaluateRun(new Map(), new Map(), parseMeasures('ndcg@10'));
  engine.dispose();
  return row.length + summary.finalLoss + m.numQueries + (new UserError('x') instanceof Error ? 1 : 0);
}

export async function misuse(engine: Engine): Promise<void> {
  // @ts-expect-error: encode takes a list of inputs, not a number
  await engine.encode(42);
  // @ts-expect-error: steps is a number
  await engine.train({ data: 'd', output: 'o', steps: 'two' });
}
