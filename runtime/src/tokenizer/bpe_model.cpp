#include "tokenizer/bpe_model.hpp"

#include <algorithm>
#include <cstdio>

#include "tokenizer/utf8.hpp"

namespace aurora::runtime::tok {

using config::JsonValue;

// --- cache ---------------------------------------------------------------------------------------

bool BpeModel::WordCache::lookup(std::string_view word, std::vector<int32_t>& out) const {
  Shard& shard = shards_[StringHash{}(word) % kShards];
  std::lock_guard lock(shard.mutex);
  auto it = shard.map.find(word);
  if (it == shard.map.end()) return false;
  out.insert(out.end(), it->second.begin(), it->second.end());
  return true;
}

void BpeModel::WordCache::insert(std::string_view word, const std::vector<int32_t>& ids) const {
  Shard& shard = shards_[StringHash{}(word) % kShards];
  std::lock_guard lock(shard.mutex);
  if (shard.map.size() >= kEntriesPerShard) return;
  shard.map.emplace(std::string(word), ids);
}

// --- construction --------------------------------------------------------------------------------

namespace {

std::string byte_token(int b) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
  return buf;
}

std::optional<std::string> optional_string(const JsonValue& json, std::string_view key) {
  auto v = json.find(key);
  if (!v) return std::nullopt;
  return v->as_string();
}

}  // namespace

void BpeModel::add_merge(int32_t rank, const std::string& a, const std::string& b, const std::string& field) {
  auto ia = vocab_.find(a);
  if (ia == vocab_.end()) throw_invalid(field, "token '" + a + "' is not in model.vocab");
  auto ib = vocab_.find(b);
  if (ib == vocab_.end()) throw_invalid(field, "token '" + b + "' is not in model.vocab");
  const size_t prefix = options_.continuing_subword_prefix.size();
  std::string merged = a;
  if (prefix > 0 && b.compare(0, prefix, options_.continuing_subword_prefix) == 0) {
    merged.append(b, prefix, std::string::npos);
  } else {
    merged += b;
  }
  auto im = vocab_.find(merged);
  if (im == vocab_.end()) throw_invalid(field, "merged token '" + merged + "' is not in model.vocab");
  // A repeated pair keeps its last rank, as HF's HashMap collect does.
  merges_[pair_key(ia->second, ib->second)] = Merge{rank, im->second};
}

void BpeModel::finish() {
  int32_t limit = 0;
  for (const auto& [token, id] : vocab_) limit = std::max(limit, id + 1);
  id_to_token_.assign(static_cast<size_t>(limit), nullptr);
  for (const auto& [token, id] : vocab_) {
    // Several tokens may share an id in a broken file: keep the smallest string, deterministically.
    const std::string*& slot = id_to_token_[static_cast<size_t>(id)];
    if (slot == nullptr || token < *slot) slot = &token;
  }
  if (options_.unk_token) {
    auto it = vocab_.find(*options_.unk_token);
    if (it != vocab_.end()) unk_id_ = it->second;
  }
  all_bytes_present_ = true;
  for (int b = 0; b < 256; ++b) {
    auto it = vocab_.find(byte_token(b));
    byte_ids_[static_cast<size_t>(b)] = it == vocab_.end() ? -1 : it->second;
    all_bytes_present_ = all_bytes_present_ && it != vocab_.end();
  }
  if (options_.continuing_subword_prefix.empty() && options_.end_of_word_suffix.empty()) {
    char_ids_.assign(0x10000, -1);
    for (const auto& [token, id] : vocab_) {
      if (token.empty() || token.size() > 3) continue;
      size_t i = 0;
      char32_t cp = next_code_point(token, i);
      if (i == token.size() && cp < 0x10000) char_ids_[cp] = id;
    }
  }
}

std::unique_ptr<BpeModel> BpeModel::parse(const JsonValue& model) {
  std::unique_ptr<BpeModel> m(new BpeModel());
  BpeOptions& o = m->options_;
  o.unk_token = optional_string(model, "unk_token");
  o.continuing_subword_prefix = optional_string(model, "continuing_subword_prefix").value_or("");
  o.end_of_word_suffix = optional_string(model, "end_of_word_suffix").value_or("");
  if (auto v = model.find("fuse_unk")) o.fuse_unk = v->as_bool();
  if (auto v = model.find("byte_fallback")) o.byte_fallback = v->as_bool();
  if (auto v = model.find("ignore_merges")) o.ignore_merges = v->as_bool();
  if (auto v = model.find("dropout")) {
    double p = v->double_in(0.0, 1.0);
    if (p != 0.0) v->fail("BPE dropout is a training option; inference needs 0 or null, got " + v->raw());
  }

  const JsonValue vocab = model["vocab"];
  if (!vocab.is_object()) vocab.fail("must be an object {token: id}, got " + vocab.raw());
  m->vocab_.reserve(vocab.size());
  for (const auto& [token, id] : vocab.members()) {
    m->vocab_[token] = static_cast<int32_t>(id.int_in(0, kMaxTokenId));
  }

  auto merges = model.find("merges");
  if (merges) {
    if (!merges->is_array()) merges->fail("must be an array, got " + merges->raw());
    m->merges_.reserve(merges->size());
    int32_t rank = 0;
    for (const auto& item : merges->items()) {
      if (item.is_string()) {
        // Legacy form "a b": exactly one space (tokens never contain a plain space).
        const std::string line = item.as_string();
        const size_t space = line.find(' ');
        if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
          item.fail("must be \"left right\" (two tokens separated by one space), got '" + line + "'");
        }
        m->add_merge(rank, line.substr(0, space), line.substr(space + 1), item.path());
      } else if (item.is_array()) {
        if (item.size() != 2) item.fail("must be a pair [left, right], got " + item.raw());
        m->add_merge(rank, item[0].as_string(), item[1].as_string(), item.path());
      } else {
        item.fail("must be \"left right\" or [left, right], got " + item.raw());
      }
      ++rank;
    }
  }
  m->finish();
  return m;
}

std::unique_ptr<BpeModel> BpeModel::build(std::vector<std::pair<std::string, int32_t>> vocab,
                                          const std::vector<std::pair<std::string, std::string>>& merges,
                                          BpeOptions options) {
  std::unique_ptr<BpeModel> m(new BpeModel());
  m->options_ = std::move(options);
  for (auto& [token, id] : vocab) m->vocab_[std::move(token)] = id;
  int32_t rank = 0;
  for (const auto& [a, b] : merges) {
    m->add_merge(rank, a, b, "merges[" + std::to_string(rank) + "]");
    ++rank;
  }
  m->finish();
  return m;
}

// --- lookup --------------------------------------------------------------------------------------

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || id >= id_limit()) return nullptr;
  return id_to_token_[static_cast<size_t>(id)];
}

std::optional<int32_t> BpeModel::lookup_piece(std::string_view piece) const {
  auto it = vocab_.find(piece);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

// --- tokenization --------------------------------------------------------------------------------

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (options_.ignore_merges) {
    if (auto id = lookup_piece(word)) {
      out.push_back(*id);
      return;
    }
  }
  constexpr size_t kMaxCachedBytes = 256;
  const bool cacheable = word.size() < kMaxCachedBytes;
  if (cacheable && cache_.lookup(word, out)) return;
  thread_local std::vector<int32_t> ids;
  ids.clear();
  merge_word(word, ids);
  if (cacheable) cache_.insert(word, ids);
  out.insert(out.end(), ids.begin(), ids.end());
}

namespace {

struct Symbol {
  int32_t id;
  int32_t prev;
  int32_t next;
  uint32_t len;  // bytes of the word this symbol covers; 0 once merged into its left neighbour
};

struct QueuedMerge {
  int32_t rank;
  int32_t pos;
  int32_t new_id;
  // The heap pops the largest: make the lowest rank, then the leftmost position, largest.
  bool operator<(const QueuedMerge& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

}  // namespace

void BpeModel::merge_word(std::string_view word, std::vector<int32_t>& out) const {
  thread_local std::vector<Symbol> symbols;
  symbols.clear();
  auto add = [&](int32_t id, uint32_t len) {
    const auto n = static_cast<int32_t>(symbols.size());
    symbols.push_back(Symbol{id, n - 1, -1, len});
    if (n > 0) symbols[static_cast<size_t>(n - 1)].next = n;
  };

  const bool fast_chars = !char_ids_.empty();
  // A pending run of unknown characters (fuse_unk joins consecutive ones).
  bool unk_pending = false;
  int32_t unk_pending_id = 0;
  uint32_t unk_pending_len = 0;
  std::string key;
  size_t i = 0;
  while (i < word.size()) {
    const size_t start = i;
    const char32_t cp = next_code_point(word, i);
    const auto byte_len = static_cast<uint32_t>(i - start);
    std::string_view piece = word.substr(start, byte_len);
    std::optional<int32_t> id;
    if (fast_chars) {
      if (cp < 0x10000) {
        int32_t v = char_ids_[cp];
        if (v >= 0) id = v;
      } else {
        id = lookup_piece(piece);
      }
    } else {
      key.clear();
      if (start != 0) key += options_.continuing_subword_prefix;
      key += piece;
      if (i == word.size()) key += options_.end_of_word_suffix;
      piece = key;
      id = lookup_piece(piece);
    }
    if (id) {
      if (unk_pending) {
        add(unk_pending_id, unk_pending_len);
        unk_pending = false;
      }
      add(*id, byte_len);
      continue;
    }
    if (options_.byte_fallback) {
      bool all = true;
      for (char c : piece) all = all && byte_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        for (char c : piece) add(byte_ids_[static_cast<unsigned char>(c)], 1);
        continue;
      }
    }
    if (unk_id_) {
      if (unk_pending && options_.fuse_unk) {
        unk_pending_len += byte_len;
      } else {
        if (unk_pending) add(unk_pending_id, unk_pending_len);
        unk_pending = true;
        unk_pending_id = *unk_id_;
        unk_pending_len = byte_len;
      }
    }
    // Without an unk token an unknown character is dropped, as HF does.
  }
  if (unk_pending) add(unk_pending_id, unk_pending_len);

  if (symbols.size() > 1 && !merges_.empty()) {
    thread_local std::vector<QueuedMerge> queue;  // a binary heap (std::push_heap/pop_heap)
    queue.clear();
    auto push = [&](QueuedMerge m) {
      queue.push_back(m);
      std::push_heap(queue.begin(), queue.end());
    };
    auto find_merge = [&](int32_t a, int32_t b) -> const Merge* {
      auto it = merges_.find(pair_key(a, b));
      return it == merges_.end() ? nullptr : &it->second;
    };
    for (size_t k = 0; k + 1 < symbols.size(); ++k) {
      if (const Merge* m = find_merge(symbols[k].id, symbols[k + 1].id)) {
        push({m->rank, static_cast<int32_t>(k), m->new_id});
      }
    }
    while (!queue.empty()) {
      std::pop_heap(queue.begin(), queue.end());
      const QueuedMerge top = queue.back();
      queue.pop_back();
      Symbol& left = symbols[static_cast<size_t>(top.pos)];
      if (left.len == 0 || left.next < 0) continue;
      const int32_t right_pos = left.next;
      Symbol right = symbols[static_cast<size_t>(right_pos)];
      const Merge* current = find_merge(left.id, right.id);
      if (current == nullptr || current->new_id != top.new_id) continue;  // stale entry
      left.id = top.new_id;
      left.len += right.len;
      left.next = right.next;
      symbols[static_cast<size_t>(right_pos)].len = 0;
      if (right.next >= 0) symbols[static_cast<size_t>(right.next)].prev = top.pos;
      if (left.prev >= 0) {
        if (const Merge* m = find_merge(symbols[static_cast<size_t>(left.prev)].id, left.id)) {
          push({m->rank, left.prev, m->new_id});
        }
      }
      if (left.next >= 0) {
        if (const Merge* m = find_merge(left.id, symbols[static_cast<size_t>(left.next)].id)) {
          push({m->rank, top.pos, m->new_id});
        }
      }
    }
  }
  for (const auto& s : symbols) {
    if (s.len != 0) out.push_back(s.id);
  }
}

}  // namespace aurora::runtime::tok
