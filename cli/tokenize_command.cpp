// `aurora tokenize --tokenizer PATH [--json] [--chat-template NAME] [--add-special] TEXT`:
// tokenizes TEXT with a Hugging Face tokenizer.json (or a model directory) and prints the ids,
// or with --json {"ids": [...], "decoded": "..."} (decoded with special tokens kept).
// With --chat-template, TEXT is one user message rendered with that template first
// ("auto" = the model's own template from tokenizer_config.json).
#include <cstdio>
#include <iostream>
#include <string>

#include <boost/json.hpp>
#include <boost/program_options.hpp>

#include "aurora/config/json.hpp"
#include "aurora/runtime/tokenizer.hpp"
#include "commands.hpp"

namespace aurora::cli {
namespace {

namespace po = boost::program_options;

int run_tokenize(int argc, char** argv) {
  po::options_description options("aurora tokenize [options] TEXT");
  std::string path;
  std::string chat_template;
  // clang-format off
  options.add_options()
      ("help,h", "show this help")
      ("tokenizer", po::value(&path), "tokenizer.json file or model directory (required)")
      ("json", "print {\"ids\": [...], \"decoded\": \"...\"}")
      ("chat-template", po::value(&chat_template),
       "render TEXT as a user message first: auto (the model's), chatml, llama, mistral, tulu or plain")
      ("add-special", "add the BOS/EOS tokens the tokenizer config asks for")
      ("text", po::value<std::string>(), "the text to tokenize");
  // clang-format on
  po::positional_options_description positional;
  positional.add("text", 1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(options).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "aurora tokenize: %s\n", e.what());
    return kExitInvalidInput;
  }
  if (vm.count("help") != 0U) {
    std::cout << options << "\n";
    return kExitOk;
  }
  if (path.empty()) {
    std::fprintf(stderr, "aurora tokenize: --tokenizer: is required (a tokenizer.json file or a model directory)\n");
    return kExitInvalidInput;
  }
  if (vm.count("text") == 0U) {
    std::fprintf(stderr, "aurora tokenize: TEXT: is required\n");
    return kExitInvalidInput;
  }
  std::string text = vm["text"].as<std::string>();

  const bool chat = vm.count("chat-template") != 0U;
  auto tokenizer = runtime::load_tokenizer(path, chat && chat_template != "auto" ? chat_template : "");
  if (!tokenizer) {
    std::fprintf(stderr, "aurora tokenize: %s\n", tokenizer.error().message.c_str());
    return tokenizer.error().code == ErrorCode::kInternal ? kExitFailure : kExitInvalidInput;
  }
  const auto& tok = **tokenizer;
  bool add_special = vm.count("add-special") != 0U;
  if (chat) {
    auto rendered = tok.apply_chat_template({runtime::ChatMessage{"user", text}}, true);
    if (!rendered) {
      std::fprintf(stderr, "aurora tokenize: %s\n", rendered.error().message.c_str());
      return kExitInvalidInput;
    }
    text = *rendered;
    add_special = false;  // the rendered text carries the BOS itself
  }
  const std::vector<int32_t> ids = tok.encode(text, add_special);
  if (vm.count("json") == 0U) {
    std::string line;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i > 0) line += ' ';
      line += std::to_string(ids[i]);
    }
    std::printf("%s\n", line.c_str());
    return kExitOk;
  }
  auto decoded = tok.decode(ids, /*skip_special=*/false);
  if (!decoded) {
    std::fprintf(stderr, "aurora tokenize: %s\n", decoded.error().message.c_str());
    return kExitFailure;
  }
  boost::json::object out;
  boost::json::array id_array;
  for (int32_t id : ids) id_array.push_back(id);
  out["ids"] = std::move(id_array);
  out["decoded"] = *decoded;
  if (chat) out["prompt"] = text;
  std::printf("%s\n", config::to_json_text(out).c_str());
  return kExitOk;
}

const CommandRegistrar kRegistrar{"tokenize", "tokenize text with a Hugging Face tokenizer.json", &run_tokenize};

}  // namespace
}  // namespace aurora::cli
