// Subcommand registry of the `aurora` executable. A command file defines
//   static const CommandRegistrar kRegistrar{"name", "one-line summary", &run_name};
// and main() dispatches `aurora name ARGS...` to it with argv[0] == "name".
// Exit codes: 0 success, 1 runtime failure, 2 invalid input (with a message naming the field).
#pragma once

#include <map>
#include <string>

namespace aurora::cli {

using CommandFn = int (*)(int argc, char** argv);

struct Command {
  std::string summary;
  CommandFn run;
};

std::map<std::string, Command>& command_registry();

struct CommandRegistrar {
  CommandRegistrar(const char* name, const char* summary, CommandFn run) {
    command_registry()[name] = Command{summary, run};
  }
};

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitInvalidInput = 2;

}  // namespace aurora::cli
