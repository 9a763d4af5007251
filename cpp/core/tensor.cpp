#include "core/backend.h"

#include <sstream>

namespace lmdr {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
  }
  return "?";
}

Storage::~Storage() {
  if (backend && ptr) backend->raw_free(ptr);
}

Tensor Tensor::rows(int64_t begin, int64_t end) const {
  if (shape.empty() || begin < 0 || end > shape[0] || begin > end)
    throw Error("Tensor::rows: range [" + std::to_string(begin) + "," + std::to_string(end) +
                ") outside " + shape_str());
  Tensor t = *this;
  int64_t row = numel() / (shape[0] ? shape[0] : 1);
  t.data = static_cast<char*>(data) + size_t(begin * row) * dtype_size(dtype);
  t.shape[0] = end - begin;
  return t;
}

Tensor Tensor::view(std::vector<int64_t> new_shape) const {
  Tensor t = *this;
  t.shape = std::move(new_shape);
  if (t.numel() != numel()) throw Error("Tensor::view: " + shape_str() + " -> " + t.shape_str());
  return t;
}

std::string Tensor::shape_str() const {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); i++) s << (i ? "," : "") << shape[i];
  s << "]";
  return s.str();
}

Tensor Backend::empty(std::vector<int64_t> shape, DType dtype) {
  Tensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  auto st = std::make_shared<Storage>();
  st->backend = this;
  st->bytes = t.bytes();
  st->ptr = raw_alloc(st->bytes ? st->bytes : 1);
  t.storage = st;
  t.data = st->ptr;
  return t;
}

Tensor Backend::zeros(std::vector<int64_t> shape, DType dtype) {
  Tensor t = empty(std::move(shape), dtype);
  fill(t, 0.0);
  return t;
}

void Backend::convert(Tensor& dst, const Tensor& src) {
  if (dst.numel() != src.numel())
    throw Error("convert: " + src.shape_str() + " -> " + dst.shape_str() + " (element counts differ)");
  if (dst.dtype == src.dtype) return copy(dst, src);
  std::vector<double> host(size_t(src.numel()));
  download(host.data(), DType::F64, src);
  upload(dst, host.data(), DType::F64);
}

}  // namespace lmdr
