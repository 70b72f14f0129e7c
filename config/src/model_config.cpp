#include "aurora/config/model_config.hpp"

#include <algorithm>
#include <set>
#include <sstream>

#include "aurora/config/json.hpp"

namespace aurora::config {

const char* architecture_name(ModelArchitecture arch) {
  switch (arch) {
    case ModelArchitecture::kMixtral: return "MixtralForCausalLM";
    case ModelArchitecture::kQwen2Moe: return "Qwen2MoeForCausalLM";
    case ModelArchitecture::kQwen3Moe: return "Qwen3MoeForCausalLM";
    case ModelArchitecture::kOlmoe: return "OlmoeForCausalLM";
    case ModelArchitecture::kEmbedded: return "AuroraEmbeddedMoe";
  }
  return "?";
}

std::string supported_architectures() {
  return "MixtralForCausalLM, Qwen2MoeForCausalLM, Qwen3MoeForCausalLM, OlmoeForCausalLM";
}

int32_t ModelConfig::num_moe_layers() const {
  return static_cast<int32_t>(std::count(layer_is_moe.begin(), layer_is_moe.end(), true));
}

namespace {

std::optional<ModelArchitecture> architecture_from_name(std::string_view name) {
  if (name == "MixtralForCausalLM") return ModelArchitecture::kMixtral;
  if (name == "Qwen2MoeForCausalLM") return ModelArchitecture::kQwen2Moe;
  if (name == "Qwen3MoeForCausalLM") return ModelArchitecture::kQwen3Moe;
  if (name == "OlmoeForCausalLM") return ModelArchitecture::kOlmoe;
  return std::nullopt;
}

std::optional<ModelArchitecture> architecture_from_model_type(std::string_view type) {
  if (type == "mixtral") return ModelArchitecture::kMixtral;
  if (type == "qwen2_moe") return ModelArchitecture::kQwen2Moe;
  if (type == "qwen3_moe") return ModelArchitecture::kQwen3Moe;
  if (type == "olmoe") return ModelArchitecture::kOlmoe;
  return std::nullopt;
}

const char* model_type_of(ModelArchitecture arch) {
  switch (arch) {
    case ModelArchitecture::kMixtral: return "mixtral";
    case ModelArchitecture::kQwen2Moe: return "qwen2_moe";
    case ModelArchitecture::kQwen3Moe: return "qwen3_moe";
    case ModelArchitecture::kOlmoe: return "olmoe";
    case ModelArchitecture::kEmbedded: return "aurora_embedded";
  }
  return "?";
}

int32_t positive_int(const JsonValue& root, std::string_view key, int64_t max = (int64_t{1} << 30)) {
  return static_cast<int32_t>(root[key].int_in(1, max));
}

int32_t int_or(const JsonValue& root, std::string_view key, int32_t fallback, int64_t lo = 0,
               int64_t hi = (int64_t{1} << 30)) {
  auto v = root.find(key);
  return v ? static_cast<int32_t>(v->int_in(lo, hi)) : fallback;
}

bool bool_or(const JsonValue& root, std::string_view key, bool fallback) {
  auto v = root.find(key);
  return v ? v->as_bool() : fallback;
}

std::vector<int32_t> int_or_list(const JsonValue& v) {
  std::vector<int32_t> out;
  if (v.is_array()) {
    for (const auto& item : v.items()) out.push_back(static_cast<int32_t>(item.int_in(0, int64_t{1} << 31)));
  } else {
    out.push_back(static_cast<int32_t>(v.int_in(0, int64_t{1} << 31)));
  }
  return out;
}

// One RoPE description: {"rope_type"|"type", "rope_theta", "factor", ...}.
void parse_rope_object(const JsonValue& obj, RopeConfig& rope, bool theta_required) {
  std::string type = "default";
  if (auto t = obj.find("rope_type")) {
    type = t->as_string();
  } else if (auto t2 = obj.find("type")) {
    type = t2->as_string();
  }
  if (type != "default" && type != "linear") {
    throw_error(Error{ErrorCode::kUnsupported,
                      obj.path() + ".rope_type: unsupported RoPE type \"" + type + "\" (supported: default, linear)",
                      obj.path() + ".rope_type"});
  }
  rope.type = type;
  if (auto theta = obj.find("rope_theta")) {
    rope.theta = theta->positive_double();
  } else if (theta_required) {
    obj["rope_theta"];  // throws "is required"
  }
  if (type == "linear") rope.factor = obj["factor"].positive_double();
  if (auto prf = obj.find("partial_rotary_factor")) {
    if (prf->as_double() != 1.0) {
      throw_error(Error{ErrorCode::kUnsupported,
                        prf->path() + ": partial rotary embeddings are not supported, got " + prf->raw(), prf->path()});
    }
  }
}

RopeConfig parse_rope(const JsonValue& root, double default_theta) {
  RopeConfig rope;
  rope.theta = default_theta;
  if (auto params = root.find("rope_parameters")) {
    if (!params->is_object()) params->fail("must be an object, got " + params->raw());
    // transformers 5.x may key RoPE parameters by layer type for models with several kinds of
    // attention; the architectures we run use one kind only.
    bool flat = params->find("rope_type") || params->find("rope_theta") || params->find("type");
    if (!flat) {
      throw_error(Error{ErrorCode::kUnsupported,
                        params->path() + ": per-layer-type RoPE parameters are not supported, got " + params->raw(),
                        params->path()});
    }
    parse_rope_object(*params, rope, /*theta_required=*/false);
    return rope;
  }
  if (auto theta = root.find("rope_theta")) rope.theta = theta->positive_double();
  if (auto scaling = root.find("rope_scaling")) {
    if (!scaling->is_object()) scaling->fail("must be an object or null, got " + scaling->raw());
    parse_rope_object(*scaling, rope, /*theta_required=*/false);
  }
  if (auto prf = root.find("partial_rotary_factor")) {
    if (prf->as_double() != 1.0) {
      throw_error(Error{ErrorCode::kUnsupported,
                        "partial_rotary_factor: partial rotary embeddings are not supported, got " + prf->raw(),
                        "partial_rotary_factor"});
    }
  }
  return rope;
}

int32_t num_experts_field(const JsonValue& root, std::string_view primary, std::string_view alias) {
  if (root.find(primary)) return positive_int(root, primary, 1 << 16);
  if (root.find(alias)) return positive_int(root, alias, 1 << 16);
  root[primary];  // throws "is required"
  return 0;
}

ModelConfig parse_config_json(const JsonValue& root) {
  ModelConfig c;
  // Architecture: `architectures[0]`, falling back to `model_type`.
  std::optional<ModelArchitecture> arch;
  if (auto archs = root.find("architectures")) {
    if (!archs->is_array() || archs->size() == 0) archs->fail("must be a non-empty array, got " + archs->raw());
    JsonValue first = (*archs)[0];
    std::string name = first.as_string();
    arch = architecture_from_name(name);
    if (!arch) {
      throw_error(Error{
          ErrorCode::kUnsupported,
          first.path() + ": unsupported architecture \"" + name + "\" (supported: " + supported_architectures() + ")",
          first.path()});
    }
  } else if (auto type = root.find("model_type")) {
    std::string t = type->as_string();
    arch = architecture_from_model_type(t);
    if (!arch) {
      throw_error(
          Error{ErrorCode::kUnsupported,
                "model_type: unsupported model type \"" + t + "\" (supported: " + supported_architectures() + ")",
                "model_type"});
    }
  } else {
    root["architectures"];  // throws "is required"
  }
  c.architecture = *arch;
  c.model_type = model_type_of(c.architecture);
  if (auto type = root.find("model_type")) {
    std::string t = type->as_string();
    if (architecture_from_model_type(t) != arch) {
      type->fail("\"" + t + "\" does not match architectures[0] \"" + architecture_name(c.architecture) + "\"");
    }
  }

  c.vocab_size = positive_int(root, "vocab_size");
  c.hidden_size = positive_int(root, "hidden_size", 1 << 20);
  c.num_layers = positive_int(root, "num_hidden_layers", 4096);
  c.num_heads = positive_int(root, "num_attention_heads", 4096);
  c.num_kv_heads = int_or(root, "num_key_value_heads", c.num_heads, 1, 4096);
  c.max_position_embeddings = int_or(root, "max_position_embeddings", 4096, 1);
  c.tie_word_embeddings = bool_or(root, "tie_word_embeddings", false);
  if (auto act = root.find("hidden_act")) {
    std::string a = act->as_string();
    if (a != "silu" && a != "swish") {
      throw_error(Error{ErrorCode::kUnsupported,
                        act->path() + ": unsupported activation \"" + a + "\" (supported: silu)", act->path()});
    }
  }
  if (auto dtype = root.find("torch_dtype")) c.torch_dtype = dtype->as_string();
  if (auto dtype = root.find("dtype")) c.torch_dtype = dtype->as_string();
  if (auto bos = root.find("bos_token_id")) c.bos_token_id = static_cast<int32_t>(bos->int_in(0, int64_t{1} << 31));
  if (auto eos = root.find("eos_token_id")) c.eos_token_ids = int_or_list(*eos);

  int32_t default_head_dim = c.hidden_size / c.num_heads;
  double default_theta = 10000.0;
  c.layer_is_moe.assign(static_cast<size_t>(c.num_layers), true);
  c.layer_sliding_window.assign(static_cast<size_t>(c.num_layers), 0);

  switch (c.architecture) {
    case ModelArchitecture::kMixtral: {
      default_theta = 1e6;
      c.head_dim = int_or(root, "head_dim", default_head_dim, 1);
      c.rms_norm_eps = root.find("rms_norm_eps") ? root["rms_norm_eps"].positive_double() : 1e-5;
      c.num_experts = num_experts_field(root, "num_local_experts", "num_experts");
      c.num_experts_per_tok = positive_int(root, "num_experts_per_tok", 1 << 16);
      c.moe_intermediate_size = positive_int(root, "intermediate_size");
      c.topk_norm = TopKNorm::kRenormalize;
      int32_t window = int_or(root, "sliding_window", 0, 0);
      c.layer_sliding_window.assign(static_cast<size_t>(c.num_layers), window);
      break;
    }
    case ModelArchitecture::kQwen2Moe:
    case ModelArchitecture::kQwen3Moe: {
      const bool qwen3 = c.architecture == ModelArchitecture::kQwen3Moe;
      c.head_dim = int_or(root, "head_dim", default_head_dim, 1);
      c.rms_norm_eps = root.find("rms_norm_eps") ? root["rms_norm_eps"].positive_double() : 1e-6;
      c.num_experts = num_experts_field(root, "num_experts", "num_local_experts");
      c.num_experts_per_tok = positive_int(root, "num_experts_per_tok", 1 << 16);
      c.moe_intermediate_size = positive_int(root, "moe_intermediate_size");
      c.topk_norm = bool_or(root, "norm_topk_prob", false) ? TopKNorm::kRenormalize : TopKNorm::kNone;
      if (qwen3) {
        c.qkv_bias = bool_or(root, "attention_bias", false);
        c.qk_norm = QkNorm::kPerHead;
      } else {
        c.qkv_bias = bool_or(root, "qkv_bias", true);
        c.shared_expert_intermediate_size = positive_int(root, "shared_expert_intermediate_size");
      }
      // Dense layers: mlp_only_layers, else every decoder_sparse_step-th layer is sparse.
      int32_t sparse_step = int_or(root, "decoder_sparse_step", 1, 1);
      std::set<int32_t> mlp_only;
      if (auto only = root.find("mlp_only_layers")) {
        if (!only->is_array()) only->fail("must be an array, got " + only->raw());
        for (const auto& item : only->items()) mlp_only.insert(static_cast<int32_t>(item.int_in(0, c.num_layers - 1)));
      }
      for (int32_t i = 0; i < c.num_layers; ++i) {
        c.layer_is_moe[static_cast<size_t>(i)] = !mlp_only.count(i) && (i + 1) % sparse_step == 0;
      }
      if (c.num_moe_layers() < c.num_layers) c.dense_intermediate_size = positive_int(root, "intermediate_size");
      // Sliding window attention.
      bool use_sliding = bool_or(root, "use_sliding_window", false);
      int32_t window = use_sliding ? int_or(root, "sliding_window", 4096, 0) : 0;
      if (qwen3) {
        c.layer_sliding_window.assign(static_cast<size_t>(c.num_layers), window);
      } else if (auto types = root.find("layer_types")) {
        auto items = types->items();
        if (items.size() != static_cast<size_t>(c.num_layers)) {
          types->fail("must have num_hidden_layers (" + std::to_string(c.num_layers) + ") entries, got " +
                      std::to_string(items.size()));
        }
        for (size_t i = 0; i < items.size(); ++i) {
          std::string t = items[i].as_string();
          if (t == "sliding_attention") {
            c.layer_sliding_window[i] = window;
          } else if (t != "full_attention") {
            items[i].fail("must be \"full_attention\" or \"sliding_attention\", got \"" + t + "\"");
          }
        }
      } else if (use_sliding) {
        int32_t max_window_layers = int_or(root, "max_window_layers", 28, 0);
        for (int32_t i = 0; i < c.num_layers; ++i) {
          bool sliding = ((i + 1) % 2 != 0) && i < max_window_layers;
          c.layer_sliding_window[static_cast<size_t>(i)] = sliding ? window : 0;
        }
      }
      break;
    }
    case ModelArchitecture::kOlmoe: {
      c.head_dim = int_or(root, "head_dim", default_head_dim, 1);
      c.rms_norm_eps = root.find("rms_norm_eps") ? root["rms_norm_eps"].positive_double() : 1e-5;
      c.num_experts = num_experts_field(root, "num_experts", "num_local_experts");
      c.num_experts_per_tok = positive_int(root, "num_experts_per_tok", 1 << 16);
      c.moe_intermediate_size = positive_int(root, "intermediate_size");
      c.topk_norm = bool_or(root, "norm_topk_prob", false) ? TopKNorm::kRenormalize : TopKNorm::kNone;
      c.qkv_bias = bool_or(root, "attention_bias", false);
      c.qk_norm = QkNorm::kFull;
      if (auto clip = root.find("clip_qkv")) c.clip_qkv = clip->positive_double();
      break;
    }
    case ModelArchitecture::kEmbedded: break;
  }
  c.rope = parse_rope(root, default_theta);
  return c;
}

void check_config(const ModelConfig& c) {
  auto fail = [](const std::string& field, const std::string& what) { throw_invalid(field, what); };
  auto num = [](auto v) { return std::to_string(v); };
  if (c.vocab_size <= 0) fail("vocab_size", "must be > 0, got " + num(c.vocab_size));
  if (c.hidden_size <= 0) fail("hidden_size", "must be > 0, got " + num(c.hidden_size));
  if (c.num_layers <= 0) fail("num_hidden_layers", "must be > 0, got " + num(c.num_layers));
  if (c.num_heads <= 0) fail("num_attention_heads", "must be > 0, got " + num(c.num_heads));
  if (c.num_kv_heads <= 0 || c.num_heads % c.num_kv_heads != 0) {
    fail("num_key_value_heads",
         "must divide num_attention_heads (" + num(c.num_heads) + "), got " + num(c.num_kv_heads));
  }
  if (c.head_dim <= 0 || c.head_dim % 2 != 0)
    fail("head_dim", "must be a positive even number, got " + num(c.head_dim));
  if (c.architecture == ModelArchitecture::kOlmoe && c.head_dim * c.num_heads != c.hidden_size) {
    fail("head_dim", "OLMoE needs num_attention_heads * head_dim == hidden_size (" + num(c.hidden_size) + "), got " +
                         num(c.head_dim) + " * " + num(c.num_heads));
  }
  if (c.num_experts <= 0) fail("num_experts", "must be > 0, got " + num(c.num_experts));
  if (c.num_experts_per_tok <= 0 || c.num_experts_per_tok > c.num_experts) {
    fail("num_experts_per_tok",
         "must be in [1, num_experts (" + num(c.num_experts) + ")], got " + num(c.num_experts_per_tok));
  }
  if (c.moe_intermediate_size <= 0) fail("moe_intermediate_size", "must be > 0, got " + num(c.moe_intermediate_size));
  if (c.layer_is_moe.size() != static_cast<size_t>(c.num_layers)) {
    fail("layer_is_moe", "must have num_hidden_layers entries, got " + num(c.layer_is_moe.size()));
  }
  if (c.layer_sliding_window.size() != static_cast<size_t>(c.num_layers)) {
    fail("layer_types", "must have num_hidden_layers entries, got " + num(c.layer_sliding_window.size()));
  }
  if (c.num_moe_layers() < c.num_layers && c.dense_intermediate_size <= 0) {
    fail("intermediate_size", "dense MLP layers need intermediate_size > 0, got " + num(c.dense_intermediate_size));
  }
  if (!(c.rms_norm_eps > 0)) fail("rms_norm_eps", "must be > 0");
  if (!(c.rope.theta > 0)) fail("rope_theta", "must be > 0");
  if (c.max_position_embeddings <= 0) {
    fail("max_position_embeddings", "must be > 0, got " + num(c.max_position_embeddings));
  }
  for (int32_t id : c.eos_token_ids) {
    if (id >= c.vocab_size) fail("eos_token_id", "must be < vocab_size (" + num(c.vocab_size) + "), got " + num(id));
  }
  if (c.bos_token_id && *c.bos_token_id >= c.vocab_size) {
    fail("bos_token_id", "must be < vocab_size (" + num(c.vocab_size) + "), got " + num(*c.bos_token_id));
  }
}

Error with_source(Error error, const std::string& source) {
  error.message = source + ": " + error.message;
  return error;
}

}  // namespace

Result<void> validate_model_config(const ModelConfig& config, const std::string& source) {
  auto r = capture_errors([&] { check_config(config); });
  if (!r) return with_source(r.error(), source);
  return {};
}

Result<ModelConfig> parse_model_config(std::string_view json_text, const std::string& source) {
  auto doc = JsonDocument::parse(json_text, source);
  if (!doc) return doc.error();
  auto r = capture_errors([&] {
    ModelConfig c = parse_config_json(doc->root());
    check_config(c);
    return c;
  });
  if (!r) return with_source(r.error(), source);
  return r;
}

Result<ModelConfig> load_model_config(const std::string& path) {
  auto text = read_text_file(path);
  if (!text) return text.error();
  return parse_model_config(*text, path);
}

Result<GenerationDefaults> parse_generation_config(std::string_view json_text, const std::string& source) {
  auto doc = JsonDocument::parse(json_text, source);
  if (!doc) return doc.error();
  auto r = capture_errors([&] {
    GenerationDefaults g;
    JsonValue root = doc->root();
    if (!root.is_object()) root.fail("must be an object, got " + root.raw());
    if (auto eos = root.find("eos_token_id")) g.eos_token_ids = int_or_list(*eos);
    if (auto bos = root.find("bos_token_id")) g.bos_token_id = static_cast<int32_t>(bos->int_in(0, int64_t{1} << 31));
    if (auto t = root.find("temperature")) g.temperature = t->non_negative_double();
    if (auto p = root.find("top_p")) g.top_p = p->double_in(0.0, 1.0);
    if (auto k = root.find("top_k")) g.top_k = static_cast<int32_t>(k->int_in(0, int64_t{1} << 30));
    if (auto s = root.find("do_sample")) g.do_sample = s->as_bool();
    return g;
  });
  if (!r) return with_source(r.error(), source);
  return r;
}

Result<GenerationDefaults> load_generation_config(const std::string& path) {
  auto text = read_text_file(path);
  if (!text) return text.error();
  return parse_generation_config(*text, path);
}

}  // namespace aurora::config
