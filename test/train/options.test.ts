import { expect } from 'chai';
import { UserError } from '../../lib/errors.ts';
import { resolveTrainOptions } from '../../lib/train/options.ts';
import { parseTrainFlags } from '../../lib/cli/train.ts';

describe('train: options and flags', () => {
  it('defaults follow the CLI contract', () => {
    const o = resolveTrainOptions({ data: 'd.jsonl', output: 'out' });
    expect(o).to.include({
      loraR: 32, loraAlpha: 64, loraDropout: 0.1, full: false, optimizer: 'adamw', lr: 3e-4, lrScheduler: 'linear',
      batchSize: 128, groupSize: 8, temperature: 0.02, queryMaxLen: 64, passageMaxLen: 256, queryInstruction: '',
      passageInstruction: '', chunkSize: 0, resume: false,
    });
    expect(o.steps).to.equal(undefined);
    expect(o.loraTargets).to.equal(undefined); // chosen by architecture
  });

  it('maps every flag onto the options', () => {
    const { model, options, progress } = parseTrainFlags([
      '--model', 'm', '--data', 'd.jsonl', '--output', 'o', '--init-adapter', 'a', '--lora-r', '8', '--lora-alpha', '16',
      '--lora-dropout', '0', '--lora-targets', 'q_proj, v_proj', '--optimizer', 'sgd', '--lr', '1e-3', '--lr-scheduler', 'constant',
      '--warmup-ratio', '0.1', '--weight-decay', '0.01', '--max-grad-norm', '0', '--batch-size', '64', '--group-size', '4',
      '--temperature', '0.01', '--query-max-len', '32', '--passage-max-len', '128', '--query-instruction', 'q: ',
      '--passage-instruction', 'p: ', '--epochs', '2', '--chunk-size', '16', '--save-steps', '10', '--seed', '7', '--resume',
      '--device', 'cpu', '--recompute', '--eval-beir', 'b', '--eval-split', 'dev', '--eval-steps', '5', '--no-progress',
    ]);
    expect(model).to.equal('m');
    expect(progress).to.equal(false);
    expect(options).to.deep.include({
      data: 'd.jsonl', output: 'o', initAdapter: 'a', loraR: 8, loraAlpha: 16, loraDropout: 0, loraTargets: ['q_proj', 'v_proj'],
      optimizer: 'sgd', lr: 1e-3, lrScheduler: 'constant', warmupRatio: 0.1, weightDecay: 0.01, maxGradNorm: 0, batchSize: 64,
      groupSize: 4, temperature: 0.01, queryMaxLen: 32, passageMaxLen: 128, queryInstruction: 'q: ', passageInstruction: 'p: ',
      epochs: 2, chunkSize: 16, saveSteps: 10, seed: 7, resume: true, device: 'cpu', recompute: true, evalBeir: 'b',
      evalSplit: 'dev', evalSteps: 5, full: false,
    });
  });

  const bad: [object, RegExp][] = [
    [{ groupSize: 1 }, /--group-size must be an integer >= 2/],
    [{ batchSize: 0 }, /--batch-size must be an integer >= 1/],
    [{ loraR: 2.5 }, /--lora-r/],
    [{ loraDropout: 1 }, /--lora-dropout must be in \[0, 1\)/],
    [{ optimizer: 'adam' }, /--optimizer must be adamw or sgd/],
    [{ lrScheduler: 'cosine' }, /--lr-scheduler must be linear or constant/],
    [{ steps: 3, epochs: 1 }, /--steps or --epochs, not both/],
    [{ temperature: 0 }, /--temperature must be > 0/],
    [{ full: true, initAdapter: 'a' }, /exclude each other/],
    [{ maxGradNorm: -1 }, /--max-grad-norm/],
  ];
  for (const [patch, re] of bad) {
    it(`rejects ${JSON.stringify(patch)}`, () => {
      expect(() => resolveTrainOptions({ data: 'd', output: 'o', ...patch })).to.throw(UserError, re);
    });
  }
});
