// timeline_svg (online_report.hpp): a self-contained SVG (no scripts or fonts), one panel per
// quantity, static and online overlaid, the traffic-mix shift and the online plan switches marked.
#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <string>
#include <vector>

#include "online_report.hpp"

namespace aurora::bench {

namespace {

struct Series {
  std::string label;
  const char* color;
  bool step = false;  // plan versions: hold each value until the next
  bool dashed = false;
  std::vector<std::pair<double, double>> points;  // y < 0: no sample (gap)
};

struct Panel {
  std::string title;
  std::vector<Series> series;
  bool integer_axis = false;
};

constexpr double kWidth = 960, kLeft = 70, kRight = 150, kTop = 56, kPanelH = 104, kGap = 34;
const char* kStaticColor = "#1f77b4";
const char* kOnlineColor = "#d62728";

// printf-style append (also avoids GCC 12's false -Wrestrict on literal + std::string chains).
void addf(std::string& out, const char* f, ...) __attribute__((format(printf, 2, 3)));
void addf(std::string& out, const char* f, ...) {
  va_list ap;
  va_start(ap, f);
  va_list copy;
  va_copy(copy, ap);
  const int n = std::vsnprintf(nullptr, 0, f, copy);
  va_end(copy);
  if (n > 0) {
    const size_t at = out.size();
    out.resize(at + static_cast<size_t>(n) + 1);
    std::vsnprintf(out.data() + at, static_cast<size_t>(n) + 1, f, ap);
    out.resize(at + static_cast<size_t>(n));
  }
  va_end(ap);
}

std::string escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') {
      o += "&lt;";
    } else if (c == '>') {
      o += "&gt;";
    } else if (c == '&') {
      o += "&amp;";
    } else {
      o += c;
    }
  }
  return o;
}

Series make_series(const std::string& label, const char* color, bool step = false, bool dashed = false) {
  Series s;
  s.label = label;
  s.color = color;
  s.step = step;
  s.dashed = dashed;
  return s;
}

}  // namespace

std::string timeline_svg(const std::vector<RunSummary>& runs, const std::vector<RunData>& data, const Timing& timing,
                         const std::string& subtitle) {
  std::vector<Panel> panels(6);
  panels[0].title = "output throughput (tokens/s)";
  panels[1].title = "TPOT p50 (solid) and ITL p50 (dashed), ms";
  panels[2].title = "TTFT p50 (ms)";
  panels[3].title = "plan version";
  panels[3].integer_axis = true;
  panels[4].title = "expert-load balance (max / mean expert load, mean over layers)";
  panels[5].title = "placement quality: planner's T(fresh) / T(in force) on its window";
  for (size_t i = 0; i < runs.size(); ++i) {
    const char* color = runs[i].mode == "static" ? kStaticColor : kOnlineColor;
    Series thr = make_series(runs[i].mode, color), tpot = make_series(runs[i].mode, color);
    Series itl = make_series(runs[i].mode, color, false, true), ttft = make_series(runs[i].mode, color);
    for (const auto& b : runs[i].buckets) {
      const double mid = b.t_s + timing.bucket_s / 2;
      thr.points.emplace_back(mid, b.output_tokens_per_s);
      tpot.points.emplace_back(mid, b.tpot_p50_ms);
      itl.points.emplace_back(mid, b.itl_p50_ms);
      ttft.points.emplace_back(mid, b.ttft_p50_ms);
    }
    Series version = make_series(runs[i].mode, color, true), balance = make_series(runs[i].mode, color);
    Series quality = make_series(runs[i].mode, color);
    for (const auto& p : data[i].polls) {
      if (p.t_s < 0 || p.t_s > timing.end_s) continue;
      version.points.emplace_back(p.t_s, static_cast<double>(p.version));
      balance.points.emplace_back(p.t_s, p.expert_load_balance);
      quality.points.emplace_back(p.t_s, p.current_s > 0 ? p.fresh_s / p.current_s : -1);
    }
    panels[0].series.push_back(std::move(thr));
    panels[1].series.push_back(std::move(tpot));
    panels[1].series.push_back(std::move(itl));
    panels[2].series.push_back(std::move(ttft));
    panels[3].series.push_back(std::move(version));
    panels[4].series.push_back(std::move(balance));
    panels[5].series.push_back(std::move(quality));
  }

  const double plot_w = kWidth - kLeft - kRight;
  const double height = kTop + static_cast<double>(panels.size()) * (kPanelH + kGap) + 20;
  auto x_of = [&](double t) { return kLeft + plot_w * std::clamp(t / timing.end_s, 0.0, 1.0); };
  std::string out;
  addf(out,
       "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" "
       "font-size=\"11\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
       kWidth, height);
  addf(out,
       "<text x=\"%.0f\" y=\"20\" font-size=\"15\" font-weight=\"bold\">Online Aurora: static placement vs online "
       "re-planning under a shifting traffic mix</text>\n",
       kLeft);
  addf(out, "<text x=\"%.0f\" y=\"38\" fill=\"#444\">%s</text>\n", kLeft, escape(subtitle).c_str());
  // Legend.
  const double lx = kWidth - kRight + 12;
  struct Key {
    const char* color;
    const char* dash;
    const char* label;
  };
  const Key keys[] = {{kStaticColor, "none", "static"},
                      {kOnlineColor, "none", "online"},
                      {"black", "6,3", "mix shift"},
                      {kOnlineColor, "2,3", "online switch"}};
  for (int k = 0; k < 4; ++k) {
    const double y = kTop + 10 + 18 * k;
    addf(out,
         "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"%s\" stroke-width=\"2\" "
         "stroke-dasharray=\"%s\"/><text x=\"%.0f\" y=\"%.0f\">%s</text>\n",
         lx, y, lx + 20, y, keys[k].color, keys[k].dash, lx + 24, y + 4, keys[k].label);
  }

  for (size_t k = 0; k < panels.size(); ++k) {
    const Panel& p = panels[k];
    const double top = kTop + static_cast<double>(k) * (kPanelH + kGap) + 14;
    const double bottom = top + kPanelH;
    double lo = 0, hi = 0;
    for (const auto& s : p.series) {
      for (const auto& [x, y] : s.points) {
        if (y >= 0) hi = std::max(hi, y);
      }
    }
    if (p.integer_axis) {
      hi = std::max(2.0, std::ceil(hi) + 0.5);
      lo = 0.5;
    } else {
      hi = hi > 0 ? hi * 1.1 : 1.0;
    }
    auto y_of = [&](double v) { return bottom - (v - lo) / (hi - lo) * kPanelH; };
    addf(out, "<text x=\"%.0f\" y=\"%.0f\" font-weight=\"bold\">%s</text>\n", kLeft, top - 4, escape(p.title).c_str());
    addf(out, "<rect x=\"%.0f\" y=\"%.1f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#bbb\"/>\n", kLeft,
         top, plot_w, kPanelH);
    for (int g = 0; g <= 2; ++g) {
      const double v = lo + (hi - lo) * g / 2.0;
      addf(out, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#555\">", kLeft - 6, y_of(v) + 4);
      addf(out, hi - lo >= 20 ? "%.0f</text>\n" : "%.2g</text>\n", v);
    }
    // The shift and the online switches.
    addf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\" stroke-dasharray=\"6,3\"/>\n",
         x_of(timing.shift_s), top, x_of(timing.shift_s), bottom);
    for (const auto& r : runs) {
      if (r.mode != "online") continue;
      for (double t : r.switch_times_s) {
        if (t < 0 || t > timing.end_s) continue;
        addf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-dasharray=\"2,3\"/>\n",
             x_of(t), top, x_of(t), bottom, kOnlineColor);
      }
    }
    for (const auto& s : p.series) {
      std::string d;
      bool pen = false;
      double last_y = 0;
      for (const auto& [x, y] : s.points) {
        if (y < 0) {
          pen = false;
          continue;
        }
        const double px = x_of(x), py = y_of(y);
        if (!pen) {
          addf(d, "M%.1f,%.1f", px, py);
        } else if (s.step) {
          addf(d, "L%.1f,%.1fL%.1f,%.1f", px, last_y, px, py);
        } else {
          addf(d, "L%.1f,%.1f", px, py);
        }
        pen = true;
        last_y = py;
      }
      if (d.empty()) continue;
      addf(out, "<path d=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\"%s/>\n", d.c_str(), s.color,
           s.dashed ? " stroke-dasharray=\"4,3\"" : "");
    }
  }
  // The time axis under the last panel.
  const double axis_y = kTop + static_cast<double>(panels.size()) * (kPanelH + kGap) - kGap + 28;
  for (double t = 0; t <= timing.end_s + 1e-9; t += 10) {
    addf(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#555\">%.0f</text>\n", x_of(t), axis_y, t);
  }
  addf(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">seconds since the load started</text>\n</svg>\n",
       kLeft + plot_w / 2, axis_y + 14);
  return out;
}

}  // namespace aurora::bench
