// aurora: the command-line entry point. Dispatches to the registered subcommands.
#include <cstdio>
#include <cstring>
#include <exception>

#include "commands.hpp"

namespace aurora::cli {

std::map<std::string, Command>& command_registry() {
  static std::map<std::string, Command> registry;
  return registry;
}

namespace {
void print_usage() {
  std::printf("usage: aurora <command> [options]\n\ncommands:\n");
  for (const auto& [name, cmd] : command_registry()) std::printf("  %-10s %s\n", name.c_str(), cmd.summary.c_str());
  std::printf("\nRun `aurora <command> --help` for a command's options.\n");
}
}  // namespace

}  // namespace aurora::cli

int main(int argc, char** argv) {
  using namespace aurora::cli;
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0 ||
      std::strcmp(argv[1], "help") == 0) {
    print_usage();
    return argc < 2 ? kExitInvalidInput : kExitOk;
  }
  auto it = command_registry().find(argv[1]);
  if (it == command_registry().end()) {
    std::fprintf(stderr, "aurora: unknown command '%s'\n", argv[1]);
    print_usage();
    return kExitInvalidInput;
  }
  try {
    return it->second.run(argc - 1, argv + 1);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "aurora %s: %s\n", argv[1], e.what());
    return kExitFailure;
  }
}
