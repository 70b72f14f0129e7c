// IncrementalDecoder: streaming detokenization with prefix/read offsets (as HF TGI and vLLM do).
//
// The window ids_[prefix_offset_, end) is decoded on every push; the text of
// ids_[prefix_offset_, read_offset_) was already emitted and is cut off the front. Decoding from
// prefix_offset_ rather than read_offset_ keeps the context that decoders need (Metaspace and
// Strip drop the leading space of the first token only; byte runs must be decoded together).
// Text ending in U+FFFD may be an incomplete UTF-8 character, so it is held back until the next
// tokens complete it. After each emission the window is compacted, so its length stays a few
// tokens and each push costs O(window), not O(stream).
#include "aurora/runtime/tokenizer.hpp"
#include "tokenizer/utf8.hpp"

namespace aurora::runtime {

namespace {

bool ends_with_replacement(const std::string& s) {
  return s.size() >= tok::kReplacementChar.size() &&
         s.compare(s.size() - tok::kReplacementChar.size(), tok::kReplacementChar.size(), tok::kReplacementChar) == 0;
}

std::string decode_range(const Tokenizer& t, const std::vector<int32_t>& ids, size_t from, size_t to, bool skip) {
  if (from >= to) return {};
  std::vector<int32_t> window(ids.begin() + static_cast<std::ptrdiff_t>(from),
                              ids.begin() + static_cast<std::ptrdiff_t>(to));
  auto text = t.decode(window, skip);
  return text ? std::move(text).value() : std::string();
}

// The part of `text` after `prefix`. When a decoder rewrote the prefix (it should not), cut at
// the first character boundary past the prefix length, never inside a character.
std::string suffix_after(const std::string& text, const std::string& prefix) {
  size_t cut = prefix.size();
  if (text.compare(0, prefix.size(), prefix) != 0) {
    while (cut < text.size() && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) ++cut;
  }
  return cut < text.size() ? text.substr(cut) : std::string();
}

}  // namespace

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special)
    : tokenizer_(&tokenizer), skip_special_(skip_special) {}

std::string IncrementalDecoder::push(int32_t id) {
  // Skipped specials decode to nothing wherever they stand, and ids without a token have no
  // text: neither needs to enter the window.
  if (skip_special_ && tokenizer_->is_special(id)) return {};
  if (!tokenizer_->id_to_token(id)) return {};
  ids_.push_back(id);
  std::string text = decode_range(*tokenizer_, ids_, prefix_offset_, ids_.size(), skip_special_);
  const size_t pending = ids_.size() - read_offset_;
  if (text.size() <= prefix_text_.size()) return {};
  if (ends_with_replacement(text) && pending <= kMaxPendingTokens) return {};
  std::string delta = suffix_after(text, prefix_text_);
  // Advance, then drop what no longer serves as context.
  ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(read_offset_));
  prefix_offset_ = 0;
  read_offset_ = ids_.size();
  prefix_text_ = decode_range(*tokenizer_, ids_, prefix_offset_, read_offset_, skip_special_);
  return delta;
}

std::string IncrementalDecoder::flush() {
  std::string delta;
  if (read_offset_ < ids_.size()) {
    std::string text = decode_range(*tokenizer_, ids_, prefix_offset_, ids_.size(), skip_special_);
    delta = suffix_after(text, prefix_text_);
  }
  ids_.clear();
  prefix_offset_ = 0;
  read_offset_ = 0;
  prefix_text_.clear();
  return delta;
}

}  // namespace aurora::runtime
