#include "aurora/loadgen/svg_plot.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <sstream>

namespace aurora::loadgen {
namespace {

constexpr double kWidth = 1000;
constexpr double kLeft = 72;
constexpr double kRight = 24;
constexpr double kPanelHeight = 140;
constexpr double kPanelGap = 46;
constexpr double kTop = 56;

struct Series {
  std::string name;
  std::string color;
  std::vector<std::pair<double, std::optional<double>>> points;  // (t, value); nullopt = gap
  bool step = false;
};

struct Panel {
  std::string title;
  std::vector<Series> series;
};

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

double nice_step(double range, int target_ticks) {
  if (!(range > 0)) return 1;
  const double raw = range / target_ticks;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  const double nice = norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10;
  return nice * mag;
}

std::string num(double v) {
  std::ostringstream out;
  out.setf(std::ios::fixed);
  out.precision(1);
  out << v;
  return out.str();
}

std::string tick_label(double v, double step) {
  std::ostringstream out;
  if (step >= 1 || v == 0) {
    out << static_cast<long long>(std::llround(v));
  } else {
    out.setf(std::ios::fixed);
    out.precision(static_cast<int>(std::ceil(-std::log10(step))));
    out << v;
  }
  return out.str();
}

void draw_panel(std::ostringstream& svg, const Panel& panel, double top, double t_max) {
  const double plot_w = kWidth - kLeft - kRight;
  const double bottom = top + kPanelHeight;
  double y_max = 0;
  for (const auto& s : panel.series) {
    for (const auto& [t, v] : s.points) {
      if (v) y_max = std::max(y_max, *v);
    }
  }
  if (!(y_max > 0)) y_max = 1;
  const double y_step = nice_step(y_max, 4);
  y_max = std::ceil(y_max / y_step) * y_step;
  auto x_of = [&](double t) { return kLeft + plot_w * (t_max > 0 ? t / t_max : 0); };
  auto y_of = [&](double v) { return bottom - kPanelHeight * v / y_max; };

  svg << "<text x=\"" << kLeft << "\" y=\"" << top - 8 << "\" class=\"title\">" << escape(panel.title) << "</text>\n";
  svg << "<rect x=\"" << kLeft << "\" y=\"" << top << "\" width=\"" << plot_w << "\" height=\"" << kPanelHeight
      << "\" class=\"frame\"/>\n";
  for (double v = 0; v <= y_max + y_step / 2; v += y_step) {
    const double y = y_of(v);
    svg << "<line x1=\"" << kLeft << "\" y1=\"" << num(y) << "\" x2=\"" << kLeft + plot_w << "\" y2=\"" << num(y)
        << "\" class=\"grid\"/>\n";
    svg << "<text x=\"" << kLeft - 6 << "\" y=\"" << num(y + 4) << "\" class=\"ylabel\">" << tick_label(v, y_step)
        << "</text>\n";
  }
  const double x_step = nice_step(t_max, 10);
  for (double t = 0; t <= t_max + x_step / 2; t += x_step) {
    const double x = x_of(std::min(t, t_max));
    svg << "<line x1=\"" << num(x) << "\" y1=\"" << top << "\" x2=\"" << num(x) << "\" y2=\"" << bottom
        << "\" class=\"grid\"/>\n";
    svg << "<text x=\"" << num(x) << "\" y=\"" << bottom + 14 << "\" class=\"xlabel\">" << tick_label(t, x_step)
        << "</text>\n";
  }
  double legend_x = kLeft + plot_w;
  for (auto it = panel.series.rbegin(); it != panel.series.rend(); ++it) {
    legend_x -= 8.0 * static_cast<double>(it->name.size()) + 30;
    svg << "<rect x=\"" << num(legend_x) << "\" y=\"" << top - 17 << "\" width=\"12\" height=\"4\" fill=\"" << it->color
        << "\"/>\n";
    svg << "<text x=\"" << num(legend_x + 16) << "\" y=\"" << top - 12 << "\" class=\"legend\">" << escape(it->name)
        << "</text>\n";
  }
  for (const auto& s : panel.series) {
    std::ostringstream path;
    bool pen_down = false;
    double last_y = 0;
    for (const auto& [t, v] : s.points) {
      if (!v) {
        pen_down = false;
        continue;
      }
      const double x = x_of(t);
      const double y = y_of(*v);
      if (!pen_down) {
        path << 'M' << num(x) << ' ' << num(y) << ' ';
        pen_down = true;
      } else if (s.step) {
        path << 'L' << num(x) << ' ' << num(last_y) << " L" << num(x) << ' ' << num(y) << ' ';
      } else {
        path << 'L' << num(x) << ' ' << num(y) << ' ';
      }
      last_y = y;
    }
    if (!path.str().empty()) {
      svg << "<path d=\"" << path.str() << "\" fill=\"none\" stroke=\"" << s.color << "\" stroke-width=\"1.6\"/>\n";
    }
    // Lone points (a bucket between two gaps) would be invisible as paths: draw dots for them.
    for (size_t i = 0; i < s.points.size(); ++i) {
      if (!s.points[i].second) continue;
      const bool prev = i > 0 && s.points[i - 1].second;
      const bool next = i + 1 < s.points.size() && s.points[i + 1].second;
      if (prev || next) continue;
      svg << "<circle cx=\"" << num(x_of(s.points[i].first)) << "\" cy=\"" << num(y_of(*s.points[i].second))
          << "\" r=\"2\" fill=\"" << s.color << "\"/>\n";
    }
  }
}

}  // namespace

std::string render_timeseries_svg(const RunResult& run, const std::vector<TimeBucket>& series) {
  std::vector<Panel> panels;
  auto mid = [](const TimeBucket& b) { return b.t_start_s + 0.5; };
  Panel throughput{"Output throughput (tok/s)", {}};
  Series tok{"output tok/s", "#1f77b4", {}, false};
  Series req{"completed req/s x 10", "#9467bd", {}, false};
  for (const auto& b : series) {
    tok.points.emplace_back(mid(b), b.output_tokens);
    req.points.emplace_back(mid(b), 10.0 * static_cast<double>(b.completed));
  }
  throughput.series = {tok, req};
  panels.push_back(throughput);

  Panel ttft{"Time to first token, median per second (ms)", {}};
  Series ttft_s{"p50 TTFT", "#ff7f0e", {}, false};
  Panel tpot{"Time per output token, median per second (ms)", {}};
  Series tpot_s{"p50 TPOT", "#2ca02c", {}, false};
  for (const auto& b : series) {
    ttft_s.points.emplace_back(mid(b), b.ttft_p50_ms);
    tpot_s.points.emplace_back(mid(b), b.tpot_p50_ms);
  }
  ttft.series = {ttft_s};
  tpot.series = {tpot_s};
  panels.push_back(ttft);
  panels.push_back(tpot);

  Panel running{"Requests in flight (mean per second) and arrivals per second", {}};
  Series run_s{"in flight", "#d62728", {}, false};
  Series arr_s{"arrivals/s", "#7f7f7f", {}, false};
  for (const auto& b : series) {
    run_s.points.emplace_back(mid(b), b.running_mean);
    arr_s.points.emplace_back(mid(b), static_cast<double>(b.started));
  }
  running.series = {run_s, arr_s};
  panels.push_back(running);

  // Plan changes: the times at which the scraped plan version moved.
  std::vector<std::pair<double, double>> plan_changes;
  std::optional<double> last_version;
  for (const auto& snap : run.plan_snapshots) {
    if (!snap.plan_version) continue;
    if (last_version && *snap.plan_version != *last_version) plan_changes.emplace_back(snap.t_s, *snap.plan_version);
    last_version = snap.plan_version;
  }
  bool have_balance = false;
  for (const auto& snap : run.plan_snapshots) have_balance = have_balance || !snap.balance_by_layer.empty();
  if (have_balance) {
    Panel balance{"Expert load balance (max / mean expert load; 1 = even)", {}};
    Series mean_s{"mean over layers", "#17becf", {}, false};
    Series max_s{"worst layer", "#bcbd22", {}, false};
    for (const auto& snap : run.plan_snapshots) {
      mean_s.points.emplace_back(snap.t_s, snap.mean_balance());
      max_s.points.emplace_back(snap.t_s, snap.max_balance());
    }
    balance.series = {mean_s, max_s};
    panels.push_back(balance);
  }

  double t_max = 1;
  for (const auto& b : series) t_max = std::max(t_max, b.t_start_s + 1.0);
  for (const auto& snap : run.plan_snapshots) t_max = std::max(t_max, snap.t_s);

  const double height = kTop + static_cast<double>(panels.size()) * (kPanelHeight + kPanelGap) + 20;
  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << kWidth << "\" height=\"" << num(height)
      << "\" viewBox=\"0 0 " << kWidth << " " << num(height) << "\" font-family=\"sans-serif\">\n";
  svg << "<style>.title{font-size:13px;font-weight:bold;fill:#222}.legend{font-size:11px;fill:#333}"
         ".xlabel{font-size:10px;fill:#555;text-anchor:middle}.ylabel{font-size:10px;fill:#555;text-anchor:end}"
         ".frame{fill:#fff;stroke:#888;stroke-width:1}.grid{stroke:#e4e4e4;stroke-width:1}"
         ".plan{stroke:#d62728;stroke-width:1.2;stroke-dasharray:5,3}.phase{stroke:#555;stroke-width:1;"
         "stroke-dasharray:2,3}.mark{font-size:10px}</style>\n";
  svg << "<rect width=\"100%\" height=\"100%\" fill=\"#fafafa\"/>\n";
  const std::string title = "aurora-loadgen: " + std::string(backend_name(run.config.backend)) + " " + run.model;
  std::string subtitle = run.workload_description;
  if (subtitle.size() > 150) subtitle = subtitle.substr(0, 147) + "...";
  svg << "<text x=\"" << kLeft << "\" y=\"20\" font-size=\"15\" font-weight=\"bold\">" << escape(title) << "</text>\n";
  svg << "<text x=\"" << kLeft << "\" y=\"36\" font-size=\"11\" fill=\"#333\">" << escape(subtitle) << "</text>\n";
  svg << "<text x=\"" << kLeft << "\" y=\"51\" font-size=\"11\" fill=\"#555\">time since start (s); "
      << "red dashed: plan change; grey dotted: traffic-mix phase</text>\n";
  double top = kTop + 18;
  for (const auto& panel : panels) {
    draw_panel(svg, panel, top, t_max);
    const double plot_w = kWidth - kLeft - kRight;
    for (const auto& [t, version] : plan_changes) {
      const double x = kLeft + plot_w * t / t_max;
      svg << "<line x1=\"" << num(x) << "\" y1=\"" << num(top) << "\" x2=\"" << num(x) << "\" y2=\""
          << num(top + kPanelHeight) << "\" class=\"plan\"/>\n";
      svg << "<text x=\"" << num(x + 3) << "\" y=\"" << num(top + 11) << "\" class=\"mark\" fill=\"#d62728\">plan v"
          << static_cast<long long>(version) << "</text>\n";
    }
    for (size_t i = 0; i < run.phase_starts_s.size(); ++i) {
      const double t = run.phase_starts_s[i];
      if (t > t_max) continue;
      const double x = kLeft + plot_w * t / t_max;
      svg << "<line x1=\"" << num(x) << "\" y1=\"" << num(top) << "\" x2=\"" << num(x) << "\" y2=\""
          << num(top + kPanelHeight) << "\" class=\"phase\"/>\n";
      svg << "<text x=\"" << num(x + 3) << "\" y=\"" << num(top + kPanelHeight - 4)
          << "\" class=\"mark\" fill=\"#555\">phase " << i + 2 << "</text>\n";
    }
    top += kPanelHeight + kPanelGap;
  }
  svg << "</svg>\n";
  return svg.str();
}

}  // namespace aurora::loadgen
