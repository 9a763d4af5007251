import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { dataFingerprint, loadTrainData, Sampler, type TrainRecord } from '../../lib/train/data.ts';
import { UserError } from '../../lib/errors.ts';

function records(n: number, negs: (i: number) => number, poss = () => 1): TrainRecord[] {
  return Array.from({ length: n }, (_, i) => ({
    query: `q${i}`,
    pos: Array.from({ length: poss() }, (_, j) => `p${i}.${j}`),
    neg: Array.from({ length: negs(i) }, (_, j) => `n${i}.${j}`),
    line: i + 1,
  }));
}

function tmpFile(text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdr-train-data-'));
  const file = path.join(dir, 'train.jsonl');
  fs.writeFileSync(file, text);
  return file;
}

describe('train: data loading', () => {
  it('reads FlagEmbedding lines, skipping blank ones, keeping line numbers', async () => {
    const file = tmpFile('{"query":"a","pos":["b"],"neg":["c","d"]}\n\n{"query":"e","pos":["f","g"],"task":"qa"}\r\n');
    const recs = await loadTrainData(file);
    expect(recs).to.deep.equal([
      { query: 'a', pos: ['b'], neg: ['c', 'd'], task: undefined, line: 1 },
      { query: 'e', pos: ['f', 'g'], neg: [], task: 'qa', line: 3 },
    ]);
  });

  const bad: [string, string, RegExp][] = [
    ['malformed JSON', '{"query":"a","pos":["b"]}\n{"query": "x", pos}\n', /train\.jsonl:2: invalid JSON/],
    ['missing query', '{"pos":["b"]}\n', /train\.jsonl:1: missing "query"/],
    ['missing pos', '{"query":"a","pos":["b"]}\n{"query":"a","neg":["b"]}\n', /train\.jsonl:2: missing "pos"/],
    ['empty pos', '{"query":"a","pos":[]}\n', /train\.jsonl:1: "pos" is empty/],
    ['pos not strings', '{"query":"a","pos":[1]}\n', /train\.jsonl:1: "pos\[0\]" must be a string, got 1$/],
    ['neg not a list', '{"query":"a","pos":["b"],"neg":"c"}\n', /train\.jsonl:1: "neg" must be an array of strings, got the string "c"$/],
    ['not an object', '["a"]\n', /train\.jsonl:1: the line must be a JSON object \{"query", "pos", "neg"\}, got an array \(1 item\)$/],
    ['a task that is not a string', '{"query":"a","pos":["b"]}\n{"query":"a","pos":["b"],"task":3}\n', /train\.jsonl:2: "task" must be a string/],
    ['no records', '\n\n', /no training records/],
  ];
  for (const [what, text, re] of bad) {
    it(`rejects ${what} with file:line`, async () => {
      let err: unknown;
      try {
        await loadTrainData(tmpFile(text));
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(UserError);
      expect((err as Error).message).to.match(re);
    });
  }

  it('rejects a missing file naming it', async () => {
    let err: unknown;
    try {
      await loadTrainData('/nonexistent/train.jsonl');
    } catch (e) {
      err = e;
    }
    expect((err as Error).message).to.match(/\/nonexistent\/train\.jsonl/);
  });
});

describe('train: sampler', () => {
  it('each epoch visits every query once when the batch divides the data', () => {
    const s = new Sampler(records(12, () => 9), 4, 3, 7);
    expect(s.stepsPerEpoch).to.equal(3);
    for (let epoch = 0; epoch < 3; epoch++) {
      const seen = [0, 1, 2].flatMap((k) => s.batch(epoch * 3 + k).records);
      expect([...seen].sort((a, b) => a - b)).to.deep.equal([...Array(12).keys()]);
    }
    // a fresh permutation per epoch
    expect(s.batch(0).records).to.not.deep.equal(s.batch(3).records);
  });

  it('a short last step is filled from the start of the epoch: B distinct queries, ceil(N/B) steps', () => {
    const s = new Sampler(records(10, () => 9), 4, 2, 1);
    expect(s.stepsPerEpoch).to.equal(3);
    const steps = [0, 1, 2].map((k) => s.batch(k).records);
    for (const r of steps) expect(new Set(r).size).to.equal(4);
    expect(new Set(steps.flat()).size).to.equal(10);
    expect(steps[2].slice(2)).to.deep.equal(steps[0].slice(0, 2));
  });

  it('is a pure function of (seed, step): random access equals sequential, seeds differ', () => {
    const data = records(20, (i) => i % 5, () => 3);
    const a = new Sampler(data, 5, 4, 11);
    const seq = Array.from({ length: 9 }, (_, k) => a.batch(k));
    const b = new Sampler(data, 5, 4, 11);
    for (const k of [8, 3, 0, 5]) expect(b.batch(k)).to.deep.equal(seq[k]);
    const c = new Sampler(data, 5, 4, 12);
    expect(c.batch(0).records).to.not.deep.equal(seq[0].records);
  });

  it('lays out 1 positive then G-1 negatives per query', () => {
    const data = records(30, (i) => [0, 2, 7, 20][i % 4], () => 3);
    const G = 8;
    const s = new Sampler(data, 6, G, 3);
    const posSeen = new Set<string>();
    for (let step = 0; step < 20; step++) {
      const b = s.batch(step);
      expect(b.queries.length).to.equal(6);
      expect(b.passages.length).to.equal(6 * G);
      b.records.forEach((r, i) => {
        const rec = data[r];
        expect(b.queries[i]).to.equal(rec.query);
        const group = b.passages.slice(i * G, (i + 1) * G);
        expect(rec.pos).to.include(group[0]);
        posSeen.add(group[0]);
        const negs = group.slice(1);
        if (rec.neg.length >= G - 1) {
          expect(new Set(negs).size).to.equal(G - 1); // without replacement
          for (const n of negs) expect(rec.neg).to.include(n);
        } else if (rec.neg.length > 0) {
          // cycled: every negative used, counts differ by at most one
          const counts = rec.neg.map((n) => negs.filter((x) => x === n).length);
          expect(Math.min(...counts)).to.equal(Math.floor((G - 1) / rec.neg.length));
          expect(Math.max(...counts)).to.equal(Math.ceil((G - 1) / rec.neg.length));
        } else {
          // no negatives: positives of other records
          for (const n of negs) {
            expect(n).to.match(/^p\d+\.\d$/);
            expect(rec.pos).to.not.include(n);
          }
        }
      });
    }
    expect(posSeen.size).to.be.greaterThan(60); // positives are drawn among all three of each record
  });

  it('names where each text comes from (file:line and field), for messages', () => {
    const data = records(6, (i) => (i % 2 ? 3 : 0), () => 2);
    const s = new Sampler(data, 3, 3, 5, 'd.jsonl');
    for (let step = 0; step < 6; step++) {
      const b = s.batch(step);
      b.queries.forEach((q, i) => expect(b.querySources[i]).to.equal(`d.jsonl:${data[b.records[i]].line} query`));
      expect(b.passageSources.length).to.equal(b.passages.length);
      b.passages.forEach((text, j) => {
        const m = /^d\.jsonl:(\d+) (pos|neg)\[(\d+)\]$/.exec(b.passageSources[j]);
        expect(m, b.passageSources[j]).to.not.equal(null);
        const rec = data.find((r) => r.line === Number(m![1]))!;
        expect(rec[m![2] as 'pos' | 'neg'][Number(m![3])]).to.equal(text);
      });
    }
  });

  it('rejects group size < 2 and a batch larger than the data', () => {
    expect(() => new Sampler(records(5, () => 1), 2, 1, 0, 'd.jsonl')).to.throw(UserError, /--group-size must be an integer >= 2/);
    expect(() => new Sampler(records(5, () => 1), 6, 2, 0, 'd.jsonl')).to.throw(UserError, /--batch-size 6 is larger than the 5 queries in d\.jsonl/);
  });
});

describe('train: data fingerprint', () => {
  it('changes with any text and with field boundaries, not with line numbers', () => {
    const base = records(5, () => 2);
    const fp = dataFingerprint(base);
    expect(dataFingerprint(base.map((r) => ({ ...r, line: r.line + 10 })))).to.equal(fp);
    const edited = base.map((r, i) => (i === 3 ? { ...r, neg: [r.neg[0], r.neg[1] + 'x'] } : r));
    expect(dataFingerprint(edited)).to.not.equal(fp);
    const moved = base.map((r, i) => (i === 0 ? { ...r, pos: [...r.pos, r.neg[0]], neg: r.neg.slice(1) } : r));
    expect(dataFingerprint(moved)).to.not.equal(fp);
  });
});
