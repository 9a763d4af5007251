// Tensors owned by a backend. The core only ever sees Tensor values and passes them to
// Backend ops; it never dereferences data (it may live on a GPU).
#pragma once
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace lmdr {

enum class DType : uint8_t { F32, F64, BF16, F16, I32, I64 };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: case DType::I32: return 4;
    case DType::F64: case DType::I64: return 8;
    case DType::BF16: case DType::F16: return 2;
  }
  return 0;
}
const char* dtype_name(DType t);

class Backend;

// Owns one allocation; frees it through the backend that made it.
struct Storage {
  Backend* backend = nullptr;
  void* ptr = nullptr;
  size_t bytes = 0;
  ~Storage();
};

struct Tensor {
  std::shared_ptr<Storage> storage;
  void* data = nullptr;  // start of this view (device pointer for GPU backends)
  DType dtype = DType::F32;
  std::vector<int64_t> shape;

  bool defined() const { return data != nullptr; }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  size_t bytes() const { return size_t(numel()) * dtype_size(dtype); }
  int64_t dim(int i) const { return shape.at(i < 0 ? shape.size() + i : i); }
  int ndim() const { return int(shape.size()); }
  template <typename T> T* ptr() const { return static_cast<T*>(data); }
  // Rows [begin, end) of the leading dimension, sharing storage.
  Tensor rows(int64_t begin, int64_t end) const;
  // Same storage, new shape with the same element count.
  Tensor view(std::vector<int64_t> new_shape) const;
  std::string shape_str() const;
};

// Errors the user can act on; the N-API layer turns them into JS exceptions.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace lmdr
