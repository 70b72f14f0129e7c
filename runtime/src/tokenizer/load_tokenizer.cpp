// load_tokenizer: tokenizer.json plus, for a model directory, tokenizer_config.json (BOS/EOS,
// add_bos_token, chat template, added_tokens_decoder), generation_config.json (EOS ids) and
// chat_template.jinja.
#include <filesystem>

#include "aurora/config/json.hpp"
#include "aurora/runtime/tokenizer.hpp"
#include "tokenizer/hf_tokenizer.hpp"

namespace aurora::runtime {

namespace {

namespace fs = std::filesystem;
using config::JsonDocument;
using config::JsonValue;
using tok::AddedToken;
using tok::HfTokenizer;
using tok::SpecialTokenSettings;
using tok::TokenizerPipeline;

Error in_file(const std::string& file, const Error& e) { return Error{e.code, file + ": " + e.message, e.field}; }

// The model directory's optional configuration, as read from its files.
struct DirectoryConfig {
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
  std::optional<bool> add_bos;
  std::optional<bool> add_eos;
  std::string chat_template;  // Jinja text
  std::vector<AddedToken> extra_added_tokens;
  std::vector<int32_t> generation_eos_ids;
  std::optional<int32_t> generation_bos_id;
  bool has_tokenizer_config = false;
};

// bos_token / eos_token: "text", {"content": "text", ...} or null.
std::optional<std::string> token_text(const JsonValue& parent, std::string_view key) {
  auto v = parent.find(key);
  if (!v) return std::nullopt;
  if (v->is_string()) return v->as_string();
  if (v->is_object()) return (*v)["content"].as_string();
  v->fail("must be a string or {\"content\": ...}, got " + v->raw());
}

void read_tokenizer_config(const JsonValue& root, DirectoryConfig& dc) {
  if (!root.is_object()) root.fail("must be an object, got " + root.raw());
  dc.has_tokenizer_config = true;
  dc.bos_token = token_text(root, "bos_token");
  dc.eos_token = token_text(root, "eos_token");
  if (auto v = root.find("add_bos_token")) dc.add_bos = v->as_bool();
  if (auto v = root.find("add_eos_token")) dc.add_eos = v->as_bool();
  if (auto t = root.find("chat_template")) {
    if (t->is_string()) {
      dc.chat_template = t->as_string();
    } else if (t->is_array()) {
      // [{"name": "default", "template": "..."}, {"name": "tool_use", ...}]: take "default".
      for (const auto& item : t->items()) {
        if (item["name"].as_string() == "default" || dc.chat_template.empty()) {
          dc.chat_template = item["template"].as_string();
        }
      }
    } else {
      t->fail("must be a string or a list of {name, template}, got " + t->raw());
    }
  }
  if (auto decoder = root.find("added_tokens_decoder")) {
    for (const auto& member : decoder->members()) {
      const std::string& key = member.first;
      const JsonValue& value = member.second;
      AddedToken t;
      try {
        size_t used = 0;
        long id = std::stol(key, &used);
        if (used != key.size() || id < 0 || id > tok::kMaxTokenId) throw std::invalid_argument(key);
        t.id = static_cast<int32_t>(id);
      } catch (const std::exception&) {
        value.fail("key must be a token id in [0, " + std::to_string(tok::kMaxTokenId) + "], got '" + key + "'");
      }
      t.content = value["content"].as_string();
      auto flag = [&](std::string_view k, bool fallback) {
        auto f = value.find(k);
        return f ? f->as_bool() : fallback;
      };
      t.special = flag("special", false);
      t.single_word = flag("single_word", false);
      t.lstrip = flag("lstrip", false);
      t.rstrip = flag("rstrip", false);
      t.normalized = flag("normalized", !t.special);
      if (!t.content.empty()) dc.extra_added_tokens.push_back(std::move(t));
    }
  }
}

void read_generation_config(const JsonValue& root, DirectoryConfig& dc) {
  if (!root.is_object()) root.fail("must be an object, got " + root.raw());
  if (auto eos = root.find("eos_token_id")) {
    if (eos->is_array()) {
      for (const auto& id : eos->items())
        dc.generation_eos_ids.push_back(static_cast<int32_t>(id.int_in(0, INT32_MAX - 1)));
    } else {
      dc.generation_eos_ids.push_back(static_cast<int32_t>(eos->int_in(0, INT32_MAX - 1)));
    }
  }
  if (auto bos = root.find("bos_token_id")) dc.generation_bos_id = static_cast<int32_t>(bos->int_in(0, INT32_MAX - 1));
}

// Reads an optional JSON file of the directory with `reader`; errors name the file.
template <class Reader>
Result<void> read_optional_json(const fs::path& file, DirectoryConfig& dc, Reader reader) {
  std::error_code ec;
  if (!fs::exists(file, ec)) return {};
  auto doc = JsonDocument::parse_file(file.string());
  if (!doc) return doc.error();
  auto r = capture_errors([&] { reader(doc->root(), dc); });
  if (!r) return in_file(file.string(), r.error());
  return {};
}

std::optional<int32_t> lookup(const TokenizerPipeline& p, std::string_view token) {
  for (const auto& t : p.added_tokens) {
    if (t.content == token) return t.id;
  }
  return p.model->token_to_id(token);
}

// Without tokenizer_config.json: the usual special-token spellings that the file declares.
void default_special_tokens(const TokenizerPipeline& p, SpecialTokenSettings& s) {
  auto special = [&](std::string_view content) -> std::optional<int32_t> {
    for (const auto& t : p.added_tokens) {
      if (t.special && t.content == content) return t.id;
    }
    return std::nullopt;
  };
  for (std::string_view bos : {"<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>"}) {
    if (auto id = special(bos)) {
      s.bos_id = id;
      break;
    }
  }
  for (std::string_view eos : {"</s>", "<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<eos>"}) {
    if (auto id = special(eos)) s.eos_ids.push_back(*id);
  }
}

Result<std::shared_ptr<const Tokenizer>> load(const std::string& path, const std::string& chat_template) {
  std::optional<ChatFormat> forced;
  if (!chat_template.empty()) {
    auto f = parse_chat_format(chat_template, "chat_template");
    if (!f) return f.error();
    forced = *f;
  }
  std::error_code ec;
  const fs::path input(path);
  if (path.empty() || !fs::exists(input, ec)) {
    return Error{ErrorCode::kNotFound, "tokenizer: '" + path + "': no such file or directory", "tokenizer"};
  }
  const bool is_dir = fs::is_directory(input, ec);
  const fs::path json_path = is_dir ? input / "tokenizer.json" : input;
  if (is_dir && !fs::exists(json_path, ec)) {
    return Error{ErrorCode::kNotFound, json_path.string() + ": the model directory has no tokenizer.json", "tokenizer"};
  }
  auto text = config::read_text_file(json_path.string());
  if (!text) return text.error();
  auto parsed = tok::parse_tokenizer_json(*text, json_path.string());
  if (!parsed) return parsed.error();
  TokenizerPipeline pipeline = std::move(parsed).value();

  DirectoryConfig dc;
  if (is_dir) {
    if (auto r = read_optional_json(input / "tokenizer_config.json", dc, read_tokenizer_config); !r) return r.error();
    if (auto r = read_optional_json(input / "generation_config.json", dc, read_generation_config); !r) return r.error();
    const fs::path jinja = input / "chat_template.jinja";
    if (fs::exists(jinja, ec)) {
      auto t = config::read_text_file(jinja.string());
      if (!t) return t.error();
      dc.chat_template = *t;
    }
  }
  for (auto& t : dc.extra_added_tokens) {
    bool known = false;
    for (const auto& have : pipeline.added_tokens) known = known || have.id == t.id;
    if (!known) pipeline.added_tokens.push_back(std::move(t));
  }

  SpecialTokenSettings settings;
  const std::string config_file = (input / "tokenizer_config.json").string();
  if (dc.has_tokenizer_config) {
    if (dc.bos_token) {
      settings.bos_id = lookup(pipeline, *dc.bos_token);
      if (!settings.bos_id) {
        return Error::invalid(config_file + ": bos_token", "'" + *dc.bos_token + "' is not a token of tokenizer.json");
      }
    }
    if (dc.eos_token) {
      auto id = lookup(pipeline, *dc.eos_token);
      if (!id)
        return Error::invalid(config_file + ": eos_token", "'" + *dc.eos_token + "' is not a token of tokenizer.json");
      settings.eos_ids.push_back(*id);
    }
    settings.add_bos = dc.add_bos;
    settings.add_eos = dc.add_eos;
  } else {
    default_special_tokens(pipeline, settings);
  }
  if (!settings.bos_id && dc.generation_bos_id) settings.bos_id = dc.generation_bos_id;
  for (int32_t id : dc.generation_eos_ids) {
    if (std::find(settings.eos_ids.begin(), settings.eos_ids.end(), id) == settings.eos_ids.end()) {
      settings.eos_ids.push_back(id);
    }
  }

  auto tokenizer = std::make_shared<HfTokenizer>(std::move(pipeline), std::move(settings));
  ChatTemplate chat = forced ? ChatTemplate{*forced, "", "", "", false, true} : detect_chat_template(dc.chat_template);
  const auto bos = tokenizer->bos_id();
  const std::string bos_text = bos ? tokenizer->id_to_token(*bos).value_or("") : "";
  // The BOS text starts the prompt where the real template writes it: [INST] templates always
  // do; a ChatML or Tulu Jinja template only when it names bos_token; without Jinja (forced or plain),
  // whenever the tokenizer itself would add a BOS.
  const bool have_jinja = !forced && !dc.chat_template.empty();
  bool write_bos = false;
  if (chat.format == ChatFormat::kLlama2 || chat.format == ChatFormat::kMistral) {
    write_bos = true;
  } else if ((chat.format == ChatFormat::kChatMl || chat.format == ChatFormat::kTulu) && have_jinja) {
    write_bos = dc.chat_template.find("bos_token") != std::string::npos;
  } else {
    write_bos = tokenizer->adds_bos();
  }
  if (write_bos) chat.bos_text = bos_text;
  const auto eos = tokenizer->eos_ids();
  chat.eos_text = dc.eos_token.value_or(eos.empty() ? "" : tokenizer->id_to_token(eos.front()).value_or(""));
  tokenizer->set_chat_template(std::move(chat));
  return std::shared_ptr<const Tokenizer>(std::move(tokenizer));
}

}  // namespace

Result<std::shared_ptr<const Tokenizer>> load_tokenizer(const std::string& path, const std::string& chat_template) {
  try {
    return load(path, chat_template);
  } catch (const ErrorException& e) {
    return e.error();
  } catch (const std::bad_alloc&) {
    return Error::make(ErrorCode::kResourceExhausted, path + ": out of memory while loading the tokenizer");
  }
}

}  // namespace aurora::runtime
