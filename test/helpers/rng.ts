// Seeded random numbers for tests: the same seed gives the same model and inputs everywhere.
// The generator is lmdr's own (lib/train/random.ts), so there is one seeded RNG in the project.
import { normalRng, rng } from '../../lib/train/random.ts';

/** Uniform floats in [0, 1) from a 32-bit seed (mulberry32). */
export const uniformRng = rng;

/** Standard normal samples (Box-Muller) from a seeded uniform generator. */
export { normalRng };

/** Integer in [lo, hi). */
export function randInt(u: () => number, lo: number, hi: number): number {
  return lo + Math.floor(u() * (hi - lo));
}
