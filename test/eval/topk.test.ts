// Native exact top-k against a brute-force JavaScript top-k, on corpora spanning several blocks
// and several internal score tiles.
import { expect } from 'chai';

import { native } from '../../lib/native.ts';
import { CorpusIndex, HnswIndex } from '../../lib/search/index.ts';
import { normalRng, randInt, uniformRng } from '../helpers/rng.ts';
import { expectReject } from '../helpers/reject.ts';
import { loopTurnsDuring } from '../helpers/event-loop.ts';

/** Brute force in float64: [score, row] sorted by score desc, row asc. */
function bruteForce(q: Float32Array, c: Float32Array, qi: number, N: number, H: number): [number, number][] {
  const all: [number, number][] = [];
  for (let n = 0; n < N; n++) {
    let s = 0;
    for (let h = 0; h < H; h++) s += q[qi * H + h] * c[n * H + h];
    all.push([s, n]);
  }
  return all.sort((a, b) => b[0] - a[0] || a[1] - b[1]);
}

function smallInts(n: number, seed: number): Float32Array {
  const u = uniformRng(seed);
  return Float32Array.from({ length: n }, () => randInt(u, -2, 3));
}

function gaussian(n: number, seed: number): Float32Array {
  const g = normalRng(seed);
  return Float32Array.from({ length: n }, () => g());
}

describe('topk: native exact search', () => {
  const topk = (...args: Parameters<ReturnType<typeof native>['topk']>) => native().topk(...args);

  for (const device of ['cpu', 'cpu-f64']) {
    it(`${device}: integer scores with many ties equal brute force exactly (ties by smaller row)`, async () => {
      // N > one block (blockRows 700) and > one 2048-row score tile; Q > one 512-query tile.
      const Q = 600, N = 5000, H = 16, k = 50;
      const q = smallInts(Q * H, 11), c = smallInts(N * H, 12);
      const r = await topk(q, c, Q, N, H, k, device, 700);
      expect(r.k).to.equal(k);
      for (let qi = 0; qi < Q; qi++) {
        const want = bruteForce(q, c, qi, N, H).slice(0, k);
        const gotIds = Array.from(r.ids.subarray(qi * k, (qi + 1) * k), Number);
        const gotScores = Array.from(r.scores.subarray(qi * k, (qi + 1) * k));
        expect(gotIds, `query ${qi}`).to.deep.equal(want.map((w) => w[1]));
        expect(gotScores, `query ${qi}`).to.deep.equal(want.map((w) => w[0]));
      }
    });
  }

  it('gaussian data: the right set up to float32 rounding, sorted, scores accurate', async () => {
    const Q = 40, N = 3000, H = 64, k = 100;
    const q = gaussian(Q * H, 21), c = gaussian(N * H, 22);
    const r = await topk(q, c, Q, N, H, k, 'cpu', 1000);
    for (let qi = 0; qi < Q; qi++) {
      const exact = bruteForce(q, c, qi, N, H);
      const f64 = new Map(exact.map(([s, n]) => [n, s]));
      const ids = Array.from(r.ids.subarray(qi * k, (qi + 1) * k), Number);
      const scores = r.scores.subarray(qi * k, (qi + 1) * k);
      expect(new Set(ids).size).to.equal(k);
      for (let j = 0; j < k; j++) {
        expect(scores[j]).to.be.closeTo(f64.get(ids[j])!, 1e-4);
        if (j > 0) expect(scores[j]).to.be.at.most(scores[j - 1]);
      }
      // every row left out scores no higher than the weakest row kept (allowing rounding)
      const kthExact = exact[k - 1][0];
      for (const id of ids) expect(f64.get(id)!).to.be.at.least(kthExact - 1e-4);
      expect(exact[k][0]).to.be.at.most(Math.min(...ids.map((id) => f64.get(id)!)) + 1e-4);
    }
  });

  it('k larger than the corpus returns every row; k = 2048 works', async () => {
    const Q = 3, N = 10, H = 8;
    const q = gaussian(Q * H, 31), c = gaussian(N * H, 32);
    const r = await topk(q, c, Q, N, H, 25, 'cpu');
    expect(r.k).to.equal(N);
    expect(r.ids.length).to.equal(Q * N);
    for (let qi = 0; qi < Q; qi++) {
      expect(Array.from(r.ids.subarray(qi * N, (qi + 1) * N), Number).sort((a, b) => a - b)).to.deep.equal([...Array(N).keys()]);
    }
    const N2 = 2500;
    const c2 = smallInts(N2 * H, 33), q2 = smallInts(2 * H, 34);
    const r2 = await topk(q2, c2, 2, N2, H, 2048, 'cpu', 999);
    expect(r2.k).to.equal(2048);
    for (let qi = 0; qi < 2; qi++) {
      const want = bruteForce(q2, c2, qi, N2, H).slice(0, 2048).map((w) => w[1]);
      expect(Array.from(r2.ids.subarray(qi * 2048, (qi + 1) * 2048), Number)).to.deep.equal(want);
    }
  });

  it('runs off the main thread: a Promise, and the event loop turns while it works', async () => {
    const Q = 64, N = 60000, H = 64;
    const q = gaussian(Q * H, 35), c = gaussian(N * H, 36);
    expect(await loopTurnsDuring(() => topk(q, c, Q, N, H, 10, 'cpu'))).to.be.above(0);
  });

  it('rejects NaN inputs, overflowing scores, wrong sizes and bad k with clear errors', async () => {
    const H = 4;
    const q = gaussian(2 * H, 41), c = gaussian(5 * H, 42);
    const bad = c.slice();
    bad[3 * H + 2] = NaN;
    await expectReject(topk(q, bad, 2, 5, H, 2, 'cpu'), /corpus row 3, column 2 is NaN/);
    const qbad = q.slice();
    qbad[1] = Infinity;
    await expectReject(topk(qbad, c, 2, 5, H, 2, 'cpu'), /queries row 0, column 1 is infinite/);
    const huge = new Float32Array(5 * H).fill(3e38);
    await expectReject(topk(new Float32Array(2 * H).fill(3e38), huge, 2, 5, H, 2, 'cpu'), /is infinite .*overflow/);
    expect(() => topk(q, c, 2, 6, H, 2, 'cpu')).to.throw(/corpus has 20 floats, expected 24/);
    expect(() => topk(q, c, 2, 5, H, 0, 'cpu')).to.throw(/k must be an integer >= 1/);
    expect(() => topk(q, c, 2, 5, H, 2, 'tpu')).to.throw(/unknown device 'tpu'/);
  });
});

describe('search: index engines', () => {
  it('CorpusIndex.add in pieces, custom ids, and save/load round trip', async () => {
    const H = 8, N = 300;
    const c = gaussian(N * H, 51), q = gaussian(5 * H, 52);
    const ids = Array.from({ length: N }, (_, i) => `doc-${i}`);
    const index = new CorpusIndex(H);
    index.add(c.subarray(0, 100 * H), ids.slice(0, 100));
    index.add(c.subarray(100 * H), ids.slice(100));
    const r = await index.search(q, 7);
    for (let qi = 0; qi < 5; qi++) {
      const want = bruteForce(q, c, qi, N, H).slice(0, 7).map((w) => w[1]);
      expect(Array.from(r.rows.subarray(qi * 7, qi * 7 + 7))).to.deep.equal(want);
    }
    expect(index.id(r.rows[0])).to.equal(`doc-${r.rows[0]}`);
    const { loadIndex } = await import('../../lib/search/index.ts');
    const fs = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdr-index-'));
    try {
      await index.save(dir);
      const back = await loadIndex(dir);
      expect(back.size).to.equal(N);
      expect(back.id(299)).to.equal('doc-299');
      const r2 = await back.search(q, 7);
      expect(Array.from(r2.rows)).to.deep.equal(Array.from(r.rows));
      expect(() => index.add(c.subarray(0, H), ['has space'])).to.throw(/whitespace/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('searchToRun writes the run under a temp name: a failure half-way leaves no file', async () => {
    const { searchToRun } = await import('../../lib/search/run.ts');
    const fs = await import('node:fs');
    const path = await import('node:path');
    const { tempDir } = await import('../helpers/tmp.ts');
    const H = 4, N = 20, Q = 6;
    const index = new CorpusIndex(H);
    index.add(gaussian(N * H, 53));
    const q = gaussian(Q * H, 54);
    const dir = tempDir('lmdr-run-');
    const qids = Array.from({ length: Q }, (_, i) => `q${i}`);
    // a complete run: Q x 3 lines
    await searchToRun(index, q, qids, 3, { output: path.join(dir, 'ok.trec'), queryChunk: 2 });
    expect(fs.readFileSync(path.join(dir, 'ok.trec'), 'utf8').trim().split('\n')).to.have.length(Q * 3);
    // the second query chunk fails: nothing named bad.trec, no temp file left
    let calls = 0;
    const failing = Object.assign(Object.create(index), {
      search: (qs: Float32Array, k: number) => (++calls === 2 ? Promise.reject(new Error('device lost')) : index.search(qs, k)),
    });
    await expectReject(searchToRun(failing, q, qids, 3, { output: path.join(dir, 'bad.trec'), queryChunk: 2 }), /device lost/);
    expect(fs.readdirSync(dir)).to.deep.equal(['ok.trec']);

    // dropSelf: a query named like a corpus row never gets that row, and still gets k hits
    const named = new CorpusIndex(H);
    named.add(index.vectors.slice(), Array.from({ length: N }, (_, i) => `q${i}`));
    const selfQueries = named.vectors.slice(0, Q * H); // query i is row i: its own best hit
    const run = (await searchToRun(named, selfQueries, qids, 3, { keep: true, dropSelf: true }))!;
    for (let i = 0; i < Q; i++) {
      const want = bruteForce(selfQueries, named.vectors, i, N, H).map(([, n]) => `q${n}`).filter((id) => id !== `q${i}`).slice(0, 3);
      expect([...run.get(`q${i}`)!.keys()]).to.deep.equal(want);
    }
  });

  it('HnswIndex (usearch) finds the exact neighbours on a small easy set', async () => {
    const H = 16, N = 500;
    const c = gaussian(N * H, 61);
    const index = new HnswIndex(H);
    index.add(c);
    // queries = corpus rows 0..9; compare with the exact index
    const q = c.slice(0, 10 * H);
    const exact = new CorpusIndex(H);
    exact.add(c);
    const want = await exact.search(q, 5);
    const got = await index.search(q, 5);
    let agree = 0;
    for (let i = 0; i < want.rows.length; i++) if (got.rows.includes(want.rows[i])) agree++;
    expect(agree / want.rows.length).to.be.at.least(0.9);
    for (let i = 0; i < got.rows.length; i++) {
      if (got.rows[i] < 0) continue;
      let dot = 0;
      const qi = Math.floor(i / got.k), row = got.rows[i];
      for (let h = 0; h < H; h++) dot += q[qi * H + h] * c[row * H + h];
      expect(got.scores[i]).to.be.closeTo(dot, 1e-3);
    }
  });
});
