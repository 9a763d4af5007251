import { expect } from 'chai';
import { learningRate, warmupSteps } from '../../lib/train/schedule.ts';
import { UserError } from '../../lib/errors.ts';

describe('train: learning-rate schedules (hand-computed, HF get_*_schedule_with_warmup)', () => {
  it('linear decay after warmup', () => {
    const spec = { kind: 'linear' as const, lr: 1e-3, totalSteps: 10, warmupSteps: 2 };
    // step s uses lr*s/2 during warmup, then lr*(10-s)/8
    const want = [0, 0.5e-3, 1e-3, 7 / 8 * 1e-3, 6 / 8 * 1e-3, 5 / 8 * 1e-3, 4 / 8 * 1e-3, 3 / 8 * 1e-3, 2 / 8 * 1e-3, 1 / 8 * 1e-3];
    want.forEach((w, s) => expect(learningRate(spec, s)).to.be.closeTo(w, 1e-15));
    expect(learningRate(spec, 10)).to.equal(0);
  });

  it('linear decay without warmup starts at the full rate', () => {
    const spec = { kind: 'linear' as const, lr: 2, totalSteps: 4, warmupSteps: 0 };
    expect([0, 1, 2, 3].map((s) => learningRate(spec, s))).to.deep.equal([2, 1.5, 1, 0.5]);
  });

  it('constant with and without warmup', () => {
    expect([0, 1, 2, 3, 9].map((s) => learningRate({ kind: 'constant', lr: 3, totalSteps: 10, warmupSteps: 3 }, s))).to.deep.equal([0, 1, 2, 3, 3]);
    expect([0, 5, 9].map((s) => learningRate({ kind: 'constant', lr: 3, totalSteps: 10, warmupSteps: 0 }, s))).to.deep.equal([3, 3, 3]);
  });

  it('warmup from steps or ratio (ceil), not both', () => {
    expect(warmupSteps(25, 4)).to.equal(4);
    expect(warmupSteps(25, undefined, 0.1)).to.equal(3); // ceil(2.5)
    expect(warmupSteps(30, undefined, 0.1)).to.equal(3);
    expect(warmupSteps(25)).to.equal(0);
    expect(() => warmupSteps(25, 2, 0.1)).to.throw(UserError, /not both/);
    expect(() => warmupSteps(25, undefined, 1.5)).to.throw(UserError, /--warmup-ratio/);
    expect(() => warmupSteps(25, -1)).to.throw(UserError, /--warmup-steps/);
  });
});
