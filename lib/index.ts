// Public API of the lmdr package. Each concern exports from its own module.
export { UserError } from './errors.ts';
export { native } from './native.ts';
export { Engine, Embeddings, type EncodeInput, type EncodeOptions, type TokenizeOptions, type SearchOptions, type LoadOptions, type Truncation } from './engine.ts';
export type { TrainOptions } from './train/options.ts';
export type { TrainSummary } from './train/trainer.ts';
export type { StepRecord } from './train/log.ts';
export { LLM_EMBEDDER_TASKS, readTaskConfig, type TaskConfig, type TaskSettings } from './train/task-config.ts';
export type { ScoreFileOptions, ScoreFileSummary } from './lm/reward.ts';
export type { ScorePair, TokenScore } from './lm/score.ts';
export { applyAdapter, readAdapterConfig, writeAdapter, type AdapterConfig } from './adapters/peft.ts';
export { writeMergedModel, type MergeOptions } from './merge.ts';
export { evaluateRetrieval, type EvaluateRetrievalOptions, type RetrievalEvaluation } from './eval/evaluate.ts';
export { evaluateRun, parseMeasures, DEFAULT_MEASURES, type Qrels, type Run, type Measure } from './eval/metrics.ts';
export { CorpusIndex, HnswIndex, FaissIndex, buildIndex, loadIndex, type VectorIndex, type SearchResult } from './search/index.ts';
export { searchToRun } from './search/run.ts';
export { readQrels, readTrecRun, TrecRunWriter } from './formats/trec.ts';
