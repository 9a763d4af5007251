// Corpus indexes: embeddings + ids, searched by inner product. One interface, three engines:
// - CorpusIndex: exact top-k in the native core (any k, corpus streamed in blocks).
// - HnswIndex: approximate search through usearch (HNSW, CPU), when it is installed.
// - FaissIndex: faiss-node's flat inner-product index, only when the user installed it
//   (it needs GitHub access to install, so it is never a dependency).
// All three save the same files: DIR/embeddings.npy (float32 [N, H]) and DIR/ids.txt (one id
// per line, row order); an index is rebuilt from them on load.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

import { UserError } from '../errors.ts';
import { readLines, TextWriter } from '../formats/lines.ts';
import { readNpy, writeNpy } from '../formats/npy.ts';
import { native, type DeviceName } from '../native.ts';
import { describeValue, instance, number, object, oneOf, optional, parse, string, type Infer } from '../schema.ts';

/** Top-k hits of every query, best first. */
export interface SearchResult {
  numQueries: number;
  k: number; // columns per query
  scores: Float32Array; // [Q, k] inner products; -Infinity where a query has fewer hits
  rows: Int32Array; // [Q, k] corpus row numbers; -1 where a query has fewer hits
}

export interface VectorIndex {
  readonly dim: number;
  readonly size: number;
  /** The id of corpus row `row`. */
  id(row: number): string;
  /** Append rows (vectors: [n, dim] row-major); ids default to the row numbers. */
  add(vectors: Float32Array, ids?: string[]): void;
  search(queries: Float32Array, k: number): Promise<SearchResult>;
  save(dir: string): Promise<void>;
}

export const INDEX_KINDS = ['exact', 'hnsw', 'faiss'] as const;
export type IndexKind = (typeof INDEX_KINDS)[number];

/** An id must survive a TREC run line: non-empty, no whitespace. */
export function checkId(id: string, where: string): void {
  if (id === '' || /\s/.test(id)) throw new UserError(`${where}: id ${JSON.stringify(id)} is empty or contains whitespace (TREC run files cannot hold it)`);
}

/** Every value of a row-major [rows, cols] matrix must be finite; the error names `where`, the row and the column. */
export function checkFinite(data: Float32Array, cols: number, where: string, firstRow = 0): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      throw new UserError(`${where}: row ${firstRow + Math.floor(i / cols)}, column ${i % cols} is ${data[i]}; embeddings must be finite`);
    }
  }
}

/** Reads one id per line (blank lines are errors: they would shift every later row). */
export async function readIds(file: string, what = 'id file'): Promise<string[]> {
  const ids: string[] = [];
  for await (const { text, lineNo } of readLines(file, what)) {
    const id = text.trim();
    checkId(id, `${file}:${lineNo}`);
    ids.push(id);
  }
  return ids;
}

/** Vectors and ids held in growable host memory; what every engine shares. */
abstract class StoredVectors implements VectorIndex {
  protected data: Float32Array;
  protected ids: string[] | null = null; // null: ids are row numbers
  private rows = 0;

  constructor(readonly dim: number, capacity = 0) {
    if (!Number.isSafeInteger(dim) || dim < 1) throw new UserError(`${new.target.name}: dim must be an integer >= 1, got ${describeValue(dim)}`);
    this.data = new Float32Array(Math.max(capacity, 1) * dim);
  }

  get size(): number {
    return this.rows;
  }

  /** The stored [size, dim] matrix (a view, no copy). */
  get vectors(): Float32Array {
    return this.data.subarray(0, this.rows * this.dim);
  }

  id(row: number): string {
    return this.ids ? this.ids[row] : String(row);
  }

  /** Checks rows about to become rows first.. of the index; returns how many there are. `source` names them in errors. */
  private validate(vectors: unknown, ids: unknown, first: number, source: string): number {
    if (!(vectors instanceof Float32Array)) {
      throw new UserError(`${source}: vectors must be a Float32Array ([rows, ${this.dim}] row-major), got ${describeValue(vectors)}`);
    }
    if (ids !== undefined && !(Array.isArray(ids) && ids.every((id) => typeof id === 'string'))) {
      throw new UserError(`${source}: ids must be an array of strings, got ${describeValue(ids)}`);
    }
    if (vectors.length % this.dim !== 0) throw new UserError(`${source}: ${vectors.length} values is not a whole number of ${this.dim}-dim rows`);
    const n = vectors.length / this.dim;
    if (ids && ids.length !== n) throw new UserError(`${source}: ${n} vectors but ${ids.length} ids`);
    checkFinite(vectors, this.dim, source, first);
    (ids as string[] | undefined)?.forEach((id, i) => checkId(id, `${source}: row ${first + i}`));
    return n;
  }

  add(vectors: Float32Array, ids?: string[]): void {
    const n = this.validate(vectors, ids, this.rows, 'add');
    if (ids) {
      if (!this.ids) this.ids = Array.from({ length: this.rows }, (_, i) => String(i));
      for (const id of ids) this.ids.push(id);
    } else if (this.ids) {
      for (let i = 0; i < n; i++) this.ids.push(String(this.rows + i));
    }
    const needed = (this.rows + n) * this.dim;
    if (needed > this.data.length) {
      const grown = new Float32Array(Math.max(needed, this.data.length * 2));
      grown.set(this.data.subarray(0, this.rows * this.dim));
      this.data = grown;
    }
    this.data.set(vectors, this.rows * this.dim);
    const first = this.rows;
    this.rows += n;
    this.added(first, n);
  }

  /** Like add(vectors, ids) on an empty index, but keeps `vectors` itself (no copy of a large
   * corpus): the caller must not modify it afterwards. */
  adopt(vectors: Float32Array, ids?: string[], source = 'adopt'): void {
    if (this.rows !== 0) throw new Error('adopt: the index is not empty');
    const n = this.validate(vectors, ids, 0, source);
    this.ids = ids ? ids.slice() : null;
    this.data = vectors;
    this.rows = n;
    this.added(0, n);
  }

  /** Engines that keep their own structure index rows [first, first + n) here. */
  protected added(_first: number, _n: number): void {}

  abstract search(queries: Float32Array, k: number): Promise<SearchResult>;

  protected checkQueries(queries: Float32Array, k: number): number {
    if (!(queries instanceof Float32Array)) throw new UserError(`search: queries must be a Float32Array ([queries, ${this.dim}] row-major), got ${describeValue(queries)}`);
    if (queries.length % this.dim !== 0) throw new UserError(`search: query length ${queries.length} is not a multiple of the index dimension ${this.dim}`);
    if (!Number.isSafeInteger(k) || k < 1) throw new UserError(`search: k must be an integer >= 1, got ${describeValue(k)}`);
    if (this.rows === 0) throw new UserError('search: the index is empty');
    checkFinite(queries, this.dim, 'search: queries');
    return queries.length / this.dim;
  }

  async save(dir: string): Promise<void> {
    parse(string({ nonEmpty: true }), dir, { where: 'save', label: () => 'dir' });
    fs.mkdirSync(dir, { recursive: true });
    writeNpy(path.join(dir, 'embeddings.npy'), { rows: this.rows, cols: this.dim, data: this.vectors });
    const out = new TextWriter(path.join(dir, 'ids.txt'));
    for (let i = 0; i < this.rows; i++) out.write(`${this.id(i)}\n`);
    out.close();
  }
}

/** Exact inner-product top-k in the native core (CPU, or CUDA when the device says so). */
const capacity = optional(number({ int: true, min: 0 })); // rows to reserve room for
const corpusIndexOptions = object({
  device: optional(string({ nonEmpty: true })), // "cpu", "cuda", ... (default: $LMDR_DEVICE, else CPU)
  blockRows: optional(number({ int: true, min: 1 })), // corpus rows per native call
  capacity,
}, { expected: 'an options object' });
const hnswIndexOptions = object({
  connectivity: optional(number({ int: true, min: 2 })),
  expansionAdd: optional(number({ int: true, min: 1 })),
  expansionSearch: optional(number({ int: true, min: 1 })),
  capacity,
}, { expected: 'an options object' });
const faissIndexOptions = object({ capacity }, { expected: 'an options object' });

export class CorpusIndex extends StoredVectors {
  readonly options: Infer<typeof corpusIndexOptions>;
  constructor(dim: number, options: Infer<typeof corpusIndexOptions> = {}) {
    const o = parse(corpusIndexOptions, options, { where: 'new CorpusIndex' });
    super(dim, o.capacity);
    this.options = o;
  }

  async search(queries: Float32Array, k: number): Promise<SearchResult> {
    const Q = this.checkQueries(queries, k);
    const device = this.options.device ?? (process.env.LMDR_DEVICE || 'cpu');
    const r = await native().topk(queries, this.vectors, Q, this.size, this.dim, k, device, this.options.blockRows);
    const rows = new Int32Array(r.ids.length);
    for (let i = 0; i < rows.length; i++) rows[i] = Number(r.ids[i]);
    return { numQueries: Q, k: r.k, scores: r.scores, rows };
  }
}

// usearch reports inner-product distance as 1 - dot.
interface UsearchModule {
  Index: new (config: Record<string, unknown>) => {
    add(keys: BigUint64Array, vectors: Float32Array, threads?: number): void;
    search(vectors: Float32Array, k: number, threads: number): { keys: BigUint64Array; distances: Float32Array; counts?: BigUint64Array };
  };
}

function optionalModule<T>(name: string, why: string): T {
  const require = createRequire(import.meta.url);
  try {
    return require(name) as T;
  } catch (err) {
    throw new UserError(`${why} needs the optional package "${name}", which is not installed (npm install ${name}): ${(err as Error).message.split('\n')[0]}`);
  }
}

/** Approximate (HNSW) inner-product search through usearch. */
export class HnswIndex extends StoredVectors {
  private index;

  readonly options: Infer<typeof hnswIndexOptions>;
  constructor(dim: number, options: Infer<typeof hnswIndexOptions> = {}) {
    const o = parse(hnswIndexOptions, options, { where: 'new HnswIndex' });
    super(dim, o.capacity);
    this.options = o;
    const usearch = optionalModule<UsearchModule>('usearch', 'HNSW search');
    this.index = new usearch.Index({
      dimensions: dim,
      metric: 'ip',
      quantization: 'f32',
      connectivity: options.connectivity ?? 16,
      expansion_add: options.expansionAdd ?? 128,
      expansion_search: options.expansionSearch ?? 64,
      multi: false,
    });
  }

  protected added(first: number, n: number): void {
    const keys = new BigUint64Array(n);
    for (let i = 0; i < n; i++) keys[i] = BigInt(first + i);
    this.index.add(keys, this.data.slice(first * this.dim, (first + n) * this.dim));
  }

  async search(queries: Float32Array, k: number): Promise<SearchResult> {
    const Q = this.checkQueries(queries, k);
    const kk = Math.min(k, this.size);
    const m = this.index.search(queries, kk, 0);
    const scores = new Float32Array(Q * kk).fill(-Infinity);
    const rows = new Int32Array(Q * kk).fill(-1);
    for (let q = 0; q < Q; q++) {
      const count = m.counts ? Number(m.counts[q]) : m.keys.length;
      for (let j = 0; j < Math.min(count, kk); j++) {
        rows[q * kk + j] = Number(m.keys[q * kk + j]);
        scores[q * kk + j] = 1 - m.distances[q * kk + j];
      }
    }
    return { numQueries: Q, k: kk, scores, rows };
  }
}

interface FaissModule {
  IndexFlatIP: new (d: number) => { add(x: number[]): void; search(x: number[], k: number): { distances: number[]; labels: number[] } };
}

/** faiss-node's exact inner-product index (IndexFlatIP), used only when installed. */
export class FaissIndex extends StoredVectors {
  private index;

  constructor(dim: number, options: Infer<typeof faissIndexOptions> = {}) {
    super(dim, parse(faissIndexOptions, options, { where: 'new FaissIndex' }).capacity);
    this.index = new (optionalModule<FaissModule>('faiss-node', 'the faiss index').IndexFlatIP)(dim);
  }

  protected added(first: number, n: number): void {
    this.index.add(Array.from(this.data.subarray(first * this.dim, (first + n) * this.dim)));
  }

  async search(queries: Float32Array, k: number): Promise<SearchResult> {
    const Q = this.checkQueries(queries, k);
    const kk = Math.min(k, this.size);
    const r = this.index.search(Array.from(queries), kk);
    const scores = new Float32Array(Q * kk).fill(-Infinity);
    const rows = new Int32Array(Q * kk).fill(-1);
    for (let i = 0; i < Q * kk; i++) {
      if (r.labels[i] < 0) continue; // faiss pads short lists with -1
      rows[i] = r.labels[i];
      scores[i] = r.distances[i];
    }
    return { numQueries: Q, k: kk, scores, rows };
  }
}

/** An empty index of the given kind. */
export function createIndex(kind: IndexKind, dim: number, options: { device?: DeviceName; capacity?: number } = {}): StoredVectors {
  switch (kind) {
    case 'exact': return new CorpusIndex(dim, { device: options.device, capacity: options.capacity });
    case 'hnsw': return new HnswIndex(dim, { capacity: options.capacity });
    case 'faiss': return new FaissIndex(dim, { capacity: options.capacity });
    default: throw new UserError(`unknown index kind "${kind as string}" (expected exact, hnsw or faiss)`);
  }
}

/** Builds an index over an embeddings matrix (kept, not copied) and optional ids (row order). */
export function buildIndex(kind: IndexKind, m: { rows: number; cols: number; data: Float32Array }, ids?: string[],
  options: { device?: DeviceName; source?: string } = {}): StoredVectors {
  parse(oneOf(INDEX_KINDS), kind, { where: 'buildIndex', label: () => 'kind' });
  parse(object({ rows: number({ int: true, min: 0 }), cols: number({ int: true, min: 1 }), data: instance(Float32Array) }, { unknownKeys: 'keep', expected: 'a matrix {rows, cols, data}' }),
    m, { where: 'buildIndex', label: (p) => (p === '' ? 'm' : `m.${p}`) });
  if (m.data.length < m.rows * m.cols) throw new UserError(`buildIndex: m.data holds ${m.data.length} values, fewer than rows * cols = ${m.rows * m.cols}`);
  parse(object({ device: optional(string({ nonEmpty: true })), source: optional(string()) }, { expected: 'an options object' }), options, { where: 'buildIndex' });
  if (ids && ids.length !== m.rows) throw new UserError(`${m.rows} embeddings but ${ids.length} ids`);
  const index = createIndex(kind, m.cols, { device: options.device });
  index.adopt(m.data.subarray(0, m.rows * m.cols), ids, options.source ?? 'buildIndex'); // source: the file errors name
  return index;
}

/** Loads DIR/embeddings.npy + DIR/ids.txt (written by save) into an index of the given kind. */
export async function loadIndex(dir: string, kind: IndexKind = 'exact', options: { device?: DeviceName } = {}): Promise<StoredVectors> {
  parse(string({ nonEmpty: true }), dir, { where: 'loadIndex', label: () => 'dir' });
  parse(oneOf(INDEX_KINDS), kind, { where: 'loadIndex', label: () => 'kind' });
  parse(object({ device: optional(string({ nonEmpty: true })) }, { expected: 'an options object' }), options, { where: 'loadIndex' });
  const m = readNpy(path.join(dir, 'embeddings.npy'));
  const idsFile = path.join(dir, 'ids.txt');
  const ids = fs.existsSync(idsFile) ? await readIds(idsFile) : undefined;
  if (ids && ids.length !== m.rows) throw new UserError(`${idsFile}: ${ids.length} ids for ${m.rows} rows of ${path.join(dir, 'embeddings.npy')}`);
  return buildIndex(kind, m, ids, { ...options, source: path.join(dir, 'embeddings.npy') });
}
