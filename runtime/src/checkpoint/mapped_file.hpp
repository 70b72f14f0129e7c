// MappedFile: a read-only memory map of a whole file (checkpoint shards), unmapped on destruction.
// Move-only; the mapping is shared by nobody else, so pointers into it live as long as the object.
#pragma once

#include <cstddef>
#include <string>

#include "aurora/config/error.hpp"

namespace aurora::runtime {

class MappedFile {
 public:
  static Result<MappedFile> open(const std::string& path);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace aurora::runtime
