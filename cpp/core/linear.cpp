#include "core/linear.h"

namespace lmdr {

static uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t Linear::dropout_seed(const Batch& batch) const {
  return splitmix64(batch.dropout_seed ^ lora->salt);
}

Tensor Linear::dropped(Backend& be, const Tensor& x, const Batch& batch) const {
  if (!batch.train || lora->dropout <= 0) return x;
  Tensor out = be.empty(x.shape);
  be.dropout_forward(out, x, lora->dropout, dropout_seed(batch), batch.row_keys);
  return out;
}

void Linear::forward(Backend& be, Tensor& y, const Tensor& x, const Batch& batch, LinearActs* keep) const {
  be.matmul(y, x, weight->value, false, true, 1.f, 0.f);  // y[T,out] = x[T,in] W[out,in]^T
  if (bias) be.add_bias(y, bias->value);
  if (!lora) return;
  Tensor xd = dropped(be, x, batch);
  Tensor u = be.empty({x.dim(0), lora->r});
  be.matmul(u, xd, lora->A->value, false, true, 1.f, 0.f);                  // u[T,r] = xd A^T
  be.matmul(y, u, lora->B->value, false, true, float(lora->scale), 1.f);   // y += s u B^T
  if (keep) keep->lora_u = u;
}

void Linear::backward(Backend& be, Tensor* dx, bool accumulate_dx, const Tensor& dy, const Tensor& x,
                      const Batch& batch, const LinearActs& acts) const {
  if (dx) be.matmul(*dx, dy, weight->value, false, false, 1.f, accumulate_dx ? 1.f : 0.f);  // dx[T,in] = dy W
  // Gradients go straight into param_dtype grads (backend.h: gradient outputs may be wider).
  if (weight->trainable) be.matmul(weight->grad, dy, x, true, false, 1.f, 1.f);  // dW[out,in] += dy^T x
  if (bias && bias->trainable) be.bias_backward(bias->grad, dy);
  if (!lora) return;
  const float s = float(lora->scale);
  Tensor du = be.empty({dy.dim(0), lora->r});
  be.matmul(du, dy, lora->B->value, false, false, 1.f, 0.f);  // du[T,r] = dy B
  if (lora->B->trainable)
    be.matmul(lora->B->grad, dy, acts.lora_u, true, false, s, 1.f);  // dB[out,r] += s dy^T u
  if (lora->A->trainable) {
    Tensor xd = dropped(be, x, batch);
    be.matmul(lora->A->grad, du, xd, true, false, s, 1.f);  // dA[r,in] += s du^T xd
  }
  if (!dx) return;
  Tensor dxd = be.empty(x.shape);
  be.matmul(dxd, du, lora->A->value, false, false, s, 0.f);  // d(xd) = s du A
  if (batch.train && lora->dropout > 0) {
    Tensor dxl = be.empty(x.shape);
    be.dropout_backward(dxl, dxd, lora->dropout, dropout_seed(batch), batch.row_keys);
    dxd = dxl;
  }
  be.axpy(*dx, 1.0, dxd);
}

}  // namespace lmdr
