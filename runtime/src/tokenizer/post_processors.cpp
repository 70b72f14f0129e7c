// Post-processors (HF `tokenizers::processors`) for a single sequence: TemplateProcessing,
// RobertaProcessing, BertProcessing, ByteLevel (ids unchanged) and Sequence.
#include <map>

#include "tokenizer/components.hpp"

namespace aurora::runtime::tok {

namespace {

using config::JsonValue;

// Built for the single-sequence template: a list of literal id runs with one slot for $A.
class TemplateProcessor final : public PostProcessor {
 public:
  TemplateProcessor(std::vector<int32_t> before, std::vector<int32_t> after)
      : before_(std::move(before)), after_(std::move(after)) {}
  void process(std::vector<int32_t>& ids) const override {
    ids.insert(ids.begin(), before_.begin(), before_.end());
    ids.insert(ids.end(), after_.begin(), after_.end());
  }

 private:
  std::vector<int32_t> before_;
  std::vector<int32_t> after_;
};

class NoopProcessor final : public PostProcessor {
 public:
  void process(std::vector<int32_t>& /*ids*/) const override {}
};

class SequenceProcessor final : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> steps) : steps_(std::move(steps)) {}
  void process(std::vector<int32_t>& ids) const override {
    for (const auto& s : steps_) s->process(ids);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> steps_;
};

int32_t token_id(const JsonValue& json) { return static_cast<int32_t>(json.int_in(0, INT32_MAX)); }

std::unique_ptr<PostProcessor> parse_template(const JsonValue& json) {
  std::map<std::string, std::vector<int32_t>> specials;
  if (auto table = json.find("special_tokens")) {
    for (const auto& [name, value] : table->members()) {
      std::vector<int32_t> ids;
      for (const auto& id : value["ids"].items()) ids.push_back(token_id(id));
      specials[name] = std::move(ids);
    }
  }
  std::vector<int32_t> before;
  std::vector<int32_t> after;
  bool seen_sequence = false;
  for (const auto& item : json["single"].items()) {
    if (auto special = item.find("SpecialToken")) {
      const auto id = (*special)["id"];
      auto it = specials.find(id.as_string());
      if (it == specials.end()) {
        const std::string name = id.as_string();
        id.fail("'" + name + "' is not in special_tokens");
      }
      auto& dst = seen_sequence ? after : before;
      dst.insert(dst.end(), it->second.begin(), it->second.end());
    } else if (auto sequence = item.find("Sequence")) {
      const std::string which = (*sequence)["id"].as_string();
      if (which == "A") {
        seen_sequence = true;
      } else if (which != "B") {
        (*sequence)["id"].fail("must be A or B, got '" + which + "'");
      }
    } else {
      item.fail("must be {\"SpecialToken\": ...} or {\"Sequence\": ...}, got " + item.raw());
    }
  }
  if (!seen_sequence) json["single"].fail("has no {\"Sequence\": {\"id\": \"A\"}} item");
  return std::make_unique<TemplateProcessor>(std::move(before), std::move(after));
}

// RobertaProcessing / BertProcessing: cls + A + sep, with cls and sep given as [token, id].
std::unique_ptr<PostProcessor> parse_cls_sep(const JsonValue& json) {
  const auto cls = json["cls"];
  const auto sep = json["sep"];
  if (cls.size() != 2) cls.fail("must be [token, id], got " + cls.raw());
  if (sep.size() != 2) sep.fail("must be [token, id], got " + sep.raw());
  return std::make_unique<TemplateProcessor>(std::vector<int32_t>{token_id(cls[1])},
                                             std::vector<int32_t>{token_id(sep[1])});
}

}  // namespace

std::unique_ptr<PostProcessor> parse_post_processor(const JsonValue& json) {
  const std::string type = json["type"].as_string();
  if (type == "TemplateProcessing") return parse_template(json);
  if (type == "RobertaProcessing" || type == "BertProcessing") return parse_cls_sep(json);
  if (type == "ByteLevel") return std::make_unique<NoopProcessor>();
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PostProcessor>> steps;
    for (const auto& item : json["processors"].items()) steps.push_back(parse_post_processor(item));
    return std::make_unique<SequenceProcessor>(std::move(steps));
  }
  throw_invalid(json.path().empty() ? "type" : json.path() + ".type",
                "unsupported post-processor '" + type +
                    "' (supported: TemplateProcessing, RobertaProcessing, BertProcessing, ByteLevel, Sequence)");
}

}  // namespace aurora::runtime::tok
