#include "core/weights.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <memory>

namespace lmdr {

namespace {

// A whole file mapped read-only; unmapped when the upload is over.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) : path_(path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(path + ": cannot open safetensors file (" + std::strerror(errno) + ")");
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      throw Error(path + ": cannot stat (" + std::strerror(err) + ")");
    }
    size_ = size_t(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      int err = errno;
      ::close(fd);
      if (p == MAP_FAILED) throw Error(path + ": cannot map (" + std::strerror(err) + ")");
      data_ = static_cast<const uint8_t*>(p);
    } else {
      ::close(fd);
    }
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  // [offset, offset + bytes) of the file; never reads outside it.
  const uint8_t* range(uint64_t offset, uint64_t bytes, const std::string& tensor) const {
    if (offset > size_ || bytes > size_ - offset)
      throw Error(path_ + ": tensor '" + tensor + "' bytes [" + std::to_string(offset) + ", " +
                  std::to_string(offset + bytes) + ") lie outside the file (" + std::to_string(size_) +
                  " bytes); the file is truncated or corrupt");
    return data_ + offset;
  }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

// Index of the first NaN or infinite value among n stored values (all exponent bits set), or -1.
// Runs on the host bytes before any backend sees them, so every backend gets the same check.
template <typename U>
int64_t first_nonfinite_bits(const uint8_t* p, int64_t n, U exponent_mask) {
  for (int64_t i = 0; i < n; i++) {
    U v;
    std::memcpy(&v, p + i * sizeof(U), sizeof(U));
    if ((v & exponent_mask) == exponent_mask) return i;
  }
  return -1;
}

int64_t first_nonfinite(const uint8_t* p, int64_t n, DType dt) {
  switch (dt) {
    case DType::F32: return first_nonfinite_bits<uint32_t>(p, n, 0x7F800000u);
    case DType::F64: return first_nonfinite_bits<uint64_t>(p, n, 0x7FF0000000000000ull);
    case DType::BF16: return first_nonfinite_bits<uint16_t>(p, n, 0x7F80u);
    case DType::F16: return first_nonfinite_bits<uint16_t>(p, n, 0x7C00u);
    default: return -1;
  }
}

// "NaN" or "Infinity" / "-Infinity" for the stored value at element i (mantissa zero = infinity).
std::string nonfinite_name(const uint8_t* p, int64_t i, DType dt) {
  uint64_t v = 0, mant = 0, sign = 0;
  switch (dt) {
    case DType::F32: { uint32_t x; std::memcpy(&x, p + i * 4, 4); v = x; mant = v & 0x7FFFFFu; sign = v >> 31; break; }
    case DType::F64: { std::memcpy(&v, p + i * 8, 8); mant = v & 0xFFFFFFFFFFFFFull; sign = v >> 63; break; }
    case DType::BF16: { uint16_t x; std::memcpy(&x, p + i * 2, 2); v = x; mant = v & 0x7Fu; sign = v >> 15; break; }
    case DType::F16: { uint16_t x; std::memcpy(&x, p + i * 2, 2); v = x; mant = v & 0x3FFu; sign = v >> 15; break; }
    default: break;
  }
  if (mant != 0) return "NaN";
  return sign ? "-Infinity" : "Infinity";
}

// Element i of a row-major tensor as "[a, b]".
std::string element_index(const std::vector<int64_t>& shape, int64_t i) {
  std::vector<int64_t> idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = shape[d] > 0 ? i % shape[d] : 0;
    i = shape[d] > 0 ? i / shape[d] : 0;
  }
  return shape_string(idx);
}

}  // namespace

void upload_weights(Backend& be, const std::vector<TensorSource>& sources, const std::vector<WeightTarget>& targets) {
  std::map<std::string, const TensorSource*> by_name;
  for (const auto& s : sources) by_name[s.name] = &s;
  std::map<std::string, std::unique_ptr<MappedFile>> files;
  std::vector<uint8_t> aligned;  // staging when a tensor's bytes are not aligned to its dtype
  for (const auto& t : targets) {
    auto it = by_name.find(t.name);
    if (it == by_name.end())
      throw Error("checkpoint is missing tensor '" + t.name + "' (expected shape " + t.dst->shape_str() + ")");
    const TensorSource& src = *it->second;
    if (src.shape != t.dst->shape)
      throw Error("tensor '" + t.name + "' in " + src.file + " has shape " + shape_string(src.shape) +
                  ", expected " + t.dst->shape_str());
    if (src.dtype != DType::F32 && src.dtype != DType::F16 && src.dtype != DType::BF16 && src.dtype != DType::F64)
      throw Error("tensor '" + t.name + "' in " + src.file + " has dtype " + dtype_name(src.dtype) +
                  " (expected F32, F16, BF16 or F64)");
    auto& file = files[src.file];
    if (!file) file = std::make_unique<MappedFile>(src.file);
    const size_t elem = dtype_size(src.dtype);
    const uint64_t bytes = uint64_t(t.dst->numel()) * elem;
    const uint8_t* p = file->range(src.offset, bytes, t.name);
    if (reinterpret_cast<uintptr_t>(p) % elem != 0) {
      aligned.resize(bytes);
      std::memcpy(aligned.data(), p, bytes);
      p = aligned.data();
    }
    const int64_t bad = first_nonfinite(p, t.dst->numel(), src.dtype);
    if (bad >= 0)
      throw Error(src.file + ": tensor '" + t.name + "' holds " + nonfinite_name(p, bad, src.dtype) + " at " +
                  element_index(src.shape, bad) + "; a checkpoint must hold finite weights (corrupt or diverged file)");
    be.upload(*t.dst, p, src.dtype);
  }
}

}  // namespace lmdr
