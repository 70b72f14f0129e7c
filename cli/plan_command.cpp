// `aurora plan SCENARIO.json [--out PLAN.json] [--compare] [--compare-out PREFIX] [--exhaustive]`:
// plans expert deployment and all-to-all order for a scenario (docs/plan-schema.md, docs/scheduler.md).
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>

#include <boost/program_options.hpp>

#include "aurora/config/json.hpp"
#include "aurora/config/scenario.hpp"
#include "aurora/scheduler/scenario_planner.hpp"
#include "commands.hpp"
#include "plan_report.hpp"

namespace aurora::cli {
namespace {
namespace po = boost::program_options;

int fail(const Error& e) {
  std::fprintf(stderr, "aurora plan: %s\n", e.message.c_str());
  return e.code == ErrorCode::kInvalidArgument || e.code == ErrorCode::kNotFound ? kExitInvalidInput : kExitFailure;
}

int run_plan(int argc, char** argv) {
  po::options_description opts("aurora plan SCENARIO.json [options]");
  opts.add_options()("help,h", "show this help")("out,o", po::value<std::string>(),
                                                 "write the plan JSON here (default: stdout)")(
      "compare", "evaluate the baselines: print a table, write it as JSON and SVG")(
      "compare-out", po::value<std::string>(),
      "prefix of the comparison files (default: the --out path without .json, else the scenario's name in the "
      "current directory); writes PREFIX.compare.json and PREFIX.compare.svg")(
      "exhaustive", "also find the optimum deployment by exhaustive search (one expert per GPU per model, <= 8 GPUs)");
  po::options_description hidden;
  hidden.add_options()("scenario", po::value<std::string>(), "scenario file");
  po::options_description all;
  all.add(opts).add(hidden);
  po::positional_options_description pos;
  pos.add("scenario", 1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "aurora plan: %s\n", e.what());
    std::cerr << opts;
    return kExitInvalidInput;
  }
  if (vm.count("help")) {
    std::cout << opts << "\nSchema: docs/plan-schema.md. Exit codes: 0 ok, 1 failure, 2 invalid input.\n";
    return kExitOk;
  }
  if (!vm.count("scenario")) {
    std::fprintf(stderr, "aurora plan: missing SCENARIO.json\n");
    std::cerr << opts;
    return kExitInvalidInput;
  }
  const std::string path = vm["scenario"].as<std::string>();
  auto scenario = config::load_scenario(path);
  if (!scenario) return fail(scenario.error());
  if (scenario->name.empty()) scenario->name = std::filesystem::path(path).stem().string();

  sched::ScenarioPlanOptions options;
  options.compare = vm.count("compare") > 0;
  options.exhaustive = vm.count("exhaustive") > 0;
  auto plan = sched::plan_scenario(*scenario, options);
  if (!plan) return fail(plan.error());

  const std::string text = config::to_json_text_pretty(plan_to_json(*plan));
  if (vm.count("out")) {
    const std::string out = vm["out"].as<std::string>();
    if (auto w = config::write_text_file(out, text); !w) return fail(w.error());
    std::printf("wrote %s: inference time %.4f ms, all-to-all %.4f ms, GPU utilisation %.1f%%\n", out.c_str(),
                plan->simulated.inference_time_s * 1e3, plan->simulated.all_to_all_time_s * 1e3,
                plan->simulated.gpu_utilization * 100);
    if (plan->optimum_simulated)
      std::printf("optimum (one expert per GPU per model): inference time %.4f ms (Aurora / optimum = %.4f)\n",
                  plan->optimum_simulated->inference_time_s * 1e3,
                  plan->simulated.inference_time_s / plan->optimum_simulated->inference_time_s);
  } else if (!options.compare) {
    std::fwrite(text.data(), 1, text.size(), stdout);
  }
  if (options.compare) {
    std::string prefix;
    if (vm.count("compare-out")) {
      prefix = vm["compare-out"].as<std::string>();
    } else if (vm.count("out")) {
      std::filesystem::path out = vm["out"].as<std::string>();
      prefix = (out.parent_path() / out.stem()).string();
    } else {
      prefix = scenario->name;
    }
    std::fputs(comparison_table(*plan).c_str(), stdout);
    if (auto w =
            config::write_text_file(prefix + ".compare.json", config::to_json_text_pretty(comparison_to_json(*plan)));
        !w)
      return fail(w.error());
    if (auto w = config::write_text_file(prefix + ".compare.svg", comparison_svg(*plan)); !w) return fail(w.error());
    std::printf("wrote %s.compare.json and %s.compare.svg\n", prefix.c_str(), prefix.c_str());
  }
  return kExitOk;
}

const CommandRegistrar kRegistrar{"plan", "plan expert deployment and all-to-all order for a scenario", &run_plan};

}  // namespace
}  // namespace aurora::cli
