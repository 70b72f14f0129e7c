// The embedded default model: a tiny MoE built in process from a seed, so that Aurora runs on a
// fresh machine with nothing downloaded, with the byte-level embedded tokenizer.
//
// Shape: hidden 288, 4 layers, 4 query / 2 KV heads of 64, 16 experts (top-2, intermediate 128).
// Its weights are designed, not trained: one-hot byte embeddings, an LM head that reproduces byte
// bigram statistics of a small built-in corpus (so that it writes plausible-looking text), small
// random attention and expert perturbations, and a STRUCTURED router: each byte class (vowels,
// consonants, spaces, capitals, digits, code symbols, prose punctuation, other) sends its tokens
// to its own pair of experts, a different pair in each layer. Prose, code and digits therefore
// load different experts, and changing the traffic mix moves expert load, which is what the
// online scheduler is demonstrated on.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "model/model.hpp"

namespace aurora::runtime {

constexpr uint64_t kEmbeddedModelSeed = 20241022;
constexpr const char* kEmbeddedModelName = "aurora-embedded";

// Byte classes of the structured router (class c uses experts pair(layer, c)).
constexpr int32_t kEmbeddedNumByteClasses = 8;
int32_t embedded_byte_class(int32_t token_id);

// Token ids 0..255 are bytes; ids from 256 up are the tokenizer's specials.
std::shared_ptr<const Model> make_embedded_model(int32_t vocab_size, std::optional<int32_t> bos_id,
                                                 const std::vector<int32_t>& eos_ids,
                                                 uint64_t seed = kEmbeddedModelSeed);

// The two experts that byte class `cls` prefers in `layer` (for tests and docs).
std::vector<int32_t> embedded_class_experts(int32_t layer, int32_t cls, uint64_t seed = kEmbeddedModelSeed);

}  // namespace aurora::runtime
