// SafetensorsFile: one memory-mapped *.safetensors shard and the tensors its header describes.
//
// Format: 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape,
// data_offsets: [begin, end)}}, then the data. open() validates the whole header (sizes, offsets
// within the file, byte counts matching shape x dtype) and fails with an Error naming the file and
// the tensor: a truncated file or a bad header never reaches the model. Immutable after open().
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "aurora/config/error.hpp"
#include "checkpoint/mapped_file.hpp"

namespace aurora::runtime {

enum class DType { kF32, kBF16, kF16, kOther };

struct TensorInfo {
  std::string name;
  std::string dtype_name;  // as written in the header: "F32", "BF16", "I64", ...
  DType dtype = DType::kOther;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;
  size_t num_bytes = 0;

  int64_t num_elements() const;
};

std::string shape_string(const std::vector<int64_t>& shape);  // "[64, 32]"

class SafetensorsFile {
 public:
  static Result<SafetensorsFile> open(const std::string& path);

  const TensorInfo* find(const std::string& name) const;
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const std::string& path() const { return file_.path(); }

 private:
  MappedFile file_;
  std::map<std::string, TensorInfo> tensors_;
};

// Converts n elements of a supported dtype to float32.
void convert_to_f32(DType dtype, const std::byte* src, int64_t n, float* dst);
float bf16_to_f32(uint16_t bits);
float f16_to_f32(uint16_t bits);

}  // namespace aurora::runtime
