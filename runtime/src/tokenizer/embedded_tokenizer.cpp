// make_embedded_tokenizer: the built-in model's byte-level tokenizer, assembled from the same
// stages as a loaded tokenizer.json (ByteLevel pre-tokenizer and decoder, BPE without merges), so
// that it exercises the same encode and UTF-8-safe incremental decode paths.
#include "aurora/runtime/tokenizer.hpp"
#include "tokenizer/hf_tokenizer.hpp"
#include "tokenizer/utf8.hpp"

namespace aurora::runtime {

namespace {

constexpr int32_t kBos = 256;
constexpr int32_t kEos = 257;
constexpr int32_t kImStart = 258;
constexpr int32_t kImEnd = 259;
constexpr int32_t kPad = 260;

// `vocab_size` > 261: ids 261..vocab_size-1 become whole words " t<id>" (in the byte-level alphabet,
// so the ByteLevel decoder turns them into text); without merges, encoding never produces them.
std::shared_ptr<const Tokenizer> build_embedded(int32_t vocab_size) {
  using namespace tok;
  std::vector<std::pair<std::string, int32_t>> vocab;
  const auto& bytes = byte_to_unicode();
  for (int32_t b = 0; b < 256; ++b) vocab.emplace_back(bytes[static_cast<size_t>(b)], b);
  for (int32_t id = kPad + 1; id < vocab_size; ++id) {
    vocab.emplace_back(bytes[static_cast<size_t>(' ')] + "t" + std::to_string(id), id);
  }
  TokenizerPipeline p;
  p.model = BpeModel::build(std::move(vocab), {}, BpeOptions{});
  // No merges: every byte is its own token, so the GPT-2 regex split would not change the ids.
  p.pre_tokenizer = make_byte_level_pre_tokenizer(/*add_prefix_space=*/false, /*use_regex=*/false);
  p.decoder = make_byte_level_decoder();
  const std::pair<int32_t, const char*> specials[] = {
      {kBos, "<|bos|>"}, {kEos, "<|eos|>"}, {kImStart, "<|im_start|>"}, {kImEnd, "<|im_end|>"}, {kPad, "<|pad|>"}};
  for (const auto& [id, text] : specials) {
    AddedToken t;
    t.id = id;
    t.content = text;
    t.special = true;
    p.added_tokens.push_back(std::move(t));
  }
  SpecialTokenSettings s;
  s.bos_id = kBos;
  s.eos_ids = {kEos, kImEnd};
  s.add_bos = true;
  s.chat = ChatTemplate{ChatFormat::kChatMl, "<|bos|>", "<|eos|>", "", false, true};
  return std::make_shared<HfTokenizer>(std::move(p), std::move(s));
}

}  // namespace

std::shared_ptr<const Tokenizer> make_embedded_tokenizer() {
  static const std::shared_ptr<const Tokenizer> tokenizer = build_embedded(0);
  return tokenizer;
}

std::shared_ptr<const Tokenizer> make_full_vocab_byte_tokenizer(int32_t vocab_size) {
  return build_embedded(vocab_size);
}

}  // namespace aurora::runtime
