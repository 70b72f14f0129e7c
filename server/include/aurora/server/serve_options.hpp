// The flags of `aurora serve` (and of the test server, which runs the same server on a fake engine):
//
//   aurora serve [--model DIR]... [--host 127.0.0.1] [--port 8000] [--api-key KEY] [--config FILE]
//                [--ranks N] [--device D] [engine flags] [--<server setting> VALUE]...
//
// Precedence: built-in defaults < the --config JSON file < flags. The config file holds the server
// settings as flat keys (see config/server_config.hpp) plus an optional "engine" object with the
// engine flags' names in snake_case ({"engine": {"max_num_seqs": 64, "model": ["DIR"]}}).
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "aurora/config/error.hpp"
#include "aurora/config/server_config.hpp"
#include "aurora/runtime/engine.hpp"

namespace aurora::server {

struct ServeOptions {
  config::ServerConfig server;
  runtime::EngineOptions engine;
  bool help = false;
};

// Parses everything after `serve`. Errors name the flag and the value.
Result<ServeOptions> parse_serve_args(const std::vector<std::string>& args);
// The --help text, with every server setting and its default.
std::string serve_usage();

}  // namespace aurora::server
