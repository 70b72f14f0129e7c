// aurora-loadgen-stub-server: a stub OpenAI-compatible server for load-generator benchmarks and
// demos. Every request streams max_tokens chunks (or --chunks), the first after --first-ms and then
// one every --interval-ms; /metrics can expose fake Aurora plan gauges that change over time.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>

#include <boost/program_options.hpp>

#include "stub_server.hpp"

namespace po = boost::program_options;
using aurora::loadgen::stub::StubRequest;
using aurora::loadgen::stub::StubScript;

int main(int argc, char** argv) {
  po::options_description desc("aurora-loadgen-stub-server options");
  desc.add_options()("help,h", "show this help")("host", po::value<std::string>()->default_value("127.0.0.1"),
                                                 "bind address")("port", po::value<int>()->default_value(8000),
                                                                 "port (0: any free port)")(
      "threads", po::value<int>()->default_value(1), "io threads")(
      "chunks", po::value<int64_t>()->default_value(0), "chunks per request (0: the request's max_tokens, else 16)")(
      "first-ms", po::value<double>()->default_value(0), "delay of the first chunk")(
      "interval-ms", po::value<double>()->default_value(0), "gap between chunks")(
      "fake-plan-every-s", po::value<double>()->default_value(0),
      "expose aurora:plan_version, bumped every N s, and a drifting aurora:expert_load_balance");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "aurora-loadgen-stub-server: %s\n", e.what());
    return 2;
  }
  if (vm.count("help")) {
    std::ostringstream out;
    out << desc;
    std::printf("%s\n", out.str().c_str());
    return 0;
  }
  const int64_t chunks = vm["chunks"].as<int64_t>();
  const double first_ms = vm["first-ms"].as<double>();
  const double interval_ms = vm["interval-ms"].as<double>();
  const double plan_every_s = vm["fake-plan-every-s"].as<double>();
  const auto t0 = std::chrono::steady_clock::now();

  aurora::loadgen::stub::StubServerOptions options;
  options.host = vm["host"].as<std::string>();
  options.port = static_cast<uint16_t>(vm["port"].as<int>());
  options.threads = vm["threads"].as<int>();
  options.script = [=](const StubRequest& r) {
    const int64_t n = chunks > 0 ? chunks : (r.max_tokens > 0 ? r.max_tokens : 16);
    return aurora::loadgen::stub::uniform_script(n, first_ms, interval_ms);
  };
  if (plan_every_s > 0) {
    options.metrics_text = [=] {
      const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const long version = 1 + static_cast<long>(t / plan_every_s);
      const double phase = std::fmod(t, plan_every_s) / plan_every_s;  // balance worsens, then a new plan fixes it
      std::string text = "# TYPE aurora:plan_version gauge\naurora:plan_version " + std::to_string(version) + "\n";
      text += "# TYPE aurora:expert_load_balance gauge\n";
      for (int layer = 0; layer < 4; ++layer) {
        const double v = 1.1 + 0.8 * phase + 0.05 * layer;
        text += "aurora:expert_load_balance{layer=\"" + std::to_string(layer) + "\"} " + std::to_string(v) + "\n";
      }
      return text;
    };
  }
  try {
    aurora::loadgen::stub::StubServer server(options);
    std::printf("aurora-loadgen-stub-server listening on %s:%u\n", options.host.c_str(), server.port());
    std::fflush(stdout);
    server.run_blocking();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "aurora-loadgen-stub-server: %s\n", e.what());
    return 1;
  }
  return 0;
}
