// Broken checkpoints fail with an Error that names the file, the tensor or the field, and never
// crash: missing tensor, wrong shape, truncated file, bad header, unknown architecture,
// unsupported dtype, missing files.
#include <unistd.h>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "checkpoint/checkpoint.hpp"
#include "model/model.hpp"

using namespace aurora;
using namespace aurora::runtime;
namespace fs = std::filesystem;

namespace {

const std::string kSource = "tests/fixtures/models/olmoe";

struct RawTensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

std::map<std::string, RawTensor> read_tensors(const std::string& file) {
  auto st = SafetensorsFile::open(file);
  REQUIRE(st.ok());
  std::map<std::string, RawTensor> out;
  for (const auto& [name, info] : st->tensors()) {
    out[name] =
        RawTensor{info.dtype_name, info.shape, std::string(reinterpret_cast<const char*>(info.data), info.num_bytes)};
  }
  return out;
}

void write_safetensors(const std::string& file, const std::map<std::string, RawTensor>& tensors) {
  std::string header = "{";
  std::string data;
  for (const auto& [name, t] : tensors) {
    if (header.size() > 1) header += ",";
    header += "\"" + name + "\":{\"dtype\":\"" + t.dtype + "\",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i) {
      if (i) header += ',';
      header += std::to_string(t.shape[i]);
    }
    header += "],\"data_offsets\":[" + std::to_string(data.size()) + "," +
              std::to_string(data.size() + t.bytes.size()) + "]}";
    data += t.bytes;
  }
  header += "}";
  while (header.size() % 8) header += ' ';
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.put(char((n >> (8 * i)) & 0xff));
  out << header << data;
}

// A scratch copy of the OLMoE fixture that a test may break.
struct ScratchModel {
  fs::path dir;
  std::map<std::string, RawTensor> tensors;
  explicit ScratchModel(const std::string& tag) {
    dir = fs::temp_directory_path() / ("aurora_bad_ckpt_" + tag + "_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    fs::copy_file(kSource + "/config.json", dir / "config.json");
    fs::copy_file(kSource + "/generation_config.json", dir / "generation_config.json");
    tensors = read_tensors(kSource + "/model.safetensors");
  }
  ~ScratchModel() { fs::remove_all(dir); }
  std::string weights() const { return (dir / "model.safetensors").string(); }
  void write() { write_safetensors(weights(), tensors); }
  void set_config(const std::string& from, const std::string& to) {
    std::ifstream in(dir / "config.json");
    std::string text((std::istreambuf_iterator<char>(in)), {});
    auto pos = text.find(from);
    REQUIRE(pos != std::string::npos);
    text.replace(pos, from.size(), to);
    std::ofstream(dir / "config.json", std::ios::trunc) << text;
  }
  Error load_error() {
    auto m = load_model(dir.string());
    REQUIRE_FALSE(m.ok());
    return m.error();
  }
};

}  // namespace

TEST_CASE("an intact copy loads (the scratch setup is sound)", "[checkpoint]") {
  ScratchModel s("intact");
  s.write();
  auto m = load_model(s.dir.string());
  REQUIRE(m.ok());
  CHECK((*m)->config.architecture == config::ModelArchitecture::kOlmoe);
}

TEST_CASE("a missing tensor is named", "[checkpoint]") {
  ScratchModel s("missing");
  s.tensors.erase("model.layers.1.mlp.experts.5.up_proj.weight");
  s.write();
  auto e = s.load_error();
  CHECK(e.code == ErrorCode::kInvalidArgument);
  CHECK_THAT(e.message, Catch::Contains("missing tensor \"model.layers.1.mlp.experts.5.up_proj.weight\""));
}

TEST_CASE("a wrong shape names the tensor, the shape found and the shape expected", "[checkpoint]") {
  ScratchModel s("shape");
  auto& t = s.tensors.at("model.layers.0.self_attn.k_proj.weight");
  t.shape = {32, 128};  // same bytes, wrong shape
  s.write();
  auto e = s.load_error();
  CHECK_THAT(e.message, Catch::Contains("model.layers.0.self_attn.k_proj.weight") && Catch::Contains("[32, 128]") &&
                            Catch::Contains("expected [64, 64]"));
}

TEST_CASE("a truncated file is reported, not read past its end", "[checkpoint]") {
  ScratchModel s("truncated");
  s.write();
  const auto size = fs::file_size(s.weights());
  fs::resize_file(s.weights(), size - 1000);
  auto e = s.load_error();
  CHECK_THAT(e.message, Catch::Contains("model.safetensors") && Catch::Contains("truncated"));
  fs::resize_file(s.weights(), 5);
  CHECK_THAT(s.load_error().message, Catch::Contains("truncated"));
}

TEST_CASE("a corrupt header is reported", "[checkpoint]") {
  ScratchModel s("header");
  s.write();
  {
    std::fstream f(s.weights(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(8);
    f.write("!!!!", 4);  // breaks the JSON
  }
  CHECK_THAT(s.load_error().message, Catch::Contains("bad safetensors header"));
  {
    std::fstream f(s.weights(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(0);
    f.write("\xff\xff\xff\xff\xff\xff\x00\x00", 8);  // header length past the end
  }
  CHECK_THAT(s.load_error().message, Catch::Contains("header length"));
}

TEST_CASE("byte counts that disagree with the shape are reported", "[checkpoint]") {
  ScratchModel s("bytes");
  s.tensors.at("model.norm.weight").bytes.resize(10);
  s.write();
  CHECK_THAT(s.load_error().message, Catch::Contains("model.norm.weight") && Catch::Contains("needs 128"));
}

TEST_CASE("an unsupported dtype names the tensor and the dtype", "[checkpoint]") {
  ScratchModel s("dtype");
  auto& t = s.tensors.at("model.layers.0.input_layernorm.weight");
  t.dtype = "I16";  // same element size as F16
  s.write();
  auto e = s.load_error();
  CHECK(e.code == ErrorCode::kUnsupported);
  CHECK_THAT(e.message, Catch::Contains("model.layers.0.input_layernorm.weight") && Catch::Contains("I16"));
}

TEST_CASE("an unknown architecture is named in the error", "[checkpoint]") {
  ScratchModel s("arch");
  s.write();
  s.set_config("\"OlmoeForCausalLM\"", "\"LlamaForCausalLM\"");
  s.set_config("\"model_type\": \"olmoe\"", "\"model_type\": \"llama\"");
  auto e = s.load_error();
  CHECK(e.code == ErrorCode::kUnsupported);
  CHECK_THAT(e.message, Catch::Contains("config.json") && Catch::Contains("LlamaForCausalLM") &&
                            Catch::Contains("architectures[0]"));
}

TEST_CASE("a bad config field is named with its value", "[checkpoint]") {
  ScratchModel s("field");
  s.write();
  s.set_config("\"num_experts_per_tok\": 2", "\"num_experts_per_tok\": 9");
  auto e = s.load_error();
  CHECK_THAT(e.message, Catch::Contains("num_experts_per_tok") && Catch::Contains("got 9"));
}

TEST_CASE("missing files and directories are reported", "[checkpoint]") {
  CHECK(load_model("/nonexistent/model").error().code == ErrorCode::kNotFound);
  ScratchModel s("noweights");
  auto e = s.load_error();
  CHECK(e.code == ErrorCode::kNotFound);
  CHECK_THAT(e.message, Catch::Contains("safetensors"));
}

TEST_CASE("a sharded index that points at a file without the tensor is reported", "[checkpoint]") {
  ScratchModel s("index");
  s.write();
  std::ofstream(s.dir / "model.safetensors.index.json")
      << "{\"metadata\": {}, \"weight_map\": {\"model.norm.weight\": \"model.safetensors\", "
         "\"model.ghost.weight\": \"model.safetensors\"}}";
  auto e = s.load_error();
  CHECK_THAT(e.message, Catch::Contains("model.ghost.weight") && Catch::Contains("does not hold it"));
}
