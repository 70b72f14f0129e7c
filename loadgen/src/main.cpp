// aurora-loadgen: the load generator's command-line entry point.
// Exit codes: 0 the run finished (failed requests are reported, not fatal), 1 the run could not
// start or no request succeeded (unless every one was cancelled on purpose), 2 invalid input (the
// message names the flag and the value).
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <exception>

#include "aurora/config/json.hpp"
#include "aurora/loadgen/config.hpp"
#include "aurora/loadgen/report.hpp"
#include "aurora/loadgen/runner.hpp"
#include "aurora/loadgen/svg_plot.hpp"

namespace {

// Many streams need many sockets: lift the soft descriptor limit to the hard one.
void raise_file_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

int run_main(int argc, char** argv) {
  using namespace aurora::loadgen;
  auto parsed = parse_command_line(argc, argv);
  if (!parsed) {
    std::fprintf(stderr, "aurora-loadgen: %s\n(see aurora-loadgen --help)\n", parsed.error().message.c_str());
    return 2;
  }
  if (!parsed->config) {
    std::printf("%s\n", parsed->message.c_str());
    return 0;
  }
  const LoadgenConfig& config = *parsed->config;
  raise_file_limit();
  RunOptions options;
  options.progress_out = stderr;
  options.progress_is_tty = isatty(STDERR_FILENO) != 0;
  options.handle_signals = true;
  auto run = run_benchmark(config, options);
  if (!run) {
    std::fprintf(stderr, "aurora-loadgen: %s\n", run.error().message.c_str());
    return run.error().code == aurora::ErrorCode::kInvalidArgument ? 2 : 1;
  }
  const Summary summary = summarize(run->records, run->duration_s, config.goodput, config.metric_percentiles);
  const std::vector<TimeBucket> series = per_second_series(run->records, run->duration_s);
  if (run->interrupted) std::fprintf(stderr, "aurora-loadgen: interrupted; the results cover the run so far\n");
  if (!config.quiet) std::printf("%s", format_summary_table(*run, summary).c_str());
  int status = 0;
  if (config.save_result) {
    auto written = aurora::config::write_text_file(
        *config.save_result, aurora::config::to_json_text_pretty(make_result_json(*run, summary, series)));
    if (!written) {
      std::fprintf(stderr, "aurora-loadgen: --save-result: %s\n", written.error().message.c_str());
      status = 1;
    } else if (!config.quiet) {
      std::printf("Result saved to %s\n", config.save_result->c_str());
    }
  }
  if (!config.plot.empty()) {
    auto written = aurora::config::write_text_file(config.plot, render_timeseries_svg(*run, series));
    if (!written) {
      std::fprintf(stderr, "aurora-loadgen: --plot: %s\n", written.error().message.c_str());
      status = 1;
    } else if (!config.quiet) {
      std::printf("Plot saved to %s\n", config.plot.c_str());
    }
  }
  // A run whose requests were all cancelled on purpose (--request-cancellation-rate 100) worked.
  if (summary.completed == 0 && (summary.cancelled == 0 || summary.failed > 0)) {
    std::fprintf(stderr, "aurora-loadgen: no request succeeded (%lld failed, %lld cancelled)\n",
                 static_cast<long long>(summary.failed), static_cast<long long>(summary.cancelled));
    return 1;
  }
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run_main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "aurora-loadgen: internal error: %s\n", e.what());
    return 1;
  }
}
