#include "logprobs.hpp"

namespace aurora::server {

namespace {

protocol::LogprobToken render(const runtime::TokenLogprob& t, const runtime::Tokenizer& tokenizer) {
  return protocol::make_logprob_token(tokenizer.token_bytes(t.token_id).value_or(std::string()), t.logprob);
}

}  // namespace

std::vector<protocol::TokenLogprobs> render_logprobs(const std::vector<runtime::GeneratedLogprobs>& logprobs,
                                                     const runtime::Tokenizer& tokenizer) {
  std::vector<protocol::TokenLogprobs> out;
  out.reserve(logprobs.size());
  for (const auto& lp : logprobs) {
    protocol::TokenLogprobs t;
    t.sampled = render(lp.sampled, tokenizer);
    t.top.reserve(lp.top.size());
    for (const auto& alt : lp.top) t.top.push_back(render(alt, tokenizer));
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace aurora::server
