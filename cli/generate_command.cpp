// `aurora generate`: runs one request through the engine (the embedded model when --model is not
// given) and prints the generated text as it streams, or with --json
//   {"prompt_ids": [...], "output_ids": [...], "text": "...", "finish_reason": "..."}
// --logits FILE writes the logits at the last prompt position (the distribution of the first
// generated token) as a JSON array. Greedy (temperature 0) unless --temperature says otherwise.
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include <boost/json.hpp>
#include <boost/program_options.hpp>

#include "aurora/config/json.hpp"
#include "aurora/runtime/engine.hpp"
#include "aurora/runtime/tokenizer.hpp"
#include "commands.hpp"

namespace aurora::cli {
namespace {

namespace po = boost::program_options;

// Hands the engine's output to the main thread; never blocks the engine (printing happens here,
// on the main thread, so a slow terminal or pipe cannot stall a step).
class StreamSink final : public runtime::TokenSink {
 public:
  bool on_delta(const runtime::TokenDelta& delta) override {
    std::lock_guard lock(mu_);
    pending_ += delta.text;
    ids_.insert(ids_.end(), delta.token_ids.begin(), delta.token_ids.end());
    cv_.notify_one();
    return true;
  }
  void on_finish(const runtime::Completion& completion) override {
    std::lock_guard lock(mu_);
    completion_ = completion;
    done_ = true;
    cv_.notify_one();
  }
  // Waits for new text or the end; returns the new text and whether the request ended.
  std::pair<std::string, bool> next() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !pending_.empty() || done_; });
    std::string text;
    text.swap(pending_);
    text_ += text;
    return {text, done_};
  }
  const std::vector<int32_t>& ids() const { return ids_; }
  const std::string& text() const { return text_; }
  const runtime::Completion& completion() const { return completion_; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::string pending_, text_;
  std::vector<int32_t> ids_;
  runtime::Completion completion_;
  bool done_ = false;
};

Result<std::vector<int32_t>> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  std::string token;
  std::istringstream in(text);
  while (in >> token) {
    for (std::string piece; !token.empty();) {
      const size_t comma = token.find(',');
      piece = token.substr(0, comma);
      token = comma == std::string::npos ? "" : token.substr(comma + 1);
      if (piece.empty()) continue;
      int32_t v = 0;
      auto [end, ec] = std::from_chars(piece.data(), piece.data() + piece.size(), v);
      if (ec != std::errc() || end != piece.data() + piece.size() || v < 0) {
        return Error::invalid("--prompt-ids", "\"" + piece + "\" is not a token id (a non-negative integer)");
      }
      ids.push_back(v);
    }
  }
  if (ids.empty()) return Error::invalid("--prompt-ids", "must list at least one token id");
  return ids;
}

int fail(const Error& e) {
  std::fprintf(stderr, "aurora generate: %s\n", e.message.c_str());
  return e.code == ErrorCode::kInvalidArgument || e.code == ErrorCode::kNotFound || e.code == ErrorCode::kUnsupported
             ? kExitInvalidInput
             : kExitFailure;
}

int run_generate(int argc, char** argv) {
  po::options_description options("aurora generate [options]");
  std::string model, prompt, prompt_ids, logits_file, chat_template, device = "auto";
  double gpu_memory_fraction = 0.90;
  int32_t max_tokens = 64, ranks = 1, top_k = 0;
  float temperature = 0.0f, top_p = 1.0f;
  uint64_t seed = 0;
  std::vector<std::string> stops;
  options.add_options()("help,h", "show this help")("model", po::value(&model),
                                                    "Hugging Face model directory (default: the embedded tiny model)")(
      "prompt", po::value(&prompt), "prompt text (tokenized with the model's tokenizer)")(
      "prompt-ids", po::value(&prompt_ids), "prompt as token ids, e.g. \"1 2 3\"")(
      "max-tokens", po::value(&max_tokens)->default_value(64), "tokens to generate at most")(
      "temperature", po::value(&temperature)->default_value(0.0f), "sampling temperature (0 = greedy)")(
      "top-p", po::value(&top_p)->default_value(1.0f), "nucleus sampling mass in (0, 1]")(
      "top-k", po::value(&top_k)->default_value(0), "keep the k most likely tokens (0 = off)")(
      "seed", po::value(&seed)->default_value(0), "sampling seed")(
      "stop", po::value(&stops)->composing(), "stop string (repeatable)")("ignore-eos", "keep generating after EOS")(
      "ranks", po::value(&ranks)->default_value(1),
      "expert-parallel ranks (CPU: in-process; GPU: one per GPU from --device on)")(
      "device", po::value(&device)->default_value("auto"), "cpu, cuda:N, or auto (GPU 0 when present, else cpu)")(
      "random-weights", "random weights from the model directory's config.json (no checkpoint read)")(
      "gpu-memory-fraction", po::value(&gpu_memory_fraction)->default_value(0.90),
      "share of GPU memory for weights + KV cache")("chat-template", po::value(&chat_template),
                                                    "chat template for the tokenizer (chatml, llama, mistral, plain)")(
      "json", "print {\"prompt_ids\", \"output_ids\", \"text\", \"finish_reason\"}")(
      "logits", po::value(&logits_file), "write the logits at the last prompt position to FILE (JSON array)");
  // Online Aurora's flags (--replan off|order|full and the thresholds), shared with `aurora serve`.
  po::options_description online("online Aurora (with --ranks > 1; docs/online.md)");
  for (const auto& f : runtime::online_flag_help()) {
    online.add_options()(f.flag + 2, po::value<std::string>(), f.help);
  }
  for (const auto& f : runtime::emulation_flag_help()) {
    online.add_options()(f.flag + 2, po::value<std::string>(), f.help);
  }
  options.add(online);
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, options), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "aurora generate: %s\n", e.what());
    return kExitInvalidInput;
  }
  if (vm.count("help") != 0U) {
    std::cout << options << "\n";
    return kExitOk;
  }
  const bool has_prompt = vm.count("prompt") != 0U, has_ids = vm.count("prompt-ids") != 0U;
  if (has_prompt == has_ids) {
    std::fprintf(stderr, "aurora generate: give exactly one of --prompt TEXT and --prompt-ids \"1 2 3\"\n");
    return kExitInvalidInput;
  }
  const bool json = vm.count("json") != 0U;

  runtime::EngineOptions eo;
  if (!model.empty()) eo.model_dirs = {model};
  eo.num_ranks = ranks;
  eo.device = device;
  eo.random_weights = vm.count("random-weights") != 0U;
  eo.gpu_memory_fraction = gpu_memory_fraction;
  eo.chat_template = chat_template;
  eo.max_num_seqs = 4;
  eo.seed = seed;
  for (const auto& f : runtime::online_flag_help()) {
    if (vm.count(f.flag + 2) == 0U) continue;
    auto applied = runtime::apply_online_flag(eo.online, f.flag, vm[f.flag + 2].as<std::string>());
    if (!applied) return fail(applied.error());
  }
  for (const auto& f : runtime::emulation_flag_help()) {
    if (vm.count(f.flag + 2) == 0U) continue;
    auto applied = runtime::apply_emulation_flag(eo.emulation, f.flag, vm[f.flag + 2].as<std::string>());
    if (!applied) return fail(applied.error());
  }
  auto engine = runtime::create_engine(eo);
  if (!engine) return fail(engine.error());

  runtime::GenerationRequest request;
  if (has_ids) {
    auto ids = parse_ids(prompt_ids);
    if (!ids) return fail(ids.error());
    request.prompt_ids = std::move(*ids);
  } else {
    request.prompt_ids = (*engine)->tokenizer().encode(prompt, /*add_special=*/true);
    if (request.prompt_ids.empty()) {
      return fail(Error::invalid(
          "--prompt", prompt.empty() ? "must not be empty" : "the model has no tokenizer.json; use --prompt-ids"));
    }
  }
  request.sampling.max_tokens = max_tokens;
  request.sampling.temperature = temperature;
  request.sampling.top_p = top_p;
  request.sampling.top_k = top_k;
  request.sampling.seed = seed;
  request.sampling.stop = stops;
  request.sampling.ignore_eos = vm.count("ignore-eos") != 0U;
  request.return_prompt_logits = !logits_file.empty();

  auto sink = std::make_shared<StreamSink>();
  auto id = (*engine)->submit(request, sink);
  if (!id) return fail(id.error());
  for (;;) {
    auto [text, done] = sink->next();
    if (!json && !text.empty()) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
    }
    if (done) break;
  }
  (*engine)->shutdown(std::chrono::milliseconds(0));
  const runtime::Completion& c = sink->completion();
  if (c.reason == runtime::FinishReason::kError) {
    return fail(c.error.value_or(Error::make(ErrorCode::kInternal, "generation failed")));
  }
  if (!logits_file.empty()) {
    // 9 significant digits: every float32 value round-trips exactly.
    std::string logits = "[";
    char number[32];
    for (size_t i = 0; i < c.prompt_logits.size(); ++i) {
      std::snprintf(number, sizeof(number), "%s%.9g", i ? "," : "", static_cast<double>(c.prompt_logits[i]));
      logits += number;
    }
    logits += "]\n";
    auto written = config::write_text_file(logits_file, logits);
    if (!written) return fail(written.error());
  }
  if (json) {
    boost::json::object out;
    boost::json::array p, o;
    for (int32_t t : request.prompt_ids) p.emplace_back(t);
    for (int32_t t : sink->ids()) o.emplace_back(t);
    out["prompt_ids"] = std::move(p);
    out["output_ids"] = std::move(o);
    out["text"] = sink->text();
    out["finish_reason"] = runtime::finish_reason_name(c.reason);
    std::printf("%s\n", config::to_json_text(out).c_str());
  } else {
    std::printf("\n");
  }
  return kExitOk;
}

const CommandRegistrar kRegistrar{"generate", "generate text with the engine (embedded model or --model DIR)",
                                  &run_generate};

}  // namespace
}  // namespace aurora::cli
