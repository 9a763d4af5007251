// `length-sweep` tasks: one retrieval split at several passage max lengths (the first paper's
// NarrativeQA at 256..8192 tokens). One unit per length, so a killed sweep resumes at the next
// length. Passages run in forwards of at most max_tokens tokens (Engine.encode's packing) and
// are tokenized in token-bounded chunks (evaluateSplit), so the corpus size does not raise the
// peak; bench/RESULTS.md has the measured peak RSS up to 8192 tokens.
import { evaluateSplit, retrievalSettings } from './retrieval.ts';
import type { LengthSweepTask } from './schema.ts';
import type { Unit } from './unit.ts';

export function lengthSweepUnits(task: LengthSweepTask): Unit[] {
  return [...new Set(task.lengths)].map((len) => {
    const s = retrievalSettings(task, { passageMaxLen: len });
    return {
      task, name: `${task.name}/${len}`, variant: { key: 'passage_max_len', value: len }, settings: { type: task.type, ...s },
      accepts: (r) => r !== 'none',
      run: (ctx) => evaluateSplit(task.data, s, ctx),
    };
  });
}
