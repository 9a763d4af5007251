// lmdr search: exact (or HNSW) inner-product top-k between two .npy matrices -> a TREC run.
import { UserError } from '../errors.ts';
import { readNpy } from '../formats/npy.ts';
import { buildIndex, checkFinite, INDEX_KINDS, readIds } from '../search/index.ts';
import { searchToRun } from '../search/run.ts';
import { oneOf, parseFlags, positiveInt, requireFlag } from './args.ts';
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

export async function run(argv: string[]): Promise<void> {
  const values = parseFlags('search', argv, {
    queries: 'string', corpus: 'string', k: 'string', output: 'string', 'query-ids': 'string', 'corpus-ids': 'string',
    index: 'string', device: 'string', 'no-progress': 'boolean',
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const queriesFile = requireFlag('search', values.queries, 'queries', 'Q.npy');
  const corpusFile = requireFlag('search', values.corpus, 'corpus', 'C.npy');
  const output = requireFlag('search', values.output, 'output', 'RUN.trec');
  const k = positiveInt(values.k, 'k');
  const kind = oneOf(values.index, 'index', INDEX_KINDS) ?? 'exact';

  const queries = readNpy(queriesFile);
  const corpus = readNpy(corpusFile);
  if (queries.cols !== corpus.cols) {
    throw new UserError(`${queriesFile} has ${queries.cols} columns but ${corpusFile} has ${corpus.cols}: embeddings must share a dimension`);
  }
  if (corpus.rows === 0) throw new UserError(`${corpusFile}: the corpus has no rows`);
  checkFinite(queries.data, queries.cols, queriesFile);
  const queryIds = values['query-ids'] ? await readIds(values['query-ids'], 'query id file') : Array.from({ length: queries.rows }, (_, i) => String(i));
  if (queryIds.length !== queries.rows) throw new UserError(`${values['query-ids']}: ${queryIds.length} ids for ${queries.rows} rows of ${queriesFile}`);
  if (values['query-ids']) requireUnique(queryIds, values['query-ids'], 'query');
  const corpusIds = values['corpus-ids'] ? await readIds(values['corpus-ids'], 'corpus id file') : undefined;
  if (corpusIds && corpusIds.length !== corpus.rows) throw new UserError(`${values['corpus-ids']}: ${corpusIds.length} ids for ${corpus.rows} rows of ${corpusFile}`);
  if (corpusIds) requireUnique(corpusIds, values['corpus-ids']!, 'corpus'); // a repeated doc would repeat in a query's hits
  if (k > corpus.rows) process.stderr.write(`lmdr search: --k ${k} is larger than the corpus (${corpus.rows} rows): every row is returned\n`);

  const index = buildIndex(kind, corpus, corpusIds, { device: values.device, source: corpusFile });
  const bar = new ProgressBar('search', queries.rows, { unit: 'queries', enabled: values['no-progress'] ? false : undefined });
  await searchToRun(index, queries.data, queryIds, k, { output, onProgress: (d) => bar.update(d) });
  bar.finish();
}

/** Ids must name one row each; the error points at the second occurrence. */
function requireUnique(ids: string[], file: string, what: string): void {
  const first = new Map<string, number>();
  ids.forEach((id, i) => {
    const at = first.get(id);
    if (at !== undefined) throw new UserError(`${file}:${i + 1}: duplicate ${what} id "${id}" (first at line ${at + 1})`);
    first.set(id, i);
  });
}
