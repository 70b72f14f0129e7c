#include "checkpoint/safetensors.hpp"

#include <cstring>
#include <sstream>

#include "aurora/config/json.hpp"

namespace aurora::runtime {

int64_t TensorInfo::num_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

namespace {

struct DTypeInfo {
  DType dtype;
  size_t bytes;
};

std::optional<DTypeInfo> dtype_info(const std::string& name) {
  if (name == "F32") return DTypeInfo{DType::kF32, 4};
  if (name == "BF16") return DTypeInfo{DType::kBF16, 2};
  if (name == "F16") return DTypeInfo{DType::kF16, 2};
  // Known but unsupported for weights: still sized, so that the header can be validated and the
  // error can name the tensor when (and only when) the model needs it.
  if (name == "F64" || name == "I64" || name == "U64") return DTypeInfo{DType::kOther, 8};
  if (name == "I32" || name == "U32") return DTypeInfo{DType::kOther, 4};
  if (name == "I16" || name == "U16") return DTypeInfo{DType::kOther, 2};
  if (name == "I8" || name == "U8" || name == "BOOL" || name == "F8_E4M3" || name == "F8_E5M2") {
    return DTypeInfo{DType::kOther, 1};
  }
  return std::nullopt;
}

Error bad_file(const std::string& path, const std::string& what) {
  return Error::make(ErrorCode::kInvalidArgument, path + ": " + what);
}

}  // namespace

Result<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  auto mapped = MappedFile::open(path);
  if (!mapped) return mapped.error();
  SafetensorsFile st;
  st.file_ = std::move(*mapped);
  const size_t size = st.file_.size();
  if (size < 8) {
    return bad_file(path,
                    "truncated safetensors file: " + std::to_string(size) + " bytes, the header length alone needs 8");
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(st.file_.data()[i]);
  if (header_len > size - 8) {
    return bad_file(path, "truncated or corrupt safetensors file: header length " + std::to_string(header_len) +
                              " exceeds the " + std::to_string(size - 8) + " bytes after it");
  }
  if (header_len > (uint64_t{100} << 20)) {
    return bad_file(path, "bad safetensors header: length " + std::to_string(header_len) + " is over 100 MiB");
  }
  std::string_view header(reinterpret_cast<const char*>(st.file_.data() + 8), static_cast<size_t>(header_len));
  auto doc = config::JsonDocument::parse(header, path + " (safetensors header)");
  if (!doc) return bad_file(path, "bad safetensors header: " + doc.error().message);
  const std::byte* data_start = st.file_.data() + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;
  auto parsed = capture_errors([&] {
    config::JsonValue root = doc->root();
    if (!root.is_object()) root.fail("the header must be a JSON object");
    for (auto& [name, value] : root.members()) {
      if (name == "__metadata__") continue;
      TensorInfo info;
      info.name = name;
      info.dtype_name = value["dtype"].as_string();
      auto dt = dtype_info(info.dtype_name);
      if (!dt) value["dtype"].fail("unknown dtype \"" + info.dtype_name + "\"");
      info.dtype = dt->dtype;
      int64_t elements = 1;
      for (const auto& d : value["shape"].items()) {
        info.shape.push_back(d.int_in(0, int64_t{1} << 40));
        elements *= info.shape.back();
        if (elements > (int64_t{1} << 40)) d.fail("tensor is too large");
      }
      auto offsets = value["data_offsets"];
      if (!offsets.is_array() || offsets.size() != 2) offsets.fail("must be [begin, end], got " + offsets.raw());
      const int64_t begin = offsets[0].int_in(0, int64_t{1} << 50);
      const int64_t end = offsets[1].int_in(0, int64_t{1} << 50);
      if (end < begin) offsets.fail("end before begin: " + offsets.raw());
      const uint64_t expected_bytes = static_cast<uint64_t>(elements) * dt->bytes;
      if (static_cast<uint64_t>(end - begin) != expected_bytes) {
        offsets.fail("holds " + std::to_string(end - begin) + " bytes but shape " + shape_string(info.shape) + " of " +
                     info.dtype_name + " needs " + std::to_string(expected_bytes));
      }
      if (static_cast<uint64_t>(end) > data_size) {
        throw_error(
            Error::make(ErrorCode::kInvalidArgument, "truncated file: tensor \"" + name + "\" needs data bytes [" +
                                                         std::to_string(begin) + ", " + std::to_string(end) +
                                                         ") but the file holds only " + std::to_string(data_size)));
      }
      info.data = data_start + begin;
      info.num_bytes = static_cast<size_t>(end - begin);
      st.tensors_.emplace(name, std::move(info));
    }
  });
  if (!parsed) return bad_file(path, parsed.error().message);
  return st;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

float bf16_to_f32(uint16_t bits) {
  uint32_t u = uint32_t{bits} << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t{h & 0x8000u} << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ffu;
  uint32_t u;
  if (exp == 0) {
    if (mant == 0) {
      u = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ffu;
      u = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (mant << 13);  // inf or nan
  } else {
    u = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

void convert_to_f32(DType dtype, const std::byte* src, int64_t n, float* dst) {
  switch (dtype) {
    case DType::kF32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t b;
        std::memcpy(&b, src + 2 * i, 2);
        dst[i] = bf16_to_f32(b);
      }
      return;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t b;
        std::memcpy(&b, src + 2 * i, 2);
        dst[i] = f16_to_f32(b);
      }
      return;
    case DType::kOther: break;
  }
  AURORA_CHECK_MSG(false, "convert_to_f32: unsupported dtype");
}

}  // namespace aurora::runtime
