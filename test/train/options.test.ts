import { expect } from 'chai';
import { UserError } from '../../lib/errors.ts';
import { FLAG_NAMING, resolveTrainOptions, type TrainOptions } from '../../lib/train/options.ts';
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

  // Each bad option is named the API's way (engine.train: key) and, through FLAG_NAMING, the CLI's (--flag).
  const bad: [object, RegExp, RegExp][] = [
    [{ groupSize: 1 }, /^engine\.train: groupSize must be an integer >= 2, got 1$/, /^--group-size must be an integer >= 2, got 1$/],
    [{ batchSize: 0 }, /^engine\.train: batchSize must be an integer >= 1, got 0$/, /^--batch-size must be an integer >= 1, got 0$/],
    [{ loraR: 2.5 }, /^engine\.train: loraR must be an integer >= 1, got 2\.5$/, /^--lora-r must be an integer >= 1, got 2\.5$/],
    [{ loraDropout: 1 }, /loraDropout must be a number in \[0, 1\), got 1$/, /^--lora-dropout must be a number in \[0, 1\), got 1$/],
    [{ optimizer: 'adam' }, /optimizer must be adamw or sgd, got the string "adam" \(did you mean "adamw"\?\)$/, /^--optimizer must be adamw or sgd, got the string "adam"/],
    [{ lrScheduler: 'cosine' }, /lrScheduler must be linear or constant, got the string "cosine"$/, /^--lr-scheduler must be linear or constant/],
    [{ steps: 3, epochs: 1 }, /^engine\.train: give steps or epochs, not both$/, /^give --steps or --epochs, not both$/],
    [{ temperature: 0 }, /temperature must be a number > 0, got 0$/, /^--temperature must be a number > 0, got 0$/],
    [{ full: true, initAdapter: 'a' }, /full and initAdapter exclude each other/, /--full and --init-adapter exclude each other/],
    [{ maxGradNorm: -1 }, /maxGradNorm must be a number >= 0, got -1$/, /^--max-grad-norm must be a number >= 0, got -1$/],
    [{ steps: 2 ** 31 }, /steps must be an integer >= 1 and <= 2147483647, got 2147483648$/, /^--steps must be an integer >= 1 and <= 2147483647/],
    [{ warmupSteps: 2, warmupRatio: 0.1 }, /give warmupSteps or warmupRatio, not both/, /give --warmup-steps or --warmup-ratio, not both/],
  ];
  for (const [patch, apiRe, flagRe] of bad) {
    it(`rejects ${JSON.stringify(patch)}, in API names and in flag names`, () => {
      expect(() => resolveTrainOptions({ data: 'd', output: 'o', ...patch } as TrainOptions)).to.throw(UserError, apiRe);
      expect(() => resolveTrainOptions({ data: 'd', output: 'o', ...patch } as TrainOptions, FLAG_NAMING)).to.throw(UserError, flagRe);
    });
  }
});
