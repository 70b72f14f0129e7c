// Synthetic text of three clearly distinct kinds (prose, code, digits) and a tokenizer-free token
// estimate.
//
// The kinds differ in content on purpose: an MoE model's router sends different kinds of text to
// different experts, so a workload that shifts between them moves the expert load. Generation is
// deterministic given the Rng. estimate_tokens() approximates a BPE tokenizer without one (a word
// is one token, long words one per 6 letters, digits in groups of 3, each other symbol one token,
// whitespace folded into the next token); servers that report usage override it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "aurora/loadgen/rng.hpp"

namespace aurora::loadgen {

enum class PromptKind { kProse, kCode, kDigits };
constexpr int kNumPromptKinds = 3;

const char* prompt_kind_name(PromptKind kind);
std::optional<PromptKind> parse_prompt_kind(std::string_view name);

// Text of `kind` whose estimate_tokens() is close to (at least, within one unit) `num_tokens`.
std::string make_text(PromptKind kind, int64_t num_tokens, Rng& rng);

int64_t estimate_tokens(std::string_view text);

}  // namespace aurora::loadgen
