// Metrics against hand-computed trec_eval 9.0.8 values (every rule in lib/eval/metrics.ts)
// and properties on random runs.
import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { evaluateRun, parseMeasures, rankDocs, type Qrels, type Run } from '../../lib/eval/metrics.ts';
import { readQrels, readTrecRun } from '../../lib/formats/trec.ts';
import { UserError } from '../../lib/errors.ts';
import { randInt, uniformRng } from '../helpers/rng.ts';
import { expectReject } from '../helpers/reject.ts';

const qrelsOf = (o: Record<string, Record<string, number>>): Qrels =>
  new Map(Object.entries(o).map(([q, d]) => [q, new Map(Object.entries(d))]));
const runOf = qrelsOf as (o: Record<string, Record<string, number>>) => Run;
const close = (a: number, b: number) => expect(a).to.be.closeTo(b, 1e-12);

function one(qrels: Qrels, run: Run, spec: string, opts = {}) {
  return evaluateRun(qrels, run, parseMeasures(spec), opts).means;
}

describe('metrics: hand-computed trec_eval cases', () => {
  // Ranking: d3 (0.9), then the 0.5 tie in docno-descending order d2, d1, then d4.
  // Relevance by rank: 0, 0, 1, 2; d5 (rel 1) not retrieved; num_rel = 3.
  const qrels = qrelsOf({ q1: { d1: 1, d4: 2, d5: 1, d9: 0 } });
  const run = runOf({ q1: { d1: 0.5, d2: 0.5, d3: 0.9, d4: 0.1 } });

  it('ranks by score desc, ties by docno desc', () => {
    expect(rankDocs(run.get('q1')!)).to.deep.equal(['d3', 'd2', 'd1', 'd4']);
    // numeric-looking docnos still compare as strings: "a9" > "a10"
    expect(rankDocs(new Map([['a10', 1], ['a9', 1], ['b', 2]]))).to.deep.equal(['b', 'a9', 'a10']);
  });

  it('scores are compared as float32, as trec_eval stores them: differences below float precision tie', () => {
    // 1 + 2^-30 and 1 + 2^-29 both round to the float 1.0, so docno descending decides: b before a.
    expect(rankDocs(new Map([['a', 1 + 2 ** -29], ['b', 1 + 2 ** -30]]))).to.deep.equal(['b', 'a']);
    // 1 + 2^-23 is the next float after 1: a real difference, the higher score wins.
    expect(rankDocs(new Map([['a', 1 + 2 ** -23], ['b', 1]]))).to.deep.equal(['a', 'b']);
    const q = qrelsOf({ q: { a: 1 } });
    close(one(q, runOf({ q: { a: 0.3 + 1e-12, b: 0.3 } }), 'mrr@10')['mrr@10'], 1 / 2);
  });

  it('ties compare UTF-8 bytes like strcmp, not UTF-16 units', () => {
    // U+FF21 is EF BC A1 in UTF-8, U+1F600 is F0 9F 98 80: bytes put the emoji higher,
    // UTF-16 (surrogate D83D < FF21) would put it lower.
    const emoji = '\u{1F600}';
    expect(rankDocs(new Map([['\uFF21', 1], [emoji, 1]]))).to.deep.equal([emoji, '\uFF21']);
  });

  it('MRR@k is 1/rank of the first relevant within k', () => {
    close(one(qrels, run, 'mrr@10')['mrr@10'], 1 / 3);
    close(one(qrels, run, 'mrr@2')['mrr@2'], 0);
    close(one(qrels, run, 'mrr')['mrr'], 1 / 3);
  });

  it('Recall@k divides by all relevant, retrieved or not', () => {
    const m = one(qrels, run, 'recall@2,recall@3,recall@4,recall@100');
    close(m['recall@2'], 0);
    close(m['recall@3'], 1 / 3);
    close(m['recall@4'], 2 / 3);
    close(m['recall@100'], 2 / 3);
  });

  it('P@k divides by k even when fewer docs were retrieved', () => {
    const m = one(qrels, run, 'p@3,p@10');
    close(m['p@3'], 1 / 3);
    close(m['p@10'], 2 / 10);
  });

  it('MAP@k sums precision at relevant ranks within k over all relevant', () => {
    const m = one(qrels, run, 'map@3,map@1000');
    close(m['map@3'], 1 / 3 / 3);
    close(m['map@1000'], (1 / 3 + 2 / 4) / 3);
  });

  it('nDCG@k uses graded gains, log2(rank+1) and an ideal cut at k from all judgements', () => {
    const m = one(qrels, run, 'ndcg@2,ndcg@3,ndcg@10');
    close(m['ndcg@2'], 0);
    // ideal order of the judged gains: 2, 1, 1
    close(m['ndcg@3'], (1 / 2) / (2 + 1 / Math.log2(3) + 1 / 2));
    close(m['ndcg@10'], (1 / 2 + 2 / Math.log2(5)) / (2 + 1 / Math.log2(3) + 1 / 2));
  });

  it('negative relevance is judged non-relevant with zero gain', () => {
    const q = qrelsOf({ q: { a: -1, b: 3, c: 0 } });
    const r = runOf({ q: { a: 1.0, b: 0.5 } });
    const m = one(q, r, 'ndcg@10,mrr@10,recall@10,p@1');
    close(m['ndcg@10'], 3 / Math.log2(3) / 3);
    close(m['mrr@10'], 1 / 2);
    close(m['recall@10'], 1);
    close(m['p@1'], 0);
  });

  it('a query with no relevant docs scores 0 and counts in the average', () => {
    const q = qrelsOf({ a: { x: 1 }, b: { y: 0 } });
    const r = runOf({ a: { x: 1 }, b: { y: 1 } });
    const res = evaluateRun(q, r, parseMeasures('ndcg@10,mrr@10,recall@10,map@10,p@1'), { perQuery: true });
    expect(res.numQueries).to.equal(2);
    for (const v of Object.values(res.perQuery!.b)) expect(v).to.equal(0);
    for (const v of Object.values(res.means)) close(v, 0.5);
  });

  it('averages over run∩qrels by default and over all qrels queries with allQueries (-c)', () => {
    const q = qrelsOf({ a: { x: 1 }, b: { y: 1 }, c: { z: 1 }, d: { w: 1 } });
    const r = runOf({ a: { x: 1 }, b: { x: 1, y: 0.5 }, extra: { x: 1 } });
    const def = evaluateRun(q, r, parseMeasures('mrr@10'));
    expect(def.numQueries).to.equal(2);
    expect(def.runOnly).to.equal(1);
    expect(def.qrelsOnly).to.equal(2);
    close(def.means['mrr@10'], (1 + 1 / 2) / 2);
    const all = evaluateRun(q, r, parseMeasures('mrr@10'), { allQueries: true, perQuery: true });
    expect(all.numQueries).to.equal(4);
    close(all.means['mrr@10'], (1 + 1 / 2) / 4);
    expect(all.perQuery!.c['mrr@10']).to.equal(0);
    expect(all.perQuery).to.not.have.property('extra');
  });

  it('dropSelf removes the doc whose id equals the query id (BEIR)', () => {
    const q = qrelsOf({ q5: { a: 1, q5: 1 } });
    const r = runOf({ q5: { q5: 10, a: 5, b: 4 } });
    close(one(q, r, 'mrr@10')['mrr@10'], 1);
    const dropped = evaluateRun(q, r, parseMeasures('mrr@10,recall@10'), { dropSelf: true }).means;
    close(dropped['mrr@10'], 1);
    close(dropped['recall@10'], 1 / 2); // judgements untouched: q5 stays relevant
    const q2 = qrelsOf({ q5: { a: 1 } });
    close(evaluateRun(q2, r, parseMeasures('mrr@10'), { dropSelf: true }).means['mrr@10'], 1);
    close(evaluateRun(q2, r, parseMeasures('mrr@10')).means['mrr@10'], 1 / 2);
  });

  it('an empty ranking scores 0', () => {
    const q = qrelsOf({ q: { q: 1, a: 2 } });
    const r = runOf({ q: { q: 1 } });
    const m = evaluateRun(q, r, parseMeasures('ndcg@10,mrr@10,map@10'), { dropSelf: true }).means;
    for (const v of Object.values(m)) expect(v).to.equal(0);
  });

  it('no overlap between run and qrels is an error naming both sides; so is an empty run', () => {
    expect(() => evaluateRun(qrelsOf({ a: { x: 1 } }), runOf({ b: { x: 1 } }), parseMeasures('mrr@10')))
      .to.throw(UserError, /no query of the run.*"b".*"a"/);
    // trec_eval: "No queries with both results and relevance info"; -c does not rescue it either
    expect(() => evaluateRun(qrelsOf({ a: { x: 1 } }), new Map(), parseMeasures('mrr@10'), { allQueries: true }))
      .to.throw(UserError, /no query of the run \(0 queries/);
  });

  it('parses measure lists and rejects unknown ones', () => {
    expect(parseMeasures('NDCG@10, mrr@10,ndcg@10,map').map((m) => m.key)).to.deep.equal(['ndcg@10', 'mrr@10', 'map']);
    expect(() => parseMeasures('ndcg@10,bpref')).to.throw(UserError, /bpref/);
    expect(() => parseMeasures('p')).to.throw(UserError, /cutoff/);
    expect(() => parseMeasures('ndcg@0')).to.throw(UserError, /at least 1/);
  });
});

describe('metrics: properties on random runs', () => {
  it('recall@k non-decreasing, nDCG in [0,1], perfect run = 1', () => {
    const u = uniformRng(20240607);
    const ks = [1, 2, 3, 5, 10, 20, 50];
    for (let trial = 0; trial < 200; trial++) {
      const nDocs = randInt(u, 1, 40);
      const judged = new Map<string, number>();
      const scores = new Map<string, number>();
      for (let d = 0; d < nDocs; d++) {
        const id = `d${d}`;
        if (u() < 0.5) judged.set(id, randInt(u, -1, 4));
        // coarse scores make ties common
        if (u() < 0.8) scores.set(id, Math.round(u() * 5) / 5);
      }
      if (judged.size === 0) judged.set('d0', 1);
      const q = new Map([['q', judged]]);
      const res = evaluateRun(q, new Map([['q', scores]]), parseMeasures(ks.flatMap((k) => [`recall@${k}`, `ndcg@${k}`, `map@${k}`, `mrr@${k}`]).join(','))).means;
      for (let i = 1; i < ks.length; i++) {
        for (const name of ['recall', 'map', 'mrr']) expect(res[`${name}@${ks[i]}`]).to.be.at.least(res[`${name}@${ks[i - 1]}`]);
      }
      for (const k of ks) expect(res[`ndcg@${k}`]).to.be.within(0, 1 + 1e-12);

      // perfect run: every judged doc scored by its grade
      const numRel = [...judged.values()].filter((r) => r >= 1).length;
      const perfect = new Map([...judged].map(([d, r]) => [d, r] as [string, number]));
      const p = evaluateRun(q, new Map([['q', perfect]]), parseMeasures('ndcg@5,ndcg,map,mrr@10,recall')).means;
      const expected = numRel > 0 ? 1 : 0;
      for (const key of ['ndcg@5', 'ndcg', 'map', 'mrr@10', 'recall']) close(p[key], expected);
    }
  });
});

describe('formats: TREC runs and qrels', () => {
  let dir: string;
  before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdr-trec-'))));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, text: string) => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, text);
    return f;
  };

  it('reads a run ignoring the rank column, blank and # lines; first duplicate wins', async () => {
    const f = write('run.trec', '# comment\nq1 Q0 d1 7 0.2 tag\n\nq1 Q0 d2 1 0.9 tag extra\r\nq1 Q0 d1 2 5.0 tag\nq2 Q0 d1 1 -inf t\n');
    const r = await readTrecRun(f);
    expect(r.lines).to.equal(3);
    expect(r.duplicates).to.equal(1);
    expect(r.firstDuplicate).to.equal(`${f}:5`);
    expect(r.run.get('q1')!.get('d1')).to.equal(0.2);
    expect(r.run.get('q2')!.get('d1')).to.equal(-Infinity);
    expect(rankDocs(r.run.get('q1')!)).to.deep.equal(['d2', 'd1']);
  });

  it('run errors name file:line', async () => {
    const short = write('short.trec', 'q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2 0.4\n');
    await expectReject(readTrecRun(short), new RegExp(`${short}:2: expected 6 fields`));
    const nan = write('nan.trec', 'q1 Q0 d1 1 NaN t\n');
    await expectReject(readTrecRun(nan), new RegExp(`${nan}:1: score is NaN`));
    const junk = write('junk.trec', 'q1 Q0 d1 1 0.5x t\n');
    await expectReject(readTrecRun(junk), /junk.trec:1: score "0.5x" is not a number/);
    await expectReject(readTrecRun(path.join(dir, 'missing.trec')), /missing.trec: file not found/);
  });

  it('reads TREC and BEIR qrels', async () => {
    const trec = await readQrels(write('q.trec', '1 0 a 1\n1 0 b 0\n2 0 a -1\n'));
    expect([...trec.get('1')!]).to.deep.equal([['a', 1], ['b', 0]]);
    expect(trec.get('2')!.get('a')).to.equal(-1);
    const beir = await readQrels(write('q.tsv', 'query-id\tcorpus-id\tscore\nq1\tdoc 1\t2\nq1\td2\t1\n'));
    expect(beir.get('q1')!.get('doc 1')).to.equal(2);
    expect(beir.get('q1')!.size).to.equal(2);
  });

  it('qrels errors name file:line', async () => {
    const dup = write('dup.tsv', '1 0 a 1\n1 0 a 2\n');
    await expectReject(readQrels(dup), new RegExp(`${dup}:2: duplicate judgement`));
    const frac = write('frac.tsv', '1 0 a 0.5\n');
    await expectReject(readQrels(frac), /frac.tsv:1: relevance "0.5" is not an integer/);
    const mixed = write('mixed.tsv', '1 0 a 1\n1 a 1\n');
    await expectReject(readQrels(mixed), /mixed.tsv:2: expected 4 fields/);
    const empty = write('empty.tsv', '\n');
    await expectReject(readQrels(empty), /no judgements/);
  });
});
