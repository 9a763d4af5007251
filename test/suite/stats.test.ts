// STS correlations (lib/suite/sts.ts) against scipy's documented value, a hand computation, and
// a direct O(n^2) implementation of the definitions written here (ranks by counting, Pearson by
// the raw-sum formula), on fresh random data with many ties.
import { expect } from 'chai';
import { averageRanks, pearson, spearman } from '../../lib/suite/sts.ts';
import { randInt, uniformRng } from '../helpers/rng.ts';

/** Average rank by counting: 1 + (values below) + (other values equal) / 2. */
function countRanks(v: number[]): number[] {
  return v.map((x) => 1 + v.filter((y) => y < x).length + (v.filter((y) => y === x).length - 1) / 2);
}
function rawPearson(x: number[], y: number[]): number {
  const n = x.length;
  let sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
  for (let i = 0; i < n; i++) { sx += x[i]; sy += y[i]; sxx += x[i] * x[i]; syy += y[i] * y[i]; sxy += x[i] * y[i]; }
  return (n * sxy - sx * sy) / Math.sqrt((n * sxx - sx * sx) * (n * syy - sy * sy));
}

describe('suite: STS correlations', () => {
  it("scipy's documented example: spearmanr([1,2,3,4,5], [5,6,7,8,7]) = 0.8207826816681233; Pearson by hand 6/sqrt(52)", () => {
    expect(spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7])).to.be.closeTo(0.8207826816681233, 1e-12);
    // x - 3 = -2..2, y - 6.6 = -1.6, -0.6, 0.4, 1.4, 0.4: sum of products 6, squares 10 and 5.2
    expect(pearson([1, 2, 3, 4, 5], [5, 6, 7, 8, 7])).to.be.closeTo(6 / Math.sqrt(52), 1e-12);
  });

  it('ties share their average rank', () => {
    expect(Array.from(averageRanks([3, 1, 3, 2, 3]))).to.deep.equal([4, 1, 4, 2, 4]);
    expect(Array.from(averageRanks([0.5, 0.5]))).to.deep.equal([1.5, 1.5]);
  });

  it('random data with ties: equal to the direct definitions', () => {
    for (let seed = 1; seed <= 5; seed++) {
      const u = uniformRng(seed * 31);
      const n = randInt(u, 5, 60);
      const gold = Array.from({ length: n }, () => randInt(u, 0, 6) / 5); // many ties, like STS gold 0..5
      const cos = Array.from({ length: n }, (_, i) => (i % 4 === 0 ? 0.25 : 2 * u() - 1));
      expect(spearman(cos, gold)).to.be.closeTo(rawPearson(countRanks(cos), countRanks(gold)), 1e-10);
      expect(pearson(cos, gold)).to.be.closeTo(rawPearson(cos, gold), 1e-10);
    }
  });
});
