// Seeded random numbers for tests: the same seed gives the same model and inputs everywhere.

/** mulberry32: a tiny 32-bit generator, uniform in [0, 1). */
export function uniformRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal samples (Box-Muller) from a seeded uniform generator. */
export function normalRng(seed: number): () => number {
  const u = uniformRng(seed);
  return () => {
    const u1 = 1 - u(); // (0, 1]
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u());
  };
}

/** Integer in [lo, hi). */
export function randInt(u: () => number, lo: number, hi: number): number {
  return lo + Math.floor(u() * (hi - lo));
}
