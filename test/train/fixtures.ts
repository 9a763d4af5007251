// Shared pieces of the training tests: tiny models, generated FlagEmbedding data, temp dirs.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeTinyModel, tinyWords, type TinyModelOptions } from '../helpers/tiny-models.ts';
import { uniformRng, randInt } from '../helpers/rng.ts';

export function tmpDir(tag = 'train'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `lmdr-${tag}-`));
}

/** A tiny decoder with the tiny tokenizer (hidden 32, 2 layers unless overridden). */
export function tinyModel(opts: Partial<TinyModelOptions> = {}): string {
  return makeTinyModel({ arch: 'qwen2', tokenizer: true, seed: 7, ...opts });
}

// Content words only, so the tasks below are about words, not punctuation.
const content = tinyWords.filter((w) => /^[a-z]+$/.test(w));

/**
 * Pairs for a task the base model cannot solve: a passage is its query with every word replaced
 * through a fixed random word mapping, plus filler words. Negatives are passages of other queries.
 */
export function mappedPairs(n: number, seed: number, opts: { queryWords?: number; negs?: number } = {}) {
  const u = uniformRng(seed);
  const mapRng = uniformRng(1234); // one mapping for every split
  const shuffled = [...content];
  for (let i = shuffled.length - 1; i > 0; i--) {
    const j = randInt(mapRng, 0, i + 1);
    [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
  }
  const map = new Map(content.map((w, i) => [w, shuffled[i]]));
  const k = opts.queryWords ?? 3;
  const pairs = Array.from({ length: n }, () => {
    const q = Array.from({ length: k }, () => content[randInt(u, 0, content.length)]);
    const p = q.map((w) => map.get(w)!);
    return { query: q.join(' '), pos: p.join(' ') };
  });
  const negs = opts.negs ?? 3;
  return pairs.map((pr, i) => ({
    query: pr.query,
    pos: [pr.pos],
    neg: Array.from({ length: negs }, (_, j) => pairs[(i + 1 + j * 7) % n].pos),
  }));
}

export function writeJsonl(file: string, rows: unknown[]): string {
  fs.writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return file;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Runs fn with the n-th fs.renameSync failing, as if the process were killed just before it; true when it got that far. */
export function crashAtRename(n: number, fn: () => void): boolean {
  const real = fs.renameSync;
  let calls = 0;
  let crashed = false;
  fs.renameSync = ((from: fs.PathLike, to: fs.PathLike) => {
    if (++calls === n) {
      crashed = true;
      throw new Error('killed');
    }
    real(from, to);
  }) as typeof fs.renameSync;
  try {
    fn();
  } catch (err) {
    if (!crashed) throw err;
  } finally {
    fs.renameSync = real;
  }
  return crashed;
}
