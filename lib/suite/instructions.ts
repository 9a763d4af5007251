// `instructions` tasks: one retrieval split with each of several query instructions (seen or
// unseen in training), one unit each. BM25 ignores instructions, so it runs once per
// instruction with the same result (its row stays comparable).
import { evaluateSplit, retrievalSettings } from './retrieval.ts';
import type { InstructionsTask } from './schema.ts';
import type { Unit } from './unit.ts';

export function instructionUnits(task: InstructionsTask): Unit[] {
  return task.instructions.map((ins) => {
    const s = retrievalSettings(task, {
      queryInstruction: ins.query_instruction,
      passageInstruction: ins.passage_instruction ?? task.passage_instruction,
    });
    return {
      task, name: `${task.name}/${ins.name}`, variant: { key: 'instruction', value: ins.name, seen: ins.seen },
      settings: { type: task.type, ...s },
      accepts: (r) => r !== 'none',
      run: (ctx) => evaluateSplit(task.data, s, ctx),
    };
  });
}
