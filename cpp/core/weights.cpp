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
    be.upload(*t.dst, p, src.dtype);
  }
}

}  // namespace lmdr
