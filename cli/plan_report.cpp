#include "plan_report.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

#include <boost/json.hpp>

namespace aurora::cli {
namespace json = boost::json;
using sched::ScenarioPlan;
using sched::TransmissionPlan;

namespace {

std::string model_name(const ScenarioPlan& p, int32_t m) {
  return m >= 0 && static_cast<size_t>(m) < p.models.size() ? p.models[static_cast<size_t>(m)].name : std::to_string(m);
}

json::object deployment_json(const ScenarioPlan& p, const sched::Deployment& d) {
  std::vector<json::array> per_gpu(static_cast<size_t>(p.cluster.num_gpus()));
  for (size_t m = 0; m < d.models.size(); ++m)
    for (size_t l = 0; l < d.models[m].experts.size(); ++l)
      for (size_t e = 0; e < d.models[m].experts[l].size(); ++e)
        for (const sched::Replica& r : d.models[m].experts[l][e]) {
          json::object x{{"model", p.models[m].name}, {"expert", e}, {"layer", l}};
          if (d.models[m].experts[l][e].size() > 1) x["share"] = r.share;
          per_gpu[static_cast<size_t>(r.gpu)].push_back(std::move(x));
        }
  json::array gpus;
  for (size_t g = 0; g < per_gpu.size(); ++g)
    gpus.push_back(json::object{{"gpu", g}, {"experts", std::move(per_gpu[g])}});
  return json::object{{"gpus", std::move(gpus)}};
}

json::object transmission_json(const ScenarioPlan& p, const TransmissionPlan& t) {
  json::array phases;
  for (size_t k = 0; k < t.num_phases(); ++k) {
    json::array transfers;
    for (const sched::Transfer& x : t.phase_transfers(k))
      transfers.push_back(json::object{
          {"src_gpu", x.src_gpu}, {"dst_gpu", x.dst_gpu}, {"bytes", x.bytes}, {"model", model_name(p, x.model)}});
    phases.push_back(json::object{{"duration_s", t.phases[k].duration_s}, {"transfers", std::move(transfers)}});
  }
  json::object candidates;
  for (int s = 0; s < sched::kNumOrderStrategies; ++s) {
    const double v = t.candidate_makespan_s[static_cast<size_t>(s)];
    if (v == v) candidates[sched::order_strategy_name(static_cast<sched::OrderStrategy>(s))] = v;
  }
  return json::object{{"strategy", sched::order_strategy_name(t.strategy)},
                      {"barrier_between_phases", t.barrier_between_phases},
                      {"lower_bound_s", t.lower_bound_s},
                      {"matching_bound_s", t.matching_bound_s},
                      {"makespan_s", t.makespan_s},
                      {"num_phases", t.num_phases()},
                      {"candidates_s", std::move(candidates)},
                      {"phases", std::move(phases)}};
}

json::object simulation_json(const sched::SimulationResult& r) {
  json::array layers;
  for (const sched::LayerSimulation& l : r.layers)
    layers.push_back(json::object{{"time_s", l.time_s}, {"all_to_all_s", l.all_to_all_s}, {"compute_s", l.compute_s}});
  return json::object{{"inference_time_s", r.inference_time_s},
                      {"all_to_all_time_s", r.all_to_all_time_s},
                      {"compute_time_s", r.compute_time_s},
                      {"gpu_utilization", r.gpu_utilization},
                      {"layers", std::move(layers)}};
}

}  // namespace

json::value plan_to_json(const ScenarioPlan& p) {
  json::object root;
  root["scenario"] = p.name;
  root["mode"] = sched::deployment_mode_name(p.mode);
  root["num_gpus"] = p.cluster.num_gpus();
  root["phase_latency_s"] = p.order.phase_latency_s;
  root["deployment"] = deployment_json(p, p.deployment);
  json::array layers;
  for (size_t l = 0; l < p.simulated.layers.size(); ++l) {
    const sched::LayerSimulation& ls = p.simulated.layers[l];
    for (size_t k = 0; k < ls.dispatch.size(); ++k) {
      json::object entry = transmission_json(p, ls.dispatch[k]);  // the dispatch all-to-all
      json::object out{{"layer", l}};
      if (p.mode == sched::DeploymentMode::kExclusive)
        out["model"] = model_name(
            p, ls.dispatch[k].transfers.empty() ? static_cast<int32_t>(k) : ls.dispatch[k].transfers[0].model);
      for (auto& kv : entry) out[kv.key()] = kv.value();
      out["combine"] = transmission_json(p, ls.combine[k]);
      out["layer_time_s"] = ls.time_s;
      layers.push_back(std::move(out));
    }
  }
  root["layers"] = std::move(layers);
  root["simulated"] = simulation_json(p.simulated);
  if (p.optimum && p.optimum_simulated) {
    json::object opt = simulation_json(*p.optimum_simulated);
    opt["search_cost_s"] = p.optimum->cost_s;
    opt["search_nodes"] = p.optimum->nodes;
    opt["deployment"] = deployment_json(p, p.optimum->deployment);
    root["optimum"] = std::move(opt);
  }
  return root;
}

json::value comparison_to_json(const ScenarioPlan& p) {
  json::array rows;
  for (const sched::ComparisonRow& r : p.comparison)
    rows.push_back(json::object{{"name", r.name},
                                {"deployment", r.deployment},
                                {"order", r.order},
                                {"inference_time_s", r.inference_time_s},
                                {"all_to_all_time_s", r.all_to_all_time_s},
                                {"gpu_utilization", r.gpu_utilization},
                                {"speedup_of_aurora", r.speedup}});
  return json::object{{"scenario", p.name},
                      {"mode", sched::deployment_mode_name(p.mode)},
                      {"num_gpus", p.cluster.num_gpus()},
                      {"phase_latency_s", p.order.phase_latency_s},
                      {"rows", std::move(rows)}};
}

std::string comparison_table(const ScenarioPlan& p) {
  std::ostringstream out;
  char line[256];
  std::snprintf(line, sizeof line, "scenario %s (%s, %d GPUs, %zu model%s, phase latency %.1f us)\n",
                p.name.empty() ? "(unnamed)" : p.name.c_str(), sched::deployment_mode_name(p.mode),
                p.cluster.num_gpus(), p.models.size(), p.models.size() == 1 ? "" : "s", p.order.phase_latency_s * 1e6);
  out << line;
  std::snprintf(line, sizeof line, "%-34s %-18s %-15s %12s %12s %7s %8s\n", "plan", "deployment", "order",
                "inference_ms", "all2all_ms", "util", "speedup");
  out << line;
  for (const sched::ComparisonRow& r : p.comparison) {
    std::snprintf(line, sizeof line, "%-34s %-18s %-15s %12.4f %12.4f %6.1f%% %7.3fx\n", r.name.c_str(),
                  r.deployment.c_str(), r.order.c_str(), r.inference_time_s * 1e3, r.all_to_all_time_s * 1e3,
                  r.gpu_utilization * 100, r.speedup);
    out << line;
  }
  out << "(speedup: that plan's inference time / Aurora's; > 1 means Aurora is faster)\n";
  return out.str();
}

std::string comparison_svg(const ScenarioPlan& p) {
  // Horizontal bars of inference time, Aurora first, labelled with the speedup of Aurora over each row.
  const int bar_h = 22, gap = 8, left = 300, width = 860, top = 50;
  const int height = top + static_cast<int>(p.comparison.size()) * (bar_h + gap) + 40;
  double max_t = 0;
  for (const auto& r : p.comparison) max_t = std::max(max_t, r.inference_time_s);
  if (max_t <= 0) max_t = 1;
  const double scale = (width - left - 140) / max_t;
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
    << "\" font-family=\"sans-serif\" font-size=\"13\">\n";
  s << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s << "<text x=\"10\" y=\"22\" font-size=\"16\" font-weight=\"bold\">" << (p.name.empty() ? "scenario" : p.name)
    << ": inference time (" << sched::deployment_mode_name(p.mode) << ", " << p.cluster.num_gpus() << " GPUs)</text>\n";
  int y = top;
  for (const auto& r : p.comparison) {
    const double w = r.inference_time_s * scale;
    const char* color = r.name == "aurora" ? "#1f77b4" : r.name == "optimum" ? "#2ca02c" : "#aaaaaa";
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n"
                  "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>\n"
                  "<text x=\"%.1f\" y=\"%d\">%.3f ms (%.2fx)</text>\n",
                  left - 8, y + 16, r.name.c_str(), left, y, w, bar_h, color, left + w + 6, y + 16,
                  r.inference_time_s * 1e3, r.speedup);
    s << buf;
    y += bar_h + gap;
  }
  s << "<text x=\"10\" y=\"" << y + 24 << "\" fill=\"#555\">(x): inference time of that plan over Aurora's</text>\n";
  s << "</svg>\n";
  return s.str();
}

}  // namespace aurora::cli
