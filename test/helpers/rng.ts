// Seeded random numbers for tests: the same seed gives the same model and inputs everywhere.
// The generator is lmdr's own (lib/train/random.ts), so there is one seeded RNG in the project.
import { rng } from '../../lib/train/random.ts';

/** Uniform floats in [0, 1) from a 32-bit seed (mulberry32). */
export const uniformRng = rng;

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
