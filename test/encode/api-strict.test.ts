// The library API checks its arguments once, in its own names: unknown option keys are errors
// suggesting the nearest key; wrong types name the key, the expected type and what was given.
// Every case here used to be silently ignored, misreported in CLI flag names, or end in a raw
// TypeError ("inputs.map is not a function", "Cannot convert undefined or null to object").
import path from 'node:path';
import { expect } from 'chai';
import {
  CorpusIndex, Engine, HnswIndex, UserError, applyAdapter, buildIndex, evaluateRetrieval, evaluateRun, loadIndex, parseMeasures,
  readAdapterConfig, readQrels, searchToRun, writeAdapter, TrecRunWriter,
} from '../../lib/index.ts';
import { makeTinyModel } from '../helpers/tiny-models.ts';
import { tempDir } from '../helpers/tmp.ts';

/**
 * The error `fn` throws or rejects with; it must be a UserError (the CLI's exit 1, never a
 * crash). By name: under mocha, a module reached through a dynamic import() (engine.evaluate's)
 * is a second instance of errors.ts, so instanceof would compare two UserError classes.
 */
async function errorOf(fn: () => unknown): Promise<string> {
  try {
    await fn();
  } catch (err) {
    expect((err as Error).name, (err as Error).stack).to.equal(UserError.name);
    return (err as Error).message;
  }
  throw new Error('no error');
}

describe('api: strict options and arguments', function () {
  this.timeout(60000);
  let model: string;
  let engine: Engine;
  const out = () => path.join(tempDir('lmdr-api-'), 'run');
  before(async () => {
    model = makeTinyModel({ arch: 'qwen2', tokenizer: true, seed: 51 });
    engine = await Engine.load(model, { device: 'cpu' });
  });
  after(() => engine?.dispose());

  const cases: [string, () => unknown, string | RegExp][] = [
    ['Engine.load with a typo', () => Engine.load(model, { devcie: 'cpu' } as never), 'Engine.load: unknown option "devcie" (did you mean "device"?)'],
    ['Engine.load with a number dir', () => Engine.load(5 as never), 'Engine.load: modelDir must be a non-empty string, got 5'],
    ['Engine.load with adapter: true', () => Engine.load(model, { adapter: true } as never), 'Engine.load: adapter must be a non-empty string, got boolean true'],
    ['encode with snake_case', () => engine.encode(['a'], { max_length: 16 } as never), 'engine.encode: unknown option "max_length" (did you mean "maxLength"?)'],
    ['encode with batch_size', () => engine.encode(['a'], { batch_size: 4 } as never), 'engine.encode: unknown option "batch_size" (did you mean "batchSize"?)'],
    ['encode with a number instruction', () => engine.encode(['a'], { instruction: 7 } as never), 'engine.encode: instruction must be a string, got 7'],
    ['encode with a string maxLength', () => engine.encode(['a'], { maxLength: '16' } as never), 'engine.encode: maxLength must be an integer >= 1, got the string "16"'],
    ['encode with a bad pooling', () => engine.encode(['a'], { pooling: 'max' } as never), 'engine.encode: pooling must be eos, cls or mean, got the string "max"'],
    ['encode with a string', () => engine.encode('a' as never), 'engine.encode: inputs must be an array of strings, {text} or {input_ids} objects, got the string "a"'],
    ['encode with null options', () => engine.encode(['a'], null as never), 'engine.encode: options must be an options object, got null'],
    ['encode with a number input', () => engine.encode([42] as never), 'input 0: expected a string, {"text": "..."} or {"input_ids": [...]}, got 42'],
    ['tokenize with a negative maxLength', () => engine.tokenize(['a'], { maxLength: -1 }), 'engine.tokenize: maxLength must be an integer >= 1, got -1'],
    ['encodeIds with ids outside the vocabulary', () => engine.encodeIds([[1, 500]]), 'engine.encodeIds: sequences[0][1] must be an integer >= 0 and <= 99, got 500'],
    ['search with k 0', () => engine.search(['a'], new CorpusIndex(engine.dim), { k: 0 }), 'engine.search: k must be an integer >= 1, got 0'],
    ['search with a plain object index', () => engine.search(['a'], {} as never), 'engine.search: index must be a VectorIndex (CorpusIndex, HnswIndex, FaissIndex), got an object'],
    ['train with a number data', () => engine.train({ data: 123, output: out() } as never), 'engine.train: data must be a non-empty string, got 123'],
    ['train without data', () => engine.train({ output: out() } as never), 'engine.train: missing data (a non-empty string)'],
    ['train with loraR as a string', () => engine.train({ data: 'd', output: out(), loraR: '8' } as never), 'engine.train: loraR must be an integer >= 1, got the string "8"'],
    ['train with loraTargets as a string', () => engine.train({ data: 'd', output: out(), loraTargets: 'q_proj' } as never),
      'engine.train: loraTargets must be a non-empty array of non-empty strings, got the string "q_proj"'],
    ['train with a number queryInstruction', () => engine.train({ data: 'd', output: out(), queryInstruction: 5 } as never), 'engine.train: queryInstruction must be a string, got 5'],
    ['train with a typo', () => engine.train({ data: 'd', output: out(), batch_size: 4 } as never), 'engine.train: unknown option "batch_size" (did you mean "batchSize"?)'],
    ['train with an unrelated key', () => engine.train({ data: 'd', output: out(), colour: 'red' } as never), /^engine\.train: unknown option "colour" \(known: data, output, initAdapter, /],
    ['train with null', () => engine.train(null as never), 'engine.train: options must be an options object, got null'],
    ['train with onStep not a function', () => engine.train({ data: 'd', output: out(), onStep: 'log' } as never), 'engine.train: onStep must be a function, got the string "log"'],
    ['evaluate with a typo', () => engine.evaluate({ beri: 'x' } as never), 'engine.evaluate: unknown option "beri" (did you mean "beir"?)'],
    ['evaluateRetrieval with k as a string', () => evaluateRetrieval(engine, { beir: 'x', k: '10' } as never), 'evaluateRetrieval: k must be an integer >= 1, got the string "10"'],
    ['evaluateRetrieval without an engine', () => evaluateRetrieval(undefined as never, { beir: 'x' }), 'evaluateRetrieval: engine must be a loaded Engine (Engine.load), got undefined'],
    ['new CorpusIndex(0)', () => new CorpusIndex(0), 'CorpusIndex: dim must be an integer >= 1, got 0'],
    ['new CorpusIndex with a typo', () => new CorpusIndex(4, { devcie: 'cpu' } as never), 'new CorpusIndex: unknown option "devcie" (did you mean "device"?)'],
    ['CorpusIndex.add with a plain array', () => new CorpusIndex(2).add([0.1, 0.2] as never), 'add: vectors must be a Float32Array ([rows, 2] row-major), got an array (2 items)'],
    ['CorpusIndex.add with number ids', () => new CorpusIndex(2).add(new Float32Array(2), [7] as never), 'add: ids must be an array of strings, got an array (1 item)'],
    ['CorpusIndex.add with a NaN', () => new CorpusIndex(2).add(Float32Array.from([0, 1, NaN, 0])), 'add: row 1, column 0 is NaN; embeddings must be finite'],
    ['CorpusIndex.search with a plain array', () => { const i = new CorpusIndex(2); i.add(new Float32Array(2)); return i.search([1, 0] as never, 1); },
      'search: queries must be a Float32Array ([queries, 2] row-major), got an array (2 items)'],
    ['CorpusIndex.search with k "5"', () => { const i = new CorpusIndex(2); i.add(new Float32Array(2)); return i.search(new Float32Array(2), '5' as never); },
      'search: k must be an integer >= 1, got the string "5"'],
    ['new HnswIndex with a typo', () => new HnswIndex(4, { conectivity: 8 } as never), 'new HnswIndex: unknown option "conectivity" (did you mean "connectivity"?)'],
    ['buildIndex with a bad kind', () => buildIndex('annoy' as never, { rows: 1, cols: 2, data: new Float32Array(2) }), 'buildIndex: kind must be exact, hnsw or faiss, got the string "annoy"'],
    ['buildIndex with a plain array', () => buildIndex('exact', { rows: 1, cols: 2, data: [1, 2] } as never), 'buildIndex: m.data must be a Float32Array, got an array (2 items)'],
    ['loadIndex with a typo kind', () => loadIndex('dir', 'exakt' as never), 'loadIndex: kind must be exact, hnsw or faiss, got the string "exakt" (did you mean "exact"?)'],
    ['searchToRun with k 0', () => { const i = new CorpusIndex(2); i.add(new Float32Array(2)); return searchToRun(i, new Float32Array(2), ['q'], 0); }, 'searchToRun: k must be an integer >= 1, got 0'],
    ['searchToRun with a typo', () => { const i = new CorpusIndex(2); i.add(new Float32Array(2)); return searchToRun(i, new Float32Array(2), ['q'], 1, { outptu: 'x' } as never); },
      'searchToRun: unknown option "outptu" (did you mean "output"?)'],
    ['evaluateRun with a measures string', () => evaluateRun(new Map(), new Map(), 'ndcg@10' as never), 'evaluateRun: measures must be an array of measures (parseMeasures("ndcg@10,...")), got the string "ndcg@10"'],
    ['evaluateRun with a typo', () => evaluateRun(new Map(), new Map(), parseMeasures('ndcg@10'), { allqueries: true } as never), 'evaluateRun: unknown option "allqueries" (did you mean "allQueries"?)'],
    ['parseMeasures with an array', () => parseMeasures(['ndcg@10'] as never), 'parseMeasures: spec must be a string, got an array (1 item)'],
    ['readQrels with a number', () => readQrels(3 as never), 'readQrels: file must be a non-empty string, got 3'],
    ['new TrecRunWriter with an object', () => new TrecRunWriter({} as never), 'new TrecRunWriter: file must be a non-empty string, got an object'],
    ['writeAdapter with r as a string', () => writeAdapter(tempDir(), { r: '4', alpha: 8, dropout: 0, targets: ['q_proj'], baseModel: '' } as never, []),
      'writeAdapter: config.r must be an integer >= 1, got the string "4"'],
    ['readAdapterConfig with a number', () => readAdapterConfig(1 as never), 'readAdapterConfig: dir must be a non-empty string, got 1'],
    ['applyAdapter with an Engine instead of its model', () => applyAdapter(engine as never, 'x'), 'applyAdapter: model must be a loaded NativeModel (engine.native), got object'],
  ];
  for (const [what, fn, want] of cases) {
    it(`${what}: ${typeof want === 'string' ? want : want.source}`, async () => {
      const message = await errorOf(fn);
      if (typeof want === 'string') expect(message).to.equal(want);
      else expect(message).to.match(want);
    });
  }

  it('good options still work, and nothing was written by the refused calls', async () => {
    const e = await engine.encode(['the river', { text: 'a king' }], { maxLength: 16, batchSize: 1, instruction: 'q: ' });
    expect(e.rows).to.equal(2);
  });
});
