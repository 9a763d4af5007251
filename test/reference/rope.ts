// Rotary position embedding as Hugging Face applies it (rotate-half convention), in float64.

export interface Llama3Scaling {
  factor: number;
  low_freq_factor: number;
  high_freq_factor: number;
  original_max_position_embeddings: number;
}

/** inv_freq[i] = theta^(-2i/D), i < D/2, optionally rescaled the Llama-3 way. */
export function ropeInverseFrequencies(D: number, theta: number, scaling: Llama3Scaling | null): Float64Array {
  const invFreq = new Float64Array(D / 2);
  for (let i = 0; i < D / 2; i++) invFreq[i] = 1 / theta ** ((2 * i) / D);
  if (!scaling) return invFreq;
  // Llama 3: long wavelengths (low frequencies) are slowed down by `factor`, short ones kept,
  // and the band between is interpolated linearly in (original context / wavelength).
  const lowFreqWavelen = scaling.original_max_position_embeddings / scaling.low_freq_factor;
  const highFreqWavelen = scaling.original_max_position_embeddings / scaling.high_freq_factor;
  for (let i = 0; i < D / 2; i++) {
    const wavelen = (2 * Math.PI) / invFreq[i];
    if (wavelen < highFreqWavelen) continue;
    if (wavelen > lowFreqWavelen) {
      invFreq[i] /= scaling.factor;
      continue;
    }
    const smooth = (scaling.original_max_position_embeddings / wavelen - scaling.low_freq_factor)
      / (scaling.high_freq_factor - scaling.low_freq_factor);
    invFreq[i] = (1 - smooth) * (invFreq[i] / scaling.factor) + smooth * invFreq[i];
  }
  return invFreq;
}

/** Rotate x[T, heads*D] in place: token t is at position t. Pair (d, d + R/2) turns by t * inv_freq[d],
 * R = 2 * inv_freq.length <= D (partial rotary: the dims from R on pass through, like Phi's q_pass). */
export function applyRope(x: Float64Array, T: number, heads: number, D: number, invFreq: Float64Array): void {
  const half = invFreq.length;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < heads; h++) {
      const base = (t * heads + h) * D;
      for (let d = 0; d < half; d++) {
        const angle = t * invFreq[d];
        const c = Math.cos(angle);
        const s = Math.sin(angle);
        const x1 = x[base + d];
        const x2 = x[base + d + half];
        x[base + d] = x1 * c - x2 * s;
        x[base + d + half] = x2 * c + x1 * s;
      }
    }
  }
}
