import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildDataset, loadAddresses, passagesOf, splitSentences, writeDataset, type Address } from '../../lib/demo/sotu-dataset.ts';
import { uniformRng } from '../helpers/rng.ts';

// Synthetic addresses: every sentence unique (it carries its address, passage and index).
function syntheticAddresses(n: number, seed: number): Address[] {
  const u = uniformRng(seed);
  const words = ['budget', 'nation', 'peace', 'labor', 'farm', 'tax', 'army', 'school', 'health', 'trade', 'energy', 'court'];
  return Array.from({ length: n }, (_, a) => {
    const sentences = Array.from({ length: 20 + Math.floor(u() * 20) }, (_, s) => {
      const body = Array.from({ length: 6 + Math.floor(u() * 14) }, () => words[Math.floor(u() * words.length)]).join(' ');
      return `Speech ${a} line ${s} says ${body}.`;
    });
    return { year: 1900 + a, name: `President ${String.fromCharCode(65 + a)}`, text: sentences.join(' ') };
  });
}

describe('ship: demo dataset builder', () => {
  it('splits sentences at end punctuation, not after abbreviations', () => {
    expect(splitSentences('Mr. Smith went to Washington. He said "Yes." Then U.S. troops left! Did 1990 come? (Applause.) Dr. No.'))
      .to.deep.equal(['Mr. Smith went to Washington.', 'He said "Yes."', 'Then U.S. troops left!', 'Did 1990 come?', '(Applause.)', 'Dr. No.']);
  });

  it('cuts an address into passages of consecutive sentences without losing any', () => {
    const [address] = syntheticAddresses(1, 5);
    const passages = passagesOf(address, 5);
    const all = splitSentences(address.text);
    expect(passages.flatMap((p) => p.sentences)).to.deep.equal(all);
    for (const p of passages.slice(0, -1)) expect(p.sentences).to.have.length(5);
    expect(passages[passages.length - 1].sentences.length).to.be.within(3, 7);
  });

  it('is deterministic for a seed and changes with it', () => {
    const addresses = syntheticAddresses(12, 9);
    const a = buildDataset(addresses, { seed: 1 });
    expect(buildDataset(addresses, { seed: 1 })).to.deep.equal(a);
    const b = buildDataset(addresses, { seed: 2 });
    expect(b.testAddresses).to.not.deep.equal(a.testAddresses);
  });

  for (const source of ['synthetic', 'State of the Union 2001-2021'] as const) {
    it(`${source}: no query inside its positive or any document; train/test split by address is disjoint`, () => {
      const addresses = source === 'synthetic' ? syntheticAddresses(10, 21) : loadAddresses([2001, 2021]);
      const d = buildDataset(addresses, { seed: 7, testFraction: 0.3 });
      expect(d.train.length).to.be.greaterThan(10);
      expect(d.test.queries.length).to.be.greaterThan(5);
      // addresses disjoint and complete
      expect(d.trainAddresses.filter((x) => d.testAddresses.includes(x))).to.deep.equal([]);
      expect(d.trainAddresses.length + d.testAddresses.length).to.equal(addresses.length);
      // every training example: query not inside its positive or its negatives
      for (const ex of d.train) {
        expect(ex.pos).to.have.length(1);
        expect(ex.pos[0].includes(ex.query), ex.query).to.equal(false);
        expect(ex.neg.length).to.be.within(1, 7);
        for (const n of ex.neg) expect(n).to.not.equal(ex.pos[0]);
      }
      // test: qrels point at existing docs; no query text inside any document
      const docs = new Map(d.test.corpus.map((c) => [c._id, c]));
      const queries = new Map(d.test.queries.map((q) => [q._id, q.text]));
      expect(d.test.qrels).to.have.length(d.test.queries.length);
      for (const q of d.test.qrels) {
        expect(docs.has(q.docId)).to.equal(true);
        expect(queries.has(q.queryId)).to.equal(true);
      }
      for (const [, text] of queries) for (const c of d.test.corpus) expect(c.text.includes(text)).to.equal(false);
      // the known item plus its document rebuild the original passage's sentences (as a set)
      const passages = new Map(addresses.flatMap((a) => passagesOf(a, 5)).map((p) => [p.id, p]));
      for (const q of d.test.qrels) {
        const p = passages.get(q.docId)!;
        expect(p.sentences).to.include(queries.get(q.queryId));
        expect(docs.get(q.docId)!.text).to.equal(p.sentences.filter((s) => s !== queries.get(q.queryId)).join(' '));
      }
      // nothing of a test address reaches training, and nothing of a training address the test corpus
      const testDocs = new Set(d.test.corpus.map((c) => c.text));
      for (const ex of d.train) {
        expect(testDocs.has(ex.pos[0])).to.equal(false);
        for (const n of ex.neg) expect(testDocs.has(n)).to.equal(false);
      }
      const testLabels = new Set(d.test.corpus.map((c) => c.title));
      expect([...testLabels].sort()).to.deep.equal([...d.testAddresses].sort());
    });
  }

  it('hard negatives come from the same address', () => {
    const addresses = syntheticAddresses(6, 33);
    const d = buildDataset(addresses, { seed: 3, testFraction: 0.3 });
    for (const ex of d.train) {
      const speech = /^Speech (\d+) /.exec(ex.pos[0])![1];
      for (const n of ex.neg) expect(/^Speech (\d+) /.exec(n)![1]).to.equal(speech);
    }
  });

  it('caps query counts and writes FlagEmbedding + BEIR files', () => {
    const d = buildDataset(syntheticAddresses(10, 4), { maxTrainQueries: 7, maxTestQueries: 5, seed: 4 });
    expect(d.train).to.have.length(7);
    expect(d.test.queries).to.have.length(5);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdr-demo-data-'));
    try {
      const { trainFile, testDir } = writeDataset(d, dir);
      const lines = (f: string) => fs.readFileSync(f, 'utf8').trim().split('\n');
      expect(lines(trainFile).map((l) => JSON.parse(l))).to.deep.equal(d.train);
      expect(lines(path.join(testDir, 'corpus.jsonl')).map((l) => JSON.parse(l))).to.deep.equal(d.test.corpus);
      expect(lines(path.join(testDir, 'queries.jsonl')).map((l) => JSON.parse(l))).to.deep.equal(d.test.queries);
      const qrels = lines(path.join(testDir, 'qrels', 'test.tsv'));
      expect(qrels[0]).to.equal('query-id\tcorpus-id\tscore');
      expect(qrels.slice(1).map((l) => l.split('\t'))).to.deep.equal(d.test.qrels.map((q) => [q.queryId, q.docId, '1']));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects bad options with a clear error', () => {
    expect(() => buildDataset(syntheticAddresses(3, 1), { testFraction: 1 })).to.throw(/testFraction/);
    expect(() => buildDataset(syntheticAddresses(1, 1))).to.throw(/at least 2 addresses/);
    expect(() => loadAddresses([1700, 1701])).to.throw(/no State of the Union/);
  });
});
