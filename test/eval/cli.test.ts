// lmdr search | metrics | eval through the CLI entry point (in process), on generated data and
// a tiny generated model; bad input gives one clear message and exit code 1.
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';

import { main } from '../../lib/cli/main.ts';
import { Engine } from '../../lib/engine.ts';
import { evaluateRun, parseMeasures } from '../../lib/eval/metrics.ts';
import { writeNpy } from '../../lib/formats/npy.ts';
import { readQrels } from '../../lib/formats/trec.ts';
import { normalRng, randInt, uniformRng } from '../helpers/rng.ts';
import { makeTinyModel, tinyWords } from '../helpers/tiny-models.ts';
import { tempDir } from '../helpers/tmp.ts';

/** Runs `lmdr ...argv`, capturing stdout and stderr. */
async function lmdr(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const w1 = process.stdout.write.bind(process.stdout);
  const w2 = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  try {
    const code = await main(argv);
    return { code, out, err };
  } finally {
    process.stdout.write = w1;
    process.stderr.write = w2;
  }
}

function runLines(file: string): string[][] {
  return fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => l.split(' '));
}

describe('cli: lmdr search and lmdr metrics', () => {
  const dir = tempDir('lmdr-search-cli-');
  const H = 12, N = 60, Q = 7;
  const g = normalRng(71);
  const corpus = Float32Array.from({ length: N * H }, () => g());
  const queries = Float32Array.from({ length: Q * H }, () => g());
  const f = (name: string) => path.join(dir, name);
  before(() => {
    writeNpy(f('c.npy'), { rows: N, cols: H, data: corpus });
    writeNpy(f('q.npy'), { rows: Q, cols: H, data: queries });
    fs.writeFileSync(f('qids.txt'), Array.from({ length: Q }, (_, i) => `q${i}`).join('\n') + '\n');
    fs.writeFileSync(f('dids.txt'), Array.from({ length: N }, (_, i) => `doc${i}`).join('\n') + '\n');
  });

  it('writes K ranked lines per query equal to a brute-force search, with ids from files', async () => {
    const r = await lmdr('search', '--queries', f('q.npy'), '--corpus', f('c.npy'), '--k', '5', '--output', f('run.trec'),
      '--query-ids', f('qids.txt'), '--corpus-ids', f('dids.txt'), '--no-progress');
    expect(r.code, r.err).to.equal(0);
    const lines = runLines(f('run.trec'));
    expect(lines.length).to.equal(Q * 5);
    for (let q = 0; q < Q; q++) {
      const scores = Array.from({ length: N }, (_, n) => {
        let s = 0;
        for (let h = 0; h < H; h++) s += queries[q * H + h] * corpus[n * H + h];
        return [s, n];
      }).sort((a, b) => b[0] - a[0]);
      const mine = lines.filter((l) => l[0] === `q${q}`);
      expect(mine.map((l) => l[2])).to.deep.equal(scores.slice(0, 5).map(([, n]) => `doc${n}`));
      expect(mine.map((l) => l[3])).to.deep.equal(['1', '2', '3', '4', '5']);
      mine.forEach((l, j) => {
        expect(l[1]).to.equal('Q0');
        expect(l[5]).to.equal('lmdr');
        expect(Number(l[4])).to.be.closeTo(scores[j][0], 1e-4);
      });
    }
  });

  it('defaults ids to row numbers; k above the corpus returns every row with a note', async () => {
    const r = await lmdr('search', '--queries', f('q.npy'), '--corpus', f('c.npy'), '--k', '100', '--output', f('all.trec'), '--no-progress');
    expect(r.code, r.err).to.equal(0);
    expect(r.err).to.match(/larger than the corpus \(60 rows\)/);
    const lines = runLines(f('all.trec'));
    expect(lines.length).to.equal(Q * N);
    expect(new Set(lines.filter((l) => l[0] === '0').map((l) => l[2])).size).to.equal(N);
  });

  it('lmdr metrics prints one JSON object equal to evaluateRun on the same files', async () => {
    // qrels: for each query, two random docs with grades 1..2 and one judged 0
    const u = uniformRng(72);
    const lines: string[] = [];
    for (let q = 0; q < Q; q++) for (let j = 0; j < 3; j++) lines.push(`q${q} 0 doc${randInt(u, 0, N)}${j === 2 ? '' : ''} ${j === 2 ? 0 : randInt(u, 1, 3)}`);
    // drop accidental duplicates (an error in qrels)
    const uniq = [...new Map(lines.map((l) => [l.split(' ').slice(0, 3).join(' '), l])).values()];
    fs.writeFileSync(f('qrels.txt'), uniq.join('\n') + '\n');
    const r = await lmdr('metrics', '--qrels', f('qrels.txt'), '--run', f('run.trec'), '--measures', 'ndcg@5,mrr@10,recall@5,p@5', '--per-query');
    expect(r.code, r.err).to.equal(0);
    const printed = JSON.parse(r.out);
    expect(Object.keys(printed)).to.deep.equal(['ndcg@5', 'mrr@10', 'recall@5', 'p@5', 'per_query']);
    const { readTrecRun } = await import('../../lib/formats/trec.ts');
    const want = evaluateRun(await readQrels(f('qrels.txt')), (await readTrecRun(f('run.trec'))).run, parseMeasures('ndcg@5,mrr@10,recall@5,p@5'));
    for (const [key, v] of Object.entries(want.means)) expect(printed[key]).to.equal(v);
    expect(Object.keys(printed.per_query).length).to.equal(Q);
  });

  it('bad input: one clear message, exit code 1', async () => {
    fs.writeFileSync(f('bad-ids.txt'), 'a\nb\n');
    const cases: [string[], RegExp][] = [
      [['search', '--queries', f('missing.npy'), '--corpus', f('c.npy'), '--k', '5', '--output', f('x.trec')], /missing.npy: cannot open/],
      [['search', '--queries', f('q.npy'), '--corpus', f('c.npy'), '--k', '0', '--output', f('x.trec')], /--k expects a positive integer, got "0"/],
      [['search', '--queries', f('q.npy'), '--corpus', f('c.npy'), '--k', '5', '--output', f('x.trec'), '--corpus-ids', f('bad-ids.txt')], /bad-ids.txt: 2 ids for 60 rows/],
      [['search', '--queries', f('q.npy'), '--corpus', f('c.npy'), '--output', f('x.trec')], /--k is required/],
      [['metrics', '--qrels', f('qrels.txt'), '--run', f('nope.trec')], /nope.trec: file not found/],
      [['metrics', '--qrels', f('qrels.txt'), '--run', f('run.trec'), '--measures', 'ndcg@5,err@3'], /unknown measure "err@3"/],
    ];
    fs.writeFileSync(f('dup-ids.txt'), Array.from({ length: N }, (_, i) => (i === 7 ? 'doc3' : `doc${i}`)).join('\n') + '\n');
    cases.push([['search', '--queries', f('q.npy'), '--corpus', f('c.npy'), '--k', '5', '--output', f('x.trec'), '--corpus-ids', f('dup-ids.txt')],
      /dup-ids.txt:8: duplicate corpus id "doc3" \(first at line 4\)/]);
    cases.push([['search', '--queries', f('q.npy'), '--corpus', f('c.npy'), '--k', '5', '--output', f('x.trec'), '--index', 'annoy'],
      /--index must be exact, hnsw or faiss, got "annoy"/]);
    cases.push([['metrics', '--run', f('run.trec')], /--qrels FILE is required/]);
    fs.writeFileSync(f('other.trec'), 'zz Q0 doc1 1 0.5 t\n');
    cases.push([['metrics', '--qrels', f('qrels.txt'), '--run', f('other.trec')], /no query of the run/]);
    for (const [argv, pattern] of cases) {
      const r = await lmdr(...argv);
      expect(r.code, argv.join(' ')).to.equal(1);
      expect(r.err).to.match(pattern);
      expect(r.err.trim().split('\n')).to.have.length(1);
      expect(r.err.trim()).to.match(/^lmdr (search|metrics): /);
    }
    expect(fs.existsSync(f('x.trec'))).to.equal(false);
  });
});

describe('cli: lmdr eval end to end on a generated BEIR folder', function () {
  this.timeout(300000);
  const root = tempDir('lmdr-eval-cli-');
  const beir = path.join(root, 'tinybeir');
  let model: string;
  const nDocs = 40;
  const u = uniformRng(81);
  const sentence = (n: number) => Array.from({ length: n }, () => tinyWords[randInt(u, 0, 70)]).join(' ');
  const docs = Array.from({ length: nDocs }, (_, i) => ({ _id: `d${i}`, title: i % 3 === 0 ? '' : sentence(2), text: sentence(randInt(u, 3, 12)) }));
  const passage = (d: { title: string; text: string }) => (d.title ? `${d.title} ${d.text}` : d.text);

  before(() => {
    model = makeTinyModel({ arch: 'qwen2', seed: 82, tokenizer: true });
    fs.mkdirSync(path.join(beir, 'qrels'), { recursive: true });
    fs.writeFileSync(path.join(beir, 'corpus.jsonl'), docs.map((d) => JSON.stringify(d)).join('\n') + '\n');
    // q0..q9 ask with exactly the text of their relevant passage: it is their top hit.
    // "d20" shares its id with a passage it retrieves first (dropped under BEIR's convention).
    const queries = [
      ...Array.from({ length: 10 }, (_, i) => ({ _id: `q${i}`, text: passage(docs[i * 2]) })),
      { _id: 'd20', text: passage(docs[20]) },
      { _id: 'unjudged', text: 'not in the qrels' },
    ];
    fs.writeFileSync(path.join(beir, 'queries.jsonl'), queries.map((q) => JSON.stringify(q)).join('\n') + '\n');
    const qrels = ['query-id\tcorpus-id\tscore', ...Array.from({ length: 10 }, (_, i) => `q${i}\td${i * 2}\t1`), 'd20\td20\t1', 'd20\td21\t1'];
    fs.writeFileSync(path.join(beir, 'qrels', 'test.tsv'), qrels.join('\n') + '\n');
  });

  it('writes run.trec, metrics.json and corpus embeddings; metrics match an independent search', async () => {
    const out = path.join(root, 'out');
    const r = await lmdr('eval', '--model', model, '--beir', beir, '--k', '10', '--output', out, '--device', 'cpu',
      '--measures', 'mrr@10,recall@10,ndcg@10', '--no-progress', '--passage-max-len', '64', '--max-tokens', '64');
    expect(r.code, r.err).to.equal(0);
    const printed = JSON.parse(r.out);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8'))).to.deep.equal(printed);
    for (const f of ['run.trec', 'corpus/embeddings.npy', 'corpus/ids.txt', 'corpus/meta.json']) expect(fs.existsSync(path.join(out, f)), f).to.equal(true);
    const lines = runLines(path.join(out, 'run.trec'));
    expect(lines.length).to.equal(11 * 10); // judged queries only, 10 hits each

    // Independent path: embed with the Engine, brute-force top-10 in JS, score with the metrics.
    const engine = await Engine.load(model, { device: 'cpu' });
    try {
      const P = await engine.encode(docs.map(passage), { maxLength: 64 });
      const qTexts = [...Array.from({ length: 10 }, (_, i) => passage(docs[i * 2])), passage(docs[20])];
      const qIds = [...Array.from({ length: 10 }, (_, i) => `q${i}`), 'd20'];
      const E = await engine.encode(qTexts, { maxLength: 64 });
      const run = new Map<string, Map<string, number>>();
      qIds.forEach((qid, qi) => {
        // BEIR: the self-hit is skipped and the next doc takes its place (10 hits remain)
        const scored = docs.map((d, n) => {
          let s = 0;
          for (let h = 0; h < engine.dim; h++) s += E.data[qi * engine.dim + h] * P.data[n * engine.dim + h];
          return [d._id, s] as [string, number];
        }).sort((a, b) => b[1] - a[1]).filter(([id]) => id !== qid).slice(0, 10);
        run.set(qid, new Map(scored));
      });
      const qrels = await readQrels(path.join(beir, 'qrels', 'test.tsv'));
      const want = evaluateRun(qrels, run, parseMeasures('mrr@10,recall@10,ndcg@10'), { perQuery: true });
      expect(lines.filter((l) => l[0] === 'd20').map((l) => l[2])).to.deep.equal([...run.get('d20')!.keys()]);
      for (const key of ['mrr@10', 'recall@10', 'ndcg@10']) expect(printed[key]).to.be.closeTo(want.means[key], 1e-6);
      // the oracle itself: identical text ranks its own passage first
      for (let i = 0; i < 10; i++) expect(want.perQuery![`q${i}`]['mrr@10']).to.equal(1);
      // d20 with its own passage dropped: its other relevant doc decides
      expect(want.perQuery!.d20['recall@10']).to.be.at.most(0.5);
    } finally {
      engine.dispose();
    }

    // a second eval reuses the corpus embeddings and gives the same numbers; --keep-self changes d20
    const again = await lmdr('eval', '--model', model, '--beir', beir, '--k', '10', '--output', out, '--device', 'cpu',
      '--measures', 'mrr@10,recall@10,ndcg@10', '--no-progress', '--passage-max-len', '64', '--keep-self');
    expect(again.code, again.err).to.equal(0);
    expect(again.err).to.match(/corpus embeddings reused/);
    const kept = JSON.parse(again.out);
    expect(kept['mrr@10']).to.be.above(printed['mrr@10'] - 1e-12);
    expect(kept['recall@10']).to.be.above(printed['recall@10']);
  });

  it('--adapter changes the embeddings, so cached corpus embeddings are not reused', async () => {
    const { writeAdapter } = await import('../../lib/adapters/peft.ts');
    const { readNpy } = await import('../../lib/formats/npy.ts');
    const adapter = path.join(root, 'adapter');
    const g = normalRng(83);
    const rand = (n: number) => Float32Array.from({ length: n }, () => 0.5 * g());
    const params = [0, 1].flatMap((l) => [
      { name: `layers.${l}.self_attn.q_proj.lora_A.weight`, shape: [2, 32], data: rand(64) },
      { name: `layers.${l}.self_attn.q_proj.lora_B.weight`, shape: [32, 2], data: rand(64) },
    ]);
    writeAdapter(adapter, { r: 2, alpha: 4, dropout: 0, targets: ['q_proj'], baseModel: model }, params);
    const out = path.join(root, 'out-adapter');
    const flags = ['--beir', beir, '--k', '10', '--output', out, '--device', 'cpu', '--no-progress', '--passage-max-len', '64'];
    const base = await lmdr('eval', '--model', model, ...flags);
    expect(base.code, base.err).to.equal(0);
    const baseEmb = readNpy(path.join(out, 'corpus', 'embeddings.npy')).data.slice();
    const withAdapter = await lmdr('eval', '--model', model, '--adapter', adapter, ...flags);
    expect(withAdapter.code, withAdapter.err).to.equal(0);
    expect(withAdapter.err).to.not.match(/reused/);
    const adapted = readNpy(path.join(out, 'corpus', 'embeddings.npy')).data;
    let diff = 0;
    for (let i = 0; i < adapted.length; i++) diff = Math.max(diff, Math.abs(adapted[i] - baseEmb[i]));
    expect(diff).to.be.above(1e-3);
    // the adapted corpus embeddings equal the Engine's own encoding with that adapter
    const engine = await Engine.load(model, { device: 'cpu', adapter });
    try {
      const P = await engine.encode(docs.map(passage), { maxLength: 64 });
      for (let i = 0; i < adapted.length; i++) expect(adapted[i]).to.be.closeTo(P.data[i], 1e-5);
    } finally {
      engine.dispose();
    }
  });

  it('bad input: missing split, malformed corpus line, query without text', async () => {
    const r1 = await lmdr('eval', '--model', model, '--beir', beir, '--split', 'dev', '--device', 'cpu', '--output', path.join(root, 'o1'));
    expect(r1.code).to.equal(1);
    expect(r1.err).to.match(/qrels for split "dev" .*dev.tsv: file not found/);

    const broken = path.join(root, 'broken');
    fs.cpSync(beir, broken, { recursive: true });
    fs.appendFileSync(path.join(broken, 'corpus.jsonl'), '{"_id": "x", "text": "ok"}\n{"_id": "y", "text": \n');
    const r2 = await lmdr('eval', '--model', model, '--beir', broken, '--device', 'cpu', '--output', path.join(root, 'o2'), '--no-progress');
    expect(r2.code).to.equal(1);
    expect(r2.err).to.match(/corpus.jsonl:42: invalid JSON/);

    const noText = path.join(root, 'notext');
    fs.cpSync(beir, noText, { recursive: true });
    fs.appendFileSync(path.join(noText, 'qrels', 'test.tsv'), 'ghost\td1\t1\n');
    const r3 = await lmdr('eval', '--model', model, '--beir', noText, '--device', 'cpu', '--output', path.join(root, 'o3'), '--no-progress');
    expect(r3.code).to.equal(1);
    expect(r3.err).to.match(/query "ghost" has judgements but no text/);
  });
});

describe('cli: lmdr eval on a generated MS MARCO folder', function () {
  this.timeout(300000);
  it('reads collection.tsv / queries.<split>.tsv / TREC qrels, errors name file:line', async () => {
    const root = tempDir('lmdr-msmarco-');
    const model = makeTinyModel({ arch: 'llama', seed: 91, tokenizer: true });
    const u = uniformRng(92);
    const sentence = (n: number) => Array.from({ length: n }, () => tinyWords[randInt(u, 0, 70)]).join(' ');
    const passages = Array.from({ length: 30 }, () => sentence(randInt(u, 3, 10)));
    fs.writeFileSync(path.join(root, 'collection.tsv'), passages.map((p, i) => `${100 + i}\t${p}`).join('\n') + '\n');
    // 4 queries copy a passage's text, so each one's own passage ranks first.
    fs.writeFileSync(path.join(root, 'queries.dev.tsv'), [0, 1, 2, 3].map((i) => `${i}\t${passages[i * 5]}`).join('\n') + '\n');
    fs.writeFileSync(path.join(root, 'qrels.dev.tsv'), [0, 1, 2, 3].map((i) => `${i}\t0\t${100 + i * 5}\t1`).join('\n') + '\n');
    const out = path.join(root, 'out');
    const r = await lmdr('eval', '--model', model, '--msmarco', root, '--k', '5', '--output', out, '--device', 'cpu',
      '--measures', 'mrr@10,recall@5', '--no-progress', '--all-queries');
    expect(r.code, r.err).to.equal(0);
    const m = JSON.parse(r.out);
    expect(m['mrr@10']).to.equal(1); // each query's own passage ranks first
    expect(m['recall@5']).to.equal(1);
    const lines = runLines(path.join(out, 'run.trec'));
    expect(lines.length).to.equal(4 * 5);
    expect(lines[0][2]).to.equal('100');

    fs.appendFileSync(path.join(root, 'collection.tsv'), 'no tab here\n');
    const bad = await lmdr('eval', '--model', model, '--msmarco', root, '--output', path.join(root, 'o2'), '--device', 'cpu', '--no-progress');
    expect(bad.code).to.equal(1);
    expect(bad.err).to.match(/collection.tsv:31: expected "id<TAB>text"/);
  });
});
