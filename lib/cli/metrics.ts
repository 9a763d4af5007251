// lmdr metrics: trec_eval-equal measures of a TREC run against qrels, printed as one JSON object.
import { DEFAULT_MEASURES, evaluateRun, parseMeasures } from '../eval/metrics.ts';
import { readQrels, readTrecRun } from '../formats/trec.ts';
import { parseFlags, requireFlag } from './args.ts';

const HELP = `usage: lmdr metrics --qrels FILE --run FILE [flags]

Prints one JSON object {"ndcg@10": ..., ...} with trec_eval 9.0.8 semantics (ties by docno
descending, rel >= 1 relevant, graded nDCG).

  --measures LIST   comma-separated, from ndcg@K mrr@K recall@K map@K p@K (K optional except
                    for p: whole ranking). Default ${DEFAULT_MEASURES}
  --all-queries     average over every qrels query, missing ones scoring 0 (trec_eval -c,
                    MS MARCO's official averaging); default: queries in both run and qrels
  --per-query       add {"per_query": {qid: {...}}}
  --drop-self       drop a retrieved doc whose id equals the query id (BEIR convention)

qrels: TREC "qid iter docno rel" or BEIR TSV "query-id corpus-id score" (header line).
A doc repeated within one query of the run: the first line counts, later ones are ignored
(trec_eval 9.0.8 refuses such runs); a note goes to stderr.
`;

export async function run(argv: string[]): Promise<void> {
  const values = parseFlags('metrics', argv, {
    qrels: 'string', run: 'string', measures: 'string', 'all-queries': 'boolean', 'per-query': 'boolean', 'drop-self': 'boolean',
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const qrelsFile = requireFlag('metrics', values.qrels, 'qrels', 'FILE');
  const runPath = requireFlag('metrics', values.run, 'run', 'FILE');
  const measures = parseMeasures(values.measures ?? DEFAULT_MEASURES);
  const qrels = await readQrels(qrelsFile);
  const runFile = await readTrecRun(runPath);
  if (runFile.duplicates > 0) {
    process.stderr.write(`lmdr metrics: ${runFile.duplicates} repeated (query, doc) line(s) ignored, the first at ${runFile.firstDuplicate}\n`);
  }
  const result = evaluateRun(qrels, runFile.run, measures, {
    allQueries: values['all-queries'], perQuery: values['per-query'], dropSelf: values['drop-self'],
  });
  const out: Record<string, unknown> = { ...result.means };
  if (result.perQuery) out.per_query = result.perQuery;
  process.stdout.write(JSON.stringify(out) + '\n');
}
