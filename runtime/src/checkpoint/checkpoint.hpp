// Checkpoint: the safetensors weights of a Hugging Face model directory, sharded
// (model.safetensors.index.json) or not, memory-mapped, read as float32.
//
// F32 tensors whose data is 4-byte aligned are used in place (zero copy); BF16 and F16 tensors are
// converted once into buffers the checkpoint owns. Pointers returned by tensor_f32() live as long
// as the Checkpoint. Errors name the directory or shard, the tensor, the expected and the actual
// shape or dtype. Not thread-safe while loading; immutable afterwards.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "aurora/config/error.hpp"
#include "checkpoint/safetensors.hpp"

namespace aurora::runtime {

class Checkpoint {
 public:
  static Result<std::unique_ptr<Checkpoint>> open(const std::string& dir);

  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const TensorInfo* info(const std::string& name) const;
  // The tensor as float32 with exactly `shape`; kInvalidArgument when missing or mis-shaped,
  // kUnsupported for a dtype other than F32/BF16/F16.
  Result<const float*> tensor_f32(const std::string& name, const std::vector<int64_t>& shape);
  const std::string& dir() const { return dir_; }
  size_t num_shards() const { return shards_.size(); }
  size_t num_tensors() const { return index_.size(); }
  int64_t converted_bytes() const { return converted_bytes_; }

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::map<std::string, const TensorInfo*> index_;
  std::vector<std::unique_ptr<float[]>> converted_;
  int64_t converted_bytes_ = 0;
};

}  // namespace aurora::runtime
