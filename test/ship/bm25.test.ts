// BM25 (lib/search/bm25.ts) against scores worked out by hand from the formula, and the demo's
// BM25 baseline against metrics worked out by hand.
import { expect } from 'chai';
import { Bm25Index } from '../../lib/search/bm25.ts';
import { bm25Baseline } from '../../lib/demo/run-demo.ts';

describe('ship: BM25', () => {
  // N = 3 documents of 3, 2 and 1 tokens: avgdl 2; df(a) 1, df(b) 2, df(c) 2.
  // idf(a) = ln(1 + 2.5/1.5) = ln(8/3), idf(b) = idf(c) = ln(1 + 1.5/2.5) = ln(1.6).
  // With k1 0.9, b 0.4 the length norms are 0.6 + 0.4 |d| / 2 = 1.2, 1.0, 0.8.
  const docs = [['a', 'b', 'a'], ['b', 'c'], ['c']];

  it('scores every document as the formula says (k1 0.9, b 0.4 by default)', () => {
    const index = new Bm25Index(docs);
    expect(index.avgDocLength).to.equal(2);
    expect(index.idf('a')).to.be.closeTo(Math.log(8 / 3), 1e-12);
    expect(index.idf('b')).to.be.closeTo(Math.log(1.6), 1e-12);
    expect(index.idf('zzz')).to.be.closeTo(Math.log(1 + 3.5 / 0.5), 1e-12);
    const s = index.scores(['a', 'b']);
    // d0: a with tf 2: 2 * 1.9 / (2 + 0.9 * 1.2); b with tf 1: 1.9 / (1 + 0.9 * 1.2)
    expect(s[0]).to.be.closeTo(Math.log(8 / 3) * (3.8 / 3.08) + Math.log(1.6) * (1.9 / 2.08), 1e-12);
    // d1: b with tf 1 and norm 1: 1.9 / 1.9
    expect(s[1]).to.be.closeTo(Math.log(1.6), 1e-12);
    expect(s[2]).to.equal(0);
  });

  it('counts a repeated query token again and favours shorter documents at equal tf', () => {
    const s = new Bm25Index(docs).scores(['c', 'c']);
    expect(s[0]).to.equal(0);
    expect(s[1]).to.be.closeTo(2 * Math.log(1.6), 1e-12);
    expect(s[2]).to.be.closeTo(2 * Math.log(1.6) * (1.9 / (1 + 0.9 * 0.8)), 1e-12);
  });

  it('takes k1 and b; b 0 ignores length, k1 0 ignores tf', () => {
    const noLength = new Bm25Index(docs, { k1: 1.2, b: 0 }).scores(['c']);
    expect(noLength[1]).to.be.closeTo(noLength[2], 1e-12);
    const noTf = new Bm25Index(docs, { k1: 0, b: 0.75 }).scores(['a']);
    expect(noTf[0]).to.be.closeTo(Math.log(8 / 3), 1e-12);
  });

  it('search returns the k best with a score, best first, ties by position', () => {
    // avgdl 7/4; doc 3 (tf 3, norm 0.6 + 0.4 * 4 / 1.75): idf * 5.7 / 4.363 = 1.306 idf beats
    // docs 0 and 2 (tf 1, norm 0.829): idf * 1.9 / 1.746 = 1.088 idf, which tie
    const index = new Bm25Index([['x'], ['y'], ['x'], ['x', 'x', 'x', 'y']]);
    const hits = index.search(['x'], 10);
    expect(hits.map((h) => h.index)).to.deep.equal([3, 0, 2]);
    expect(hits[1].score).to.equal(hits[2].score);
    expect(hits[0].score / hits[1].score).to.be.closeTo((5.7 / (3 + 0.9 * (0.6 + 1.6 / 1.75))) / (1.9 / (1 + 0.9 * (0.6 + 0.4 / 1.75))), 1e-12);
    expect(index.search(['x'], 2).map((h) => h.index)).to.deep.equal([3, 0]);
    expect(index.search(['nothing'], 5)).to.deep.equal([]);
  });

  it('refuses bad parameters and an empty collection, naming them', () => {
    expect(() => new Bm25Index(docs, { k1: -1 })).to.throw(/k1 must be a number >= 0, got -1/);
    expect(() => new Bm25Index(docs, { b: 1.5 })).to.throw(/b must be in \[0, 1\], got 1.5/);
    expect(() => new Bm25Index([])).to.throw(/no documents/);
    expect(() => new Bm25Index(docs).search(['a'], 0)).to.throw(/k must be an integer >= 1, got 0/);
  });

  it('the demo baseline tokenizes like the demo, ranks title + text, and averages over every query', () => {
    const test = {
      corpus: [
        { _id: 'd1', title: '1990 Bush', text: 'The budget deficit grew.' },
        { _id: 'd2', title: '1990 Bush', text: 'Our schools need teachers, and teachers need schools.' },
        { _id: 'd3', title: '1991 Bush', text: 'The deficit, the deficit!' },
      ],
      queries: [
        { _id: 'q1', text: 'TEACHERS!' }, // only d2 matches: rank 1
        { _id: 'q2', text: 'the budget deficit' }, // d1 (has "budget") first, d3 second
        { _id: 'q3', text: 'zebra' }, // nothing matches: scores 0
        { _id: 'q4', text: '1991 deficit' }, // the title word puts d3 first
      ],
      qrels: [
        { queryId: 'q1', docId: 'd2', score: 1 },
        { queryId: 'q2', docId: 'd3', score: 1 },
        { queryId: 'q3', docId: 'd1', score: 1 },
        { queryId: 'q4', docId: 'd3', score: 1 },
      ],
    };
    const m = bm25Baseline(test, 'mrr@10,recall@1');
    // reciprocal ranks 1, 1/2, 0, 1
    expect(m['mrr@10']).to.be.closeTo((1 + 0.5 + 0 + 1) / 4, 1e-12);
    expect(m['recall@1']).to.be.closeTo(2 / 4, 1e-12);
  });
});
