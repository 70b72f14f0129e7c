#include "tokenizer/hf_tokenizer.hpp"

#include <algorithm>

#include "tokenizer/utf8.hpp"

namespace aurora::runtime::tok {

using config::JsonDocument;
using config::JsonValue;

// --- tokenizer.json ------------------------------------------------------------------------------

namespace {

bool flag(const JsonValue& json, std::string_view key, bool fallback) {
  auto v = json.find(key);
  return v ? v->as_bool() : fallback;
}

TokenizerPipeline parse_pipeline(const JsonValue& root) {
  if (!root.is_object()) root.fail("must be a tokenizer.json object, got " + root.raw());
  TokenizerPipeline p;
  if (auto added = root.find("added_tokens")) {
    for (const auto& item : added->items()) {
      AddedToken t;
      t.id = static_cast<int32_t>(item["id"].int_in(0, kMaxTokenId));
      t.content = item["content"].as_string();
      if (t.content.empty()) item["content"].fail("must not be empty");
      if (!is_valid_utf8(t.content)) item["content"].fail("is not valid UTF-8");
      t.special = flag(item, "special", false);
      t.single_word = flag(item, "single_word", false);
      t.lstrip = flag(item, "lstrip", false);
      t.rstrip = flag(item, "rstrip", false);
      t.normalized = flag(item, "normalized", !t.special);
      p.added_tokens.push_back(std::move(t));
    }
  }
  if (auto n = root.find("normalizer")) p.normalizer = parse_normalizer(*n);
  if (auto pt = root.find("pre_tokenizer")) p.pre_tokenizer = parse_pre_tokenizer(*pt);
  const JsonValue model = root["model"];
  if (!model.is_object()) model.fail("must be an object, got " + model.raw());
  if (auto type = model.find("type")) {
    const std::string t = type->as_string();
    if (t != "BPE") {
      type->fail("unsupported model type '" + t +
                 "' (Aurora implements BPE tokenizers; WordPiece, Unigram and "
                 "WordLevel are not supported)");
    }
  }
  p.model = BpeModel::parse(model);
  if (auto pp = root.find("post_processor")) p.post_processor = parse_post_processor(*pp);
  if (auto d = root.find("decoder")) p.decoder = parse_decoder(*d);
  return p;
}

}  // namespace

Result<TokenizerPipeline> parse_tokenizer_json(std::string_view json_text, const std::string& file) {
  auto doc = JsonDocument::parse(json_text, file);
  if (!doc) return doc.error();
  auto parsed = capture_errors([&] { return parse_pipeline(doc->root()); });
  if (!parsed) {
    const Error& e = parsed.error();
    return Error{e.code, file + ": " + e.message, e.field};
  }
  return std::move(parsed).value();
}

// --- HfTokenizer ---------------------------------------------------------------------------------

HfTokenizer::HfTokenizer(TokenizerPipeline pipeline, SpecialTokenSettings settings)
    : p_(std::move(pipeline)), added_(p_.added_tokens, p_.normalizer.get()), settings_(std::move(settings)) {
  vocab_size_ = p_.model->id_limit();
  for (const auto& t : added_.tokens()) vocab_size_ = std::max(vocab_size_, t.id + 1);
}

bool HfTokenizer::is_special(int32_t id) const {
  const AddedToken* t = added_.find_id(id);
  return t != nullptr && t->special;
}

std::optional<std::string> HfTokenizer::id_to_token(int32_t id) const {
  if (const AddedToken* t = added_.find_id(id)) return t->content;
  if (const std::string* s = p_.model->id_to_token(id)) return *s;
  return std::nullopt;
}

std::optional<int32_t> HfTokenizer::token_to_id(std::string_view token) const {
  if (auto id = added_.find_content(token)) return id;
  return p_.model->token_to_id(token);
}

bool HfTokenizer::adds_bos() const {
  if (!settings_.bos_id) return false;
  std::vector<int32_t> ids;
  add_special_tokens(ids);
  return !ids.empty() && ids.front() == *settings_.bos_id;
}

void HfTokenizer::add_special_tokens(std::vector<int32_t>& ids) const {
  if (settings_.add_bos || settings_.add_eos) {
    if (settings_.add_bos.value_or(false) && settings_.bos_id) ids.insert(ids.begin(), *settings_.bos_id);
    if (settings_.add_eos.value_or(false) && !settings_.eos_ids.empty()) ids.push_back(settings_.eos_ids.front());
    return;
  }
  if (p_.post_processor) p_.post_processor->process(ids);
}

// Normalizes one piece of text between raw-matched added tokens, finds the normalized added
// tokens in it, and runs the pre-tokenizer and the model on the rest.
void HfTokenizer::encode_text(std::string text, bool at_origin, std::vector<int32_t>& ids) const {
  if (p_.normalizer) p_.normalizer->normalize(text);
  std::vector<AddedVocabulary::Segment> segments;
  added_.split(text, /*normalized_set=*/true, segments);
  std::vector<Piece> pieces;
  for (const auto& seg : segments) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      continue;
    }
    pieces.clear();
    pieces.push_back(Piece{text.substr(seg.begin, seg.end - seg.begin), at_origin && seg.begin == 0});
    if (p_.pre_tokenizer) p_.pre_tokenizer->pre_tokenize(pieces);
    for (const auto& w : pieces) p_.model->tokenize(w.text, ids);
  }
}

std::vector<int32_t> HfTokenizer::encode(std::string_view text, bool add_special) const {
  std::string repaired;
  if (!is_valid_utf8(text)) {
    repaired = utf8_lossy(text);
    text = repaired;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  std::vector<AddedVocabulary::Segment> segments;
  added_.split(text, /*normalized_set=*/false, segments);
  for (const auto& seg : segments) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
    } else {
      encode_text(std::string(text.substr(seg.begin, seg.end - seg.begin)), seg.begin == 0, ids);
    }
  }
  if (add_special) add_special_tokens(ids);
  return ids;
}

Result<std::string> HfTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    if (const AddedToken* t = added_.find_id(id)) {
      if (!(skip_special && t->special)) tokens.push_back(t->content);
    } else if (const std::string* s = p_.model->id_to_token(id)) {
      tokens.push_back(*s);
    } else {
      return Error::invalid("ids[" + std::to_string(i) + "]", "no token has id " + std::to_string(id) +
                                                                  " (vocab_size " + std::to_string(vocab_size_) + ")");
    }
  }
  std::string out;
  if (p_.decoder) {
    p_.decoder->decode_chain(tokens);
    for (const auto& t : tokens) out += t;
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0) out += ' ';
      out += tokens[i];
    }
  }
  return out;
}

namespace {

// "<0xNN>" (SentencePiece byte fallback) -> the byte, else -1.
int byte_fallback_value(std::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
  int v = 0;
  for (size_t k = 3; k < 5; ++k) {
    const char c = t[k];
    const int d = (c >= '0' && c <= '9')   ? c - '0'
                  : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                  : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                                           : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

constexpr std::string_view kMetaspace = "\xE2\x96\x81";  // U+2581, SentencePiece's word-start marker

}  // namespace

std::optional<std::string> HfTokenizer::token_bytes(int32_t id) const {
  if (const AddedToken* t = added_.find_id(id)) return t->content;
  const std::string* token = p_.model->id_to_token(id);
  if (!token) return std::nullopt;
  auto decoded = decode({id}, /*skip_special=*/false);
  std::string text = decoded ? std::move(decoded).value() : std::string();
  if (text.find(kReplacementChar) != std::string::npos) {
    // Part of a character: the decoders repaired it to U+FFFD; recover the raw bytes from the
    // token string (a <0xNN> byte, or characters of the GPT-2 byte-level alphabet).
    if (const int b = byte_fallback_value(*token); b >= 0) return std::string(1, static_cast<char>(b));
    std::string bytes;
    size_t i = 0;
    while (i < token->size()) {
      const int b = is_valid_utf8(*token) ? unicode_to_byte(next_code_point(*token, i)) : -1;
      if (b < 0) return text;  // not byte-level: keep the decoder's text
      bytes += static_cast<char>(b);
    }
    return bytes;
  }
  // Decoded alone, a SentencePiece word-start token loses its space (Strip / Metaspace on the
  // first token); after other text it has one.
  if (token->compare(0, kMetaspace.size(), kMetaspace) == 0 && (text.empty() || text.front() != ' ')) {
    text.insert(0, 1, ' ');
  }
  return text;
}

Result<std::string> HfTokenizer::apply_chat_template(const std::vector<ChatMessage>& messages,
                                                     bool add_generation_prompt) const {
  return render_chat(settings_.chat, messages, add_generation_prompt);
}

}  // namespace aurora::runtime::tok
