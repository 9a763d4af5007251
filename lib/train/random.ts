// Seeded randomness for training. Every draw is a pure function of (seed, purpose, indices),
// so a resumed run reproduces an uninterrupted one from the step number alone: no RNG state
// has to be carried between steps.

/** 32-bit hash of a list of integers (murmur3-style finaliser after each word). */
export function hashInts(...words: number[]): number {
  let h = 0x9e3779b9;
  for (const w of words) {
    // split into two 32-bit halves so integers up to 2^53 hash fully
    for (const part of [w >>> 0, Math.floor(w / 4294967296) >>> 0]) {
      h = Math.imul(h ^ part, 0x85ebca6b);
      h ^= h >>> 13;
      h = Math.imul(h, 0xc2b2ae35);
      h ^= h >>> 16;
    }
  }
  return h >>> 0;
}

/** Uniform floats in [0, 1) from a 32-bit seed (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal samples (Box-Muller) from a seeded uniform stream: two uniforms per sample. */
export function normalRng(seed: number): () => number {
  const u = rng(seed);
  return () => {
    const u1 = 1 - u(); // (0, 1]: log stays finite
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u());
  };
}

/** Uniform integer in [0, n). */
export function randInt(next: () => number, n: number): number {
  return Math.floor(next() * n);
}

/** Fisher-Yates shuffle of 0..n-1. */
export function permutation(n: number, next: () => number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = randInt(next, i + 1);
    const t = out[i];
    out[i] = out[j];
    out[j] = t;
  }
  return out;
}

// Purposes keep the streams of one seed independent of each other.
export const Purpose = { epochOrder: 1, group: 2, dropout: 3, loraInit: 4, taskOrder: 5, batchOrder: 6, instruction: 7 } as const;
