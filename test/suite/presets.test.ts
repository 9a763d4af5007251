// Suite presets: each is a valid suite (checked by the same schema as files) once its data
// exists under --data-root; the papers' datasets, metrics, lengths and instructions are there;
// a missing dataset names the preset and task; --print-preset prints a suite file that runs.
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { SUITE_PRESETS, presetSuite } from '../../lib/suite/presets.ts';
import { checkSuite, type RetrievalTask } from '../../lib/suite/schema.ts';
import { LLM_EMBEDDER_TASKS } from '../../lib/train/task-config.ts';
import { tempDir } from '../helpers/tmp.ts';
import { lmdr } from './fixtures.ts';

/** Empty stand-ins for every dataset a preset names. */
function fakeData(root: string, tasks: Record<string, unknown>[]): void {
  for (const t of tasks) {
    const data = path.join(root, t.data as string);
    if (t.type === 'sts' || t.mode === 'memory') {
      fs.mkdirSync(path.dirname(data), { recursive: true });
      fs.writeFileSync(data, '');
      continue;
    }
    fs.mkdirSync(path.join(data, 'qrels'), { recursive: true });
    for (const f of ['corpus.jsonl', 'queries.jsonl', `qrels/${(t.split as string) ?? 'test'}.tsv`]) fs.writeFileSync(path.join(data, f), '');
  }
}

describe('suite presets', () => {
  for (const name of Object.keys(SUITE_PRESETS)) {
    it(`${name}: a valid suite over its data root`, () => {
      const root = tempDir('lmdr-preset-');
      fakeData(root, SUITE_PRESETS[name].tasks);
      const suite = presetSuite(name, root);
      expect(suite.tasks.length).to.equal(SUITE_PRESETS[name].tasks.length);
      for (const t of suite.tasks) expect(path.isAbsolute(t.data) && t.data.startsWith(root)).to.equal(true);
    });
  }

  it('presets combine: beir13,msmarco-dev is the 13 BEIR sets and MS MARCO dev; a task name twice is an error', () => {
    const root = tempDir('lmdr-preset-');
    fakeData(root, [...SUITE_PRESETS.beir13.tasks, ...SUITE_PRESETS['msmarco-dev'].tasks]);
    expect(presetSuite('beir13,msmarco-dev', root).tasks.map((t) => t.name)).to.deep.equal([...SUITE_PRESETS.beir13.tasks.map((t) => t.name), 'msmarco']);
    fakeData(root, SUITE_PRESETS.multitask.tasks);
    expect(() => presetSuite('multitask,msmarco-dev', root)).to.throw(/preset multitask,msmarco-dev: tasks\[12\] \("msmarco"\): "name" "msmarco" is used by an earlier task/);
  });

  it("the papers' settings", () => {
    const beir = SUITE_PRESETS.beir13.tasks;
    expect(beir).to.have.length(13);
    for (const t of beir) expect(t).to.include({ query_max_len: 64, passage_max_len: 256 });
    expect((SUITE_PRESETS['narrativeqa-lengths'].tasks[0] as { lengths: number[] }).lengths).to.deep.equal([256, 512, 1024, 2048, 4096, 8192]);
    const multi = Object.fromEntries(SUITE_PRESETS.multitask.tasks.map((t) => [t.name, t as RetrievalTask]));
    expect(multi.toolllm.metrics).to.deep.equal(['ndcg@5']);
    expect(multi.qrecc.metrics).to.deep.equal(['ndcg@3']);
    expect(multi.stsbenchmark.metrics![0]).to.equal('spearman');
    const ret = Object.fromEntries(SUITE_PRESETS['llm-embedder-retrieval'].tasks.map((t) => [t.name, t]));
    expect(ret.toolllm.query_instruction).to.equal(LLM_EMBEDDER_TASKS.tool.query_instruction);
    expect(ret.qrecc.passage_instruction).to.equal(LLM_EMBEDDER_TASKS.convsearch.passage_instruction);
    const rag = Object.fromEntries(SUITE_PRESETS['llm-embedder-rag'].tasks.map((t) => [t.name, t]));
    expect(rag.mmlu.metrics).to.deep.equal(['accuracy', 'loglik']);
    expect(rag.pg19).to.include({ mode: 'memory', chunk_size: 128, query_instruction: LLM_EMBEDDER_TASKS.lrlm.query_instruction });
    expect(rag.msc.query_instruction).to.equal(LLM_EMBEDDER_TASKS.chat.query_instruction);
  });

  it('a missing dataset names the preset and the task; an unknown preset lists the presets', async () => {
    const root = tempDir('lmdr-preset-');
    const r = await lmdr('suite', '--preset', 'multitask', '--data-root', root, '--model', 'bm25', '--output', path.join(root, 'out'));
    expect(r.code).to.equal(1);
    expect(r.err).to.match(/^lmdr suite: preset multitask: tasks\[0\] \("toolllm"\): "data" "toolllm": .* is not a folder/);
    expect(fs.existsSync(path.join(root, 'out'))).to.equal(false);
    const r2 = await lmdr('suite', '--preset', 'beir14', '--data-root', root, '--model', 'bm25');
    expect(r2.err).to.contain('--preset beir14: no such preset (presets: beir13, msmarco-dev,');
  });

  it('--print-preset prints a suite file that reads back as the same suite', async () => {
    const root = tempDir('lmdr-preset-');
    const r = await lmdr('suite', '--preset', 'llm-embedder-rag', '--print-preset');
    expect(r.code, r.err).to.equal(0);
    const value = JSON.parse(r.out);
    fakeData(root, value.tasks);
    expect(checkSuite(value, 'printed', root).tasks).to.deep.equal(presetSuite('llm-embedder-rag', root).tasks);
  });
});
