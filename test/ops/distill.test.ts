// The fused retrieval loss's distillation modes (KL, stabilized) and weights: hand-computed
// values, the float64 reference of REFERENCE.md's rules, finite-difference gradients (cpu-f64)
// and the float32 backend against them.
import { expect } from 'chai';
import { native } from '../../lib/native.ts';
import { expectClose, finiteDiff, randn, runOp } from './harness.ts';
import { retrievalLoss, type LossModes } from './retrieval-loss-reference.ts';

type Args = Record<string, number | boolean | string | Float64Array>;
const op = (device: string, B: number, G: number, H: number, q: Float64Array, p: Float64Array, m: LossModes) => {
  const args: Args = { batch: B, group: G, H, q, p, temperature: m.temperature, cosine: m.cosine };
  for (const k of ['inBatch', 'contrastiveWeight', 'distill', 'distillWeight', 'teacherTemperature', 'studentTemperature', 'teacher'] as const)
    if (m[k] !== undefined) args[k] = m[k] as never;
  const r = runOp(device, 'infonce', args) as unknown as Record<string, number> & { dq: Float64Array; dp: Float64Array };
  return r;
};

describe('retrieval loss: distillation modes', () => {
  // q = (1, 0); p0 = (2, 0), p1 = (0, 1): dot scores s = (2, 0) at temperature 1.
  const q1 = Float64Array.from([1, 0]);
  const p1 = Float64Array.from([2, 0, 0, 1]);
  const teacher = Float64Array.from([0, Math.log(3)]); // softmax -> (1/4, 3/4)

  it('KL by hand: KL((1/4, 3/4) || softmax(2, 0)); with a student temperature 2: softmax(1, 0)', () => {
    const e2 = Math.exp(2);
    const want = 0.25 * Math.log(0.25 / (e2 / (e2 + 1))) + 0.75 * Math.log(0.75 / (1 / (e2 + 1)));
    const r = op('cpu-f64', 1, 2, 2, q1, p1, { temperature: 1, cosine: false, distill: 'kl', contrastiveWeight: 0, teacher });
    expect(r.distill).to.be.closeTo(want, 1e-12);
    expect(r.loss).to.be.closeTo(want, 1e-12);
    const e1 = Math.exp(1);
    const want2 = 0.25 * Math.log(0.25 / (e1 / (e1 + 1))) + 0.75 * Math.log(0.75 / (1 / (e1 + 1)));
    const r2 = op('cpu-f64', 1, 2, 2, q1, p1, { temperature: 1, cosine: false, distill: 'kl', contrastiveWeight: 0, teacher, studentTemperature: 2 });
    expect(r2.distill).to.be.closeTo(want2, 1e-12);
    // teacher temperature: teacher (0, 2 ln 3) / 2 -> the same weights (1/4, 3/4)
    const r3 = op('cpu-f64', 1, 2, 2, q1, p1, { temperature: 1, cosine: false, distill: 'kl', contrastiveWeight: 0, teacher: Float64Array.from([0, 2 * Math.log(3)]), teacherTemperature: 2 });
    expect(r3.distill).to.be.closeTo(want, 1e-12);
  });

  it('stable by hand: the teacher puts candidate 1 first, so rank 0 targets it over both, rank 1 targets candidate 0 with 1 masked', () => {
    const e2 = Math.exp(2);
    // rank 0: w = 3/4, CE over {2, 0} with target 0 -> log(e^2 + 1); rank 1: w = 1/4, CE over {2} with target 2 -> 0
    const wantStable = 0.75 * Math.log(e2 + 1);
    // the contrastive target is the ordered group's first candidate (candidate 1): log(e^2 + 1)
    const wantContrastive = Math.log(e2 + 1);
    const r = op('cpu-f64', 1, 2, 2, q1, p1, { temperature: 1, cosine: false, distill: 'stable', teacher, contrastiveWeight: 0.5, distillWeight: 2 });
    expect(r.distill).to.be.closeTo(wantStable, 1e-12);
    expect(r.contrastive).to.be.closeTo(wantContrastive, 1e-12);
    expect(r.loss).to.be.closeTo(0.5 * wantContrastive + 2 * wantStable, 1e-12);
    // dL/ds by hand: contrastive 0.5 * (softmax(2,0) - (0,1)); stable 3/4 * (softmax(2,0) - (0,1)) + 1/4 * ((1) - (1)) = ...
    const sm = [e2 / (e2 + 1), 1 / (e2 + 1)];
    const ds = [0.5 * sm[0] + 2 * 0.75 * sm[0], 0.5 * (sm[1] - 1) + 2 * 0.75 * (sm[1] - 1)];
    // s_j = q . p_j (dot, temperature 1): dq = sum_j ds_j p_j, dp_j = ds_j q
    expectClose(r.dq, Float64Array.from([ds[0] * 2, ds[1] * 1]), 1e-12, 'dq');
    expectClose(r.dp, Float64Array.from([ds[0], 0, ds[1], 0]), 1e-12, 'dp');
  });

  it('without distillation the target stays the positive (index 0) and teacher scores are not needed', () => {
    const r = op('cpu-f64', 1, 2, 2, q1, p1, { temperature: 1, cosine: false });
    expect(r.contrastive).to.be.closeTo(Math.log(Math.exp(2) + 1) - 2, 1e-12);
    expect(r.distill).to.equal(0);
  });

  const B = 3, G = 4, H = 5;
  const q = randn(B * H, 31), p = randn(B * G * H, 32);
  const t = randn(B * G, 33, 2);
  const cases: [string, LossModes][] = [
    ['kl', { temperature: 0.05, cosine: true, distill: 'kl', teacher: t, teacherTemperature: 0.7, studentTemperature: 3, contrastiveWeight: 0.3, distillWeight: 1.5 }],
    ['kl, dot, distillation only', { temperature: 2, cosine: false, distill: 'kl', teacher: t, contrastiveWeight: 0 }],
    ['stable', { temperature: 0.05, cosine: true, distill: 'stable', teacher: t, teacherTemperature: 0.5, contrastiveWeight: 0.7, distillWeight: 1.3 }],
    ['stable, dot', { temperature: 1.5, cosine: false, distill: 'stable', teacher: t }],
    ['stable without in-batch negatives', { temperature: 0.05, cosine: true, distill: 'stable', teacher: t, inBatch: false }],
    ['contrastive without in-batch negatives', { temperature: 0.05, cosine: true, inBatch: false }],
    ['stable with tied teacher scores', { temperature: 0.05, cosine: true, distill: 'stable', teacher: Float64Array.from(t, (x, i) => (i % 4 < 3 ? 1 : x)) }],
    ['kl with tied teacher scores', { temperature: 0.05, cosine: true, distill: 'kl', teacher: Float64Array.from(t, () => 0.5) }],
  ];
  for (const [name, m] of cases) {
    it(`${name}: loss = float64 reference; dq, dp = finite differences (cpu-f64); cpu (float32) agrees`, () => {
      const want = retrievalLoss(q, p, B, G, H, m);
      const r = op('cpu-f64', B, G, H, q, p, m);
      expect(r.loss).to.be.closeTo(want.loss, 1e-10 * Math.max(1, Math.abs(want.loss)));
      expect(r.contrastive).to.be.closeTo(want.contrastive, 1e-10 * Math.max(1, want.contrastive));
      expect(r.distill).to.be.closeTo(want.distill, 1e-10 * Math.max(1, want.distill));
      const f = () => retrievalLoss(q, p, B, G, H, m).loss;
      expectClose(r.dq, finiteDiff(f, q), 1e-6, 'dq');
      expectClose(r.dp, finiteDiff(f, p), 1e-6, 'dp');
      const r32 = op('cpu', B, G, H, q, p, m);
      expect(Math.abs(r32.loss - want.loss) / Math.max(1, Math.abs(want.loss))).to.be.below(1e-5);
      expectClose(r32.dq, r.dq, 1e-4, 'dq cpu vs cpu-f64');
      expectClose(r32.dp, r.dp, 1e-4, 'dp cpu vs cpu-f64');
    });
  }

  it('ties keep data order: equal teacher scores give the same loss as a strictly decreasing copy of the order', () => {
    // tied (1, 1, 1, x<1): order 0, 1, 2, 3 exactly as (3, 2, 1, x) would give; weights differ, so compare the contrastive part
    const tied = Float64Array.from({ length: B * G }, (_, i) => (i % G < 3 ? 1 : -5));
    const ordered = Float64Array.from({ length: B * G }, (_, i) => (i % G < 3 ? 3 - (i % G) : -5));
    const a = op('cpu-f64', B, G, H, q, p, { temperature: 0.05, cosine: true, distill: 'stable', teacher: tied });
    const b = op('cpu-f64', B, G, H, q, p, { temperature: 0.05, cosine: true, distill: 'stable', teacher: ordered, teacherTemperature: 1e6 });
    expect(a.contrastive).to.be.closeTo(b.contrastive, 1e-12);
    // a reversed tie order would target candidate 2 first: a different contrastive loss
    const rev = Float64Array.from({ length: B * G }, (_, i) => (i % G < 3 ? 1 + (i % G) : -5));
    const c = op('cpu-f64', B, G, H, q, p, { temperature: 0.05, cosine: true, distill: 'stable', teacher: rev });
    expect(Math.abs(c.contrastive - a.contrastive)).to.be.above(1e-3);
  });

  it('G = 1: KL is 0; stable is InfoNCE over the batch with weight 1', () => {
    const B1 = 4;
    const qq = randn(B1 * H, 41), pp = randn(B1 * H, 42), tt = randn(B1, 43);
    const kl = op('cpu-f64', B1, 1, H, qq, pp, { temperature: 0.1, cosine: true, distill: 'kl', teacher: tt, contrastiveWeight: 0 });
    expect(kl.loss).to.be.closeTo(0, 1e-12);
    for (const v of kl.dq) expect(v).to.be.closeTo(0, 1e-12);
    const m: LossModes = { temperature: 0.1, cosine: true, distill: 'stable', teacher: tt, contrastiveWeight: 0.25 };
    const st = op('cpu-f64', B1, 1, H, qq, pp, m);
    expect(st.distill).to.be.closeTo(st.contrastive, 1e-12);
    expect(st.loss).to.be.closeTo(retrievalLoss(qq, pp, B1, 1, H, m).loss, 1e-10);
    const f = () => retrievalLoss(qq, pp, B1, 1, H, m).loss;
    expectClose(st.dq, finiteDiff(f, qq), 1e-6, 'dq');
    expectClose(st.dp, finiteDiff(f, pp), 1e-6, 'dp');
  });

  it("one query's group holds the only in-batch copies of another's positive: each copy is its own column", () => {
    const B2 = 2, G2 = 3;
    const qq = randn(B2 * H, 51), pp = randn(B2 * G2 * H, 52);
    pp.copyWithin(4 * H, 0, H); // query 1's candidate 1 is query 0's positive, and (the same text) scores the same
    const tt = Float64Array.from([2, 1, 0, 0.5, 3, -1]);
    for (const distill of ['kl', 'stable'] as const) {
      const m: LossModes = { temperature: 0.05, cosine: true, distill, teacher: tt, contrastiveWeight: 0.6 };
      const r = op('cpu-f64', B2, G2, H, qq, pp, m);
      expect(r.loss).to.be.closeTo(retrievalLoss(qq, pp, B2, G2, H, m).loss, 1e-10);
      const f = () => retrievalLoss(qq, pp, B2, G2, H, m).loss;
      expectClose(r.dq, finiteDiff(f, qq), 1e-6, `${distill} dq`);
      expectClose(r.dp, finiteDiff(f, pp), 1e-6, `${distill} dp`);
    }
  });

  it('the N-API binding takes the modes and names bad teacher scores', () => {
    const r = native().infonce(Float32Array.from(q), Float32Array.from(p), B, G, H, 0.05, true, 'cpu',
      { distill: 'stable', teacher: t, contrastiveWeight: 0.7, distillWeight: 1.3, teacherTemperature: 0.5 });
    const want = retrievalLoss(Float64Array.from(Float32Array.from(q)), Float64Array.from(Float32Array.from(p)), B, G, H,
      { temperature: 0.05, cosine: true, distill: 'stable', teacher: t, contrastiveWeight: 0.7, distillWeight: 1.3, teacherTemperature: 0.5 });
    expect(r.loss).to.be.closeTo(want.loss, 1e-4);
    expect(r.distill).to.be.closeTo(want.distill, 1e-4);
    expect(() => native().infonce(Float32Array.from(q), Float32Array.from(p), B, G, H, 0.05, true, 'cpu', { distill: 'kl', teacher: t.subarray(1) }))
      .to.throw(/11 teacher scores, expected batch\*group = 12/);
    expect(() => native().infonce(Float32Array.from(q), Float32Array.from(p), B, G, H, 0.05, true, 'cpu', { distill: 'kl', teacher: Float64Array.from(t, (x, i) => (i === 5 ? NaN : x)) }))
      .to.throw(/teacher score 5 is not finite/);
    expect(() => native().infonce(Float32Array.from(q), Float32Array.from(p), B, G, H, 0.05, true, 'cpu', { distill: 'soft' as 'kl', teacher: t }))
      .to.throw(/distill must be none, kl or stable/);
  });
});
