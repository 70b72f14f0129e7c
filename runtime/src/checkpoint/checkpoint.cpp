#include "checkpoint/checkpoint.hpp"

#include <algorithm>
#include <filesystem>
#include <set>

#include "aurora/config/json.hpp"

namespace aurora::runtime {

namespace fs = std::filesystem;

Result<std::unique_ptr<Checkpoint>> Checkpoint::open(const std::string& dir) {
  auto ckpt = std::make_unique<Checkpoint>();
  ckpt->dir_ = dir;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return Error::make(ErrorCode::kNotFound, dir + ": not a directory");
  std::vector<std::string> shard_names;
  std::map<std::string, std::string> weight_map;  // tensor -> shard file name
  const fs::path index_path = fs::path(dir) / "model.safetensors.index.json";
  if (fs::exists(index_path, ec)) {
    auto doc = config::JsonDocument::parse_file(index_path.string());
    if (!doc) return doc.error();
    auto r = capture_errors([&] {
      auto map = doc->root()["weight_map"];
      std::set<std::string> unique;
      for (auto& [tensor, file] : map.members()) {
        std::string f = file.as_string();
        if (f.find('/') != std::string::npos || f == ".." || f.empty())
          file.fail("must be a file name in the model directory");
        weight_map[tensor] = f;
        unique.insert(f);
      }
      shard_names.assign(unique.begin(), unique.end());
    });
    if (!r) return Error::make(r.error().code, index_path.string() + ": " + r.error().message);
    if (shard_names.empty())
      return Error::make(ErrorCode::kInvalidArgument, index_path.string() + ": weight_map is empty");
  } else if (fs::exists(fs::path(dir) / "model.safetensors", ec)) {
    shard_names.push_back("model.safetensors");
  } else {
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      if (entry.path().extension() == ".safetensors") shard_names.push_back(entry.path().filename().string());
    }
    std::sort(shard_names.begin(), shard_names.end());
  }
  if (shard_names.empty()) return Error::make(ErrorCode::kNotFound, dir + ": no *.safetensors weights found");

  std::map<std::string, size_t> shard_of_name;
  for (const auto& name : shard_names) {
    auto shard = SafetensorsFile::open((fs::path(dir) / name).string());
    if (!shard) return shard.error();
    shard_of_name[name] = ckpt->shards_.size();
    ckpt->shards_.push_back(std::make_unique<SafetensorsFile>(std::move(*shard)));
  }
  if (!weight_map.empty()) {
    for (const auto& [tensor, file] : weight_map) {
      const auto& shard = *ckpt->shards_[shard_of_name.at(file)];
      const TensorInfo* info = shard.find(tensor);
      if (!info) {
        return Error::make(ErrorCode::kInvalidArgument, index_path.string() + ": tensor \"" + tensor +
                                                            "\" is mapped to " + file +
                                                            " but that file does not hold it");
      }
      ckpt->index_[tensor] = info;
    }
  } else {
    for (const auto& shard : ckpt->shards_) {
      for (const auto& [name, info] : shard->tensors()) {
        if (ckpt->index_.count(name)) {
          return Error::make(ErrorCode::kInvalidArgument,
                             shard->path() + ": tensor \"" + name + "\" appears in two shards");
        }
        ckpt->index_[name] = &info;
      }
    }
  }
  return ckpt;
}

const TensorInfo* Checkpoint::info(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

Result<const float*> Checkpoint::tensor_f32(const std::string& name, const std::vector<int64_t>& shape) {
  const TensorInfo* t = info(name);
  if (!t) return Error::make(ErrorCode::kInvalidArgument, dir_ + ": missing tensor \"" + name + "\"");
  if (t->shape != shape) {
    return Error::make(ErrorCode::kInvalidArgument, dir_ + ": tensor \"" + name + "\" has shape " +
                                                        shape_string(t->shape) + ", expected " + shape_string(shape));
  }
  if (t->dtype == DType::kOther) {
    return Error::make(ErrorCode::kUnsupported, dir_ + ": tensor \"" + name + "\" has unsupported dtype " +
                                                    t->dtype_name + " (supported: F32, BF16, F16)");
  }
  if (t->dtype == DType::kF32 && reinterpret_cast<uintptr_t>(t->data) % alignof(float) == 0) {
    return reinterpret_cast<const float*>(t->data);
  }
  const int64_t n = t->num_elements();
  auto buffer = std::make_unique<float[]>(static_cast<size_t>(n));
  convert_to_f32(t->dtype, t->data, n, buffer.get());
  const float* p = buffer.get();
  converted_.push_back(std::move(buffer));
  converted_bytes_ += n * 4;
  return p;
}

}  // namespace aurora::runtime
