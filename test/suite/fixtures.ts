// Generated data for the suite tests: tiny BEIR folders, STS pairs, suite files, and the CLI
// run in process with stdout and stderr captured.
import fs from 'node:fs';
import path from 'node:path';
import { main } from '../../lib/cli/main.ts';
import { randInt } from '../helpers/rng.ts';
import { tinyWords } from '../helpers/tiny-models.ts';

type Rng = () => number;

export async function lmdr(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
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

export const sentence = (u: Rng, n: number) => Array.from({ length: n }, () => tinyWords[randInt(u, 0, 70)]).join(' ');

export interface BeirDoc { _id: string; title?: string; text: string }

/** A BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv. */
export function writeBeir(dir: string, docs: BeirDoc[], queries: { _id: string; text: string }[], qrels: [string, string, number][], split = 'test'): string {
  fs.mkdirSync(path.join(dir, 'qrels'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'corpus.jsonl'), docs.map((d) => JSON.stringify(d)).join('\n') + '\n');
  fs.writeFileSync(path.join(dir, 'queries.jsonl'), queries.map((q) => JSON.stringify(q)).join('\n') + '\n');
  fs.writeFileSync(path.join(dir, 'qrels', `${split}.tsv`), ['query-id\tcorpus-id\tscore', ...qrels.map((r) => r.join('\t'))].join('\n') + '\n');
  return dir;
}

/** A random BEIR folder: each query is a noisy copy of one passage, which is judged relevant, plus a second random judgement. */
export function randomBeir(dir: string, u: Rng, nDocs = 30, nQueries = 8, docLen: [number, number] = [3, 12]): string {
  const docs = Array.from({ length: nDocs }, (_, i) => ({ _id: `d${i}`, title: i % 3 === 0 ? '' : sentence(u, 2), text: sentence(u, randInt(u, docLen[0], docLen[1] + 1)) }));
  const queries = Array.from({ length: nQueries }, (_, i) => ({ _id: `q${i}`, text: `${docs[i * 3].text.split(' ').slice(0, 4).join(' ')} ${sentence(u, 2)}` }));
  // the second judgement: another passage (never the first one again)
  const qrels: [string, string, number][] = queries.flatMap((q, i) => [[q._id, `d${i * 3}`, 1], [q._id, `d${(i * 3 + randInt(u, 1, nDocs)) % nDocs}`, 2]] as [string, string, number][]);
  return writeBeir(dir, docs, queries, qrels);
}

export function writeJson(file: string, value: unknown): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(value, null, 2) + '\n');
  return file;
}

export const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8'));
export const logLines = (output: string) => fs.readFileSync(path.join(output, 'suite_log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { label: string; unit: string; status: string });
