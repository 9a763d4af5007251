#include "core/rope_freq.h"

#include <cmath>

namespace lmdr {

std::vector<double> rope_inv_freq(int64_t head_dim, double theta, const RopeScaling& scaling) {
  // HF: 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim)), all float32.
  std::vector<float> inv(size_t(head_dim / 2));
  for (int64_t i = 0; i < head_dim / 2; i++) {
    const float exponent = float(2 * i) / float(head_dim);
    const float power = float(std::pow(double(float(theta)), double(exponent)));
    inv[size_t(i)] = 1.0f / power;
  }
  if (scaling.factor > 0) {
    // HF _compute_llama3_parameters, elementwise on the float32 tensor.
    const float factor = float(scaling.factor), low = float(scaling.low_freq_factor),
                high = float(scaling.high_freq_factor), original = float(scaling.original_max_position_embeddings);
    const float low_freq_wavelen = float(scaling.original_max_position_embeddings / scaling.low_freq_factor);
    const float high_freq_wavelen = float(scaling.original_max_position_embeddings / scaling.high_freq_factor);
    const float two_pi = float(2 * M_PI);
    for (float& f : inv) {
      // torch evaluates `scalar / tensor` as reciprocal(tensor) * scalar.
      const float wavelen = (1.0f / f) * two_pi;
      const float llama = wavelen > low_freq_wavelen ? f / factor : f;
      const float smooth = ((1.0f / wavelen) * original - low) / (high - low);
      const float smoothed = (1 - smooth) * llama / factor + smooth * llama;
      const bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
      f = medium ? smoothed : llama;
    }
  }
  return std::vector<double>(inv.begin(), inv.end());
}

}  // namespace lmdr
