// Built-in suites: the papers' experiments with their datasets, metrics, cutoffs, lengths and
// instructions (REFERENCE.md). "data" names a folder or file under --data-root, as the public
// releases name them (BEIR's download names; MTEB's STS sets as JSON lines).
import { UserError } from '../errors.ts';
import { LLM_EMBEDDER_TASKS } from '../train/task-config.ts';
import { checkSuite, type Suite } from './schema.ts';

// The first paper: queries 64 tokens, passages 256, NDCG@10.
const PAPER1 = { query_max_len: 64, passage_max_len: 256 };
// BEIR's 13 public sets other than MS MARCO and CQADupStack (whose 12 forums are 12 folders;
// add them as retrieval tasks and average them yourself if you report it).
const BEIR13 = ['trec-covid', 'nfcorpus', 'nq', 'hotpotqa', 'fiqa', 'arguana', 'webis-touche2020', 'quora', 'dbpedia-entity', 'scidocs', 'fever', 'climate-fever', 'scifact'];
// MTEB's English STS sets (Spearman of cosine similarity)
const STS_SETS = ['sts12', 'sts13', 'sts14', 'sts15', 'sts16', 'stsbenchmark', 'sickr', 'biosses'];
const ins = (task: keyof typeof LLM_EMBEDDER_TASKS) => ({
  query_instruction: LLM_EMBEDDER_TASKS[task].query_instruction!,
  passage_instruction: LLM_EMBEDDER_TASKS[task].passage_instruction!,
});

export const SUITE_PRESETS: Record<string, { description: string; tasks: Record<string, unknown>[] }> = {
  beir13: {
    description: 'Zero-shot BEIR, 13 sets (first paper, Table 6 / Figure 4): NDCG@10, query 64 / passage 256 tokens',
    tasks: BEIR13.map((name) => ({ name, type: 'retrieval', data: name, metrics: ['ndcg@10', 'recall@100'], ...PAPER1 })),
  },
  'msmarco-dev': {
    description: 'In-domain MS MARCO passage dev (first paper, Table 5), BEIR folder "msmarco", split dev',
    tasks: [{ name: 'msmarco', type: 'retrieval', data: 'msmarco', split: 'dev', metrics: ['ndcg@10', 'mrr@10', 'recall@10', 'recall@1000'], ...PAPER1 }],
  },
  'narrativeqa-lengths': {
    description: 'Lengthy retrieval (first paper, Table 7 / Figure 3): NarrativeQA at passage max lengths 256..8192, NDCG@10',
    tasks: [{ name: 'narrativeqa', type: 'length-sweep', data: 'narrativeqa', metrics: ['ndcg@10'], query_max_len: 64, lengths: [256, 512, 1024, 2048, 4096, 8192] }],
  },
  multitask: {
    description: 'Multi-task learning (first paper, Table 4): ToolLLM NDCG@5, QReCC NDCG@3, MTEB STS Spearman, HotpotQA and MS MARCO NDCG@10',
    tasks: [
      { name: 'toolllm', type: 'retrieval', data: 'toolllm', metrics: ['ndcg@5'], ...PAPER1 },
      { name: 'qrecc', type: 'retrieval', data: 'qrecc', metrics: ['ndcg@3'], ...PAPER1 },
      ...STS_SETS.map((name) => ({ name, type: 'sts', data: `sts/${name}.jsonl`, metrics: ['spearman', 'pearson'] })),
      { name: 'hotpotqa', type: 'retrieval', data: 'hotpotqa', metrics: ['ndcg@10'], ...PAPER1 },
      { name: 'msmarco', type: 'retrieval', data: 'msmarco', split: 'dev', metrics: ['ndcg@10', 'mrr@10'], ...PAPER1 },
    ],
  },
  'llm-embedder-retrieval': {
    description: 'LLM-Embedder retrieval tasks with their instructions (second paper, Table 3): tool learning NDCG@5, conversational search NDCG@3',
    tasks: [
      { name: 'toolllm', type: 'retrieval', data: 'toolllm', metrics: ['ndcg@5'], ...ins('tool') },
      { name: 'qrecc', type: 'retrieval', data: 'qrecc', metrics: ['ndcg@3'], ...ins('convsearch') },
    ],
  },
  'llm-embedder-rag': {
    description: 'Retrieval augmentation (second paper, Tables 1 and 3): MMLU accuracy with MS MARCO knowledge, PopQA answer log-likelihood with Wikipedia knowledge, ' +
      'long-range language modelling perplexity (128-token chunks) on Books3, ArXiv, CodeParrot, PG19 and Multi-Session Chat',
    tasks: [
      { name: 'mmlu', type: 'rag', mode: 'qa', data: 'mmlu', metrics: ['accuracy', 'loglik'], k: 3, ...ins('qa') },
      { name: 'popqa', type: 'rag', mode: 'qa', data: 'popqa', metrics: ['loglik'], k: 3, ...ins('qa') },
      ...['msc', 'books3', 'arxiv', 'codeparrot', 'pg19'].map((name) => ({
        name, type: 'rag', mode: 'memory', data: `${name}.jsonl`, metrics: ['perplexity'], chunk_size: 128, k: 1, ...ins(name === 'msc' ? 'chat' : 'lrlm'),
      })),
    ],
  },
};

/**
 * The preset (or several, comma-separated: "beir13,msmarco-dev") as a suite file would hold it
 * (dataRoot undefined), or checked with its data under dataRoot.
 */
export function presetSuite(name: string): { description: string; tasks: Record<string, unknown>[] };
export function presetSuite(name: string, dataRoot: string): Suite;
export function presetSuite(name: string, dataRoot?: string): Suite | { description: string; tasks: Record<string, unknown>[] } {
  const names = name.split(',').map((n) => n.trim()).filter((n) => n !== '');
  const presets = names.map((n) => {
    const preset = SUITE_PRESETS[n];
    if (!preset || !Object.hasOwn(SUITE_PRESETS, n)) throw new UserError(`--preset ${n}: no such preset (presets: ${Object.keys(SUITE_PRESETS).join(', ')})`);
    return preset;
  });
  if (presets.length === 0) throw new UserError(`--preset: no preset named (presets: ${Object.keys(SUITE_PRESETS).join(', ')})`);
  const value = { description: presets.map((p) => p.description).join('; '), tasks: presets.flatMap((p) => p.tasks) };
  if (dataRoot === undefined) return value;
  return checkSuite(value, `preset ${names.join(',')}`, dataRoot, dataRoot);
}
