// `aurora serve`: the OpenAI-compatible server on the engine (the embedded tiny model by default).
// Flags: aurora/server/serve_options.hpp; limits and defaults: docs/server.md.
#include <cstdio>
#include <string>
#include <vector>

#include "aurora/server/serve_options.hpp"
#include "aurora/server/server.hpp"
#include "commands.hpp"

namespace aurora::cli {
namespace {

int run_serve(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto options = server::parse_serve_args(args);
  if (!options) {
    std::fprintf(stderr, "aurora serve: %s\n", options.error().message.c_str());
    return kExitInvalidInput;
  }
  if (options->help) {
    std::fputs(server::serve_usage().c_str(), stdout);
    return kExitOk;
  }
  // Listen first, so that /health answers 503 "loading" while the model loads.
  server::Server server(options->server);
  auto started = server.start();
  if (!started) {
    std::fprintf(stderr, "aurora serve: %s\n", started.error().message.c_str());
    return started.error().code == ErrorCode::kInvalidArgument ? kExitInvalidInput : kExitFailure;
  }
  auto engine = runtime::create_engine(options->engine);
  if (!engine) {
    std::fprintf(stderr, "aurora serve: cannot start the engine: %s\n", engine.error().message.c_str());
    server.stop();
    return engine.error().code == ErrorCode::kInvalidArgument ? kExitInvalidInput : kExitFailure;
  }
  server.set_engine(std::shared_ptr<runtime::Engine>(std::move(*engine)));
  return server.run(/*handle_signals=*/true);
}

const CommandRegistrar kRegistrar{"serve", "serve the OpenAI-compatible HTTP/SSE + WebSocket API", &run_serve};

}  // namespace
}  // namespace aurora::cli
