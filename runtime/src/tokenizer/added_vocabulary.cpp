#include "tokenizer/added_vocabulary.hpp"

#include <algorithm>

#include "tokenizer/utf8.hpp"

namespace aurora::runtime::tok {

void AddedVocabulary::Trie::insert(std::string_view key, int32_t token) {
  if (key.empty()) return;
  empty = false;
  first_byte[static_cast<unsigned char>(key[0])] = true;
  int32_t node = 0;
  for (char ch : key) {
    const auto c = static_cast<unsigned char>(ch);
    auto& edges = nodes[static_cast<size_t>(node)].edges;
    auto it =
        std::lower_bound(edges.begin(), edges.end(), c, [](const auto& e, unsigned char v) { return e.first < v; });
    if (it != edges.end() && it->first == c) {
      node = it->second;
      continue;
    }
    const auto child = static_cast<int32_t>(nodes.size());
    edges.insert(it, {c, child});
    nodes.emplace_back();
    node = child;
  }
  // The first token with a given content wins (later duplicates are unreachable, as in HF).
  if (nodes[static_cast<size_t>(node)].token < 0) nodes[static_cast<size_t>(node)].token = token;
}

std::pair<int32_t, size_t> AddedVocabulary::Trie::longest_at(std::string_view text, size_t pos) const {
  std::pair<int32_t, size_t> best{-1, pos};
  int32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    const auto& edges = nodes[static_cast<size_t>(node)].edges;
    auto it =
        std::lower_bound(edges.begin(), edges.end(), c, [](const auto& e, unsigned char v) { return e.first < v; });
    if (it == edges.end() || it->first != c) break;
    node = it->second;
    if (nodes[static_cast<size_t>(node)].token >= 0) best = {nodes[static_cast<size_t>(node)].token, i + 1};
  }
  return best;
}

AddedVocabulary::AddedVocabulary(std::vector<AddedToken> tokens, const Normalizer* normalizer)
    : tokens_(std::move(tokens)) {
  int32_t max_id = -1;
  for (const auto& t : tokens_) max_id = std::max(max_id, t.id);
  by_id_.assign(static_cast<size_t>(max_id + 1), -1);
  for (size_t k = 0; k < tokens_.size(); ++k) {
    const AddedToken& t = tokens_[k];
    const auto index = static_cast<int32_t>(k);
    by_content_.emplace(t.content, t.id);
    int32_t& slot = by_id_[static_cast<size_t>(t.id)];
    if (slot < 0) slot = index;
    if (t.normalized) {
      std::string key = t.content;
      if (normalizer != nullptr) normalizer->normalize(key);
      normalized_.insert(key, index);
    } else {
      raw_.insert(t.content, index);
    }
  }
}

const AddedToken* AddedVocabulary::find_id(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= by_id_.size() || by_id_[static_cast<size_t>(id)] < 0) return nullptr;
  return &tokens_[static_cast<size_t>(by_id_[static_cast<size_t>(id)])];
}

std::optional<int32_t> AddedVocabulary::find_content(std::string_view content) const {
  auto it = by_content_.find(content);
  if (it == by_content_.end()) return std::nullopt;
  return it->second;
}

namespace {

bool ends_with_word(std::string_view s) {
  if (s.empty()) return false;
  size_t start;
  return is_word_char(prev_code_point(s, s.size(), start));
}

bool starts_with_word(std::string_view s) {
  if (s.empty()) return false;
  size_t i = 0;
  return is_word_char(next_code_point(s, i));
}

// Start of the trailing whitespace run of s (s.size() when none).
size_t trailing_space_start(std::string_view s) {
  size_t e = s.size();
  while (e > 0) {
    size_t start;
    if (!is_whitespace(prev_code_point(s, e, start))) break;
    e = start;
  }
  return e;
}

// Length of the leading whitespace run of s.
size_t leading_space_len(std::string_view s) {
  size_t b = 0;
  while (b < s.size()) {
    size_t i = b;
    if (!is_whitespace(next_code_point(s, i))) break;
    b = i;
  }
  return b;
}

}  // namespace

void AddedVocabulary::split(std::string_view text, bool normalized_set, std::vector<Segment>& out) const {
  out.clear();
  const Trie& trie = normalized_set ? normalized_ : raw_;
  if (trie.empty || text.empty()) {
    out.push_back({0, text.size(), -1});
    return;
  }
  size_t start_offset = 0;  // end of the previous accepted match
  size_t pos = 0;
  while (pos < text.size()) {
    if (!trie.first_byte[static_cast<unsigned char>(text[pos])]) {
      ++pos;
      continue;
    }
    auto [index, stop] = trie.longest_at(text, pos);
    if (index < 0) {
      ++pos;
      continue;
    }
    size_t start = pos;
    pos = stop;  // the scan resumes after this match, accepted or not (non-overlapping matches)
    const AddedToken& token = tokens_[static_cast<size_t>(index)];
    if (token.single_word) {
      const bool start_ok = start == 0 || !ends_with_word(text.substr(0, start));
      const bool stop_ok = stop == text.size() || !starts_with_word(text.substr(stop));
      if (!start_ok || !stop_ok) continue;
    }
    if (token.lstrip) start = std::max(trailing_space_start(text.substr(0, start)), start_offset);
    if (token.rstrip) stop += leading_space_len(text.substr(stop));
    if (start > start_offset) out.push_back({start_offset, start, -1});
    out.push_back({start, stop, token.id});
    start_offset = stop;
    pos = stop;
  }
  if (start_offset != text.size()) out.push_back({start_offset, text.size(), -1});
}

}  // namespace aurora::runtime::tok
