// lmdr search: exact (or HNSW) inner-product top-k between two .npy matrices -> a TREC run.
import { parseArgs } from 'node:util';
import { UserError } from '../errors.ts';
import { readNpy } from '../formats/npy.ts';
import { buildIndex, readIds, type IndexKind } from '../search/index.ts';
import { searchToRun } from '../search/run.ts';
import { ProgressBar } from './progress.ts';

const HELP = `usage: lmdr search --queries Q.npy --corpus C.npy --k K --output RUN.trec [flags]

Scores every query row against every corpus row by inner product and writes the top K per
query as TREC run lines "qid Q0 docid rank score lmdr" (ranks 1..K by score, descending;
equal scores: lower corpus row first). K larger than the corpus returns the whole corpus.

  --query-ids FILE    one id per line, row order (default: 0-based row numbers)
  --corpus-ids FILE   one id per line, row order (default: 0-based row numbers)
  --index exact|hnsw|faiss   exact top-k in the native core (default); approximate HNSW via
                      usearch; faiss-node's flat index when installed
  --device cpu|cuda|cuda:N   for exact search (default: $LMDR_DEVICE, else cpu)
  --no-progress       no progress bar
`;

export function parseCount(value: string | undefined, flag: string, fallback?: number): number {
  if (value === undefined) {
    if (fallback === undefined) throw new UserError(`${flag} is required`);
    return fallback;
  }
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1) throw new UserError(`${flag} must be a positive integer, got "${value}"`);
  return n;
}

export async function run(argv: string[]): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        queries: { type: 'string' }, corpus: { type: 'string' }, k: { type: 'string' }, output: { type: 'string' },
        'query-ids': { type: 'string' }, 'corpus-ids': { type: 'string' }, index: { type: 'string' }, device: { type: 'string' },
        'no-progress': { type: 'boolean' }, help: { type: 'boolean' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UserError(`${(err as Error).message}\n${HELP}`);
  }
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  for (const flag of ['queries', 'corpus', 'output'] as const) if (!values[flag]) throw new UserError(`--${flag} is required\n${HELP}`);
  const k = parseCount(values.k, '--k');
  const kind = (values.index ?? 'exact') as IndexKind;
  if (!['exact', 'hnsw', 'faiss'].includes(kind)) throw new UserError(`--index must be exact, hnsw or faiss, got "${kind}"`);

  const queries = readNpy(values.queries!);
  const corpus = readNpy(values.corpus!);
  if (queries.cols !== corpus.cols) {
    throw new UserError(`${values.queries} has ${queries.cols} columns but ${values.corpus} has ${corpus.cols}: embeddings must share a dimension`);
  }
  if (corpus.rows === 0) throw new UserError(`${values.corpus}: the corpus has no rows`);
  const queryIds = values['query-ids'] ? await readIds(values['query-ids'], 'query id file') : Array.from({ length: queries.rows }, (_, i) => String(i));
  if (queryIds.length !== queries.rows) throw new UserError(`${values['query-ids']}: ${queryIds.length} ids for ${queries.rows} rows of ${values.queries}`);
  const seenQ = new Set<string>();
  for (const [i, id] of queryIds.entries()) {
    if (seenQ.has(id)) throw new UserError(`${values['query-ids']}:${i + 1}: duplicate query id "${id}"`);
    seenQ.add(id);
  }
  const corpusIds = values['corpus-ids'] ? await readIds(values['corpus-ids'], 'corpus id file') : undefined;
  if (corpusIds && corpusIds.length !== corpus.rows) throw new UserError(`${values['corpus-ids']}: ${corpusIds.length} ids for ${corpus.rows} rows of ${values.corpus}`);
  if (k > corpus.rows) process.stderr.write(`lmdr search: --k ${k} is larger than the corpus (${corpus.rows} rows): every row is returned\n`);

  const index = buildIndex(kind, corpus, corpusIds, { device: values.device });
  const bar = new ProgressBar('search', queries.rows, { unit: 'queries', enabled: values['no-progress'] ? false : undefined });
  await searchToRun(index, queries.data, queryIds, k, { output: values.output, onProgress: (d) => bar.update(d) });
  bar.finish();
}
